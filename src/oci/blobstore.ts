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
import { mkdir, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, isRootforgeError, RootforgeError } from '../errors.js';
import { downloadWithRetries, type KeptBytes } from '../util/download.js';
import { errnoOf, FileLock, HOST, pidAlive, privateSuffix, unlinkIfPresent } from '../util/file-lock.js';
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
  /**
   * Hand back the verified bytes of a blob this call downloads (FetchResult.bytes), so a caller
   * that uses it at once need not read the file back. Only for blobs small enough to hold in memory.
   */
  keepBytes?: boolean;
  /**
   * With `keepBytes`: called with the bytes as soon as they are verified, while the file is still
   * being made durable (fsync) and renamed; fetch() resolves once that is done too.
   */
  onVerified?: (bytes: Buffer) => void;
}

export interface FetchResult {
  path: string;
  /** False when the blob was already in the store or another process fetched it meanwhile. */
  fetched: boolean;
  /** With `keepBytes`, when this call downloaded the blob: its bytes, verified like the file. */
  bytes?: Buffer;
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

  /** The store's file names, sorted (none when the store was never created). */
  private async names(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      return fail('CACHE_IO', 'list blob store', errnoOf(e), this.dir, e);
    }
  }

  /** Complete blobs only; partial downloads, locks and temporary files are not listed. */
  async list(): Promise<BlobInfo[]> {
    const names = await this.names();
    const out: BlobInfo[] = [];
    for (const name of names) {
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
    const names = await this.names();
    const out: UnfinishedFile[] = [];
    for (const name of names) {
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
      const keep: KeptBytes | undefined = options.keepBytes ? (options.onVerified ? { onVerified: options.onVerified } : {}) : undefined;
      await download(digest, size, path, open, options, keep);
      return { path, fetched: true, ...(keep?.bytes !== undefined ? { bytes: keep.bytes } : {}) };
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

/** The download, run while holding the lock: the shared engine (src/util/download.ts) with OCI codes. */
async function download(digest: string, size: number, path: string, open: BlobOpener, options: FetchOptions, keep: KeptBytes | undefined): Promise<void> {
  const onProgress = options.onProgress;
  await downloadWithRetries(
    {
      dest: path,
      sha256: hexOf(digest),
      size,
      async open(offset) {
        const opened = await open(offset);
        return Symbol.asyncIterator in opened ? { body: opened as AsyncIterable<Buffer>, offset } : (opened as BlobBody);
      },
      codes: { io: 'CACHE_IO', mismatch: 'OCI_DIGEST_MISMATCH', transfer: 'OCI_NETWORK', protocol: 'OCI_REGISTRY_ERROR' },
      what: `fetch blob ${digest}`,
      subject: digest,
      sizeName: "the descriptor's size",
      mismatchReason: (got) => `content hashes to sha256:${got}`,
      onProgress: onProgress ? (bytes) => onProgress(bytes) : undefined,
      keep,
    },
    {
      attempts: options.attempts,
      maxAttempts: options.maxAttempts,
      backoffMs: options.backoffMs,
      budgetMs: options.retryBudgetMs ?? 10 * 60_000,
      restartOnMismatch: true,
      isTransfer: (e): e is RootforgeError => isRootforgeError(e, 'OCI_NETWORK'),
      giveUp: (e, attempt, kept) => new RootforgeError('OCI_NETWORK', `${e.message}; gave up after ${attempt} attempts, ${kept} of ${size} bytes kept for the next run`, { cause: e }),
    },
  );
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

