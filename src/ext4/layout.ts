/**
 * Layout: how many groups, inodes per group, journal blocks and total blocks the image has, and
 * where every piece of metadata goes. `chooseLayout` sizes the image by running
 * `allocateMetadata` on a copy of the allocator; the writer then runs the same function on the
 * real one, so the two agree to the block.
 */
import { fail } from '../errors.js';
import { formatBytes } from '../util/size.js';
import { BlockAllocator, type Run } from './alloc.js';
import { extentTreeBlocks, runsToExtents } from './extents.js';
import { BLOCK_SIZE, BLOCKS_PER_GROUP, groupReservedBlocks, INODES_PER_BLOCK, MAX_EXTENT_LEN, MAX_INODES_PER_GROUP } from './format.js';
import { defaultJournalBlocks } from './journal.js';
import { HEADROOM, promisedFreeBlocks, reservedClusters, type ResolvedExt4Options } from './options.js';
import type { TreePlan } from './plan.js';

export interface Layout {
  groups: number;
  /** Inodes per group. */
  ipg: number;
  totalBlocks: number;
  journalBlocks: number;
}

export interface MetadataPlacement {
  itable: number[];
  blockBitmap: number[];
  inodeBitmap: number[];
  journalRuns: Run[];
  /** Directory blocks by inode number. */
  dirRuns: Map<number, Run[]>;
  /** Extent-tree blocks by inode number (only inodes that need them). */
  treeBlocks: Map<number, number[]>;
  /** Slow symlink target blocks by inode number. */
  symlinkBlocks: Map<number, number>;
  xattrBlocks: number[];
}

/**
 * Picks groups, inodes per group, journal and total size. Simulates the metadata allocation on
 * a copy of the allocator, because where the cursor ends depends on gaps and reserved spots.
 */
export function chooseLayout(
  alloc: BlockAllocator,
  o: ResolvedExt4Options,
  plan: TreePlan,
): Layout {
  const usedInodes = plan.maxIno;
  const metaBlocks = plan.metaBlocks;
  let wantInodes: number;
  let fixedTotal = 0;
  if (o.size.mode === 'fixed') {
    fixedTotal = Math.floor(o.size.bytes / BLOCK_SIZE);
    wantInodes = Math.max(usedInodes + (o.readOnly ? 0 : HEADROOM.inodesMin), Math.floor(o.size.bytes / HEADROOM.bytesPerInode));
  } else {
    wantInodes = o.readOnly ? usedInodes : Math.ceil(usedInodes * (1 + HEADROOM.inodesFraction)) + HEADROOM.inodesMin;
    if (o.size.mode === 'plus') wantInodes += Math.floor(o.size.bytes / HEADROOM.bytesPerInode);
  }
  let groups = Math.max(1, Math.ceil(wantInodes / MAX_INODES_PER_GROUP), fixedTotal ? Math.ceil(fixedTotal / BLOCKS_PER_GROUP) : Math.ceil(alloc.next / BLOCKS_PER_GROUP));
  for (let iter = 0; iter < 64; iter++) {
    const ipg = Math.min(MAX_INODES_PER_GROUP, roundUp(Math.max(Math.ceil(wantInodes / groups), INODES_PER_BLOCK), INODES_PER_BLOCK));
    if (ipg * groups < usedInodes) {
      groups++;
      continue;
    }
    const est = alloc.next + metaBlocks + (groups * ipg) / INODES_PER_BLOCK + 2 * groups;
    const journalBlocks = o.readOnly || !o.journal ? 0 : (o.journalBlocks ?? defaultJournalBlocks(fixedTotal || est));
    const sim = cloneAllocator(alloc);
    allocateMetadata(sim, groups, ipg, journalBlocks, plan);
    const usedEnd = sim.next;
    const used = usedEnd - sim.gapBlocks();
    let total: number;
    if (fixedTotal) {
      if (usedEnd > fixedTotal) {
        fail('EXT4_NO_SPACE', 'write image', `the contents need ${formatBytes(usedEnd * BLOCK_SIZE)}`, `size ${formatBytes(fixedTotal * BLOCK_SIZE)}`);
      }
      total = fixedTotal;
    } else {
      total = Math.max(usedEnd, writableTotal(used, usedEnd, promisedFreeBlocks(used, o), !o.readOnly));
      // the last group must hold more than its reserved spots
      const lastGroup = Math.floor((total - 1) / BLOCKS_PER_GROUP);
      const minTotal = lastGroup * BLOCKS_PER_GROUP + groupReservedBlocks(lastGroup) + 1;
      total = Math.max(total, minTotal, (groups - 1) * BLOCKS_PER_GROUP + groupReservedBlocks(groups - 1) + 1);
    }
    const needGroups = Math.ceil(total / BLOCKS_PER_GROUP);
    if (needGroups > groups) {
      groups = needGroups;
      continue;
    }
    if (needGroups < groups && !fixedTotal) {
      // more groups than blocks need (inode-heavy tree): the image spans them all
      total = Math.max(total, (groups - 1) * BLOCKS_PER_GROUP + groupReservedBlocks(groups - 1) + 1);
    }
    return { groups, ipg, totalBlocks: total, journalBlocks };
  }
  throw new Error('internal: layout did not converge');
}

/**
 * Places all metadata, in a fixed order: inode tables (each contiguous), bitmaps, journal,
 * directories, extent-tree blocks, slow-symlink blocks, xattr blocks. Run once on a copy of the
 * allocator to size the image and once for real, so both agree to the block.
 */
export function allocateMetadata(a: BlockAllocator, groups: number, ipg: number, journalBlocks: number, plan: TreePlan): MetadataPlacement {
  const itable: number[] = [];
  for (let g = 0; g < groups; g++) itable.push(a.allocateContiguous(ipg / INODES_PER_BLOCK));
  const blockBitmap: number[] = [];
  const inodeBitmap: number[] = [];
  for (let g = 0; g < groups; g++) blockBitmap.push(a.allocate(1)[0]!.start);
  for (let g = 0; g < groups; g++) inodeBitmap.push(a.allocate(1)[0]!.start);
  const journalRuns: Run[] = [];
  if (journalBlocks > 0) {
    const first = Math.min(journalBlocks, MAX_EXTENT_LEN);
    journalRuns.push({ start: a.allocateContiguous(first), length: first });
    if (journalBlocks > first) journalRuns.push(...a.allocate(journalBlocks - first));
  }
  const dirRuns = new Map<number, Run[]>();
  for (const ino of plan.dirInos) dirRuns.set(ino, a.allocate(plan.dirs.get(ino)!.blocks));
  const treeBlocks = new Map<number, number[]>();
  for (const ino of plan.treeCandidates) {
    const runs = dirRuns.get(ino);
    const n = plan.nodes[ino]!;
    const extents = runs ? runsToExtents(runs).length : n.content?.kind === 'placed' ? n.content.runs.length : 0;
    const need = extentTreeBlocks(extents);
    if (need > 0) treeBlocks.set(ino, runsToBlocks(a.allocate(need)));
  }
  const symlinkBlocks = new Map<number, number>();
  for (const ino of plan.slowSymlinks) symlinkBlocks.set(ino, a.allocate(1)[0]!.start);
  const xattrBlocks: number[] = [];
  for (let i = 0; i < plan.xattrBlocks.length; i++) xattrBlocks.push(a.allocate(1)[0]!.start);
  return { itable, blockBitmap, inodeBitmap, journalRuns, dirRuns, treeBlocks, symlinkBlocks, xattrBlocks };
}

/**
 * The smallest total that leaves `want` blocks free for the guest once the kernel has taken its
 * reserve (when `reserve`), counting the group reserved spots (backup superblocks, descriptor
 * blocks) that fall between the used end and the total as used.
 */
function writableTotal(used: number, usedEnd: number, want: number, reserve: boolean): number {
  const free = (total: number) => total - used - reservedSpotsBetween(usedEnd, total) - (reserve ? reservedClusters(total) : 0);
  let total = used + want;
  for (let i = 0; i < 64 && free(total) < want; i++) total += want - free(total);
  if (free(total) < want) throw new Error('internal: writable size did not converge');
  return total;
}

/** Group reserved spots in blocks [from, to). */
function reservedSpotsBetween(from: number, to: number): number {
  let n = 0;
  for (let g = Math.floor(from / BLOCKS_PER_GROUP); g * BLOCKS_PER_GROUP < to; g++) {
    const start = g * BLOCKS_PER_GROUP;
    const a = Math.max(start, from);
    const b = Math.min(start + groupReservedBlocks(g), to);
    if (b > a) n += b - a;
  }
  return n;
}

function cloneAllocator(a: BlockAllocator): BlockAllocator {
  const c = new BlockAllocator(a.next, Infinity);
  for (const g of a.freeGaps()) c.release({ ...g });
  return c;
}

function runsToBlocks(runs: Run[]): number[] {
  const out: number[] = [];
  for (const r of runs) for (let i = 0; i < r.length; i++) out.push(r.start + i);
  return out;
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}
