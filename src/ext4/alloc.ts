/**
 * Block allocation for an image whose size is not known until the end.
 *
 * Blocks are handed out from a cursor that only moves forward, stepping over the fixed
 * spots every group may reserve at its start (superblock backup, meta_bg descriptor block;
 * see format.ts). Blocks skipped to keep a run contiguous, and blocks of content dropped
 * later (a tar entry replaced by a later one), become gaps that later metadata fills first.
 *
 * Used blocks are therefore: everything below the cursor that is not in a gap, plus the
 * reserved group starts anywhere in the filesystem. No per-block state is kept.
 */
import { fail } from '../errors.js';
import { BLOCKS_PER_GROUP, groupReservedBlocks } from './format.js';

export interface Run {
  start: number;
  length: number;
}

export class BlockAllocator {
  /** First block never handed out. */
  next: number;
  /** Free runs below `next`, sorted by start, non-adjacent. */
  private gaps: Run[] = [];
  /** Total blocks of a fixed-size image; Infinity while the size is open. */
  limit: number;

  constructor(first: number, limit = Infinity) {
    this.next = first;
    this.limit = limit;
  }

  /** Number of reserved blocks at the start of the group containing `block`, if `block` is one. */
  static reservedAt(block: number): number {
    const group = Math.floor(block / BLOCKS_PER_GROUP);
    const start = group * BLOCKS_PER_GROUP;
    const reserved = groupReservedBlocks(group);
    return block < start + reserved ? start + reserved - block : 0;
  }

  /**
   * Takes up to `max` blocks from the cursor as one physically contiguous run (it may be shorter
   * when a group's reserved start interrupts it). Streaming data uses this: it never reuses gaps,
   * so data is written in one forward sweep.
   */
  takeFromCursor(max: number): Run {
    this.skipReserved();
    const length = Math.min(max, this.peekContiguous());
    const run = { start: this.next, length };
    this.advance(length);
    return run;
  }

  /** Allocates `count` blocks, preferring gaps, as one or more runs (for metadata). */
  allocate(count: number): Run[] {
    const runs: Run[] = [];
    let left = count;
    while (left > 0 && this.gaps.length > 0) {
      const gap = this.gaps[0]!;
      const n = Math.min(left, gap.length);
      runs.push({ start: gap.start, length: n });
      gap.start += n;
      gap.length -= n;
      if (gap.length === 0) this.gaps.shift();
      left -= n;
    }
    while (left > 0) {
      const run = this.takeFromCursor(left);
      runs.push(run);
      left -= run.length;
    }
    return mergeRuns(runs);
  }

  /** Allocates `count` physically contiguous blocks (inode tables, journal when possible). */
  allocateContiguous(count: number): number {
    const idx = this.gaps.findIndex((g) => g.length >= count);
    if (idx >= 0) {
      const gap = this.gaps[idx]!;
      const start = gap.start;
      gap.start += count;
      gap.length -= count;
      if (gap.length === 0) this.gaps.splice(idx, 1);
      return start;
    }
    for (;;) {
      this.skipReserved();
      const run = this.peekContiguous();
      if (run >= count) {
        const start = this.next;
        this.advance(count);
        return start;
      }
      // Not enough room before the next reserved spot: leave those blocks as a gap.
      this.release({ start: this.next, length: run });
      this.advance(run);
    }
  }

  /** Returns blocks to the free pool (content replaced by a later entry). */
  release(run: Run): void {
    if (run.length <= 0) return;
    let i = 0;
    while (i < this.gaps.length && this.gaps[i]!.start < run.start) i++;
    this.gaps.splice(i, 0, { start: run.start, length: run.length });
    // merge neighbours
    const merged: Run[] = [];
    for (const g of this.gaps) {
      const last = merged[merged.length - 1];
      if (last && last.start + last.length === g.start) last.length += g.length;
      else merged.push({ ...g });
    }
    this.gaps = merged;
  }

  freeGaps(): readonly Run[] {
    return this.gaps;
  }

  gapBlocks(): number {
    let n = 0;
    for (const g of this.gaps) n += g.length;
    return n;
  }

  /** Blocks handed out and still in use (reserved spots below the cursor included). */
  usedBelowCursor(): number {
    return this.next - this.gapBlocks();
  }

  /** Free blocks from the cursor up to the next reserved group start (at most 64 groups away). */
  private peekContiguous(): number {
    let group = Math.floor(this.next / BLOCKS_PER_GROUP) + 1;
    while (groupReservedBlocks(group) === 0) group++;
    return group * BLOCKS_PER_GROUP - this.next;
  }

  private skipReserved(): void {
    const r = BlockAllocator.reservedAt(this.next);
    if (r > 0) this.advance(r);
  }

  private advance(n: number): void {
    this.next += n;
    if (this.next > this.limit) {
      fail('EXT4_NO_SPACE', 'write image', 'the contents do not fit in the requested size', `${this.limit * 4096} bytes`);
    }
  }
}

export function mergeRuns(runs: Run[]): Run[] {
  const out: Run[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.start + last.length === r.start) last.length += r.length;
    else out.push({ ...r });
  }
  return out;
}
