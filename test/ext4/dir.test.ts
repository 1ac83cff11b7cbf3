/**
 * Unit tests of src/ext4/dir.ts: linear and hashed directory blocks checked byte by byte against
 * the ext4 disk layout (kernel.org "Directory Entries": ext4_dir_entry_2, ext4_dir_entry_tail,
 * dx_root, dx_node, dx_tail), decoded back, and their checksums shown to catch a flipped byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../../src/ext4/crc32c.js';
import { direntSize, encodeDirectory, planDirectory, type DirEntry } from '../../src/ext4/dir.js';
import { halfMd4Hash } from '../../src/ext4/htree.js';

const SEED = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const CSUM = 0x1234abcd; // a directory inode's checksum seed
const FT_REG = 1;
const FT_DIR = 2;

/** Walks ext4_dir_entry_2 records {le32 inode, le16 rec_len, u8 name_len, u8 file_type, name} up to `end`. */
function readDirents(b: Buffer, start: number, end: number): { ino: number; recLen: number; name: Buffer; ft: number; off: number }[] {
  const out = [];
  for (let off = start; off < end; ) {
    const recLen = b.readUInt16LE(off + 4);
    assert.ok(recLen >= 12 && recLen % 4 === 0 && off + recLen <= end, `rec_len ${recLen} at ${off}`);
    const nameLen = b.readUInt8(off + 6);
    out.push({ ino: b.readUInt32LE(off), recLen, name: b.subarray(off + 8, off + 8 + nameLen), ft: b.readUInt8(off + 7), off });
    off += recLen;
  }
  return out;
}

/** ext4_dir_entry_tail at 4084: zero inode, rec_len 12, name_len 0, file_type 0xDE, crc32c of bytes 0..4083. */
function leafTailOk(b: Buffer, seed: number): boolean {
  return (
    b.readUInt32LE(4084) === 0 &&
    b.readUInt16LE(4088) === 12 &&
    b.readUInt8(4090) === 0 &&
    b.readUInt8(4091) === 0xde &&
    b.readUInt32LE(4092) === crc32c(seed, b, 0, 4084)
  );
}

/** dx_tail after `limit` entries: crc32c over the used entries, then dt_reserved, then a zero checksum. */
function dxTailOk(b: Buffer, countOff: number, seed: number): boolean {
  const limit = b.readUInt16LE(countOff);
  const count = b.readUInt16LE(countOff + 2);
  const tail = countOff + limit * 8;
  let crc = crc32c(seed, b, 0, countOff + count * 8);
  crc = crc32c(crc, b, tail, tail + 4);
  crc = crc32c(crc, Buffer.alloc(4));
  return b.readUInt32LE(tail + 4) === crc;
}

const entry = (name: string, ino: number, fileType = FT_REG): DirEntry => ({ name: Buffer.from(name), ino, fileType });

test('dirent size is 8 + name rounded up to 4', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 250, 255].map(direntSize), [12, 12, 12, 12, 16, 260, 264]);
});

test('linear block: golden bytes of ".", "..", two entries and the checksummed tail', () => {
  const entries = [entry('a', 12), entry('bin', 13, FT_DIR)];
  const plan = planDirectory(entries, SEED);
  assert.deepEqual(plan, { blocks: 1, indexed: false });
  const [b] = encodeDirectory(entries, plan, 2, 2, CSUM);
  assert.ok(b);
  assert.equal(b.length, 4096);
  const golden = Buffer.alloc(36);
  // "." : inode 2, rec_len 12, name_len 1, FT_DIR
  golden.set([2, 0, 0, 0, 12, 0, 1, 2, 0x2e, 0, 0, 0], 0);
  // "..": inode 2, rec_len 12, name_len 2, FT_DIR
  golden.set([2, 0, 0, 0, 12, 0, 2, 2, 0x2e, 0x2e, 0, 0], 12);
  // "a": inode 12, rec_len 12, name_len 1, FT_REG
  golden.set([12, 0, 0, 0, 12, 0, 1, 1, 0x61, 0, 0, 0], 24);
  assert.deepEqual(b.subarray(0, 36), golden);
  // "bin" is last: its rec_len stretches to the tail (4084 - 36 = 4048 = 0x0fd0)
  assert.deepEqual([...b.subarray(36, 47)], [13, 0, 0, 0, 0xd0, 0x0f, 3, 2, 0x62, 0x69, 0x6e]);
  assert.ok(b.subarray(47, 4084).every((x) => x === 0));
  assert.ok(leafTailOk(b, CSUM));
});

test('linear block round trip: decoding gives back ".", ".." and every entry in order', () => {
  const entries = ['alpha', 'beta', 'gamma-with-a-longer-name', 'z'].map((n, i) => entry(n, 20 + i, i % 2 ? FT_DIR : FT_REG));
  const [b] = encodeDirectory(entries, planDirectory(entries, SEED), 7, 3, CSUM);
  const back = readDirents(b!, 0, 4084);
  assert.deepEqual(
    back.map((d) => [d.name.toString(), d.ino, d.ft]),
    [['.', 7, FT_DIR], ['..', 3, FT_DIR], ...entries.map((e) => [e.name.toString(), e.ino, e.fileType])],
  );
});

test('a directory block exactly full stays linear; one more byte of entries makes it hashed', () => {
  // "." 12 + ".." 12 + 15 × 260 + 160 = 4084, the space before the tail.
  const names = Array.from({ length: 15 }, (_, i) => `${String(i).padStart(3, '0')}`.padEnd(250, 'x'));
  names.push('y'.repeat(152)); // 8 + 152 = 160
  const entries = names.map((n, i) => entry(n, 100 + i));
  const plan = planDirectory(entries, SEED);
  assert.deepEqual(plan, { blocks: 1, indexed: false });
  const [b] = encodeDirectory(entries, plan, 2, 2, CSUM);
  const back = readDirents(b!, 0, 4084);
  assert.equal(back.length, 18);
  assert.equal(back.at(-1)!.recLen, 160, 'the last entry ends exactly at the tail');
  assert.ok(leafTailOk(b!, CSUM));

  const more = [...entries, entry('z', 999)];
  const hashed = planDirectory(more, SEED);
  assert.equal(hashed.indexed, true);
  assert.equal(hashed.levels, 1);
  assert.equal(hashed.blocks, 1 + hashed.leaves!.length);
});

test('lost+found style padding: minBlocks adds empty checksummed leaves', () => {
  const blocks = encodeDirectory([], planDirectory([], SEED), 11, 2, CSUM, 4);
  assert.equal(blocks.length, 4);
  for (const b of blocks.slice(1)) {
    assert.deepEqual(readDirents(b, 0, 4084).map((d) => [d.ino, d.recLen]), [[0, 4084]]);
    assert.ok(leafTailOk(b, CSUM));
  }
});

test('single-byte corruption of a leaf or dx block is caught by its checksum', () => {
  const entries = Array.from({ length: 400 }, (_, i) => entry(`file-${i}`, 100 + i));
  const blocks = encodeDirectory(entries, planDirectory(entries, SEED), 2, 2, CSUM);
  assert.ok(blocks.length > 2);
  assert.ok(dxTailOk(blocks[0]!, 32, CSUM));
  // the checksum covers the header and the used dx entries (count × 8 bytes from 32)
  for (const pos of [0, 5, 24, 30, 33, 40, 47]) {
    const bad = Buffer.from(blocks[0]!);
    bad[pos]! ^= 0x01;
    assert.equal(dxTailOk(bad, 32, CSUM), false, `dx_root byte ${pos}`);
  }
  for (const pos of [0, 4, 8, 100, 4000, 4083]) {
    const bad = Buffer.from(blocks[1]!);
    bad[pos]! ^= 0x80;
    assert.equal(leafTailOk(bad, CSUM), false, `leaf byte ${pos}`);
  }
  // a different directory inode (seed) does not validate either
  assert.equal(leafTailOk(blocks[1]!, CSUM + 1), false);
});

/** Checks a hashed directory against the layout and returns all names found in its leaves. */
function checkHtree(blocks: Buffer[], self: number, parent: number, levels: number): string[] {
  const root = blocks[0]!;
  // fake "." (rec_len 12) and ".." (rec_len 4084 = rest of block up to dx_root_info)
  assert.deepEqual([root.readUInt32LE(0), root.readUInt16LE(4), root.readUInt8(6)], [self, 12, 1]);
  assert.deepEqual([root.readUInt32LE(12), root.readUInt16LE(16), root.readUInt8(18)], [parent, 4084, 2]);
  // dx_root_info: reserved_zero, hash_version 1 (half MD4), info_length 8, indirect_levels, unused_flags
  assert.deepEqual([root.readUInt32LE(24), root[28], root[29], root[30], root[31]], [0, 1, 8, levels - 1, 0]);
  assert.equal(root.readUInt16LE(32), 507, 'dx_root limit');
  assert.ok(dxTailOk(root, 32, CSUM));
  const readIndex = (b: Buffer, off: number) => {
    const count = b.readUInt16LE(off + 2);
    const out = [{ hash: 0, block: b.readUInt32LE(off + 4) }];
    for (let i = 1; i < count; i++) out.push({ hash: b.readUInt32LE(off + i * 8), block: b.readUInt32LE(off + i * 8 + 4) });
    for (let i = 2; i < out.length; i++) assert.ok(out[i]!.hash >= out[i - 1]!.hash, 'index hashes ascend');
    return out;
  };
  let leafRefs = readIndex(root, 32);
  if (levels === 2) {
    const nodes = leafRefs;
    leafRefs = [];
    for (const n of nodes) {
      const node = blocks[n.block]!;
      assert.deepEqual([node.readUInt32LE(0), node.readUInt16LE(4)], [0, 4096], 'dx_node fake dirent');
      assert.equal(node.readUInt16LE(8), 510, 'dx_node limit');
      assert.ok(dxTailOk(node, 8, CSUM));
      leafRefs.push(...readIndex(node, 8));
    }
  }
  const names: string[] = [];
  leafRefs.forEach((ref, i) => {
    const leaf = blocks[ref.block]!;
    assert.ok(leafTailOk(leaf, CSUM));
    const next = leafRefs[i + 1];
    for (const d of readDirents(leaf, 0, 4084)) {
      const h = halfMd4Hash(d.name, SEED, true).hash;
      assert.ok(h >= (ref.hash & ~1), `${d.name} hashes at or above its leaf's index`);
      if (next && (next.hash & 1) === 0) assert.ok(h < next.hash, `${d.name} hashes below the next leaf's index`);
      names.push(d.name.toString());
    }
  });
  return names;
}

test('htree split boundary: 507 leaves fit one level, 508 need a dx_node level', () => {
  // 250-byte names take 260 bytes, so exactly 15 fit a leaf (16 × 260 > 4084).
  const make = (n: number) => Array.from({ length: n }, (_, i) => entry(`${i}-`.padEnd(250, 'n'), 1000 + i));
  const one = make(507 * 15);
  const p1 = planDirectory(one, SEED);
  assert.equal(p1.leaves!.length, 507);
  assert.equal(p1.levels, 1);
  const b1 = encodeDirectory(one, p1, 2, 2, CSUM);
  assert.equal(b1.length, 508);
  assert.deepEqual(checkHtree(b1, 2, 2, 1).sort(), one.map((e) => e.name.toString()).sort());

  const two = make(507 * 15 + 1);
  const p2 = planDirectory(two, SEED);
  assert.equal(p2.leaves!.length, 508);
  assert.equal(p2.levels, 2);
  const b2 = encodeDirectory(two, p2, 5, 2, CSUM);
  assert.equal(b2.length, 1 + 1 + 508);
  assert.deepEqual(checkHtree(b2, 5, 2, 2).sort(), two.map((e) => e.name.toString()).sort());
});
