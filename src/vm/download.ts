/**
 * Downloads a file whose SHA-256 is known in advance (from kernels.lock.json), the way the blob
 * store fetches blobs (src/oci/blobstore.ts), but for URLs rather than registry digests:
 *
 *   <dest>            only ever appears by rename, after its bytes hashed to the expected value
 *   <dest>.partial    the download so far; a new attempt (in this run or the next) resumes it
 *                     with an HTTP Range request and hashes what it already holds first
 *   <dest>.lock       the process downloading it (src/util/file-lock.ts, the blob store's lock)
 *
 * A file already at <dest> with the right hash is not downloaded again. A dropped connection
 * is retried from where it stopped (a few attempts in a row without progress, then
 * KERNEL_DOWNLOAD_FAILED with the partial kept for the next run). Bytes that hash to anything
 * else are KERNEL_CHECKSUM_MISMATCH and nothing is kept. Transfers go through HttpClient
 * (src/util/http.ts: redirects, retries of 5xx/429, plain HTTP only to loopback hosts) with its
 * NET_* codes: NET_CONNECT / NET_TIMEOUT are retried, NET_TOO_SLOW and NET_HTTP_STATUS (a 404,
 * a 403) are not.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, RootforgeError } from '../errors.js';
import { FileLock } from '../util/file-lock.js';
import { HttpClient, isTransferError, redact } from '../util/http.js';

export interface DownloadOptions {
  url: URL;
  dest: string;
  /** Expected SHA-256, hex. */
  sha256: string;
  /** Expected size in bytes, when known (checked before hashing). */
  size?: number;
  http?: HttpClient;
  /** Bytes on disk so far. */
  onProgress?: (bytes: number, total: number | undefined) => void;
  /** Attempts in a row that may fail without adding a byte. Default 3. */
  attempts?: number;
  /** Upper bound on attempts, progress or not. Default 10. */
  maxAttempts?: number;
  /** First retry delay in ms, doubled per failed attempt in a row. Default 250. */
  backoffMs?: number;
  /** How long to wait for another process downloading the same file, ms. Default 10 min. */
  lockWaitMs?: number;
}

export interface DownloadResult {
  path: string;
  /** False when a correct file was already there. */
  fetched: boolean;
  /** Bytes transferred in this run (0 when not fetched; less than the size after a resume). */
  transferred: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

export async function downloadVerified(o: DownloadOptions): Promise<DownloadResult> {
  if (!HEX64.test(o.sha256)) fail('KERNEL_LOCK_INVALID', 'download', 'expected a lowercase hex SHA-256', o.sha256);
  const what = `download ${redact(o.url)}`;
  if (await hasCorrectFile(o.dest, o.sha256)) return { path: o.dest, fetched: false, transferred: 0 };
  try {
    await mkdir(dirname(o.dest), { recursive: true });
  } catch (e) {
    fail('KERNEL_CACHE_IO', what, errno(e), dirname(o.dest), e);
  }
  // One process downloads a file at a time; the others wait and then find it there.
  const lock = new FileLock(o.dest, redact(o.url), { noun: 'download', ...(o.lockWaitMs !== undefined ? { waitMs: o.lockWaitMs } : {}) });
  // <dest> only appears by rename after verification, so a waiter need not hash it
  if ((await lock.acquire(() => exists(o.dest))) === 'done') return { path: o.dest, fetched: false, transferred: 0 };
  const stopHeartbeat = lock.heartbeat();
  try {
    // the holder before us may have finished between our check and taking the lock
    if (await hasCorrectFile(o.dest, o.sha256)) return { path: o.dest, fetched: false, transferred: 0 };
    return await downloadLocked(o, what);
  } finally {
    stopHeartbeat();
    await lock.release();
  }
}

async function downloadLocked(o: DownloadOptions, what: string): Promise<DownloadResult> {
  const http = o.http ?? new HttpClient({ codes: 'net' });
  const attempts = o.attempts ?? 3;
  const maxAttempts = o.maxAttempts ?? 10;
  const backoffMs = o.backoffMs ?? 250;
  const partial = `${o.dest}.partial`;
  let failedInARow = 0;
  let transferred = 0;
  try {
    for (let attempt = 1; ; attempt++) {
      const before = await sizeOf(partial);
      try {
        transferred += await attemptOnce(o, http, partial, what);
        return { path: o.dest, fetched: true, transferred };
      } catch (e) {
        // only transfer failures are worth another attempt; the partial keeps what arrived
        if (!isTransferError(e)) throw e;
        const after = await sizeOf(partial);
        transferred += Math.max(0, after - before);
        failedInARow = after > before ? 0 : failedInARow + 1;
        if (failedInARow >= attempts || attempt >= maxAttempts) {
          const total = o.size !== undefined ? ` of ${o.size}` : '';
          if (after === 0) {
            await unlinkIfPresent(partial);
            throw new RootforgeError('KERNEL_DOWNLOAD_FAILED', `${e.message}; gave up after ${attempt} attempts, nothing received`, { cause: e });
          }
          throw new RootforgeError('KERNEL_DOWNLOAD_FAILED', `${e.message}; gave up after ${attempt} attempts, ${after}${total} bytes kept in ${partial} for the next run`, { cause: e });
        }
        await sleep(backoffMs * 2 ** failedInARow);
      }
    }
  } finally {
    if (o.http === undefined) http.close();
  }
}

/** True when `dest` exists and hashes to `sha256`; a wrong file there is removed. */
async function hasCorrectFile(dest: string, sha256: string): Promise<boolean> {
  try {
    await stat(dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    return fail('KERNEL_CACHE_IO', 'check a download', errno(e), dest, e);
  }
  const h = await hashFile(dest, Infinity);
  if (h.digest('hex') === sha256) return true;
  await unlink(dest);
  return false;
}

/** One request: resume the partial, append the body, verify, rename. Returns bytes received. */
async function attemptOnce(o: DownloadOptions, http: HttpClient, partial: string, what: string): Promise<number> {
  let fh: FileHandle;
  try {
    fh = await openPartial(partial);
  } catch (e) {
    return fail('KERNEL_CACHE_IO', what, errno(e), partial, e);
  }
  let closed = false;
  let received = 0;
  const close = async (): Promise<void> => {
    if (!closed) {
      closed = true;
      await fh.close();
    }
  };
  try {
    let have = (await fh.stat()).size;
    if (o.size !== undefined && have > o.size) {
      await fh.truncate(0);
      have = 0;
    }
    let hash = await hashFile(partial, have);
    let total = o.size;
    if (total === undefined || have < total) {
      const res = await http.requestWithRetry({ url: o.url, headers: have > 0 ? { range: `bytes=${have}-` } : {} });
      if (res.status === 416 && have > 0) {
        // nothing after `have`: the partial holds the whole file (or garbage); the hash decides
        res.discard();
        total = have;
      } else if (res.status === 200 || res.status === 206) {
        if (res.status === 200 && have > 0) {
          // the server ignored the Range: start over from its body
          await fh.truncate(0);
          have = 0;
          hash = createHash('sha256');
        }
        if (res.status === 206) {
          const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
          if (m === null || Number(m[1]) !== have) {
            res.discard();
            await fh.truncate(0);
            fail('KERNEL_DOWNLOAD_FAILED', what, `asked for bytes from ${have}, got ${res.headers['content-range'] ?? 'no Content-Range'}`, redact(res.url));
          }
          if (m[2] !== '*') total ??= Number(m[2]);
        } else {
          const cl = Number(res.headers['content-length']);
          if (Number.isSafeInteger(cl) && cl >= 0) total ??= cl;
        }
        if (o.size !== undefined && total !== undefined && total !== o.size) {
          res.discard();
          await close();
          await unlinkIfPresent(partial);
          fail('KERNEL_CHECKSUM_MISMATCH', what, `the server has ${total} bytes, the lock file says ${o.size}`, redact(res.url));
        }
        o.onProgress?.(have, total);
        for await (const chunk of res.body) {
          if (total !== undefined && have + chunk.length > total) {
            res.discard();
            await close();
            await unlinkIfPresent(partial);
            fail('KERNEL_CHECKSUM_MISMATCH', what, `more bytes than the expected ${total}`, redact(res.url));
          }
          await writeAll(fh, chunk, have);
          hash.update(chunk);
          have += chunk.length;
          received += chunk.length;
          o.onProgress?.(have, total);
        }
        if (total !== undefined && have < total) fail('NET_CONNECT', what, `connection ended after ${have} of ${total} bytes`, redact(res.url));
      } else {
        res.discard();
        fail('NET_HTTP_STATUS', what, `HTTP ${res.status}${res.status === 404 ? ': not found (check the lock file URL or ROOTFORGE_DOWNLOAD_BASE)' : ''}`, redact(res.url));
      }
    }
    const got = hash.digest('hex');
    if (got !== o.sha256) {
      await close();
      await unlinkIfPresent(partial);
      fail('KERNEL_CHECKSUM_MISMATCH', what, `content hashes to ${got}, the lock file says ${o.sha256}; nothing was kept`, redact(o.url));
    }
    await fh.sync();
    await close();
    await rename(partial, o.dest);
    return received;
  } catch (e) {
    await close();
    if (e instanceof RootforgeError) throw e;
    return fail('KERNEL_CACHE_IO', what, errno(e), partial, e);
  }
}

async function openPartial(partial: string): Promise<FileHandle> {
  try {
    return await open(partial, 'r+');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return await open(partial, 'w+', 0o644);
  }
}

async function writeAll(fh: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, position + off);
    off += bytesWritten;
  }
}

async function hashFile(path: string, length: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (length === 0) return hash;
  const opts = Number.isFinite(length) ? { start: 0, end: length - 1, highWaterMark: 1 << 20 } : { highWaterMark: 1 << 20 };
  for await (const chunk of createReadStream(path, opts)) hash.update(chunk as Buffer);
  return hash;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    return fail('KERNEL_CACHE_IO', 'check a download', errno(e), path, e);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    return fail('KERNEL_CACHE_IO', 'check a download', errno(e), path, e);
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail('KERNEL_CACHE_IO', 'remove a bad download', errno(e), path, e);
  }
}

function errno(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message ?? String(e);
}
