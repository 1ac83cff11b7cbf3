/**
 * Content-defined chunking of an image file (FastCDC, Xia et al., USENIX ATC 2016), so that two
 * versions of an image share most chunks even when files moved: a cut point depends only on the
 * 48 or so bytes before it, not on the offset.
 *
 *   image  |■■■■■■■|■■■■|■■■■■■■■■|..........zeros..........|■■■■■|■■
 *           chunk    chunk  chunk     zero run (not stored)     chunk
 *
 * Gear hash: h = (h << 1) + GEAR[byte], 32 bits. The table is derived from SHA-256 of a fixed
 * string, so it is the same everywhere, forever (changing it would change every chunk). FastCDC's
 * normalized chunking: a stricter mask before the average size and a looser one after it, which
 * narrows the size distribution; no cut before MIN, a forced cut at MAX.
 *
 * Average 32 KiB (8 KiB min, 128 KiB max): small chunks are what keeps a new version's upload
 * small when its changed files are scattered over the image (a chunk is dirty when any byte of
 * it changed; the simulation over two devbox images with 2 % of files changed gave 2 %
 * re-uploaded at 16 KiB, 4 % at 64 KiB, ~8 % at 256 KiB). The request count does not grow with
 * it: chunks travel in packs (see artifact.ts), so a 1.5 GB image is ~40,000 chunks in ~60 blobs.
 *
 * Zero runs: 4 KiB-aligned all-zero blocks, at least ZERO_RUN_MIN long, are cut out and described
 * by their offset and length only (free space, inode tables of an empty filesystem).
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { fail } from '../errors.js';

export const CHUNK_AVG = 32 << 10;
export const CHUNK_MIN = 8 << 10;
export const CHUNK_MAX = 128 << 10;
/** Zero blocks are recognised at this alignment. */
export const ZERO_BLOCK = 4096;
/** Shorter zero stretches stay inside chunks (they compress to almost nothing). */
export const ZERO_RUN_MIN = 64 << 10;

/** The 256 gear values: the first 4 bytes of SHA-256("rootforge-fastcdc-gear-v1:" + i). */
export const GEAR: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) t[i] = createHash('sha256').update(`rootforge-fastcdc-gear-v1:${i}`).digest().readUInt32BE(0);
  return t;
})();

/** A mask with `bits` one-bits spread over the high half-ish of 32 bits (FastCDC spreads them). */
function spreadMask(bits: number): number {
  // Bits taken from the top down, every other position first: the top bits of a gear hash
  // depend on the most bytes, and spacing them decorrelates neighbouring positions.
  const order: number[] = [];
  for (let b = 31; b >= 0; b -= 2) order.push(b);
  for (let b = 30; b >= 0; b -= 2) order.push(b);
  let m = 0;
  for (let i = 0; i < bits; i++) m |= 1 << order[i]!;
  return m >>> 0;
}

/** log2(avg) + 2 bits before the average, log2(avg) - 2 after it (normalization level 2). */
const MASK_S = spreadMask(Math.log2(CHUNK_AVG) + 2);
const MASK_L = spreadMask(Math.log2(CHUNK_AVG) - 2);

/**
 * Where the chunk starting at `start` ends, looking at buf[start, end) (end - start is what is
 * left of the input, or at least CHUNK_MAX of it). Returns an index in (start, end].
 */
export function cutPoint(buf: Uint8Array, start: number, end: number): number {
  const n = end - start;
  if (n <= CHUNK_MIN) return end;
  const limit = start + Math.min(n, CHUNK_MAX);
  const normal = start + Math.min(n, CHUNK_AVG);
  let h = 0;
  let i = start + CHUNK_MIN;
  for (; i < normal; i++) {
    h = ((h << 1) + GEAR[buf[i]!]!) | 0;
    if ((h & MASK_S) === 0) return i + 1;
  }
  for (; i < limit; i++) {
    h = ((h << 1) + GEAR[buf[i]!]!) | 0;
    if ((h & MASK_L) === 0) return i + 1;
  }
  return limit;
}

export type Piece = { kind: 'data'; offset: number; data: Buffer } | { kind: 'zero'; offset: number; length: number };

const ZEROS = Buffer.alloc(ZERO_BLOCK);

function isZeroBlock(buf: Buffer, at: number): boolean {
  return buf.compare(ZEROS, 0, ZERO_BLOCK, at, at + ZERO_BLOCK) === 0;
}

/**
 * Splits a file into data chunks and zero runs, in order, covering it exactly. Each data piece's
 * buffer is its own copy (callers keep them while compressing and uploading).
 */
export async function* chunkFile(path: string, options: { onRead?: (bytes: number) => void } = {}): AsyncGenerator<Piece> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    return fail('SOURCE_NOT_FOUND', `read image ${path}`, (e as NodeJS.ErrnoException).code ?? String(e), path, e);
  }
  try {
    const size = (await fh.stat()).size;
    yield* chunkHandle(fh, size, options.onRead);
  } finally {
    await fh.close();
  }
}

const WINDOW = 8 << 20;

async function* chunkHandle(fh: FileHandle, size: number, onRead?: (bytes: number) => void): AsyncGenerator<Piece> {
  // buf holds file bytes [base, base + have).
  let buf = Buffer.alloc(WINDOW + CHUNK_MAX + ZERO_RUN_MIN);
  let base = 0;
  let have = 0;
  let pos = 0;
  const fill = async (need: number) => {
    // Keep [pos, ...) and read until `need` bytes past pos are buffered (or the file ends).
    if (pos + need <= base + have || base + have >= size) return;
    const keep = base + have - pos;
    buf.copy(buf, 0, pos - base, pos - base + keep);
    base = pos;
    have = keep;
    while (have < buf.length && base + have < size) {
      const { bytesRead } = await fh.read(buf, have, Math.min(buf.length - have, size - base - have), base + have);
      if (bytesRead === 0) fail('SOURCE_UNREADABLE', 'read image', 'file shrank while being read', base + have);
      have += bytesRead;
      onRead?.(base + have);
    }
  };
  const zeroRunAt = async (at: number): Promise<number> => {
    // Length of the aligned zero run starting at `at` (a multiple of ZERO_BLOCK, maybe 0).
    let end = at;
    for (;;) {
      if (end + ZERO_BLOCK > size) return end - at;
      if (end + ZERO_BLOCK > base + have) {
        // Runs can be gigabytes: slide the window along the run.
        pos = end;
        await fill(ZERO_BLOCK);
      }
      if (!isZeroBlock(buf, end - base)) return end - at;
      end += ZERO_BLOCK;
    }
  };
  while (pos < size) {
    await fill(CHUNK_MAX + ZERO_RUN_MIN);
    if (pos % ZERO_BLOCK === 0) {
      const start = pos;
      const run = await zeroRunAt(start);
      pos = start;
      if (run >= ZERO_RUN_MIN) {
        pos = start + run;
        yield { kind: 'zero', offset: start, length: run };
        continue;
      }
      await fill(CHUNK_MAX + ZERO_RUN_MIN);
    }
    const end = base + have;
    let cut = cutPoint(buf, pos - base, end - base) + base;
    // A long zero run starting inside the chunk ends it there.
    for (let z = Math.ceil((pos + 1) / ZERO_BLOCK) * ZERO_BLOCK; z < cut; z += ZERO_BLOCK) {
      if (z + ZERO_RUN_MIN > end) break;
      let zeros = 0;
      while (zeros < ZERO_RUN_MIN && isZeroBlock(buf, z - base + zeros)) zeros += ZERO_BLOCK;
      if (zeros >= ZERO_RUN_MIN) {
        cut = z;
        break;
      }
      z += zeros;
    }
    const data = Buffer.from(buf.subarray(pos - base, cut - base));
    yield { kind: 'data', offset: pos, data };
    pos = cut;
  }
  buf = Buffer.alloc(0);
}
