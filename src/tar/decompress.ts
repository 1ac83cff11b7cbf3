/**
 * Opens a (possibly compressed) tar archive as a stream of decompressed chunks. The format is
 * found from the first bytes, never from the file name: a valid tar header means plain tar, else
 * the gzip / zstd magic, else a known but unsupported magic is named in the error.
 *
 * Every chunk handed out is a fresh buffer (or a view of one that is never written again), so the
 * tar reader can pass views of them on as file bodies without copying — unless the caller opts
 * into reused buffers (`recycle` for plain files, `reuseOutput` for compressed input). Files are
 * read in large chunks with one read kept in flight ahead of the consumer.
 *
 * Decompression runs on a worker thread (inflate-worker.ts) into a shared ring of buffers:
 *   gzip  node:zlib gunzip (concatenated members too); trailing zero padding is fine, trailing
 *         garbage is reported as TAR_BAD_COMPRESSION (GNU gzip only warns about it)
 *   zstd  zstd-napi's streaming DCtx, decompressing straight into the ring
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../util/worker.js';
import { RootforgeError, cannot, fail, isRootforgeError } from '../errors.js';
import { BLOCK, checksumMatches } from './header.js';

import { COMPRESSION_LABEL, detectCompression, type Compression } from '../util/compression.js';

/** What the tar reader decompresses; the other formats in src/util/compression.ts are refused by name. */
export type { Compression };

export interface OpenedArchive {
  /** Decompressed archive bytes. Iterate once. */
  stream: AsyncIterable<Buffer>;
  compression: Compression;
  /** Size of the input in bytes when known (a file), undefined for a stream. */
  compressedSize: number | undefined;
  /** Input (compressed) bytes read so far, for progress reporting. */
  bytesRead(): number;
}

export interface OpenOptions {
  /** Read size for files, in bytes. Default 4 MiB; at least 64 KiB. */
  chunkSize?: number;
  /**
   * Reuse read buffers for an uncompressed archive instead of allocating one per read (saves
   * the allocation, page faults and GC of every byte). `recycle(buffer)` is awaited before a
   * buffer is read into again and must resolve once nothing reads views of it any more.
   */
  recycle?: (buffer: ArrayBufferLike) => Promise<void>;
  /**
   * Compressed input: hand out views of the decompressor's reused output buffers, each valid only
   * until the next chunk is asked for (saves a copy and, above all, the garbage collections that
   * gigabytes of fresh buffers cause). Only for a consumer that copies what it keeps. Default false.
   */
  reuseOutput?: boolean;
}

/**
 * Buffers in the recycling ring: one being consumed, one being read, the rest being written. The
 * ring (4 MiB) is several times the data sink's batch (1 MiB), so a buffer is free again by the
 * time reading wraps around to it and reading never waits for a write.
 */
const RING = 8;

const DEFAULT_CHUNK = 512 << 10;
/** The read ring's shape, for other readers that hand out the same kind of chunks (registry.ts). */
export { RING as READ_RING, DEFAULT_CHUNK as READ_CHUNK };
/** Bytes needed to recognise every magic we know. */
const MAGIC_BYTES = BLOCK;

/** Opens the archive at `path`. Fails with SOURCE_NOT_FOUND / SOURCE_UNREADABLE before any data flows. */
export async function openArchive(path: string, options: OpenOptions = {}): Promise<OpenedArchive & { compressedSize: number }> {
  const chunkSize = Math.max(options.chunkSize ?? DEFAULT_CHUNK, 64 << 10);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(code === 'ENOENT' ? 'SOURCE_NOT_FOUND' : 'SOURCE_UNREADABLE', 'open archive', code === 'ENOENT' ? 'no such file' : String((e as Error).message), path, e);
  }
  let size: number;
  let first: Buffer;
  try {
    size = (await fh.stat()).size;
    first = Buffer.allocUnsafe(chunkSize);
    const { bytesRead } = await fh.read(first, 0, chunkSize, null);
    first = first.subarray(0, bytesRead);
  } catch (e) {
    await fh.close();
    fail('SOURCE_UNREADABLE', 'open archive', String((e as Error).message), path, e);
  }
  let compression: Compression;
  try {
    compression = detect(first, path);
  } catch (e) {
    await fh.close();
    throw e;
  }
  const counter = { n: first.length };
  // Compressed input is copied into the decompressor's input ring before the next chunk is asked
  // for, so its read buffers can be reused at once (no gigabyte of fresh buffers to collect).
  const recycle = compression === 'none' ? options.recycle : noWait;
  const raw = fileChunks(fh, first, chunkSize, counter, path, recycle);
  return { stream: decompress(raw, compression, options.reuseOutput === true), compression, compressedSize: size, bytesRead: () => counter.n };
}

const noWait = async (): Promise<void> => undefined;

/**
 * `size` bytes of an open file from `start`, in chunks read into a ring of RING reused buffers (one
 * read ahead): a chunk stays valid until RING − 1 more have been asked for, so a consumer must
 * copy what it keeps by then (a digest check, a decompressor's input ring and the tar reader all
 * do). No fresh buffer per read: reading a layer of a gigabyte allocates RING × chunkSize. Closes
 * `fh` when done or stopped.
 */
export async function* readRing(fh: FileHandle, size: number, path: string, chunkSize = DEFAULT_CHUNK, start = 0): AsyncGenerator<Buffer, void, undefined> {
  let first: Buffer;
  try {
    first = Buffer.allocUnsafe(chunkSize);
    const { bytesRead } = await fh.read(first, 0, Math.min(chunkSize, size), start);
    first = first.subarray(0, bytesRead);
  } catch (e) {
    await fh.close();
    return fail('IO_FAILED', 'read', String((e as Error).message), path, e);
  }
  yield* fileChunks(fh, first, chunkSize, { n: first.length }, path, noWait, size, start);
}

/**
 * Same for an already open stream (stdin for "-", a layer blob). Reads just enough to recognise
 * the format. Each chunk of `source` is used before the next is asked for, except the few that
 * make up the first MAGIC_BYTES, which are copied.
 */
export async function openArchiveStream(source: AsyncIterable<Uint8Array>, options: Pick<OpenOptions, 'reuseOutput'> = {}): Promise<OpenedArchive> {
  const it = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let have = 0;
  let ended = false;
  while (have < MAGIC_BYTES) {
    const r = await it.next();
    if (r.done === true) {
      ended = true;
      break;
    }
    const b = toBuffer(r.value);
    // A source may reuse its buffers once a few more chunks were asked for (readRing): when the
    // magic takes several chunks, keep copies.
    head.push(have + b.length < MAGIC_BYTES ? Buffer.from(b) : b);
    have += b.length;
  }
  const counter = { n: have };
  const prefix = head.length === 1 ? head[0]! : Buffer.concat(head);
  let compression: Compression;
  try {
    compression = detect(prefix, 'standard input');
  } catch (e) {
    if (!ended) await it.return?.();
    throw e;
  }
  async function* chunks(): AsyncGenerator<Buffer, void, undefined> {
    try {
      if (prefix.length > 0) yield prefix;
      if (ended) return;
      for (;;) {
        const r = await it.next();
        if (r.done === true) {
          ended = true;
          return;
        }
        const b = toBuffer(r.value);
        counter.n += b.length;
        yield b;
      }
    } finally {
      if (!ended) await it.return?.();
    }
  }
  return { stream: decompress(chunks(), compression, options.reuseOutput === true), compression, compressedSize: undefined, bytesRead: () => counter.n };
}

/** Recognises the input from its first bytes (magic numbers from src/util/compression.ts). */
export function detect(head: Buffer, what: string): Compression {
  // A tar header first: its name could start with any bytes, even a magic.
  if (head.length >= BLOCK && checksumMatches(head, 0)) return 'none';
  const found = detectCompression(head);
  if (found === 'none' || found === 'gzip' || found === 'zstd') return found;
  return fail('TAR_UNSUPPORTED_COMPRESSION', 'read archive', `${COMPRESSION_LABEL[found]} compression is not supported (use gzip, zstd or plain tar)`, what);
}

function decompress(raw: AsyncGenerator<Buffer, void, undefined>, compression: Compression, reuse: boolean): AsyncIterable<Buffer> {
  if (compression === 'gzip' || compression === 'zstd') return ringDecompress(raw, compression, reuse);
  return raw;
}

/**
 * Sequential file reads, one read ahead, into fresh buffers or (with `recycle`) a ring of reused
 * ones. A read's outcome is stored, not thrown, so a read still in flight when the consumer
 * stops can be awaited before closing.
 */
async function* fileChunks(
  fh: FileHandle,
  first: Buffer,
  chunkSize: number,
  counter: { n: number },
  path: string,
  recycle?: (buffer: ArrayBufferLike) => Promise<void>,
  /** Read no further than this many bytes from `start` (default: to the end of the file). */
  limit = Infinity,
  /** Where in the file the bytes begin (`first` was read from there). */
  start = 0,
): AsyncGenerator<Buffer, void, undefined> {
  type Outcome = { buf: Buffer } | { error: unknown };
  // With recycling, reads cycle through a ring of RING buffers (`first` is the first of them).
  const ring: Buffer[] = recycle ? [Buffer.from(first.buffer, first.byteOffset, chunkSize)] : [];
  let turn = 0;
  const nextBuffer = async (): Promise<Buffer> => {
    if (!recycle) return Buffer.allocUnsafe(chunkSize);
    turn = (turn + 1) % RING;
    if (ring[turn] === undefined) ring[turn] = Buffer.allocUnsafe(chunkSize);
    else await recycle(ring[turn]!.buffer);
    return ring[turn]!;
  };
  const readNext = async (): Promise<Outcome> => {
    let buf: Buffer;
    try {
      buf = await nextBuffer();
    } catch (error) {
      return { error };
    }
    const want = Math.min(chunkSize, limit - counter.n);
    if (want <= 0) return { buf: buf.subarray(0, 0) };
    return fh.read(buf, 0, want, start + counter.n).then(
      ({ bytesRead }) => {
        counter.n += bytesRead;
        return { buf: buf.subarray(0, bytesRead) };
      },
      (error: unknown) => ({ error }),
    );
  };
  let pending: Promise<Outcome> | undefined;
  try {
    if (first.length === 0) return;
    pending = readNext();
    yield first;
    for (;;) {
      const out = await pending;
      pending = undefined;
      if ('error' in out) {
        if (isRootforgeError(out.error)) throw out.error; // from recycle(): the consumer's own failure
        fail('IO_FAILED', 'read archive', String((out.error as Error).message), path, out.error);
      }
      if (out.buf.length === 0) return;
      pending = readNext();
      yield out.buf;
    }
  } finally {
    if (pending !== undefined) await pending; // never rejects (see readNext)
    await fh.close();
  }
}

/** Shared rings of the decompression worker: output slots and input slots (6 MiB in all). */
const RING_SLOTS = 4;
const SLOT_BYTES = 1 << 20;
const IN_SLOTS = 4;
const IN_SLOT_BYTES = 512 << 10;

/**
 * gzip or zstd on a worker thread (inflate-worker.ts) while this thread parses and writes. The
 * compressed input is copied into slots of one shared ring and the worker decompresses into
 * slots of another, so this thread allocates and serializes nothing per chunk. With `reuse`, a
 * chunk handed out is a view of its slot, valid until the next chunk is asked for (the slot is
 * then given back to the worker); without it, each chunk is copied out first.
 */
async function* ringDecompress(raw: AsyncGenerator<Buffer, void, undefined>, format: 'gzip' | 'zstd', reuse: boolean): AsyncGenerator<Buffer, void, undefined> {
  const ring = new SharedArrayBuffer(RING_SLOTS * SLOT_BYTES);
  const inRing = new SharedArrayBuffer(IN_SLOTS * IN_SLOT_BYTES);
  const inViews = Array.from({ length: IN_SLOTS }, (_, i) => Buffer.from(inRing, i * IN_SLOT_BYTES, IN_SLOT_BYTES));
  let worker: Worker;
  try {
    worker = startWorker(new URL('./inflate-worker.js', import.meta.url), { workerData: { format, ring, slotBytes: SLOT_BYTES, inRing, inSlotBytes: IN_SLOT_BYTES } });
  } catch (e) {
    await raw.return(undefined); // closes the input (its file handle, a download)
    throw e;
  }
  const ready: { slot: number; length: number }[] = [];
  const inFree: number[] = Array.from({ length: IN_SLOTS }, (_, i) => i);
  let finished: { inFrame: boolean } | null = null;
  let failure: unknown = null;
  let stopped = false;
  let wake: (() => void) | null = null;
  let wakeInput: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const notifyInput = () => {
    const w = wakeInput;
    wakeInput = null;
    w?.();
  };
  // Input: copied into free input slots as they come back from the worker (its backpressure).
  // Not awaited: a read stalled when we stop early must not hold up the end; the for-await closes
  // the input once that read settles.
  const pump = async () => {
    try {
      for await (const chunk of raw) {
        for (let off = 0; off < chunk.length; ) {
          while (inFree.length === 0 && !stopped) await new Promise<void>((resolve) => (wakeInput = resolve));
          if (stopped) return;
          const slot = inFree.shift()!;
          const n = chunk.copy(inViews[slot]!, 0, off, Math.min(chunk.length, off + IN_SLOT_BYTES));
          off += n;
          worker.postMessage({ in: slot, length: n });
        }
        if (stopped) return;
      }
      worker.postMessage({ end: true });
    } catch (e) {
      // our own typed failures (a digest mismatch) pass through; an I/O error gets a code
      failure ??= isRootforgeError(e) ? e : new RootforgeError('IO_FAILED', cannot('read archive', (e as NodeJS.ErrnoException).code ?? (e as Error).message, format), { cause: e });
      notify();
    }
  };
  worker.on('message', (m: { slot?: number; length?: number; inFree?: number; done?: boolean; inFrame?: boolean; error?: string; code?: string }) => {
    if (m.slot !== undefined) ready.push({ slot: m.slot, length: m.length! });
    else if (m.inFree !== undefined) return (inFree.push(m.inFree), notifyInput());
    else if (m.done) finished = { inFrame: m.inFrame === true };
    else if (m.error !== undefined) failure ??= compressionError(Object.assign(new Error(m.error), { code: m.code }), format);
    notify();
  });
  worker.on('error', (e) => {
    failure ??= new RootforgeError('WORKER_FAILED', cannot(`decompress ${format}`, 'the decompression thread failed', e.message), { cause: e });
    notify();
  });
  worker.on('exit', (code) => {
    if (!finished) failure ??= new RootforgeError('WORKER_FAILED', cannot(`decompress ${format}`, 'the decompression thread exited', String(code)));
    notify();
  });
  // The worker keeps the process alive only while this thread waits for it: a stream its
  // consumer abandoned without return() (a library user's early exit, a failed test) must not
  // keep a Node process from exiting. Such a worker lingers until the process ends.
  worker.unref();
  void pump();
  try {
    for (;;) {
      if (ready.length > 0) {
        const { slot, length } = ready.shift()!;
        const view = Buffer.from(ring, slot * SLOT_BYTES, length);
        if (reuse) {
          yield view;
          worker.postMessage({ free: slot }); // asked for the next chunk: done with this one
        } else {
          const copy = Buffer.allocUnsafe(length);
          view.copy(copy);
          worker.postMessage({ free: slot });
          yield copy;
        }
        continue;
      }
      if (failure) throw failure;
      if (finished) break;
      worker.ref();
      await new Promise<void>((resolve) => (wake = resolve));
      worker.unref();
    }
  } finally {
    stopped = true;
    notifyInput();
    await worker.terminate();
  }
  if ((finished as { inFrame: boolean } | null)?.inFrame) fail('TAR_BAD_COMPRESSION', 'read archive', 'zstd data ends inside a frame (truncated)');
}

/**
 * Data errors from a decompressor become TAR_BAD_COMPRESSION, other failures on the gzip worker
 * (not zlib's Z_* codes) WORKER_FAILED; our own errors pass through.
 */
function compressionError(e: unknown, format: string): unknown {
  if (isRootforgeError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  if (format === 'gzip' && !(typeof err.code === 'string' && err.code.startsWith('Z_'))) {
    // not a data error: something else failed on the worker (a RangeError, an ERR_* of Node's)
    return new RootforgeError('WORKER_FAILED', cannot(`decompress ${format}`, 'the decompression thread failed', err.message), { cause: e });
  }
  return new RootforgeError('TAR_BAD_COMPRESSION', cannot('read archive', `corrupt or truncated ${format} data`, err.message), { cause: e });
}

function toBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
