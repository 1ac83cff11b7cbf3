/**
 * pull -o: a rootforge artifact in a registry → the ext4 image, byte for byte.
 *
 *   manifest ──▶ chunk map (config blob)
 *   packs, in the order the image first needs them, `concurrency` at a time, through the blob
 *     cache (BlobStore.fetch: resumable .partial files, sha256 verified before a pack is used);
 *     a pack just downloaded is used from memory, one already cached is read from its file
 *   frames in image order (assemble.ts): zstd -d on a worker thread, sha256 of the whole image
 *     (gaps hashed as zeros) on another, the chunks' bytes written at their offsets on this one
 *     (gaps stay holes: a sparse file); the digest must equal the chunk map's
 *
 * The output is a temporary file renamed into place only when everything checked out: a
 * tampered or missing pack fails typed and leaves nothing. A pull that stopped midway resumes
 * where it was (packs complete in the cache, the one in progress from its .partial); packs a
 * version shares with one pulled before are already in the cache and not downloaded again.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import type { Credentials } from '../oci/auth.js';
import { BlobStore } from '../oci/blobstore.js';
import { readVerified } from '../oci/digest.js';
import { formatReference, type RegistryRef } from '../oci/reference.js';
import { MANIFEST_ACCEPT, RegistryClient } from '../oci/registry-client.js';
import { writeAtomically } from '../util/atomic.js';
import { planJobs, reassemble } from './assemble.js';
import { ANNOTATION, checkArtifactManifest, isArtifactManifest, OCI_MANIFEST, parseChunkMap, type ArtifactManifest } from './artifact.js';

export interface RemoteOptions {
  /** The cache directory; blobs go to `<cacheDir>/blobs`. */
  cacheDir: string;
  creds?: Credentials;
  tlsVerify?: boolean;
  dockerConfigDir?: string;
  timeoutMs?: number;
  backoffMs?: number;
}

export interface ArtifactPullOptions extends RemoteOptions {
  /** Packs downloaded at once. Default 4. */
  concurrency?: number;
  /** Threads decompressing frames (beside one hashing the image and this one writing). Default 1. */
  decoders?: number;
  /** Bytes of the image written (or known to be zeros) so far. */
  onProgress?: (p: { done: number; total: number }) => void;
}

export interface RemoteManifest {
  reference: string;
  digest: string;
  mediaType: string;
  bytes: Buffer;
  doc: unknown;
}

export interface ArtifactPullResult {
  reference: string;
  output: string;
  manifestDigest: string;
  imageDigest: string;
  sizeBytes: number;
  chunks: number;
  /** Packs the image uses: downloaded by this pull, and found in the blob cache. */
  packs: number;
  packsFetched: number;
  packsCached: number;
  /** Bytes downloaded (packs and chunk map). */
  bytesFetched: number;
  annotations: Record<string, string>;
}

function client(ref: RegistryRef, opts: RemoteOptions): RegistryClient {
  return new RegistryClient(ref.registry, {
    ...(opts.creds !== undefined ? { creds: opts.creds } : {}),
    ...(opts.dockerConfigDir !== undefined ? { dockerConfigDir: opts.dockerConfigDir } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.backoffMs !== undefined ? { backoffMs: opts.backoffMs } : {}),
    tlsVerify: opts.tlsVerify ?? true,
  });
}

/** The manifest a reference names (by digest when it has one), parsed. */
export async function fetchRemoteManifest(ref: RegistryRef, opts: RemoteOptions): Promise<RemoteManifest> {
  const c = client(ref, opts);
  try {
    return await getManifest(c, ref);
  } finally {
    c.close();
  }
}

async function getManifest(c: RegistryClient, ref: RegistryRef): Promise<RemoteManifest> {
  const accept = [OCI_MANIFEST, ...MANIFEST_ACCEPT.filter((m) => m !== OCI_MANIFEST)];
  const m = await c.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest', accept);
  let doc: unknown;
  try {
    doc = JSON.parse(m.bytes.toString('utf8'));
  } catch (e) {
    return fail('OCI_BAD_MANIFEST', `read manifest of ${formatReference(ref)}`, 'not valid JSON', (e as Error).message, e);
  }
  return { reference: formatReference(ref), digest: m.digest, mediaType: m.mediaType, bytes: m.bytes, doc };
}

export { isArtifactManifest };

/** A blob from the cache, whole. */
async function readBlob(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    return fail('CACHE_IO', 'read blob', (e as NodeJS.ErrnoException).code ?? String(e), path, e);
  }
}

export async function pullArtifact(ref: RegistryRef, output: string, opts: ArtifactPullOptions): Promise<ArtifactPullResult> {
  const concurrency = opts.concurrency ?? 4;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) fail('OPTION_INVALID', 'pull artifact', 'concurrency must be a positive integer', concurrency);
  const name = `docker://${formatReference(ref)}`;
  const store = new BlobStore(join(opts.cacheDir, 'blobs'));
  const c = client(ref, opts);
  try {
    const remote = await getManifest(c, ref);
    const manifest: ArtifactManifest = checkArtifactManifest(remote.doc, name);
    const sizes = new Map(manifest.layers.map((l) => [l.digest, l.size]));
    const counts = { packsFetched: 0, packsCached: 0, bytesFetched: 0 };
    const opener = (digest: string) => async (offset: number) => c.blobStream(ref.repository, digest, offset);
    /**
     * A blob's bytes, and the end of its fetch. The bytes come as downloaded (kept in memory) as
     * soon as they are verified, while the cache file is still being made durable and renamed
     * (`done`: an fsync per pack, which can take long while the image is being written), or read
     * from the cache (where a blob was verified before it got its name; the chunk map is checked
     * again, it is small).
     */
    const fetchBlob = (digest: string, size: number): { bytes: Promise<Buffer>; done: Promise<void> } => {
      let got = 0;
      let early: (b: Buffer) => void = () => undefined;
      const verified = new Promise<Buffer>((resolve) => (early = resolve));
      const result = store.fetch(digest, size, opener(digest), { keepBytes: true, onVerified: (b) => early(b), onProgress: (n) => (got = n), ...(opts.backoffMs !== undefined ? { backoffMs: opts.backoffMs } : {}) });
      const done = result.then((r) => {
        if (r.fetched) {
          counts.packsFetched++;
          counts.bytesFetched += got;
        } else counts.packsCached++;
      });
      const stored = result.then((r) => r.bytes ?? (digest === manifest.config.digest ? readVerified(r.path, digest, `read chunk map of ${name}`) : readBlob(r.path)));
      // A failure of `stored` after the bytes came early is the failure of `done`, which the caller awaits.
      stored.catch(() => undefined);
      return { bytes: Promise.race([verified, stored]), done };
    };

    const mapFetch = fetchBlob(manifest.config.digest, manifest.config.size);
    const [mapBytes] = await Promise.all([mapFetch.bytes, mapFetch.done]);
    // The chunk map is not a pack: keep the counts about packs.
    if (counts.packsFetched > 0) counts.packsFetched--;
    else counts.packsCached--;
    const map = parseChunkMap(mapBytes, name);
    const claimed = manifest.annotations[ANNOTATION.digest];
    if (claimed !== undefined && claimed !== map.digest) fail('OCI_BAD_MANIFEST', `pull ${name}`, `the annotation says image ${claimed}, the chunk map ${map.digest}`, remote.digest);
    for (const p of map.packs) if (!sizes.has(p)) fail('OCI_BAD_MANIFEST', `pull ${name}`, 'the chunk map names a pack the manifest does not list', p);

    // Packs in the order the image first needs them; `concurrency` downloads run ahead.
    const order: number[] = [];
    const firstUse = new Set<number>();
    for (const ch of map.chunks) if (!firstUse.has(ch[2])) (firstUse.add(ch[2]), order.push(ch[2]));
    const ready = new Map<number, Promise<Buffer>>();
    /** Every pack fetch's end (no bytes held): all must succeed, the cache is part of a pull. */
    const fetches: Promise<void>[] = [];
    /** The end of each pack's fetch: a pack needed again from the cache is read once it is there. */
    const stored = new Map<number, Promise<void>>();
    let next = 0;
    const startUpTo = (n: number) => {
      for (; next < Math.min(n, order.length); next++) {
        const pack = map.packs[order[next]!]!;
        const f = fetchBlob(pack, sizes.get(pack)!);
        // Awaited in order, or at the end: a failure ahead of the reader is not "unhandled".
        f.bytes.catch(() => undefined);
        f.done.catch(() => undefined);
        fetches.push(f.done);
        stored.set(order[next]!, f.done);
        ready.set(order[next]!, f.bytes);
      }
    };
    const rank = new Map(order.map((p, i) => [p, i]));
    // Whole packs in memory (≈8 MiB each), the most recently used up to PACKS_KEPT_BYTES (the
    // one in use always). Chunks of a first version come pack after pack; later versions
    // interleave a few packs, which the small LRU covers; a pack needed again after that is read
    // back from the cache.
    const PACKS_KEPT_BYTES = 64 << 20;
    const loaded = new Map<number, Buffer>();
    let loadedBytes = 0;
    const packBytes = async (i: number): Promise<Buffer> => {
      const hit = loaded.get(i);
      if (hit !== undefined) {
        loaded.delete(i);
        loaded.set(i, hit);
        return hit;
      }
      startUpTo(rank.get(i)! + concurrency);
      const pending = ready.get(i);
      ready.delete(i); // a download's bytes are held once, here, not for the whole pull
      const pack = map.packs[i]!;
      let data: Buffer;
      if (pending !== undefined) data = await pending;
      else {
        // Used before and dropped from memory: its bytes came early, its file may still be on the way.
        await stored.get(i);
        data = await readBlob(store.path(pack));
      }
      loaded.set(i, data);
      loadedBytes += data.length;
      for (const [old, bytes] of loaded) {
        if (loadedBytes <= PACKS_KEPT_BYTES || old === i) break;
        loaded.delete(old);
        loadedBytes -= bytes.length;
      }
      return data;
    };

    const jobs = planJobs(map);
    const nChunks = map.chunks.length;
    // The jobs say all the rest needs: tens of thousands of little arrays less for the garbage
    // collector to walk (external memory churn from the downloads makes it run often).
    map.chunks = [];
    await writeAtomically(output, async (fh) => {
      await fh.truncate(map.size);
      let got: string;
      try {
        got = await reassemble(fh, map, jobs, packBytes, {
          name,
          ...(opts.decoders !== undefined ? { decoders: opts.decoders } : {}),
          ...(opts.onProgress !== undefined ? { onProgress: (done: number) => opts.onProgress!({ done, total: map.size }) } : {}),
        });
      } finally {
        // Downloads still running when something failed: let them end (they only fill the cache).
        await Promise.allSettled(fetches);
      }
      // A pack used from memory whose cache file could not be stored fails the pull too.
      await Promise.all(fetches);
      opts.onProgress?.({ done: map.size, total: map.size });
      if (got !== map.digest) fail('OCI_DIGEST_MISMATCH', `pull ${name}`, `the reassembled image hashes to ${got}`, map.digest);
    });
    return {
      reference: formatReference(ref),
      output,
      manifestDigest: remote.digest,
      imageDigest: map.digest,
      sizeBytes: map.size,
      chunks: nChunks,
      packs: map.packs.length,
      ...counts,
      annotations: manifest.annotations,
    };
  } finally {
    c.close();
  }
}

export interface RemoteInfo {
  reference: string;
  manifestDigest: string;
  mediaType: string;
  artifactType?: string;
  /** True for a rootforge ext4 artifact. */
  rootforge: boolean;
  annotations: Record<string, string>;
  /** Blobs the manifest lists (layers or chunks) and their total size, config excluded. */
  blobs?: number;
  blobBytes?: number;
  /** For an index: the platforms it lists. */
  platforms?: string[];
}

/** What a remote reference is, from its manifest alone (no layer or chunk is downloaded). */
export async function inspectRemote(ref: RegistryRef, opts: RemoteOptions): Promise<RemoteInfo> {
  const remote = await fetchRemoteManifest(ref, opts);
  const doc = remote.doc as { artifactType?: unknown; annotations?: unknown; layers?: unknown; manifests?: unknown };
  const annotations = typeof doc.annotations === 'object' && doc.annotations !== null ? (doc.annotations as Record<string, string>) : {};
  const info: RemoteInfo = { reference: remote.reference, manifestDigest: remote.digest, mediaType: remote.mediaType, rootforge: isArtifactManifest(remote.doc), annotations };
  if (typeof doc.artifactType === 'string') info.artifactType = doc.artifactType;
  if (Array.isArray(doc.layers)) {
    const layers = doc.layers as { size?: unknown }[];
    info.blobs = layers.length;
    info.blobBytes = layers.reduce((n, l) => n + (typeof l.size === 'number' ? l.size : 0), 0);
  }
  if (Array.isArray(doc.manifests)) {
    info.platforms = (doc.manifests as { platform?: { os?: string; architecture?: string; variant?: string } }[]).map((m) =>
      m.platform ? [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join('/') : 'unknown',
    );
  }
  return info;
}
