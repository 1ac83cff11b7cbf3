/**
 * Streams file bodies straight to their final blocks in the image.
 *
 * A file's blocks are allocated when it starts (its size is known from the tar header), from the
 * allocator's forward-only cursor, so consecutive bodies land on consecutive blocks. Bodies are
 * never copied: the views of the caller's buffers are gathered into a batch covering a
 * contiguous byte range of the image (the few bytes between them — the tail of a file's last
 * block, a reserved block — filled from a shared zero buffer) and written with one writev. The
 * caller's buffers are therefore in use until the batch is written; `settle` says when.
 *
 * `write` is synchronous (it is called from the tar parser's callbacks); callers await `drain()`
 * between input chunks, which bounds the writes in flight.
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { fail, RootforgeError } from '../errors.js';
import type { SparseSegment } from '../tar/types.js';
import type { BlockRun, Content } from '../tree/types.js';
import { BlockAllocator } from './alloc.js';
import { BLOCK_SIZE, MAX_EXTENT_LEN, MAX_FILE_BLOCKS } from './format.js';

/**
 * A batch is written once it holds this many bytes ... Small batches keep the bytes in the CPU
 * cache between the read that brought them and the write that copies them into the page cache:
 * on the devbox, 1 MiB batches (and 512 KiB reads in a ring of 8) took the write's system time
 * from ≈ 2.2 s to ≈ 0.9 s against 8 MiB batches, and let reading run ahead of writing (a ring
 * smaller than a batch made every wrap wait for the batch being written).
 */
const BATCH_BYTES = 1024 * 1024;
/** ... or this many buffers (Linux IOV_MAX is 1024). */
const BATCH_IOV = 1000;
const MAX_IN_FLIGHT = 3;
/** Gaps inside a batch are filled with zeros up to this size; a bigger jump starts a new batch. */
const MAX_FILL = 64 * 1024;
const ZEROS = Buffer.alloc(MAX_FILL);
const SAMPLE = 16 * 1024;

interface Batch {
  start: number; // image byte offset of the first buffer
  end: number; // image byte offset after the last buffer
  iov: Buffer[];
  refs: Set<ArrayBufferLike>; // caller buffers the views point into
  staging: Buffer[]; // pool buffers holding copies (returned to the pool once written)
}

/** Copies are gathered in pool buffers of this size. */
const STAGING_BYTES = 4 * 1024 * 1024;

interface Pending {
  done: Promise<void>;
  refs: Set<ArrayBufferLike>;
}

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
}

/**
 * Placed content in one run from logical block 0 — most files. One object of three fields that
 * is its own single run, instead of four objects (content, runs array, its elements, the run):
 * 48 bytes instead of 152 a file. `runs` makes a new one-element array on each read.
 */
class OneRun implements BlockRun {
  constructor(
    readonly physical: number,
    readonly length: number,
    readonly crc: number,
  ) {}

  get kind(): 'placed' {
    return 'placed';
  }

  get logical(): number {
    return 0;
  }

  get runs(): BlockRun[] {
    return [this];
  }
}

export class DataSink {
  private batch: Batch | null = null;
  private inFlight: Pending[] = [];
  /**
   * Whether `write` may keep views of the caller's buffers until they are written (zero copy).
   * Only a source that recycles its buffers through `settle` should allow it: buffers a source
   * allocates for every chunk (a decompressor's) would otherwise live until their write is done,
   * long enough to reach the old generation and cost full garbage collections. By default bytes
   * are copied into a few reused staging buffers, which is cheaper than that.
   */
  zeroCopy = false;
  private staging: Buffer | null = null;
  private stagingUsed = 0;
  private stagingPool: Buffer[] = [];
  /** Batches not yet written that use each staging buffer. */
  private stagingUsers = new Map<Buffer, number>();
  private failure: unknown = null;
  private cur: CurrentFile | null = null;
  /** File body bytes accepted so far (for progress and stats). */
  bytesIn = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly alloc: BlockAllocator,
  ) {}

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
      this.append(phys, off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n));
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
    const first = f.runs[0]!;
    if (f.runs.length === 1 && first.logical === 0) return new OneRun(first.physical, first.length, f.crc);
    // a copy of exactly its length: the array grown by push has room for 17 runs (136 bytes more)
    return { kind: 'placed', runs: f.runs.slice(), crc: f.crc };
  }

  /** Abandons the current file (its blocks are returned to the allocator). */
  abortFile(): void {
    const f = this.cur;
    this.cur = null;
    if (!f) return;
    for (const r of f.runs) this.alloc.release({ start: r.physical, length: r.length });
  }

  /** Waits until at most MAX_IN_FLIGHT batches are being written. Call between input chunks. */
  async drain(): Promise<void> {
    while (this.inFlight.length > MAX_IN_FLIGHT) await this.inFlight.shift()!.done;
    if (this.failure) throw this.failure;
  }

  /**
   * Resolves once no write reads from `buffer` (a caller's input buffer) any more, so the caller
   * may overwrite it. Without an argument: once nothing is in flight at all.
   */
  async settle(buffer?: ArrayBufferLike): Promise<void> {
    if (this.batch && (buffer === undefined || this.batch.refs.has(buffer))) this.submit();
    const waits = this.inFlight.filter((p) => buffer === undefined || p.refs.has(buffer));
    for (const w of waits) await w.done;
    this.inFlight = this.inFlight.filter((p) => !waits.includes(p));
    if (this.failure) throw this.failure;
  }

  /** Writes out everything pending. */
  async flush(): Promise<void> {
    await this.settle();
  }

  /** Adds `view` at image byte `pos` to the current batch (or starts a new one). */
  private append(pos: number, view: Buffer): void {
    let b = this.batch;
    if (b) {
      const gap = pos - b.end;
      if (gap < 0) throw new Error('internal: data sink moved backwards');
      if (gap > MAX_FILL || b.iov.length >= BATCH_IOV || b.end - b.start >= BATCH_BYTES) {
        this.submit();
        b = null;
      } else if (gap > 0) {
        b.iov.push(ZEROS.subarray(0, gap));
        b.end = pos;
      }
    }
    if (!b) b = this.batch = { start: pos, end: pos, iov: [], refs: new Set(), staging: [] };
    if (this.zeroCopy) {
      b.iov.push(view);
      b.refs.add(view.buffer);
    } else {
      this.copyInto(b, view);
    }
    b.end += view.length;
  }

  /** Copies `view` into staging buffers used by batch `b`, extending its last piece when it can. */
  private copyInto(b: Batch, view: Buffer): void {
    let off = 0;
    while (off < view.length) {
      if (!this.staging || this.stagingUsed === this.staging.length) {
        const full = this.staging;
        this.staging = this.stagingPool.pop() ?? Buffer.allocUnsafe(STAGING_BYTES);
        this.stagingUsed = 0;
        if (full && !this.stagingUsers.has(full)) this.stagingPool.push(full);
      }
      if (!b.staging.includes(this.staging)) {
        b.staging.push(this.staging);
        this.stagingUsers.set(this.staging, (this.stagingUsers.get(this.staging) ?? 0) + 1);
      }
      const n = Math.min(view.length - off, this.staging.length - this.stagingUsed);
      view.copy(this.staging, this.stagingUsed, off, off + n);
      const piece = this.staging.subarray(this.stagingUsed, this.stagingUsed + n);
      const last = b.iov[b.iov.length - 1];
      if (last && last.buffer === piece.buffer && last.byteOffset + last.length === piece.byteOffset) {
        b.iov[b.iov.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + n);
      } else {
        b.iov.push(piece);
      }
      this.stagingUsed += n;
      off += n;
    }
  }

  /** A written batch lets go of its staging buffers; unused ones (not being filled) are reused. */
  private release(b: Batch): void {
    for (const buf of b.staging) {
      const users = (this.stagingUsers.get(buf) ?? 1) - 1;
      if (users > 0) {
        this.stagingUsers.set(buf, users);
        continue;
      }
      this.stagingUsers.delete(buf);
      if (buf !== this.staging) this.stagingPool.push(buf);
    }
  }

  private submit(): void {
    const b = this.batch;
    this.batch = null;
    if (!b || b.iov.length === 0) return;
    const done = writevFully(this.fh, b.iov, b.start)
      .then(() => this.release(b))
      .catch((e: unknown) => {
        this.failure ??= e instanceof RootforgeError ? e : new RootforgeError('IO_FAILED', `Cannot write image: ${(e as Error).message}`, { cause: e });
      });
    this.inFlight.push({ done, refs: b.refs });
  }
}

/** writev that finishes short writes. */
export async function writevFully(fh: FileHandle, iov: Buffer[], position: number): Promise<void> {
  let bufs = iov;
  let pos = position;
  for (;;) {
    const total = bufs.reduce((n, b) => n + b.length, 0);
    if (total === 0) return;
    const { bytesWritten } = await fh.writev(bufs, pos);
    if (bytesWritten <= 0) throw new Error('short write');
    if (bytesWritten === total) return;
    pos += bytesWritten;
    let skip = bytesWritten;
    let i = 0;
    while (skip >= bufs[i]!.length) skip -= bufs[i++]!.length;
    bufs = [bufs[i]!.subarray(skip), ...bufs.slice(i + 1)];
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
