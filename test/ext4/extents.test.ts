/**
 * Unit tests of src/ext4/extents.ts against the kernel.org ext4 layout ("Extent Tree"):
 * ext4_extent_header {le16 magic 0xF30A, le16 entries, le16 max, le16 depth, le32 generation},
 * ext4_extent {le32 ee_block, le16 ee_len, le16 ee_start_hi, le32 ee_start_lo},
 * ext4_extent_idx {le32 ei_block, le32 ei_leaf_lo, le16 ei_leaf_hi, u16 unused},
 * ext4_extent_tail {le32 crc32c(inode seed, block up to the tail)}.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeExtentNode, type Extent } from '../../src/ext4/codec.js';
import { crc32c } from '../../src/ext4/crc32c.js';
import { encodeExtentTree, extentTreeBlocks, runsToExtents } from '../../src/ext4/extents.js';
import { RootforgeError } from '../../src/errors.js';

const SEED = 0xdeadbeef;

/** Extents of 1 block each, every other physical block, so none merge. */
const spread = (n: number): Extent[] => Array.from({ length: n }, (_, i) => ({ logical: i, physical: 100000 + 2 * i, length: 1 }));

function tailOk(b: Buffer): boolean {
  const max = b.readUInt16LE(4);
  const tail = 12 + max * 12;
  return b.readUInt32LE(tail) === crc32c(SEED, b, 0, tail);
}

test('blocks outside the inode: 4 in i_block, 340 per leaf, then an index level', () => {
  const cases: [number, number][] = [[0, 0], [4, 0], [5, 1], [340, 1], [341, 2], [1360, 4], [1361, 5 + 1], [340 * 340, 340 + 1], [1360 * 340, 1360 + 4]];
  for (const [n, blocks] of cases) assert.equal(extentTreeBlocks(n), blocks, `${n} extents`);
  assert.throws(() => extentTreeBlocks(1360 * 340 + 1), (e: unknown) => e instanceof RootforgeError && e.code === 'EXT4_FILE_TOO_LARGE');
});

test('in-inode tree: golden bytes of header and one extent above 2^32 blocks', () => {
  const { iBlock, blocks } = encodeExtentTree([{ logical: 7, physical: 0x1_0000_0005, length: 3 }], [], SEED);
  assert.equal(blocks.length, 0);
  assert.equal(iBlock.length, 60);
  const golden = Buffer.from([
    0x0a, 0xf3, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, // header: magic, entries 1, max 4, depth 0, generation 0
    7, 0, 0, 0, 3, 0, 1, 0, 5, 0, 0, 0, // ee_block 7, ee_len 3, ee_start_hi 1, ee_start_lo 5
  ]);
  assert.deepEqual(iBlock.subarray(0, 24), golden);
  assert.ok(iBlock.subarray(24).every((x) => x === 0));
});

test('round trips through decodeExtentNode at depth 0, 1 and 2 (index blocks)', () => {
  for (const n of [3, 4, 5, 700, 1360, 1361, 2000]) {
    const extents = spread(n);
    const where = Array.from({ length: extentTreeBlocks(n) }, (_, i) => 5000 + i);
    const { iBlock, blocks } = encodeExtentTree(extents, where, SEED);
    assert.equal(blocks.length, where.length);
    const byPhys = new Map(where.map((p, i) => [p, blocks[i]!]));
    const walk = (b: Buffer, off: number, depth: number): Extent[] => {
      const node = decodeExtentNode(b, off);
      assert.ok(node, 'extent magic');
      assert.equal(node.depth, depth);
      if (depth === 0) return node.extents;
      return node.indexes.flatMap((ix) => {
        const child = byPhys.get(ix.leaf)!;
        assert.ok(child, `index points at a tree block (${ix.leaf})`);
        assert.ok(tailOk(child), 'child checksum');
        const got = walk(child, 0, depth - 1);
        assert.equal(ix.logical, got[0]!.logical, 'index logical = first logical of its subtree');
        return got;
      });
    };
    const depth = n <= 4 ? 0 : n <= 1360 ? 1 : 2;
    assert.deepEqual(walk(iBlock, 0, depth), extents, `${n} extents`);
    if (depth === 2) {
      // leaves first, then the index blocks (what the caller allocated for them)
      assert.equal(decodeExtentNode(blocks.at(-1)!, 0)!.depth, 1);
      assert.equal(decodeExtentNode(blocks[0]!, 0)!.depth, 0);
    }
  }
});

test('a flipped byte in an extent block is caught by its tail checksum', () => {
  const extents = spread(341);
  const { blocks } = encodeExtentTree(extents, [10, 11], SEED);
  for (const b of blocks) assert.ok(tailOk(b));
  for (const pos of [0, 2, 4, 6, 12, 20, 12 + 339 * 12]) {
    const bad = Buffer.from(blocks[0]!);
    bad[pos]! ^= 0x04;
    assert.equal(tailOk(bad), false, `byte ${pos}`);
  }
});

test('runsToExtents lays runs end to end and splits at 32768 blocks', () => {
  assert.deepEqual(runsToExtents([]), []);
  assert.deepEqual(runsToExtents([{ start: 10, length: 5 }, { start: 100, length: 32768 + 2 }]), [
    { logical: 0, physical: 10, length: 5 },
    { logical: 5, physical: 100, length: 32768 },
    { logical: 32773, physical: 32868, length: 2 },
  ]);
});
