/**
 * Unit tests of src/ext4/xattr.ts against the kernel.org ext4 layout ("Extended Attributes"):
 * ext4_xattr_header {le32 magic 0xEA020000, refcount, blocks, hash, checksum, reserved[3]},
 * ext4_xattr_entry {u8 name_len, u8 name_index, le16 value_offs, le32 value_inum, le32 value_size,
 * le32 hash, name}, values packed from the end, entries sorted by (index, name length, name).
 * Sharing of identical xattr blocks (src/ext4/plan.ts) is tested through planMetadata.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../../src/ext4/crc32c.js';
import { numberInodes, planMetadata } from '../../src/ext4/plan.js';
import {
  compareItems,
  decodeXattrRegion,
  encodeInodeXattrs,
  encodeXattrBlock,
  placeXattrs,
  sealXattrBlock,
  toXattrItem,
  xattrEntryHash,
  xattrFullName,
  type XattrItem,
} from '../../src/ext4/xattr.js';
import { INODE_SIZE, XATTR_IBODY_START } from '../../src/ext4/format.js';
import { FsTree } from '../../src/tree/tree.js';
import { RootforgeError } from '../../src/errors.js';

const item = (index: number, name: string, value: string | Buffer): XattrItem => ({
  index,
  name: Buffer.from(name),
  value: typeof value === 'string' ? Buffer.from(value) : value,
});

function blockChecksumOk(b: Buffer, blockNr: number, seed: number): boolean {
  const copy = Buffer.from(b);
  copy.writeUInt32LE(0, 0x10);
  const nr = Buffer.alloc(8);
  nr.writeBigUInt64LE(BigInt(blockNr));
  return b.readUInt32LE(0x10) === crc32c(crc32c(seed, nr), copy);
}

test('entry hash follows ext4_xattr_hash_entry (hand-computed golden)', () => {
  // name "a": h = 0x61; value "b" padded to one le32 word 0x00000062: h = (h << 16) ^ (h >>> 16) ^ w
  assert.equal(xattrEntryHash(item(1, 'a', 'b')), 0x00610062);
  // empty value: the name alone
  assert.equal(xattrEntryHash(item(1, 'ab', '')), ((0x61 << 5) ^ 0x62) >>> 0);
});

test('xattr block: golden header, entry and value placement', () => {
  const b = encodeXattrBlock([item(1, 'a', 'b')]);
  sealXattrBlock(b, 3, 0x1_0000_0002, 0xabcdef01);
  assert.equal(b.length, 4096);
  assert.equal(b.readUInt32LE(0x0), 0xea020000, 'h_magic');
  assert.equal(b.readUInt32LE(0x4), 3, 'h_refcount');
  assert.equal(b.readUInt32LE(0x8), 1, 'h_blocks');
  assert.equal(b.readUInt32LE(0xc), 0x00610062, 'h_hash of a single entry is its hash');
  assert.ok(b.subarray(0x14, 0x20).every((x) => x === 0), 'h_reserved');
  // entry at 32: name_len 1, index 1 (user), value at 4092, inum 0, size 1, hash, "a"
  assert.deepEqual([...b.subarray(32, 49)], [1, 1, 0xfc, 0x0f, 0, 0, 0, 0, 1, 0, 0, 0, 0x62, 0x00, 0x61, 0x00, 0x61]);
  assert.equal(b.readUInt32LE(52), 0, 'end of entries');
  assert.equal(b.subarray(4092, 4096).toString('latin1'), 'b\0\0\0');
  assert.ok(blockChecksumOk(b, 0x1_0000_0002, 0xabcdef01));
});

test('single-byte corruption of an xattr block fails its checksum; so does another block number', () => {
  const items = [item(1, 'mime', 'text/plain'), item(6, 'selinux', 'system_u:object_r:bin_t:s0')].sort(compareItems);
  const b = encodeXattrBlock(items);
  sealXattrBlock(b, 1, 777, 42);
  assert.ok(blockChecksumOk(b, 777, 42));
  assert.equal(blockChecksumOk(b, 778, 42), false);
  for (const pos of [0, 4, 0xc, 32, 40, 4095, 4000]) {
    const bad = Buffer.from(b);
    bad[pos]! ^= 0x10;
    assert.equal(blockChecksumOk(bad, 777, 42), false, `byte ${pos}`);
  }
});

test('round trips: block and in-inode regions decode to the items encoded', () => {
  const items = [
    item(1, 'a', ''),
    item(1, 'b', 'x'),
    item(1, 'longer.name', Buffer.alloc(37, 7)),
    item(4, 'trusted-thing', 'v'),
    item(6, 'capability', Buffer.from('0100000200000000000000000000000000000000', 'hex')),
  ].sort(compareItems);
  const b = encodeXattrBlock(items);
  assert.deepEqual(decodeXattrRegion(b, 32, 4096, 0), items);

  const { inInode } = placeXattrs(items);
  assert.ok(inInode.length >= 2 && inInode.length < items.length);
  const inode = Buffer.alloc(INODE_SIZE * 2, 0xff);
  encodeInodeXattrs(inInode, inode, INODE_SIZE);
  assert.equal(inode.readUInt32LE(INODE_SIZE + XATTR_IBODY_START - 4), 0xea020000, 'in-inode magic');
  assert.deepEqual(decodeXattrRegion(inode, INODE_SIZE + XATTR_IBODY_START, 2 * INODE_SIZE, INODE_SIZE + XATTR_IBODY_START), inInode);
  assert.ok(inode.subarray(0, INODE_SIZE).every((x) => x === 0xff), 'the neighbouring inode is untouched');
  encodeInodeXattrs([], inode, INODE_SIZE);
  assert.equal(decodeXattrRegion(inode, INODE_SIZE + XATTR_IBODY_START, 2 * INODE_SIZE, INODE_SIZE + XATTR_IBODY_START).length, 0);
});

test('names: prefixes map to indexes and back; unknown namespaces and long names are typed errors', () => {
  for (const full of ['user.mime_type', 'trusted.overlay.opaque', 'security.capability', 'security.selinux']) {
    const it = toXattrItem(full, Buffer.from('v'));
    assert.equal(xattrFullName(it.index, it.name), full);
  }
  const isCode = (code: string) => (e: unknown) => e instanceof RootforgeError && e.code === code;
  assert.throws(() => toXattrItem('bogus.name', Buffer.from('v')), isCode('EXT4_XATTR_INVALID'));
  assert.throws(() => toXattrItem('user.' + 'n'.repeat(256), Buffer.from('v')), isCode('EXT4_XATTR_TOO_LARGE'));
  assert.throws(() => toXattrItem('system.posix_acl_access', Buffer.from('junk')), isCode('EXT4_XATTR_INVALID'));
});

test('ordering: by index, then name length, then name bytes; placement keeps that order', () => {
  const items = [item(6, 'a', '1'), item(1, 'bb', '1'), item(1, 'c', '1'), item(1, 'a', '1'), item(2, 'z', '1')];
  const sorted = [...items].sort(compareItems);
  assert.deepEqual(sorted.map((i) => `${i.index}:${i.name}`), ['1:a', '1:c', '1:bb', '2:z', '6:a']);
  // big values: the first goes in-inode, everything after the first that does not fit goes to the block
  const big = [item(1, 'a', Buffer.alloc(40)), item(1, 'b', Buffer.alloc(200)), item(1, 'c', Buffer.alloc(4))];
  const { inInode, inBlock } = placeXattrs(big);
  assert.deepEqual(inInode.map((i) => i.name.toString()), ['a']);
  assert.deepEqual(inBlock.map((i) => i.name.toString()), ['b', 'c'], 'c stays after b even though it would fit in the inode');
  assert.throws(
    () => placeXattrs([item(1, 'huge', Buffer.alloc(5000))]),
    (e: unknown) => e instanceof RootforgeError && e.code === 'EXT4_XATTR_TOO_LARGE',
  );
});

test('sharing: inodes with equal out-of-inode xattrs share one block; different ones do not', () => {
  const t0 = { sec: 0, nsec: 0 };
  const tree = new FsTree();
  const big = (v: number) => new Map([['user.big', Buffer.alloc(300, v)]]);
  for (let i = 0; i < 5; i++) tree.addFile(`/same-${i}`, { mode: 0o644, uid: 0, gid: 0, mtime: t0, xattrs: big(1) }, 0, null);
  tree.addFile('/other', { mode: 0o644, uid: 0, gid: 0, mtime: t0, xattrs: big(2) }, 0, null);
  tree.addFile('/small', { mode: 0o644, uid: 0, gid: 0, mtime: t0, xattrs: new Map([['user.s', Buffer.from('1')]]) }, 0, null);
  const plan = numberInodes(tree.root, null);
  planMetadata(plan, Buffer.alloc(16));
  assert.equal(plan.xattrBlocks.length, 2);
  assert.deepEqual(plan.xattrBlocks.map((r) => r.refs).sort(), [1, 5]);
  const blockOf = (n: string) => plan.xattrs.get(plan.nodes.indexOf(tree.get(`/${n}`)!))?.block ?? null;
  const same = [...Array(5).keys()].map((i) => blockOf(`same-${i}`));
  assert.ok(same[0] !== null && same.every((r) => r === same[0]));
  assert.notEqual(blockOf('other'), same[0]);
  assert.equal(blockOf('small'), null, 'a small xattr stays in the inode');
  // equal items encode to equal bytes, which is what makes sharing safe
  assert.ok(encodeXattrBlock(same[0]!.items).equals(encodeXattrBlock([item(1, 'big', Buffer.alloc(300, 1))])));
});
