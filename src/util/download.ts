/**
 * Resumable, verified download into a file whose SHA-256 is known in advance: the one engine
 * under the OCI blob store (src/oci/blobstore.ts, registry blobs by digest) and kernel downloads
 * (src/kernel/download.ts, URLs pinned in kernels.lock.json). Callers hold the file's lock
 * (src/util/file-lock.ts) and say where the bytes come from (`open`) and which error codes their
 * users know.
 *
 *   <dest>.partial   the bytes so far; an attempt hashes them, then asks for the rest from
 *                    their length (an HTTP Range request); a source that starts over at 0
 *                    truncates it
 *   <dest>           only ever appears by rename, after fsync, once the bytes hash to `sha256`
 *                    (and number `size`)
 *
 * An attempt that breaks off keeps the partial and throws a transfer error (`codes.transfer`);
 * `downloadWithRetries` retries those with backoff, not holding an attempt that added bytes
 * against the connection. Bytes that hash wrong, or more bytes than expected, delete the partial
 * and throw `codes.mismatch`; with `restartOnMismatch` a resumed partial that turns out wrong (a
 * poisoned earlier download) is started over from byte 0 once.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, isRootforgeError, RootforgeError, type ErrorCode } from '../errors.js';

/** The remote bytes from `offset` on (or from 0 when the source ignored the offset). */
export interface RemoteBody {
  body: AsyncIterable<Buffer>;
  /** Where `body` starts: the offset asked for, or 0. */
  offset: number;
  /** The whole file's size when the source says it. */
  total?: number | undefined;
  /** Drops a body that will not be read (and its connection). */
  discard?: () => void;
}

/** Opens the bytes from `offset`; 'complete' when the source says nothing follows it. */
export type RemoteOpener = (offset: number) => Promise<RemoteBody | 'complete'>;

export interface ResumeCodes {
  /** Local file failures: CACHE_IO, KERNEL_CACHE_IO. */
  io: ErrorCode;
  /** Content other than expected: OCI_DIGEST_MISMATCH, KERNEL_CHECKSUM_MISMATCH. */
  mismatch: ErrorCode;
  /** The body broke off (resumable): OCI_NETWORK, NET_CONNECT. */
  transfer: ErrorCode;
  /** The source answered from an offset it was not asked for: OCI_REGISTRY_ERROR, KERNEL_DOWNLOAD_FAILED. */
  protocol: ErrorCode;
}

export interface ResumeOptions {
  dest: string;
  /** Expected SHA-256, lowercase hex. */
  sha256: string;
  /** Expected size in bytes, when known. */
  size?: number | undefined;
  open: RemoteOpener;
  codes: ResumeCodes;
  /** "fetch blob sha256:…" / "download https://…": the action in messages. */
  what: string;
  /** The value in messages: the digest, the URL. */
  subject: string;
  /** How messages name the expected size: "the descriptor's size". Default "the expected size". */
  sizeName?: string;
  /** The reason given when the bytes hash to `got` (hex). */
  mismatchReason?: (got: string) => string;
  /** Bytes on disk so far, and the total when known (it can go back to 0 on a restart). */
  onProgress?: ((bytes: number, total: number | undefined) => void) | undefined;
  /**
   * Set to receive the file's verified bytes: on success `keep.bytes` holds them (the resumed
   * part as read back for hashing, the rest as received), so a caller that uses the file at once
   * need not read it back. Only for files small enough to hold in memory. `onVerified` gets them
   * as soon as they hash right, before the file is made durable and renamed into place.
   */
  keep?: KeptBytes | undefined;
}

/** Where a download leaves its verified bytes for a caller that uses them at once (ResumeOptions.keep). */
export interface KeptBytes {
  bytes?: Buffer;
  onVerified?: (bytes: Buffer) => void;
}

export interface RetryOptions {
  /** Attempts in a row that may fail with a transfer error without adding a byte. Default 3. */
  attempts?: number | undefined;
  /** Upper bound on attempts, progress or not. Default 10. */
  maxAttempts?: number | undefined;
  /** First retry delay in ms, doubled per failed attempt in a row. Default 250. */
  backoffMs?: number | undefined;
  /** No new attempt starts later than this after the first, ms. Default: no limit. */
  budgetMs?: number | undefined;
  /** Start a resumed partial that hashes wrong over from byte 0, once. Default false. */
  restartOnMismatch?: boolean;
  /** Which errors are transfer failures worth another attempt. */
  isTransfer: (e: unknown) => e is RootforgeError;
  /** The error to throw when giving up (may clean up first); `kept` is the partial's size. */
  giveUp: (e: RootforgeError, attempt: number, kept: number, partial: string) => Promise<Error> | Error;
}

export function partialPath(dest: string): string {
  return `${dest}.partial`;
}

/** Attempts until the file is there; returns the bytes transferred in this run. */
export async function downloadWithRetries(o: ResumeOptions, r: RetryOptions): Promise<number> {
  const partial = partialPath(o.dest);
  const attempts = r.attempts ?? 3;
  const maxAttempts = r.maxAttempts ?? 10;
  const backoffMs = r.backoffMs ?? 250;
  const deadline = performance.now() + (r.budgetMs ?? Infinity);
  let failedInARow = 0;
  let restarted = false;
  let transferred = 0;
  for (let attempt = 1; ; attempt++) {
    const before = await sizeOf(partial, o);
    try {
      transferred += await downloadOnce(o);
      return transferred;
    } catch (e) {
      // A resumed partial that turns out wrong was deleted by downloadOnce: start over once.
      if (r.restartOnMismatch && e instanceof RootforgeError && e.code === o.codes.mismatch && before > 0 && !restarted) {
        restarted = true;
        o.onProgress?.(0, o.size);
        continue;
      }
      if (!r.isTransfer(e)) throw e;
      const after = await sizeOf(partial, o);
      transferred += Math.max(0, after - before);
      // An attempt that added bytes is not held against the connection: big files over a
      // flaky link get there piece by piece (within maxAttempts).
      failedInARow = after > before ? 0 : failedInARow + 1;
      const delay = backoffMs * 2 ** failedInARow;
      if (failedInARow >= attempts || attempt >= maxAttempts || performance.now() + delay > deadline) {
        throw await r.giveUp(e, attempt, after, partial);
      }
      await sleep(delay);
    }
  }
}

/**
 * One attempt: hash what the partial holds, append the rest from `open`, verify, rename.
 * Returns the bytes received. Throws `codes.transfer` (partial kept) when the body breaks off.
 */
export async function downloadOnce(o: ResumeOptions): Promise<number> {
  const partial = partialPath(o.dest);
  let fh: FileHandle;
  try {
    fh = await openPartial(partial);
  } catch (e) {
    return fail(o.codes.io, o.what, errnoOf(e), partial, e);
  }
  let closed = false;
  const close = async (): Promise<void> => {
    if (!closed) {
      closed = true;
      await fh.close();
    }
  };
  const discard = async (): Promise<void> => {
    await close();
    await unlinkIfPresent(partial, o);
  };
  let received = 0;
  try {
    let have = (await fh.stat()).size;
    if (o.size !== undefined && have > o.size) {
      await fh.truncate(0);
      have = 0;
    }
    // With `keep`, the bytes pass through memory too: the resumed part as it is hashed, then the body.
    let kept = o.keep !== undefined ? new Gathered(o.size) : undefined;
    let hash = await hashFile(partial, have, kept?.add);
    let total = o.size;
    if (total === undefined || have < total) {
      const opened = await o.open(have);
      if (opened === 'complete') {
        // nothing after `have`: the partial holds the whole file (or garbage); the hash decides
        total = have;
      } else {
        if (opened.offset !== have) {
          if (opened.offset !== 0) opened.discard?.();
          if (opened.offset !== 0) fail(o.codes.protocol, o.what, `asked for bytes from ${have}, got bytes from ${opened.offset}`, o.subject);
          // The source ignored the offset: start the partial over from its body.
          await fh.truncate(0);
          have = 0;
          hash = createHash('sha256');
          if (kept !== undefined) kept = new Gathered(o.size);
        }
        if (opened.total !== undefined) {
          if (o.size !== undefined && opened.total !== o.size) {
            opened.discard?.();
            await discard();
            fail(o.codes.mismatch, o.what, `the source has ${opened.total} bytes, ${o.sizeName ?? 'the expected size'} is ${o.size}`, o.subject);
          }
          total ??= opened.total;
        }
        o.onProgress?.(have, total);
        // Chunks are written in batches of WRITE_BATCH (one pwritev instead of a round trip to
        // the thread pool per 64 KiB), or WRITE_EVERY_MS after the last write on a slow link; a
        // body that breaks off still leaves what arrived on disk (a kill -9 loses one batch).
        let batch: Buffer[] = [];
        let batchBytes = 0;
        let onDisk = have;
        let lastWrite = performance.now();
        const flush = async () => {
          lastWrite = performance.now();
          if (batchBytes === 0) return;
          await writevAll(fh, batch, onDisk);
          onDisk += batchBytes;
          batch = [];
          batchBytes = 0;
          o.onProgress?.(onDisk, total);
        };
        try {
          for await (const chunk of asTransferErrors(opened.body, o)) {
            if (total !== undefined && have + chunk.length > total) {
              await discard();
              fail(o.codes.mismatch, o.what, `more bytes than ${o.sizeName ?? 'the expected size'} ${total}`, o.subject);
            }
            hash.update(chunk);
            kept?.add(chunk);
            batch.push(chunk);
            batchBytes += chunk.length;
            have += chunk.length;
            received += chunk.length;
            if (batchBytes >= WRITE_BATCH || performance.now() - lastWrite >= WRITE_EVERY_MS) await flush();
          }
        } catch (e) {
          // Kept for the next run unless the bytes are wrong (the partial is gone then).
          if (!isRootforgeError(e, o.codes.mismatch)) await flush();
          throw e;
        }
        await flush();
        if (total !== undefined && have < total) fail(o.codes.transfer, o.what, `connection ended after ${have} of ${total} bytes`, o.subject);
      }
    }
    const got = hash.digest('hex');
    if (got !== o.sha256) {
      await discard();
      fail(o.codes.mismatch, o.what, o.mismatchReason?.(got) ?? `content hashes to ${got}`, o.subject);
    }
    if (o.keep !== undefined && kept !== undefined) {
      o.keep.bytes = kept.bytes(have);
      o.keep.onVerified?.(o.keep.bytes);
    }
    // Durable before it gets its final name: after a power cut the name means the bytes.
    await fh.sync();
    await close();
    await rename(partial, o.dest);
    return received;
  } catch (e) {
    await close();
    if (e instanceof RootforgeError) throw e;
    return fail(o.codes.io, o.what, errnoOf(e), partial, e);
  }
}

/** Errors from the body's source are transfer failures (resumable), whatever their type. */
async function* asTransferErrors(body: AsyncIterable<Buffer>, o: ResumeOptions): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (e) {
    if (e instanceof RootforgeError) throw e;
    fail(o.codes.transfer, o.what, errnoOf(e), o.subject, e);
  }
}

async function openPartial(partial: string): Promise<FileHandle> {
  // 'a+' would ignore write positions on Linux; 'r+' needs the file to exist.
  try {
    return await open(partial, 'r+');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return await open(partial, 'w+', 0o644);
  }
}

/** Bytes written to the partial at once, at most; and the longest received bytes wait, ms. */
const WRITE_BATCH = 1 << 20;
const WRITE_EVERY_MS = 100;

async function writevAll(fh: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  let rest = chunks;
  while (rest.length > 0) {
    let { bytesWritten } = await fh.writev(rest, position);
    position += bytesWritten;
    // a short write: drop what went, go on from the middle of the buffer it stopped in
    while (rest.length > 0 && bytesWritten >= rest[0]!.length) bytesWritten -= rest.shift()!.length;
    if (bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
  }
}

/**
 * A file's bytes gathered in memory as they pass (ResumeOptions.keep): copied into one buffer
 * of the expected size when it is known, so the network's small chunks do not live on (and get
 * promoted by the garbage collector) until the end; kept as they come otherwise.
 */
class Gathered {
  private readonly whole: Buffer | undefined;
  private readonly parts: Buffer[] = [];
  private length = 0;

  constructor(size: number | undefined) {
    this.whole = size !== undefined ? Buffer.allocUnsafeSlow(size) : undefined;
  }

  readonly add = (chunk: Buffer): void => {
    if (this.whole !== undefined) chunk.copy(this.whole, this.length);
    else this.parts.push(chunk);
    this.length += chunk.length;
  };

  bytes(length: number): Buffer {
    return this.whole !== undefined ? this.whole.subarray(0, length) : Buffer.concat(this.parts, length);
  }
}

/** SHA-256 of the first `length` bytes of `path` (all of it for Infinity); the bytes read go to `onChunk` too. */
export async function hashFile(path: string, length: number, onChunk?: (chunk: Buffer) => void): Promise<Hash> {
  const hash = createHash('sha256');
  if (length === 0) return hash;
  const opts = Number.isFinite(length) ? { start: 0, end: length - 1, highWaterMark: 1 << 20 } : { highWaterMark: 1 << 20 };
  for await (const chunk of createReadStream(path, opts)) {
    hash.update(chunk as Buffer);
    onChunk?.(chunk as Buffer);
  }
  return hash;
}

async function sizeOf(path: string, o: ResumeOptions): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    return fail(o.codes.io, o.what, errnoOf(e), path, e);
  }
}

async function unlinkIfPresent(path: string, o: ResumeOptions): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail(o.codes.io, o.what, errnoOf(e), path, e);
  }
}

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message ?? String(e);
}
