/**
 * docker://HOST/REPO[:TAG|@DIGEST] — pulling an image from a registry into the blob cache and
 * describing it as a ResolvedImage whose layers are files in the cache.
 *
 *   tag ──GET manifests/<tag>──▶ index? ──select platform──▶ GET manifests/<digest> ──▶ manifest
 *   manifest ──▶ config + layers ──BlobStore.fetch (3 at a time, resumable, verified)──▶ cache
 *
 * pullImage() returns when every blob is in the cache. openRegistryImage() returns once the
 * manifest and config are in; the layers download in the background, top layer first (the order
 * the merger reads them in), and each layer's open() waits only for its own blob, so converting
 * overlaps with downloading.
 *
 * Manifests are stored in the cache by digest too, so a by-digest pull whose blobs are all
 * cached needs no network; a by-tag pull always asks the registry (tags move).
 */
import { mkdir, open, statfs, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, RootforgeError } from '../errors.js';
import { defaultMinFree } from '../util/atomic.js';
import { formatBytes } from '../util/size.js';
import { type Credentials } from './auth.js';
import { BlobStore } from './blobstore.js';
import { readVerified } from './digest.js';
import { openRegular } from './files.js';
import { READ_CHUNK, READ_RING, readRing } from '../tar/decompress.js';
import { checkLayerMediaType, fileLayer, layerTar } from './layer.js';
import { formatPlatform, hostPlatform, isIndex, parseConfig, parseIndex, parseJson, parseManifest, selectPlatform } from './manifest.js';
import { formatReference, type RegistryRef } from './reference.js';
import { RegistryClient } from './registry-client.js';
import { MEDIA, type Descriptor, type ImageManifest, type Layer, type Platform, type ResolvedImage } from './types.js';

export { RegistryClient, MANIFEST_ACCEPT, type BlobStream, type FetchedManifest, type RegistryClientOptions } from './registry-client.js';
export { parseDockerReference, formatReference, type RegistryRef } from './reference.js';
export { parseCreds, type Credentials } from './auth.js';

export interface PullProgress {
  /** Bytes of blobs downloaded by this pull so far. */
  done: number;
  /** Bytes this pull has to download (blobs not already cached); undefined until known. */
  total: number | undefined;
}

export interface PullOptions {
  /** The cache directory; blobs go to `<cacheDir>/blobs`. */
  cacheDir: string;
  /** Explicit credentials (--creds); otherwise the Docker config is consulted. */
  creds?: Credentials;
  /** Verify TLS certificates. Default true. */
  tlsVerify?: boolean;
  /** Platform to select from a multi-platform index. Default: this host's (linux/<arch>). */
  platform?: Platform;
  /** Directory holding config.json. Default $DOCKER_CONFIG, else ~/.docker. */
  dockerConfigDir?: string;
  onProgress?: (p: PullProgress) => void;
  /** Blobs downloaded at once. Default 3. */
  concurrency?: number;
  /** Socket idle timeout, ms. Default 30 s. */
  timeoutMs?: number;
  /** Delay before the first retry of a failed request, ms (doubled each time). Default 250. */
  backoffMs?: number;
  /** Most layers the image may have. Default 1000 (DEFAULT_MAX_LAYERS). */
  maxLayers?: number;
  /** Free space the cache's filesystem keeps: a pull whose blobs would take it is refused. Default max(1 GiB, 5 %). */
  minFreeBytes?: number;
  /**
   * Slowest accepted transfer, bytes/s, averaged over `rateWindowMs` of waiting for the server;
   * slower fails with OCI_TRANSFER_TOO_SLOW (the partial is kept). 0: no floor. Default 1024.
   */
  minBytesPerSecond?: number;
  /** Window of the transfer rate floor, ms. Default 60 s. */
  rateWindowMs?: number;
  /** No retry of a blob download starts later than this after its first attempt, ms. Default 10 min. */
  retryBudgetMs?: number;
}

export interface PullResult extends ResolvedImage {
  fromCache: { blobsFetched: number; blobsCached: number };
}

/** A registry image whose layer blobs arrive in the background (openRegistryImage). */
export interface RegistryImage extends ResolvedImage {
  /**
   * Starts downloading the layer blobs not cached yet, top layer first, `concurrency` at a time,
   * and settles when all have ended (the first error rejects it). Idempotent; every layer's
   * open() calls it.
   */
  download(): Promise<{ blobsFetched: number; blobsCached: number }>;
  /** Time layer open() calls have spent waiting for their blob, ms. */
  readonly waitedMs: number;
  /**
   * The first error of a layer download, if one failed. A layer is read while it downloads, so a
   * blob that is not what its digest says may first show as a tar error: callers that fail
   * should close() and then prefer this error.
   */
  downloadFailure(): unknown;
  /**
   * Starts no more downloads, waits for those in flight to end (errors ignored; their bytes stay
   * in the cache either way), then closes the connections.
   */
  close(): Promise<void>;
}

const CONFIG_TYPES = new Set<string>([MEDIA.ociConfig, MEDIA.dockerConfig]);
const MANIFEST_TYPES = new Set<string>([MEDIA.ociManifest, MEDIA.dockerManifest]);
const INDEX_TYPES = new Set<string>([MEDIA.ociIndex, MEDIA.dockerList]);

export async function pullImage(ref: RegistryRef, opts: PullOptions): Promise<PullResult> {
  const image = await openRegistryImage(ref, opts);
  try {
    const fromCache = await image.download();
    const { source, manifestDigest, manifest, config } = image;
    return { source, manifestDigest, manifest, config, layers: manifest.layers.map((d) => fileLayer(d, image.blobPath(d.digest))), fromCache };
  } finally {
    await image.close();
  }
}

export async function openRegistryImage(ref: RegistryRef, opts: PullOptions): Promise<RegistryImage & { blobPath(digest: string): string }> {
  const concurrency = opts.concurrency ?? 3;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) fail('OPTION_INVALID', 'pull image', 'concurrency must be a positive integer', concurrency);
  if (opts.cacheDir === '') fail('OPTION_INVALID', 'pull image', 'no cache directory', opts.cacheDir);
  const source = `docker://${formatReference(ref)}`;
  const store = new BlobStore(join(opts.cacheDir, 'blobs'));
  const client = new RegistryClient(ref.registry, {
    ...(opts.creds !== undefined ? { creds: opts.creds } : {}),
    ...(opts.dockerConfigDir !== undefined ? { dockerConfigDir: opts.dockerConfigDir } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.backoffMs !== undefined ? { backoffMs: opts.backoffMs } : {}),
    ...(opts.minBytesPerSecond !== undefined ? { minBytesPerSecond: opts.minBytesPerSecond } : {}),
    ...(opts.rateWindowMs !== undefined ? { rateWindowMs: opts.rateWindowMs } : {}),
    tlsVerify: opts.tlsVerify ?? true,
  });
  let handedOver = false;
  try {
    const platform = opts.platform ?? hostPlatform();
    const { digest: manifestDigest, manifest, fromIndex } = await resolveManifest(client, store, ref, platform, source, opts.maxLayers);
    if (!CONFIG_TYPES.has(manifest.config.mediaType)) {
      fail('OCI_UNSUPPORTED_MEDIA_TYPE', `pull ${source}`, 'not a container image: unknown config media type', manifest.config.mediaType);
    }
    for (const layer of manifest.layers) checkLayerMediaType(layer);

    // Progress covers every blob still to download: the config now, the layers later.
    const tracker = { done: 0, total: 0 };
    const all = [...new Map([manifest.config, ...manifest.layers].map((d) => [d.digest, d])).values()];
    for (const d of all) if (!(await store.has(d.digest))) tracker.total += d.size;
    await checkCacheSpace(opts.cacheDir, tracker.total, opts.minFreeBytes, source);
    const configCounts = await fetchBlobs(client, store, ref.repository, [manifest.config], 1, { ...opts, tracker });
    const config = parseConfig(
      await readVerified(store.path(manifest.config.digest), manifest.config.digest, `read config of ${source}`),
      `config ${manifest.config.digest}`,
    );
    // A single-platform image is taken as it is unless a platform was asked for explicitly.
    if (opts.platform !== undefined && !fromIndex && !configMatches(config, opts.platform)) {
      fail('OCI_NO_PLATFORM', `pull ${source}`, `the image is for ${config.os ?? '?'}/${config.architecture ?? '?'}, not the requested platform`, formatPlatform(opts.platform));
    }

    // Per layer blob: a settled-once promise (complete and verified, or failed) and how many of
    // its bytes our own download has written so far. Rejections are also handled here so a blob
    // nobody waits for (a failed pull, a cache hit) is not an unhandled rejection.
    const ready = new Map<string, BlobArrival>();
    for (const d of manifest.layers) if (!ready.has(d.digest)) ready.set(d.digest, new BlobArrival(d.size));
    let downloading: Promise<{ blobsFetched: number; blobsCached: number }> | undefined;
    let closed = false;
    const download = () => {
      if (closed && downloading === undefined) return Promise.reject(new Error(`Cannot pull ${source}: the image was closed`));
      downloading ??= (async () => {
        try {
          // The merger reads the top layer first: fetch in that order.
          const topDown = [...manifest.layers].reverse();
          const counts = await fetchBlobs(client, store, ref.repository, topDown, concurrency, { ...opts, tracker, stopped: () => closed, onBlobProgress: (digest, bytes) => ready.get(digest)?.progress(bytes) }, (digest, error) => {
            const r = ready.get(digest);
            if (error === undefined) r?.resolve();
            else {
              firstFailure ??= { error };
              r?.reject(error);
            }
          });
          // Blobs left out because the image was closed (settled ones ignore this).
          for (const r of ready.values()) r.reject(new Error(`Cannot pull ${source}: the image was closed`));
          return { blobsFetched: counts.blobsFetched + configCounts.blobsFetched, blobsCached: counts.blobsCached + configCounts.blobsCached };
        } catch (e) {
          for (const r of ready.values()) r.reject(e); // blobs never started: the first error
          throw e;
        }
      })();
      return downloading;
    };
    let waitedMs = 0;
    let firstFailure: { error: unknown } | undefined;
    const image = {
      source,
      manifestDigest,
      manifest,
      config,
      layers: manifest.layers.map((d): Layer => {
        const file = fileLayer(d, store.path(d.digest));
        return {
          descriptor: d,
          async open() {
            download().catch(() => undefined); // this blob's own error comes from `arrival`
            const arrival = ready.get(d.digest)!;
            const started = performance.now();
            // Read the blob once it is complete, or follow its .partial while our download writes it.
            const first = await arrival.firstBytes();
            waitedMs += performance.now() - started;
            if (first === 'complete') return file.open();
            const raw = followPartial(store, d.digest, arrival, (ms) => (waitedMs += ms));
            return layerTar(d, raw);
          },
        };
      }),
      download,
      get waitedMs() {
        return waitedMs;
      },
      downloadFailure: () => firstFailure?.error,
      blobPath: (digest: string) => store.path(digest),
      async close() {
        if (closed) return;
        closed = true;
        await downloading?.catch(() => undefined);
        client.close();
      },
    };
    handedOver = true;
    return image;
  } finally {
    if (!handedOver) client.close();
  }
}

/**
 * Blob sizes are declared by the registry (and then enforced): refuses a pull whose blobs would
 * leave the cache's filesystem with less than the free-space reserve, before downloading any.
 */
async function checkCacheSpace(cacheDir: string, bytes: number, minFreeBytes: number | undefined, source: string): Promise<void> {
  let avail: number;
  let total: number;
  try {
    await mkdir(cacheDir, { recursive: true });
    const fs = await statfs(cacheDir);
    avail = fs.bavail * fs.bsize;
    total = fs.blocks * fs.bsize;
  } catch (e) {
    return fail('CACHE_IO', `pull ${source}`, (e as NodeJS.ErrnoException).code ?? String(e), cacheDir, e);
  }
  const reserve = minFreeBytes ?? defaultMinFree(total);
  if (avail - bytes < reserve) {
    fail('OUTPUT_DISK_FULL', `pull ${source}`, `its blobs declare ${formatBytes(bytes)} still to download, which would leave the cache's filesystem less than ${formatBytes(reserve)} free (${formatBytes(avail)} available)`, cacheDir);
  }
}

/** Follows the reference (through an index, if it names one) to the platform's manifest. */
async function resolveManifest(
  client: RegistryClient,
  store: BlobStore,
  ref: RegistryRef,
  platform: Platform,
  source: string,
  maxLayers: number | undefined,
): Promise<{ digest: string; manifest: ImageManifest; fromIndex: boolean }> {
  let reference = ref.digest ?? ref.tag ?? 'latest';
  let fromIndex = false;
  // An index pointing at an index is allowed by the spec; two levels is already unusual.
  for (let depth = 0; depth < 3; depth++) {
    const { digest, mediaType, bytes } = await manifestBytes(client, store, ref.repository, reference);
    const what = `manifest ${digest} of ${source}`;
    const doc = parseJson(bytes, what);
    if (isIndex(mediaType || undefined, doc)) {
      const chosen: Descriptor = selectPlatform(parseIndex(bytes, what), platform, source);
      if (!MANIFEST_TYPES.has(chosen.mediaType) && !INDEX_TYPES.has(chosen.mediaType)) {
        fail('OCI_UNSUPPORTED_MEDIA_TYPE', `pull ${source}`, `the ${formatPlatform(platform)} entry is not an image manifest`, chosen.mediaType);
      }
      reference = chosen.digest;
      fromIndex = true;
      continue;
    }
    if (mediaType !== '' && !MANIFEST_TYPES.has(mediaType)) fail('OCI_UNSUPPORTED_MEDIA_TYPE', `pull ${source}`, 'not an image manifest', mediaType);
    return { digest, manifest: parseManifest(bytes, what, maxLayers), fromIndex };
  }
  return fail('OCI_BAD_MANIFEST', `pull ${source}`, 'indexes nested too deep', reference);
}

/** A manifest by tag from the registry, or by digest from the cache when it is there. */
async function manifestBytes(client: RegistryClient, store: BlobStore, repo: string, reference: string): Promise<{ digest: string; mediaType: string; bytes: Buffer }> {
  if (reference.startsWith('sha256:') && (await store.has(reference))) {
    const bytes = await readVerified(store.path(reference), reference, `read cached manifest ${reference}`);
    return { digest: reference, mediaType: declaredMediaType(bytes), bytes };
  }
  const m = await client.getManifest(repo, reference);
  await store.put(m.digest, m.bytes);
  return m;
}

function declaredMediaType(bytes: Buffer): string {
  const doc = parseJson(bytes, 'cached manifest') as { mediaType?: unknown };
  return typeof doc === 'object' && doc !== null && typeof doc.mediaType === 'string' ? doc.mediaType : '';
}

/**
 * Fetches every blob not yet in the store, `concurrency` at a time, reporting each one's end to
 * `onBlob` (cached ones at once). After a failure, or once `stopped()` says so, no new
 * downloads start, those running finish (their bytes are kept for the next run either way),
 * and the first error is thrown.
 */
async function fetchBlobs(
  client: RegistryClient,
  store: BlobStore,
  repo: string,
  descriptors: Descriptor[],
  concurrency: number,
  opts: Pick<PullOptions, 'onProgress' | 'backoffMs' | 'retryBudgetMs'> & {
    stopped?: () => boolean;
    tracker?: { done: number; total: number };
    /** Bytes of one blob in its .partial so far (can go back to 0 when a download restarts). */
    onBlobProgress?: (digest: string, bytes: number) => void;
  },
  onBlob?: (digest: string, error?: unknown) => void,
): Promise<{ blobsFetched: number; blobsCached: number }> {
  const unique = [...new Map(descriptors.map((d) => [d.digest, d])).values()];
  const missing: Descriptor[] = [];
  for (const d of unique) {
    if (await store.has(d.digest)) onBlob?.(d.digest);
    else missing.push(d);
  }
  let blobsCached = unique.length - missing.length;
  let blobsFetched = 0;

  // Progress counts over every fetchBlobs call sharing `tracker` (config, then layers).
  const tracker = opts.tracker ?? { done: 0, total: 0 };
  if (!opts.tracker) tracker.total = missing.reduce((n, d) => n + d.size, 0);
  const progress = new Map<string, number>();
  const report = (digest: string, bytes: number): void => {
    tracker.done += bytes - (progress.get(digest) ?? 0);
    progress.set(digest, bytes);
    opts.onBlobProgress?.(digest, bytes);
    opts.onProgress?.({ done: tracker.done, total: tracker.total });
  };
  opts.onProgress?.({ done: tracker.done, total: tracker.total });

  const errors: unknown[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (errors.length === 0 && !opts.stopped?.() && next < missing.length) {
      const d = missing[next++]!;
      try {
        const r = await store.fetch(d.digest, d.size, (offset) => client.blobStream(repo, d.digest, offset), {
          onProgress: (bytes) => report(d.digest, bytes),
          ...(opts.backoffMs !== undefined ? { backoffMs: opts.backoffMs } : {}),
          ...(opts.retryBudgetMs !== undefined ? { retryBudgetMs: opts.retryBudgetMs } : {}),
        });
        report(d.digest, d.size);
        if (r.fetched) blobsFetched++;
        else blobsCached++;
        onBlob?.(d.digest);
      } catch (e) {
        errors.push(e);
        onBlob?.(d.digest, e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, missing.length) }, worker));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    const first = errors[0];
    if (!(first instanceof RootforgeError)) throw new AggregateError(errors, `Cannot pull blobs: ${errors.length} failed`);
    throw new RootforgeError(first.code, `${first.message} (and ${errors.length - 1} more blob(s) failed)`, { cause: new AggregateError(errors) });
  }
  return { blobsFetched, blobsCached };
}

/**
 * How far one layer blob has arrived: `bytes` written to its .partial by our download, then
 * settled as complete (verified, renamed into the store) or failed.
 */
class BlobArrival {
  bytes = 0;
  /** Our download resumed an existing partial (see progress()). */
  resumed = false;
  private reported = false;
  state: 'pending' | 'complete' | 'failed' = 'pending';
  error: unknown;
  /** Settles with the blob: resolved when complete, rejected when failed. */
  readonly promise: Promise<void>;
  private settle!: { resolve: () => void; reject: (e: unknown) => void };
  private waiters: (() => void)[] = [];

  constructor(readonly size: number) {
    this.promise = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.promise.catch(() => undefined);
  }

  progress(bytes: number): void {
    // The first report is where our download starts: above 0, it resumes a partial left by an
    // earlier run, whose bytes are not trusted until the whole blob verifies (it may be
    // discarded and restarted), so such a blob is read only once complete.
    if (!this.reported && bytes > 0) this.resumed = true;
    this.reported = true;
    this.bytes = bytes;
    this.wake();
  }

  resolve(): void {
    if (this.state !== 'pending') return;
    this.state = 'complete';
    this.bytes = this.size;
    this.settle.resolve();
    this.wake();
  }

  reject(e: unknown): void {
    if (this.state !== 'pending') return;
    this.state = 'failed';
    this.error = e;
    this.settle.reject(e);
    this.wake();
  }

  /** Resolves on the next progress or settlement. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** 'complete' once the blob is in the store, 'partial' once our download wrote its first bytes. */
  async firstBytes(): Promise<'complete' | 'partial'> {
    for (;;) {
      if (this.state === 'complete') return 'complete';
      if (this.state === 'failed') throw this.error;
      if (this.bytes > 0 && !this.resumed) return 'partial';
      await this.changed();
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/**
 * The bytes of a blob being downloaded, read from its .partial as they are written (the open
 * descriptor stays valid when the finished file is renamed). The caller checks the digest of what
 * it reads; a download that fails makes this fail too. `onWait` gets the ms spent waiting.
 */
async function* followPartial(store: BlobStore, digest: string, arrival: BlobArrival, onWait: (ms: number) => void): AsyncGenerator<Buffer> {
  const what = `read layer ${digest}`;
  let fh: FileHandle;
  try {
    fh = await open(store.partialPath(digest), 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return fail('CACHE_IO', what, (e as NodeJS.ErrnoException).code ?? String(e), store.partialPath(digest), e);
    // Already renamed into the store (or discarded: then the download's error is thrown).
    await arrival.promise;
    const done = await openRegular(store.path(digest), what, 'CACHE_IO');
    yield* readRing(done.fh, done.size, store.path(digest));
    return;
  }
  try {
    // Reads go into a ring of reused buffers shaped as readRing's (a chunk stays valid until
    // READ_RING − 1 more were asked for; the layer's reader copies before that): no fresh buffer
    // per read, which for a gigabyte of layers was a gigabyte of garbage.
    const ring: Buffer[] = [];
    let turn = 0;
    let pos = 0;
    while (pos < arrival.size) {
      if (arrival.state === 'failed') throw arrival.error;
      if (arrival.bytes <= pos) {
        const t = performance.now();
        await arrival.changed();
        onWait(performance.now() - t);
        continue;
      }
      const want = Math.min(arrival.bytes - pos, READ_CHUNK);
      turn = (turn + 1) % READ_RING;
      const buf = (ring[turn] ??= Buffer.allocUnsafe(READ_CHUNK)).subarray(0, want);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) {
        // The download started over (a server that ignored Range): wait for it to pass us again.
        if (arrival.state === 'complete') fail('CACHE_IO', what, `the download's file ended at ${pos} of ${arrival.size} bytes`, store.partialPath(digest));
        await arrival.changed();
        continue;
      }
      pos += bytesRead;
      yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

function configMatches(config: { os?: string; architecture?: string }, want: Platform): boolean {
  return (config.os === undefined || config.os === want.os) && (config.architecture === undefined || config.architecture === want.architecture);
}
