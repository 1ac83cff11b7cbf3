/**
 * Block and inode bitmaps and the group descriptors that count them.
 *
 * A block is used when it lies below the allocator's cursor and outside its gaps, or is one of
 * a group's reserved spots; bits past the end of the filesystem are set. Inodes 1..maxIno are
 * used; bits past inodes_per_group are set (the padding e2fsck checks).
 */
import type { BlockAllocator } from './alloc.js';
import type { GroupDesc } from './codec.js';
import { crc32c } from './crc32c.js';
import { BG_INODE_ZEROED, BLOCK_SIZE, BLOCKS_PER_GROUP, groupReservedBlocks } from './format.js';

export interface GroupBitmaps {
  descs: GroupDesc[];
  blockBitmaps: Buffer[];
  inodeBitmaps: Buffer[];
  freeBlocks: number;
  freeInodes: number;
}

/**
 * Every group's bitmaps and descriptor. `dirInos` lists the directories' inode numbers;
 * `blockBitmapAt`, `inodeBitmapAt` and `itableAt` are where layout placed each group's pieces.
 */
export function groupBitmaps(
  alloc: BlockAllocator,
  layout: { groups: number; ipg: number; totalBlocks: number },
  maxIno: number,
  dirInos: Iterable<number>,
  at: { blockBitmap: number[]; inodeBitmap: number[]; itable: number[] },
  csumSeed: number,
): GroupBitmaps {
  const { groups, ipg, totalBlocks } = layout;
  const usedDirsPerGroup = new Array<number>(groups).fill(0);
  for (const ino of dirInos) usedDirsPerGroup[Math.floor((ino - 1) / ipg)]!++;
  const out: GroupBitmaps = { descs: [], blockBitmaps: [], inodeBitmaps: [], freeBlocks: 0, freeInodes: 0 };
  for (let g = 0; g < groups; g++) {
    const bb = blockBitmap(alloc, g, totalBlocks);
    const ib = Buffer.alloc(BLOCK_SIZE, 0xff); // bits past inodes_per_group stay set (padding)
    ib.fill(0, 0, ipg / 8);
    const usedHere = usedInodesIn(g, ipg, maxIno);
    setBits(ib, 0, usedHere);
    const freeInodes = ipg - usedHere;
    out.freeBlocks += bb.free;
    out.freeInodes += freeInodes;
    out.blockBitmaps.push(bb.bitmap);
    out.inodeBitmaps.push(ib);
    out.descs.push({
      blockBitmap: at.blockBitmap[g]!,
      inodeBitmap: at.inodeBitmap[g]!,
      inodeTable: at.itable[g]!,
      freeBlocks: bb.free,
      freeInodes,
      usedDirs: usedDirsPerGroup[g]!,
      flags: BG_INODE_ZEROED,
      itableUnused: freeInodes,
      blockBitmapCsum: crc32c(csumSeed, bb.bitmap, 0, BLOCKS_PER_GROUP / 8),
      inodeBitmapCsum: crc32c(csumSeed, ib, 0, ipg / 8),
    });
  }
  return out;
}

/** Block bitmap of group g: used = below the cursor and not a gap, or a reserved spot; past the end = set. */
export function blockBitmap(alloc: BlockAllocator, g: number, totalBlocks: number): { bitmap: Buffer; free: number } {
  const bitmap = Buffer.alloc(BLOCK_SIZE);
  const start = g * BLOCKS_PER_GROUP;
  const end = Math.min(start + BLOCKS_PER_GROUP, totalBlocks);
  const usedEnd = Math.min(alloc.next, end);
  if (usedEnd > start) setBits(bitmap, 0, usedEnd - start);
  for (const gap of alloc.freeGaps()) {
    const a = Math.max(gap.start, start);
    const b = Math.min(gap.start + gap.length, end);
    if (b > a) clearBits(bitmap, a - start, b - a);
  }
  setBits(bitmap, 0, groupReservedBlocks(g));
  if (end < start + BLOCKS_PER_GROUP) setBits(bitmap, end - start, start + BLOCKS_PER_GROUP - end);
  let used = 0;
  for (let i = 0; i < (end - start + 7) >> 3; i++) used += POPCOUNT[bitmap[i]!]!;
  // bits past `end` in the last partial byte were counted; subtract them
  const tailBits = ((end - start) & 7) === 0 ? 0 : 8 - ((end - start) & 7);
  used -= tailBits;
  return { bitmap, free: end - start - used };
}

/** Inodes 1..maxIno are in use: how many of them fall in group g. */
export function usedInodesIn(g: number, ipg: number, maxIno: number): number {
  return Math.max(0, Math.min(maxIno, (g + 1) * ipg) - g * ipg);
}

export function setBits(b: Buffer, from: number, count: number): void {
  let i = from;
  const end = from + count;
  while (i < end && i & 7) b[i >> 3]! |= 1 << (i & 7), i++;
  while (i + 8 <= end) b[i >> 3] = 0xff, (i += 8);
  while (i < end) b[i >> 3]! |= 1 << (i & 7), i++;
}

export function clearBits(b: Buffer, from: number, count: number): void {
  let i = from;
  const end = from + count;
  while (i < end && i & 7) b[i >> 3]! &= ~(1 << (i & 7)), i++;
  while (i + 8 <= end) b[i >> 3] = 0, (i += 8);
  while (i < end) b[i >> 3]! &= ~(1 << (i & 7)), i++;
}

const POPCOUNT = new Uint8Array(256);
for (let i = 0; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1]!;
