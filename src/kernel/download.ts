/**
 * Downloads a file whose SHA-256 is known in advance (from kernels.lock.json) with the engine the
 * blob store uses too (src/util/download.ts), from URLs rather than registry digests:
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
import { mkdir, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fail, RootforgeError } from '../errors.js';
import { downloadWithRetries, hashFile, type RemoteBody } from '../util/download.js';
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
  try {
    const transferred = await downloadWithRetries(
      {
        dest: o.dest,
        sha256: o.sha256,
        size: o.size,
        open: (have) => openRange(http, o.url, have, what),
        codes: { io: 'KERNEL_CACHE_IO', mismatch: 'KERNEL_CHECKSUM_MISMATCH', transfer: 'NET_CONNECT', protocol: 'KERNEL_DOWNLOAD_FAILED' },
        what,
        subject: redact(o.url),
        sizeName: "the lock file's size",
        mismatchReason: (got) => `content hashes to ${got}, the lock file says ${o.sha256}; nothing was kept`,
        onProgress: o.onProgress,
      },
      {
        attempts: o.attempts,
        maxAttempts: o.maxAttempts,
        backoffMs: o.backoffMs,
        // only transfer failures are worth another attempt; the partial keeps what arrived
        isTransfer: isTransferError,
        async giveUp(e, attempt, kept, partial) {
          if (kept === 0) {
            await unlinkIfPresent(partial);
            return new RootforgeError('KERNEL_DOWNLOAD_FAILED', `${e.message}; gave up after ${attempt} attempts, nothing received`, { cause: e });
          }
          const total = o.size !== undefined ? ` of ${o.size}` : '';
          return new RootforgeError('KERNEL_DOWNLOAD_FAILED', `${e.message}; gave up after ${attempt} attempts, ${kept}${total} bytes kept in ${partial} for the next run`, { cause: e });
        },
      },
    );
    return { path: o.dest, fetched: true, transferred };
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

/** GET `url` from byte `have` on (a Range request), as the download engine's source. */
async function openRange(http: HttpClient, url: URL, have: number, what: string): Promise<RemoteBody | 'complete'> {
  const res = await http.requestWithRetry({ url, headers: have > 0 ? { range: `bytes=${have}-` } : {} });
  if (res.status === 416 && have > 0) {
    // nothing after `have`: the partial holds the whole file (or garbage); the hash decides
    res.discard();
    return 'complete';
  }
  if (res.status === 206) {
    const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
    if (m === null) {
      res.discard();
      return fail('KERNEL_DOWNLOAD_FAILED', what, `asked for bytes from ${have}, got ${res.headers['content-range'] ?? 'no Content-Range'}`, redact(res.url));
    }
    return { body: res.body, offset: Number(m[1]), total: m[2] === '*' ? undefined : Number(m[2]), discard: () => res.discard() };
  }
  if (res.status === 200) {
    // the server ignored the Range (or none was sent): its body is the whole file
    const cl = Number(res.headers['content-length']);
    return { body: res.body, offset: 0, total: Number.isSafeInteger(cl) && cl >= 0 ? cl : undefined, discard: () => res.discard() };
  }
  res.discard();
  return fail('NET_HTTP_STATUS', what, `HTTP ${res.status}${res.status === 404 ? ': not found (check the lock file URL or ROOTFORGE_DOWNLOAD_BASE)' : ''}`, redact(res.url));
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
