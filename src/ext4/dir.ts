/**
 * Directory blocks: linear ones for small directories, a dir_index hashed tree (htree) once a
 * directory needs more than one block.
 *
 *   linear block              htree, one level            htree, two levels
 *   +------------------+      block 0: dx_root            block 0: dx_root
 *   | . | .. | a | b.. |        ".", "..", info,            -> blocks 1..n: dx_node
 *   |      ...  | tail |        [count] hash→leaf             -> leaves
 *   +------------------+      blocks 1..: leaves (linear blocks, entries grouped by hash)
 *
 * With metadata_csum every leaf ends in a 12-byte tail holding a crc32c of the block, and every
 * dx block ends in an 8-byte dx_tail.
 */
import { fail } from '../errors.js';
import { crc32c } from './crc32c.js';
import {
  BLOCK_SIZE,
  DIR_TAIL_FT,
  DIR_TAIL_SIZE,
  DIRENT_HEADER,
  DX_ENTRY_SIZE,
  DX_HASH_HALF_MD4,
  DX_NODE_ENTRIES,
  DX_NODE_LIMIT,
  DX_ROOT_ENTRIES,
  DX_ROOT_INFO,
  DX_ROOT_LIMIT,
  FT_DIR,
} from './format.js';
import { halfMd4LastMinor, halfMd4Major } from './htree.js';

export interface DirEntry {
  /** Name bytes (1..255). */
  name: Buffer;
  ino: number;
  fileType: number;
}

const LEAF_SPACE = BLOCK_SIZE - DIR_TAIL_SIZE;

export function direntSize(nameLen: number): number {
  return (DIRENT_HEADER + nameLen + 3) & ~3;
}

/** Plans a directory: how many blocks it takes and whether it is hashed. */
export interface DirPlan {
  blocks: number;
  indexed: boolean;
  /** For htree: the entries in hash order with their leaf assignment, and the tree shape. */
  leaves?: DirEntry[][];
  leafHashes?: number[]; // index hash of each leaf (bit 0 = continues previous leaf's hash)
  levels?: number;
}

/**
 * An entry with its name hash. A class, not an object literal: V8 tracks literal allocation
 * sites and, when a scavenge finds most of a site's objects alive (a large directory being
 * planned), allocates that site's later objects straight into the old generation, where every
 * entry they point to is kept too until the next full collection (+250 MB at a million entries).
 */
class Hashed {
  constructor(
    readonly e: DirEntry,
    readonly hash: number,
    readonly minor: number,
  ) {}
}

/**
 * Decides the block layout of a directory with `entries` (not counting "." and "..").
 * Entries must already be sorted by name (byte order) for the linear case.
 */
export function planDirectory(entries: DirEntry[], hashSeed: Uint8Array): DirPlan {
  // Linear when '.', '..' and every entry fit in one block.
  let used = direntSize(1) + direntSize(2);
  for (const e of entries) used += direntSize(e.name.length);
  if (used <= LEAF_SPACE) return { blocks: 1, indexed: false };

  // Hashed: sort by (hash, minor, name); pack leaves; index them.
  const hashed = entries.map((e) => {
    const hash = halfMd4Major(e.name, hashSeed, true);
    return new Hashed(e, hash, halfMd4LastMinor());
  });
  hashed.sort((a, b) => a.hash - b.hash || a.minor - b.minor || Buffer.compare(a.e.name, b.e.name));
  const leaves: DirEntry[][] = [];
  const leafHashes: number[] = [];
  let cur: DirEntry[] = [];
  used = 0;
  let prevHash = -1;
  for (const h of hashed) {
    const size = direntSize(h.e.name.length);
    if (used + size > LEAF_SPACE) {
      leaves.push(cur);
      cur = [];
      used = 0;
    }
    if (cur.length === 0) {
      // A leaf that starts in the middle of a run of equal hashes is marked as a continuation.
      leafHashes.push(leaves.length === 0 ? 0 : h.hash === prevHash ? (h.hash | 1) >>> 0 : h.hash);
    }
    cur.push(h.e);
    used += size;
    prevHash = h.hash;
  }
  leaves.push(cur);
  if (leaves.length <= DX_ROOT_LIMIT) {
    return { blocks: 1 + leaves.length, indexed: true, leaves, leafHashes, levels: 1 };
  }
  const nodes = Math.ceil(leaves.length / DX_NODE_LIMIT);
  if (nodes > DX_ROOT_LIMIT) {
    fail('EXT4_NO_SPACE', 'index directory', 'too many entries for a two-level htree', entries.length);
  }
  return { blocks: 1 + nodes + leaves.length, indexed: true, leaves, leafHashes, levels: 2 };
}

/**
 * Encodes the directory's blocks. `self`/`parent` are the inode numbers of "." and "..";
 * `seed` is the directory inode's checksum seed. `minBlocks` pads with empty blocks (lost+found).
 * `newBlock` hands out zeroed blocks (the writer's reused arena; by default new buffers).
 */
export function encodeDirectory(
  entries: DirEntry[],
  plan: DirPlan,
  self: number,
  parent: number,
  seed: number,
  minBlocks = 1,
  newBlock: () => Buffer = zeroBlock,
): Buffer[] {
  if (!plan.indexed) {
    const blocks = packLinear(entries, newBlock, true, self, parent);
    while (blocks.length < minBlocks) blocks.push(emptyLeaf(newBlock()));
    for (const b of blocks) sealLeaf(b, seed);
    return blocks;
  }
  const leaves = plan.leaves!.map((l) => {
    const blocks = packLinear(l, newBlock, false);
    if (blocks.length !== 1) throw new Error('internal: htree leaf overflow');
    sealLeaf(blocks[0]!, seed);
    return blocks[0]!;
  });
  const hashes = plan.leafHashes!;
  const root = newBlock();
  writeDirent(root, 0, self, 12, Buffer.from('.'), FT_DIR);
  writeDirent(root, 12, parent, BLOCK_SIZE - 12, Buffer.from('..'), FT_DIR);
  root.writeUInt32LE(0, DX_ROOT_INFO); // reserved_zero
  root.writeUInt8(DX_HASH_HALF_MD4, DX_ROOT_INFO + 4); // hash_version
  root.writeUInt8(8, DX_ROOT_INFO + 5); // info_length
  root.writeUInt8(plan.levels! - 1, DX_ROOT_INFO + 6); // indirect_levels
  root.writeUInt8(0, DX_ROOT_INFO + 7); // unused_flags

  if (plan.levels === 1) {
    // leaves are logical blocks 1..n
    writeDxEntries(root, DX_ROOT_ENTRIES, DX_ROOT_LIMIT, hashes, hashes.map((_, i) => 1 + i));
    sealDx(root, DX_ROOT_ENTRIES, DX_ROOT_LIMIT, seed);
    return [root, ...leaves];
  }
  // two levels: nodes are logical blocks 1..k, leaves k+1..
  const k = Math.ceil(leaves.length / DX_NODE_LIMIT);
  const nodes: Buffer[] = [];
  const nodeHashes: number[] = [];
  for (let n = 0; n < k; n++) {
    const from = n * DX_NODE_LIMIT;
    const to = Math.min(leaves.length, from + DX_NODE_LIMIT);
    const node = newBlock();
    writeDirent(node, 0, 0, BLOCK_SIZE, Buffer.alloc(0), 0); // fake empty entry covering the block
    const hs = hashes.slice(from, to);
    nodeHashes.push(n === 0 ? 0 : hs[0]!);
    const blocks: number[] = [];
    for (let i = from; i < to; i++) blocks.push(1 + k + i);
    writeDxEntries(node, DX_NODE_ENTRIES, DX_NODE_LIMIT, hs, blocks);
    sealDx(node, DX_NODE_ENTRIES, DX_NODE_LIMIT, seed);
    nodes.push(node);
  }
  writeDxEntries(root, DX_ROOT_ENTRIES, DX_ROOT_LIMIT, nodeHashes, nodeHashes.map((_, i) => 1 + i));
  sealDx(root, DX_ROOT_ENTRIES, DX_ROOT_LIMIT, seed);
  return [root, ...nodes, ...leaves];
}

/** dx_countlimit {limit, count} then entries[0].block, then {hash, block} pairs. */
function writeDxEntries(b: Buffer, off: number, limit: number, hashes: number[], blocks: number[]): void {
  b.writeUInt16LE(limit, off);
  b.writeUInt16LE(hashes.length, off + 2);
  b.writeUInt32LE(blocks[0]!, off + 4);
  for (let i = 1; i < hashes.length; i++) {
    b.writeUInt32LE(hashes[i]!, off + i * DX_ENTRY_SIZE);
    b.writeUInt32LE(blocks[i]!, off + i * DX_ENTRY_SIZE + 4);
  }
}

/** dx_tail checksum: crc over the used entries, then dt_reserved, then a zero checksum field. */
function sealDx(b: Buffer, countOffset: number, limit: number, seed: number): void {
  const count = b.readUInt16LE(countOffset + 2);
  const tail = countOffset + limit * DX_ENTRY_SIZE;
  let crc = crc32c(seed, b, 0, countOffset + count * DX_ENTRY_SIZE);
  crc = crc32c(crc, b, tail, tail + 4);
  crc = crc32c(crc, Buffer.alloc(4));
  b.writeUInt32LE(crc, tail + 4);
}

function writeDirent(b: Buffer, off: number, ino: number, recLen: number, name: Buffer, ft: number): void {
  b.writeUInt32LE(ino, off);
  b.writeUInt16LE(recLen, off + 4);
  b.writeUInt8(name.length, off + 6);
  b.writeUInt8(ft, off + 7);
  name.copy(b, off + 8);
}

/** Packs entries into leaf blocks; the last entry of each block stretches to the tail. */
function packLinear(entries: DirEntry[], newBlock: () => Buffer, withDots: boolean, self = 0, parent = 0): Buffer[] {
  const blocks: Buffer[] = [];
  let block = newBlock();
  let off = 0;
  let lastOff = -1;
  const put = (ino: number, name: Buffer, ft: number) => {
    const size = direntSize(name.length);
    if (off + size > LEAF_SPACE) {
      block.writeUInt16LE(LEAF_SPACE - lastOff, lastOff + 4);
      blocks.push(block);
      block = newBlock();
      off = 0;
    }
    writeDirent(block, off, ino, size, name, ft);
    lastOff = off;
    off += size;
  };
  if (withDots) {
    put(self, Buffer.from('.'), FT_DIR);
    put(parent, Buffer.from('..'), FT_DIR);
  }
  for (const e of entries) put(e.ino, e.name, e.fileType);
  if (lastOff >= 0) {
    block.writeUInt16LE(LEAF_SPACE - lastOff, lastOff + 4);
    blocks.push(block);
  } else {
    blocks.push(emptyLeaf(block));
  }
  return blocks;
}

/** A new zeroed block (the default when the caller has no block arena). */
function zeroBlock(): Buffer {
  return Buffer.alloc(BLOCK_SIZE);
}

/** Makes the zeroed block `b` an empty leaf. */
function emptyLeaf(b: Buffer): Buffer {
  b.writeUInt32LE(0, 0);
  b.writeUInt16LE(LEAF_SPACE, 4);
  return b;
}

/** Writes the ext4_dir_entry_tail and its checksum. */
function sealLeaf(b: Buffer, seed: number): void {
  const t = LEAF_SPACE;
  b.writeUInt32LE(0, t); // det_reserved_zero1
  b.writeUInt16LE(DIR_TAIL_SIZE, t + 4); // det_rec_len
  b.writeUInt8(0, t + 6); // det_reserved_zero2
  b.writeUInt8(DIR_TAIL_FT, t + 7); // det_reserved_ft
  b.writeUInt32LE(crc32c(seed, b, 0, t), t + 8); // det_checksum
}

