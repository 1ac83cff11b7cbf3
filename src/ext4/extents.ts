/**
 * Extent trees. Up to 4 extents live in the inode's i_block; more need leaf blocks (340
 * extents each) indexed from the inode, and beyond 1360 extents a level of index blocks.
 *
 *   i_block: header + 4 slots      depth 1                    depth 2
 *                                  root: index → leaf blocks  root: index → index blocks → leaves
 */
import { fail } from '../errors.js';
import { encodeExtent, encodeExtentHeader, encodeExtentIndex, sealExtentBlock, type Extent } from './codec.js';
import { BLOCK_SIZE, EXT_ENTRY_SIZE, EXT_HEADER_SIZE, EXTENTS_IN_INODE, EXTENTS_PER_BLOCK, I_BLOCK_SIZE, MAX_EXTENT_LEN } from './format.js';

/** Blocks needed outside the inode to hold `n` extents. */
export function extentTreeBlocks(n: number): number {
  if (n <= EXTENTS_IN_INODE) return 0;
  const leaves = Math.ceil(n / EXTENTS_PER_BLOCK);
  if (leaves <= EXTENTS_IN_INODE) return leaves;
  const indexes = Math.ceil(leaves / EXTENTS_PER_BLOCK);
  if (indexes > EXTENTS_IN_INODE) fail('EXT4_FILE_TOO_LARGE', 'map file', 'too many extents', n);
  return leaves + indexes;
}

export interface EncodedExtentTree {
  iBlock: Buffer;
  /** Tree blocks, in the order of `treeBlocks` given to encodeExtentTree. */
  blocks: Buffer[];
}

/**
 * Encodes `extents` (sorted, each ≤ 32768 blocks) into i_block plus tree blocks placed at
 * `treeBlocks` (physical numbers, extentTreeBlocks(n) of them: leaves first, then indexes).
 */
export function encodeExtentTree(extents: readonly Extent[], treeBlocks: number[], inodeSeed: number, iBlock: Buffer = Buffer.alloc(I_BLOCK_SIZE)): EncodedExtentTree {
  // `iBlock` (zeroed, I_BLOCK_SIZE bytes) may be a caller's scratch buffer: it is returned filled in.
  const n = extents.length;
  if (n <= EXTENTS_IN_INODE) {
    encodeExtentHeader(iBlock, 0, n, EXTENTS_IN_INODE, 0);
    extents.forEach((e, i) => encodeExtent(iBlock, EXT_HEADER_SIZE + i * EXT_ENTRY_SIZE, e));
    return { iBlock, blocks: [] };
  }
  const nLeaves = Math.ceil(n / EXTENTS_PER_BLOCK);
  const leaves: Buffer[] = [];
  const leafIndex: { logical: number; leaf: number }[] = [];
  for (let l = 0; l < nLeaves; l++) {
    const chunk = extents.slice(l * EXTENTS_PER_BLOCK, (l + 1) * EXTENTS_PER_BLOCK);
    const b = Buffer.alloc(BLOCK_SIZE);
    encodeExtentHeader(b, 0, chunk.length, EXTENTS_PER_BLOCK, 0);
    chunk.forEach((e, i) => encodeExtent(b, EXT_HEADER_SIZE + i * EXT_ENTRY_SIZE, e));
    sealExtentBlock(b, inodeSeed);
    leaves.push(b);
    leafIndex.push({ logical: chunk[0]!.logical, leaf: treeBlocks[l]! }); // must equal the child's first logical block
  }
  if (nLeaves <= EXTENTS_IN_INODE) {
    encodeExtentHeader(iBlock, 0, nLeaves, EXTENTS_IN_INODE, 1);
    leafIndex.forEach((x, i) => encodeExtentIndex(iBlock, EXT_HEADER_SIZE + i * EXT_ENTRY_SIZE, x));
    return { iBlock, blocks: leaves };
  }
  const nIdx = Math.ceil(nLeaves / EXTENTS_PER_BLOCK);
  const idxBlocks: Buffer[] = [];
  const rootIndex: { logical: number; leaf: number }[] = [];
  for (let k = 0; k < nIdx; k++) {
    const chunk = leafIndex.slice(k * EXTENTS_PER_BLOCK, (k + 1) * EXTENTS_PER_BLOCK);
    const b = Buffer.alloc(BLOCK_SIZE);
    encodeExtentHeader(b, 0, chunk.length, EXTENTS_PER_BLOCK, 1);
    chunk.forEach((x, i) => encodeExtentIndex(b, EXT_HEADER_SIZE + i * EXT_ENTRY_SIZE, x));
    sealExtentBlock(b, inodeSeed);
    idxBlocks.push(b);
    rootIndex.push({ logical: chunk[0]!.logical, leaf: treeBlocks[nLeaves + k]! });
  }
  encodeExtentHeader(iBlock, 0, nIdx, EXTENTS_IN_INODE, 2);
  rootIndex.forEach((x, i) => encodeExtentIndex(iBlock, EXT_HEADER_SIZE + i * EXT_ENTRY_SIZE, x));
  return { iBlock, blocks: [...leaves, ...idxBlocks] };
}

/** Extents for block runs laid end to end from logical block 0, split at the extent length limit. */
export function runsToExtents(runs: { start: number; length: number }[]): Extent[] {
  const out: Extent[] = [];
  let logical = 0;
  for (const r of runs) {
    let left = r.length;
    let phys = r.start;
    while (left > 0) {
      const n = Math.min(left, MAX_EXTENT_LEN);
      out.push({ logical, physical: phys, length: n });
      logical += n;
      phys += n;
      left -= n;
    }
  }
  return out;
}
