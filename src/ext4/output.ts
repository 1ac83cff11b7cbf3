/**
 * Block output for metadata: a BlockWriter collects blocks and writes them sorted, merging
 * neighbours into large writes; helpers place descriptor blocks and superblock copies.
 *
 *   group 0:  [0: pad 1024 | superblock | pad] [1: descriptors of meta-group 0] ...
 *   meta-group m: its descriptor block in its first, second and last group (meta_bg)
 *   backups: a superblock at the start of groups 1 and powers of 3, 5, 7 (sparse_super)
 */
import type { FileHandle } from 'node:fs/promises';
import type { Run } from './alloc.js';
import { encodeGroupDesc, encodeSuperblock, type GroupDesc, type Superblock } from './codec.js';
import { writevFully } from './datasink.js';
import { BLOCK_SIZE, BLOCKS_PER_GROUP, DESC_SIZE, DESCS_PER_BLOCK, groupHasSuperblock, SUPERBLOCK_OFFSET } from './format.js';

/** Metadata held in memory before it is written out. */
export const BLOCK_WRITER_BUDGET = 2 * 1024 * 1024;
const SLAB_BYTES = 256 * 1024;

/**
 * Collects metadata blocks and writes them sorted, merging neighbours into large writes.
 */
export class BlockWriter {
  private blocks = new Map<number, Buffer>();
  private zeros: Run[] = [];
  /** Bytes of blocks waiting to be written. */
  held = 0;
  /** Slabs `block()` carves blocks from: in use until the next flush, then zeroed and reused. */
  private slab: Buffer | null = null;
  private slabUsed = 0;
  private slabsInUse: Buffer[] = [];
  private slabsFree: Buffer[] = [];

  constructor(private readonly fh: FileHandle) {}

  /**
   * A zeroed block to fill and `put` before the next flush (after it, the memory is reused).
   * Encoding millions of directory blocks through these slabs instead of a new buffer each
   * keeps the garbage, and the peak memory, down.
   */
  block(): Buffer {
    if (!this.slab || this.slabUsed === this.slab.length) {
      this.slab = this.slabsFree.pop() ?? Buffer.alloc(SLAB_BYTES);
      this.slabsInUse.push(this.slab);
      this.slabUsed = 0;
    }
    const b = this.slab.subarray(this.slabUsed, this.slabUsed + BLOCK_SIZE);
    this.slabUsed += BLOCK_SIZE;
    return b;
  }

  put(block: number, buf: Buffer): void {
    if (buf.length !== BLOCK_SIZE) throw new Error('internal: metadata block of wrong size');
    if (!this.blocks.has(block)) this.held += BLOCK_SIZE;
    this.blocks.set(block, buf);
  }

  putRuns(runs: Run[], bufs: Buffer[]): void {
    let i = 0;
    for (const r of runs) for (let k = 0; k < r.length; k++) this.put(r.start + k, bufs[i++]!);
    if (i !== bufs.length) throw new Error('internal: run/buffer count mismatch');
  }

  /** Zeroes these blocks unless something else is put there. */
  zero(start: number, length: number): void {
    this.zeros.push({ start, length });
  }

  async flush(): Promise<void> {
    const zero = Buffer.alloc(BLOCK_SIZE);
    for (const z of this.zeros) for (let k = 0; k < z.length; k++) if (!this.blocks.has(z.start + k)) this.blocks.set(z.start + k, zero);
    const keys = [...this.blocks.keys()].sort((a, b) => a - b);
    const MAX = 1000; // blocks per write (writev takes at most 1024 buffers)
    let i = 0;
    while (i < keys.length) {
      let j = i + 1;
      while (j < keys.length && keys[j] === keys[j - 1]! + 1 && j - i < MAX) j++;
      await writevFully(this.fh, keys.slice(i, j).map((k) => this.blocks.get(k)!), keys[i]! * BLOCK_SIZE);
      i = j;
    }
    this.blocks.clear();
    this.zeros = [];
    this.held = 0;
    for (const s of this.slabsInUse) this.slabsFree.push(s.fill(0));
    this.slabsInUse = [];
    this.slab = null;
  }
}

/** Descriptor blocks: one per meta-group, in its first, second and last group. */
export function putDescriptors(out: BlockWriter, descs: GroupDesc[], csumSeed: number): void {
  const groups = descs.length;
  for (let m = 0; m * DESCS_PER_BLOCK < groups; m++) {
    const block = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; i < DESCS_PER_BLOCK && m * DESCS_PER_BLOCK + i < groups; i++) {
      const g = m * DESCS_PER_BLOCK + i;
      encodeGroupDesc(descs[g]!, g, csumSeed, block, i * DESC_SIZE);
    }
    for (const g of [m * DESCS_PER_BLOCK, m * DESCS_PER_BLOCK + 1, m * DESCS_PER_BLOCK + DESCS_PER_BLOCK - 1]) {
      if (g >= groups) continue;
      out.put(g * BLOCKS_PER_GROUP + (groupHasSuperblock(g) ? 1 : 0), block);
    }
  }
}

/** Superblocks: the primary at byte 1024, backups (with their group number) at the start of their groups. */
export function putSuperblocks(out: BlockWriter, sb: Superblock, groups: number): void {
  for (let g = 0; g < groups; g++) {
    if (!groupHasSuperblock(g)) continue;
    const b = Buffer.alloc(BLOCK_SIZE);
    encodeSuperblock({ ...sb, blockGroupNr: g }).copy(b, g === 0 ? SUPERBLOCK_OFFSET : 0);
    out.put(g * BLOCKS_PER_GROUP, b);
  }
}
