/**
 * A content-addressed blob store on disk, shared by every run (and every process) that uses the
 * same cache directory:
 *
 *   <root>/sha256/<hex>            a complete blob whose bytes hash to <hex> (only ever renamed in)
 *   <root>/sha256/<hex>.partial    a download in progress or interrupted; resumed from its length
 *   <root>/sha256/<hex>.lock       "<pid> <hostname>\n" of the one fetching <hex>; taken with link(2),
 *                                  which like O_EXCL fails if it exists, but never shows it half-written
 *   <root>/sha256/.<hex>.<pid>.<n>.tmp   small blobs being written by put()
 *   <root>/sha256/<hex>.lock.<pid>.<n>   a lock being written, hard-linked to <hex>.lock to take it
 *   <root>/sha256/<hex>.lock.stale.<pid>.<n>   a stale lock moved aside while being taken over
 *
 * Invariant: a file named <hex> was verified (sha256 and size) before it got that name, so a
 * crash at any point leaves at most a .partial (resumable), a stale lock (taken over by the
 * next fetcher) and perhaps a tiny temporary file, never a wrong blob.
 *
 * Locking is src/util/file-lock.ts (the same lock kernel downloads take): the holder touches
 * its lock every few seconds; a lock whose pid is gone, or untouched for a minute, is stale and
 * taken over.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, isRootforgeError, RootforgeError } from '../errors.js';
import { FileLock, HOST, pidAlive, privateSuffix } from '../util/file-lock.js';
import { parseDigest, sha256Digest } from './digest.js';

/** What a blob source returns: the body and where in the blob it starts. */
export interface BlobBody {
  body: AsyncIterable<Buffer>;
  /** Offset of the body's first byte: the offset asked for, or 0 when the server ignored a Range. */
  offset: number;
}

/** Opens the blob's bytes from `offset`; a bare iterable is taken to start at `offset`. */
export type BlobOpener = (offset: number) => Promise<BlobBody | AsyncIterable<Buffer>>;

export interface FetchOptions {
  /** Called with the number of bytes of this blob on disk so far (it can go back to 0 on a restart). */
  onProgress?: (bytes: number) => void;
  /** Attempts in a row that may fail with OCI_NETWORK without adding a byte. Default 3. */
  attempts?: number;
  /** Upper bound on attempts for one fetch, progress or not. Default 10. */
  maxAttempts?: number;
  /** First retry delay in ms, doubled per failed attempt in a row. Default 250. */
  backoffMs?: number;
  /** No new attempt starts later than this after the first, ms. Default 10 min. */
  retryBudgetMs?: number;
}

export interface FetchResult {
  path: string;
  /** False when the blob was already in the store or another process fetched it meanwhile. */
  fetched: boolean;
}

export interface BlobStoreOptions {
  /** How long fetch() waits for another process's lock before CACHE_LOCKED, in ms. Default 10 min. */
  lockWaitMs?: number;
  /** A lock not touched for this long is stale, in ms. Default 60 s. */
  lockStaleMs?: number;
  /** How often a lock holder touches its lock, in ms. Default 5 s. */
  lockHeartbeatMs?: number;
}

export interface BlobInfo {
  digest: string;
  size: number;
  mtime: Date;
}

/** A file an unfinished download left in the store (BlobStore.listUnfinished). */
export interface UnfinishedFile {
  /** partial: downloaded bytes kept for resuming; lock: a fetcher's lock; temp: a file being written. */
  kind: 'partial' | 'lock' | 'temp';
  digest: string;
  path: string;
  size: number;
  mtime: Date;
  /** "pid host" of the live process this file belongs to; absent when it is left over. */
  live?: string;
}

const HEX_RE = /^[a-f0-9]{64}$/;

/** Which unfinished-download file a store name is (see the layout at the top), if any. */
function unfinishedKind(name: string): { kind: 'partial' | 'lock'; hex: string } | { kind: 'temp'; hex: string; pid: number } | undefined {
  let m = /^([a-f0-9]{64})\.(partial|lock)$/.exec(name);
  if (m !== null) return { kind: m[2] as 'partial' | 'lock', hex: m[1]! };
  m = /^\.([a-f0-9]{64})\.(\d+)\.\d+\.tmp$/.exec(name) ?? /^([a-f0-9]{64})\.lock(?:\.stale)?\.(\d+)\.\d+$/.exec(name);
  if (m !== null) return { kind: 'temp', hex: m[1]!, pid: Number(m[2]) };
  return undefined;
}

export class BlobStore {
  readonly root: string;
  private readonly dir: string;
  private readonly lockWaitMs: number;
  private readonly lockStaleMs: number;
  private readonly lockHeartbeatMs: number;

  constructor(root: string, options: BlobStoreOptions = {}) {
    this.root = root;
    this.dir = join(root, 'sha256');
    this.lockWaitMs = options.lockWaitMs ?? 10 * 60_000;
    this.lockStaleMs = options.lockStaleMs ?? 60_000;
    this.lockHeartbeatMs = options.lockHeartbeatMs ?? 5_000;
  }

  /** Where the blob lives (or would live) in the store. */
  path(digest: string): string {
    return join(this.dir, hexOf(digest));
  }

  /** Where a download of the blob in progress writes (see the layout above). */
  partialPath(digest: string): string {
    return `${this.path(digest)}.partial`;
  }

  async has(digest: string): Promise<boolean> {
    return (await statOrUndefined(this.path(digest), 'look up blob')) !== undefined;
  }

  /** Complete blobs only; partial downloads, locks and temporary files are not listed. */
  async list(): Promise<BlobInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      return fail('CACHE_IO', 'list blob store', errnoOf(e), this.dir, e);
    }
    const out: BlobInfo[] = [];
    for (const name of names.sort()) {
      if (!HEX_RE.test(name)) continue;
      const st = await statOrUndefined(join(this.dir, name), 'list blob store');
      if (st !== undefined) out.push({ digest: `sha256:${name}`, size: st.size, mtime: st.mtime });
    }
    return out;
  }

  /**
   * What unfinished downloads left in the store: partial blobs (with the live process fetching
   * each, if any), locks and temporary files. Files of live processes are listed as `live`.
   */
  async listUnfinished(): Promise<UnfinishedFile[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      return fail('CACHE_IO', 'list blob store', errnoOf(e), this.dir, e);
    }
    const out: UnfinishedFile[] = [];
    for (const name of names.sort()) {
      const kind = unfinishedKind(name);
      if (kind === undefined) continue;
      const path = join(this.dir, name);
      const st = await statOrUndefined(path, 'list blob store');
      if (st === undefined) continue; // finished or removed meanwhile
      let live: string | undefined;
      if (!('pid' in kind)) live = await this.lockOf(kind.hex).liveHolder();
      else if (pidAlive(kind.pid)) live = `${kind.pid} ${HOST}`;
      out.push({ kind: kind.kind, digest: `sha256:${kind.hex}`, path, size: st.size, mtime: st.mtime, ...(live !== undefined ? { live } : {}) });
    }
    return out;
  }

  /**
   * Removes what unfinished downloads of dead (or silent) processes left: partials whose blob
   * nobody is fetching, stale locks, temporary files. Those of live fetchers stay.
   */
  async pruneUnfinished(): Promise<{ files: number; bytes: number }> {
    let files = 0;
    let bytes = 0;
    for (const f of await this.listUnfinished()) {
      if (f.live !== undefined) continue;
      await unlinkIfPresent(f.path, 'prune blob store');
      files++;
      bytes += f.size;
    }
    return { files, bytes };
  }

  /** Deletes a blob and any partial download of it. Refuses while a live process holds its lock. */
  async remove(digest: string): Promise<void> {
    const path = this.path(digest);
    const holder = await this.lockOf(hexOf(digest)).liveHolder();
    if (holder !== undefined) fail('CACHE_LOCKED', `remove blob ${digest}`, `being fetched by ${holder}`, `${path}.lock`);
    await unlinkIfPresent(path, `remove blob ${digest}`);
    await unlinkIfPresent(`${path}.partial`, `remove blob ${digest}`);
  }

  /**
   * Stores a small blob held in memory (a manifest). Writes a private temporary file and renames
   * it in, so no lock is needed: concurrent writers of one digest write the same bytes.
   */
  async put(digest: string, bytes: Uint8Array): Promise<string> {
    const path = this.path(digest);
    const got = sha256Digest(bytes);
    if (got !== digest) fail('OCI_DIGEST_MISMATCH', `store blob ${digest}`, `content hashes to ${got}`, digest);
    await this.ensureDir();
    const tmp = join(this.dir, `.${hexOf(digest)}.${privateSuffix()}.tmp`);
    try {
      await writeFile(tmp, bytes, { flag: 'wx', mode: 0o644 });
      await rename(tmp, path);
    } catch (e) {
      await unlink(tmp).catch((u: NodeJS.ErrnoException) => {
        if (u.code !== 'ENOENT') throw new AggregateError([e, u], `Cannot store blob ${digest}: ${errnoOf(e)}`);
      });
      return fail('CACHE_IO', `store blob ${digest}`, errnoOf(e), path, e);
    }
    return path;
  }

  /**
   * Makes the blob present: returns at once when it is; otherwise takes the blob's lock (or
   * waits for whoever holds it), downloads into <hex>.partial through `open`, verifies the whole
   * content against `digest` and `size`, and renames it into place. Network failures are retried
   * from the partial's length; a digest or size mismatch deletes the partial and throws
   * OCI_DIGEST_MISMATCH. A run stopped midway leaves the partial for the next fetch to resume.
   */
  async fetch(digest: string, size: number, open: BlobOpener, options: FetchOptions = {}): Promise<FetchResult> {
    const path = this.path(digest);
    if (!Number.isSafeInteger(size) || size < 0) fail('OCI_BAD_MANIFEST', `fetch blob ${digest}`, 'bad size', size);
    if (await this.has(digest)) return { path, fetched: false };
    await this.ensureDir();
    const lock = new FileLock(path, digest, { noun: 'blob', waitMs: this.lockWaitMs, staleMs: this.lockStaleMs, heartbeatMs: this.lockHeartbeatMs });
    if ((await lock.acquire(() => this.has(digest))) === 'done') return { path, fetched: false };
    const stopHeartbeat = lock.heartbeat();
    try {
      // The holder before us may have finished between our check and taking the lock.
      if (await this.has(digest)) return { path, fetched: false };
      await download(digest, size, path, open, options);
      return { path, fetched: true };
    } finally {
      stopHeartbeat();
      await lock.release();
    }
  }

  private async ensureDir(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (e) {
      fail('CACHE_IO', 'create blob store', errnoOf(e), this.dir, e);
    }
  }

  /** The lock of the blob with this hex digest. */
  private lockOf(hex: string): FileLock {
    return new FileLock(join(this.dir, hex), `sha256:${hex}`, { noun: 'blob', waitMs: this.lockWaitMs, staleMs: this.lockStaleMs, heartbeatMs: this.lockHeartbeatMs });
  }
}

/** The download loop, run while holding the lock. */
async function download(digest: string, size: number, path: string, open: BlobOpener, options: FetchOptions): Promise<void> {
  const partial = `${path}.partial`;
  const what = `fetch blob ${digest}`;
  const attempts = options.attempts ?? 3;
  const maxAttempts = options.maxAttempts ?? 10;
  const backoffMs = options.backoffMs ?? 250;
  const deadline = performance.now() + (options.retryBudgetMs ?? 10 * 60_000);
  let failedInARow = 0;
  let restarted = false;
  for (let attempt = 1; ; attempt++) {
    const before = (await statOrUndefined(partial, what))?.size ?? 0;
    try {
      await downloadOnce(digest, size, path, partial, open, options.onProgress);
      return;
    } catch (e) {
      // A resumed partial that turns out wrong (a poisoned or corrupted earlier download) was
      // deleted by downloadOnce: start over from byte 0, once, instead of failing the run.
      if (isRootforgeError(e, 'OCI_DIGEST_MISMATCH') && before > 0 && !restarted) {
        restarted = true;
        options.onProgress?.(0);
        continue;
      }
      if (!isRootforgeError(e, 'OCI_NETWORK')) throw e;
      const after = (await statOrUndefined(partial, what))?.size ?? 0;
      // An attempt that added bytes is not held against the connection: big blobs over a flaky
      // link get there piece by piece (within maxAttempts).
      failedInARow = after > before ? 0 : failedInARow + 1;
      if (failedInARow >= attempts || attempt >= maxAttempts || performance.now() + backoffMs * 2 ** failedInARow > deadline) {
        throw new RootforgeError('OCI_NETWORK', `${e.message}; gave up after ${attempt} attempts, ${after} of ${size} bytes kept for the next run`, { cause: e });
      }
      await sleep(backoffMs * 2 ** failedInARow);
    }
  }
}

/**
 * One attempt: hash what the partial already holds, append the rest from `open`, verify, rename.
 * Throws OCI_NETWORK (partial kept) when the body breaks off or ends short.
 */
async function downloadOnce(digest: string, size: number, path: string, partial: string, open: BlobOpener, onProgress?: (bytes: number) => void): Promise<void> {
  const what = `fetch blob ${digest}`;
  let fh: FileHandle;
  try {
    fh = await openPartial(partial);
  } catch (e) {
    return fail('CACHE_IO', what, errnoOf(e), partial, e);
  }
  let closed = false;
  try {
    let have = (await fh.stat()).size;
    if (have > size) {
      await fh.truncate(0);
      have = 0;
    }
    let hash = await hashFile(partial, have);
    if (have < size) {
      const opened = await open(have);
      const { body, offset } = Symbol.asyncIterator in opened ? { body: opened as AsyncIterable<Buffer>, offset: have } : (opened as BlobBody);
      if (offset !== have) {
        if (offset !== 0) fail('OCI_REGISTRY_ERROR', what, `asked for bytes from ${have}, got bytes from ${offset}`, digest);
        // The server ignored the Range request: start the partial over from its body.
        await fh.truncate(0);
        have = 0;
        hash = createHash('sha256');
      }
      onProgress?.(have);
      for await (const chunk of asNetworkErrors(body, what, digest)) {
        if (have + chunk.length > size) {
          await discardPartial(fh, partial, what);
          closed = true;
          fail('OCI_DIGEST_MISMATCH', what, `more bytes than the descriptor's size ${size}`, digest);
        }
        await writeAll(fh, chunk, have);
        hash.update(chunk);
        have += chunk.length;
        onProgress?.(have);
      }
      if (have < size) fail('OCI_NETWORK', what, `connection ended after ${have} of ${size} bytes`, digest);
    }
    const got = 'sha256:' + hash.digest('hex');
    if (got !== digest) {
      await discardPartial(fh, partial, what);
      closed = true;
      fail('OCI_DIGEST_MISMATCH', what, `content hashes to ${got}`, digest);
    }
    // Durable before it gets its final name: after a power cut the name means the bytes.
    await fh.sync();
    await fh.close();
    closed = true;
    await rename(partial, path);
  } catch (e) {
    if (!closed) await fh.close();
    if (e instanceof RootforgeError) throw e;
    return fail('CACHE_IO', what, errnoOf(e), partial, e);
  }
}

/** Errors from the body's source are transfer failures (resumable), whatever their type. */
async function* asNetworkErrors(body: AsyncIterable<Buffer>, what: string, digest: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (e) {
    if (e instanceof RootforgeError) throw e;
    fail('OCI_NETWORK', what, errnoOf(e), digest, e);
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

async function writeAll(fh: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, position + off);
    off += bytesWritten;
  }
}

async function discardPartial(fh: FileHandle, partial: string, what: string): Promise<void> {
  await fh.close();
  await unlinkIfPresent(partial, what);
}

async function hashFile(path: string, length: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (length === 0) return hash;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash;
}

function hexOf(digest: string): string {
  return parseDigest(digest, 'use blob digest').hex;
}

async function statOrUndefined(path: string, what: string): Promise<{ size: number; mtime: Date } | undefined> {
  try {
    return await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return fail('CACHE_IO', what, errnoOf(e), path, e);
  }
}

async function unlinkIfPresent(path: string, what: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail('CACHE_IO', what, errnoOf(e), path, e);
  }
}

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message ?? String(e);
}
