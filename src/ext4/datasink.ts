/**
 * Streams file bodies straight to their final blocks in the image.
 *
 * A file's blocks are allocated when it starts (its size is known from the tar header), from the
 * allocator's forward-only cursor. Its bytes are copied into a window buffer mapped onto a range
 * of blocks; when a write moves past the window, the window is handed to the disk and a fresh,
 * zeroed one continues. Writes only move forward, so a block left behind is complete, and bytes
 * never written inside allocated blocks (the tail of a last block, sparse gaps) stay zero.
 *
 * `write` is synchronous (it is called from the tar parser's callbacks); callers await `drain()`
 * between input chunks, which bounds the windows in flight.
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { fail, RootforgeError } from '../errors.js';
import type { SparseSegment } from '../tar/types.js';
import type { BlockRun, Content } from '../tree/types.js';
import { BlockAllocator } from './alloc.js';
import { BLOCK_SIZE, MAX_EXTENT_LEN, MAX_FILE_BLOCKS } from './format.js';

const WINDOW_BYTES = 8 * 1024 * 1024;
const MAX_IN_FLIGHT = 2;
/** Bodies at least this big skip the window: their bytes are written from the input buffers. */
const DIRECT_MIN = 1024 * 1024;
const MAX_DIRECT_IN_FLIGHT = 16;
const SAMPLE = 16 * 1024;

interface CurrentFile {
  runs: BlockRun[];
  run: number; // index of the run holding the next write
  size: number;
  segments: SparseSegment[] | undefined;
  seg: number; // current sparse segment
  segLeft: number; // bytes left in it
  pos: number; // logical byte position of the next body byte
  written: number; // body bytes received
  expected: number; // body bytes expected
  crc: number;
  direct: boolean; // written straight from the caller's buffers (big bodies), not via the window
}

export class DataSink {
  private window: Buffer;
  private winStart = 0; // first block of the window
  private highWater = 0; // bytes of the window written so far (relative)
  private inFlight: Promise<void>[] = [];
  private directInFlight: Promise<void>[] = [];
  private spare: Buffer[] = [];
  private failure: unknown = null;
  private cur: CurrentFile | null = null;
  /** File body bytes accepted so far (for progress and stats). */
  bytesIn = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly alloc: BlockAllocator,
  ) {
    this.window = Buffer.alloc(WINDOW_BYTES);
    this.winStart = alloc.next;
  }

  /**
   * Starts a file of `size` bytes. For a sparse file, `segments` lists its data; `size` is the
   * apparent size and the body that follows is the segments' bytes back to back.
   */
  beginFile(size: number, segments?: SparseSegment[]): void {
    if (this.cur) throw new Error('internal: beginFile while a file is open');
    const blocks = Math.ceil(size / BLOCK_SIZE);
    if (blocks > MAX_FILE_BLOCKS) fail('EXT4_FILE_TOO_LARGE', 'store file', 'ext4 files are limited to 16 TiB', size);
    const runs: BlockRun[] = [];
    const ranges = segments ? sparseBlockRanges(segments, size) : blocks > 0 ? [{ first: 0, count: blocks }] : [];
    for (const r of ranges) {
      let logical = r.first;
      let left = r.count;
      while (left > 0) {
        const got = this.alloc.takeFromCursor(Math.min(left, MAX_EXTENT_LEN));
        const last = runs[runs.length - 1];
        if (last && last.physical + last.length === got.start && last.logical + last.length === logical && last.length + got.length <= MAX_EXTENT_LEN) {
          last.length += got.length;
        } else {
          runs.push({ logical, physical: got.start, length: got.length });
        }
        logical += got.length;
        left -= got.length;
      }
    }
    const expected = segments ? segments.reduce((n, s) => n + s.length, 0) : size;
    const direct = expected >= DIRECT_MIN;
    // A big body bypasses the window: hand the window to the disk now, and let the next one
    // start after this file's blocks, so the two never cover the same block.
    if (direct) this.submitWindow(this.alloc.next);
    this.cur = {
      runs,
      run: 0,
      size,
      segments,
      seg: 0,
      segLeft: segments && segments.length > 0 ? segments[0]!.length : 0,
      pos: segments && segments.length > 0 ? segments[0]!.offset : 0,
      written: 0,
      expected,
      crc: 0,
      direct,
    };
  }

  /** Body bytes of the current file, in order. */
  write(chunk: Buffer): void {
    const f = this.cur;
    if (!f) throw new Error('internal: write without beginFile');
    if (f.written + chunk.length > f.expected) throw new Error('internal: more body bytes than declared');
    // Fingerprint: crc32 of the first and last SAMPLE bytes of the body (hashing every byte
    // costs a quarter of a conversion; the image UUID only needs to change with the content).
    const at = f.written;
    if (at < SAMPLE) f.crc = crc32(chunk.subarray(0, SAMPLE - at), f.crc);
    const tailFrom = Math.max(SAMPLE, f.expected - SAMPLE);
    if (at + chunk.length > tailFrom) f.crc = crc32(chunk.subarray(Math.max(0, tailFrom - at)), f.crc);
    f.written += chunk.length;
    this.bytesIn += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      let n = chunk.length - off;
      if (f.segments) {
        while (f.segLeft === 0) {
          f.seg++;
          const s = f.segments[f.seg]!;
          f.segLeft = s.length;
          f.pos = s.offset;
        }
        n = Math.min(n, f.segLeft);
      }
      // find the run holding f.pos
      const blk = Math.floor(f.pos / BLOCK_SIZE);
      let run = f.runs[f.run]!;
      while (blk >= run.logical + run.length) run = f.runs[++f.run]!;
      const runEnd = (run.logical + run.length) * BLOCK_SIZE;
      n = Math.min(n, runEnd - f.pos);
      const phys = (run.physical - run.logical) * BLOCK_SIZE + f.pos;
      if (f.direct) this.writeDirect(phys, chunk.subarray(off, off + n));
      else this.copyOut(phys, chunk, off, n);
      off += n;
      f.pos += n;
      if (f.segments) f.segLeft -= n;
    }
  }

  /** Ends the current file; returns where its content lives (null for no data blocks). */
  endFile(): Content | null {
    const f = this.cur;
    if (!f) throw new Error('internal: endFile without beginFile');
    this.cur = null;
    if (f.written !== f.expected) throw new Error('internal: file body shorter than declared');
    if (f.runs.length === 0) return null;
    return { kind: 'placed', runs: f.runs, crc: f.crc };
  }

  /** Abandons the current file (its blocks are returned to the allocator). */
  abortFile(): void {
    const f = this.cur;
    this.cur = null;
    if (!f) return;
    for (const r of f.runs) this.alloc.release({ start: r.physical, length: r.length });
  }

  /** Waits until at most MAX_IN_FLIGHT windows are being written. Call between input chunks. */
  async drain(): Promise<void> {
    while (this.inFlight.length > MAX_IN_FLIGHT) await this.inFlight.shift();
    while (this.directInFlight.length > MAX_DIRECT_IN_FLIGHT) await this.directInFlight.shift();
    if (this.failure) throw this.failure;
  }

  /**
   * Waits for every write that still reads from a caller's buffer. A source that reuses its
   * input buffers calls this before overwriting one it has passed to `write`.
   */
  async settleDirect(): Promise<void> {
    while (this.directInFlight.length > 0) await this.directInFlight.shift();
    if (this.failure) throw this.failure;
  }

  /** Writes out everything buffered and lets go of spare windows. */
  async flush(): Promise<void> {
    this.submitWindow(this.alloc.next);
    while (this.inFlight.length > 0) await this.inFlight.shift();
    await this.settleDirect();
    this.spare = [];
  }

  private writeDirect(physByte: number, view: Buffer): void {
    const p = writeFully(this.fh, view, view.length, physByte).catch((e: unknown) => this.recordFailure(e));
    this.directInFlight.push(p);
  }

  private recordFailure(e: unknown): void {
    this.failure ??= e instanceof RootforgeError ? e : new RootforgeError('IO_FAILED', `Cannot write image: ${(e as Error).message}`, { cause: e });
  }

  private copyOut(physByte: number, src: Buffer, srcOff: number, len: number): void {
    while (len > 0) {
      const winStartByte = this.winStart * BLOCK_SIZE;
      let rel = physByte - winStartByte;
      if (rel < 0) throw new Error('internal: data sink moved backwards');
      if (rel >= this.window.length) {
        this.submitWindow(Math.floor(physByte / BLOCK_SIZE));
        rel = physByte - this.winStart * BLOCK_SIZE;
      }
      const n = Math.min(len, this.window.length - rel);
      src.copy(this.window, rel, srcOff, srcOff + n);
      this.highWater = Math.max(this.highWater, rel + n);
      physByte += n;
      srcOff += n;
      len -= n;
    }
  }

  /** Hands the window's written blocks to the disk; the next window starts at block `next`. */
  private submitWindow(next: number): void {
    const bytes = Math.ceil(this.highWater / BLOCK_SIZE) * BLOCK_SIZE;
    if (bytes > 0) {
      const buf = this.window;
      const pos = this.winStart * BLOCK_SIZE;
      const p = writeFully(this.fh, buf, bytes, pos)
        .then(() => {
          buf.fill(0, 0, bytes);
          this.spare.push(buf);
        })
        .catch((e: unknown) => this.recordFailure(e));
      this.inFlight.push(p);
      this.window = this.spare.pop() ?? Buffer.alloc(WINDOW_BYTES);
    }
    this.winStart = next;
    this.highWater = 0;
  }
}

export async function writeFully(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await fh.write(buf, done, length - done, position + done);
    if (bytesWritten <= 0) throw new Error('short write');
    done += bytesWritten;
  }
}

/** Logical block ranges touched by sparse data segments, merged and in order. */
export function sparseBlockRanges(segments: SparseSegment[], size: number): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = [];
  let prevEnd = 0;
  for (const s of segments) {
    if (s.offset < prevEnd) fail('TAR_BAD_SPARSE', 'map sparse file', 'data segments overlap or are out of order', s.offset);
    prevEnd = s.offset + s.length;
    if (s.length === 0) continue;
    if (s.offset + s.length > size) fail('TAR_BAD_SPARSE', 'map sparse file', 'data segment beyond the file size', `${s.offset}+${s.length} > ${size}`);
    const first = Math.floor(s.offset / BLOCK_SIZE);
    const end = Math.ceil((s.offset + s.length) / BLOCK_SIZE);
    const last = out[out.length - 1];
    if (last && first <= last.first + last.count) {
      last.count = Math.max(last.count, end - last.first);
    } else {
      out.push({ first, count: end - first });
    }
  }
  return out;
}
