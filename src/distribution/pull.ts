/**
 * pull -o: a rootforge artifact in a registry → the ext4 image, byte for byte.
 *
 *   manifest ──▶ chunk map (config blob)
 *   packs, in the order the image first needs them, `concurrency` at a time, through the blob
 *     cache (BlobStore.fetch: resumable .partial files, sha256 verified before a pack is used)
 *   chunks in image order: their frame, from their pack (verified by its digest), zstd -d once
 *     → the chunk's bytes at their offset (gaps stay holes: a sparse file)
 *   sha256 over the whole image (gaps hashed as zeros) must equal the chunk map's digest
 *
 * The output is a temporary file renamed into place only when everything checked out: a
 * tampered or missing pack fails typed and leaves nothing. A pull that stopped midway resumes
 * where it was (packs complete in the cache, the one in progress from its .partial); packs a
 * version shares with one pulled before are already in the cache and not downloaded again.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { decompress } from 'zstd-napi';
import { fail } from '../errors.js';
import type { Credentials } from '../oci/auth.js';
import { BlobStore } from '../oci/blobstore.js';
import { readVerified } from '../oci/digest.js';
import { formatReference, type RegistryRef } from '../oci/reference.js';
import { MANIFEST_ACCEPT, RegistryClient } from '../oci/registry-client.js';
import { writeAtomically } from '../util/atomic.js';
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
    const fetchBlob = async (digest: string, size: number): Promise<string> => {
      let got = 0;
      const r = await store.fetch(digest, size, opener(digest), { onProgress: (n) => (got = n), ...(opts.backoffMs !== undefined ? { backoffMs: opts.backoffMs } : {}) });
      if (r.fetched) {
        counts.packsFetched++;
        counts.bytesFetched += got;
      } else counts.packsCached++;
      return r.path;
    };

    const mapPath = await fetchBlob(manifest.config.digest, manifest.config.size);
    // The chunk map is not a pack: keep the counts about packs.
    if (counts.packsFetched > 0) counts.packsFetched--;
    else counts.packsCached--;
    const map = parseChunkMap(await readVerified(mapPath, manifest.config.digest, `read chunk map of ${name}`), name);
    const claimed = manifest.annotations[ANNOTATION.digest];
    if (claimed !== undefined && claimed !== map.digest) fail('OCI_BAD_MANIFEST', `pull ${name}`, `the annotation says image ${claimed}, the chunk map ${map.digest}`, remote.digest);
    for (const p of map.packs) if (!sizes.has(p)) fail('OCI_BAD_MANIFEST', `pull ${name}`, 'the chunk map names a pack the manifest does not list', p);

    // Packs in the order the image first needs them; `concurrency` downloads run ahead.
    const order: number[] = [];
    const firstUse = new Set<number>();
    for (const ch of map.chunks) if (!firstUse.has(ch[2])) (firstUse.add(ch[2]), order.push(ch[2]));
    const ready = new Map<number, Promise<string>>();
    let next = 0;
    const startUpTo = (n: number) => {
      for (; next < Math.min(n, order.length); next++) {
        const pack = map.packs[order[next]!]!;
        const p = fetchBlob(pack, sizes.get(pack)!);
        p.catch(() => undefined); // awaited in order below; a failure ahead of the reader is not "unhandled"
        ready.set(order[next]!, p);
      }
    };
    const rank = new Map(order.map((p, i) => [p, i]));
    // Whole packs in memory (≈8 MiB each), the most recently used few: one read per pack instead
    // of one per chunk. Chunks of a first version come pack after pack; later versions interleave
    // a few packs, which the small LRU covers.
    const PACKS_KEPT = 6;
    const loaded = new Map<number, Buffer>();
    const packBytes = async (i: number): Promise<Buffer> => {
      const hit = loaded.get(i);
      if (hit !== undefined) {
        loaded.delete(i);
        loaded.set(i, hit);
        return hit;
      }
      startUpTo(rank.get(i)! + concurrency);
      const fh = await open(await ready.get(i)!, 'r');
      let data: Buffer;
      try {
        data = await fh.readFile();
      } finally {
        await fh.close();
      }
      loaded.set(i, data);
      if (loaded.size > PACKS_KEPT) loaded.delete(loaded.keys().next().value!);
      return data;
    };

    await writeAtomically(output, async (fh) => {
      await fh.truncate(map.size);
      const hash = createHash('sha256');
      const zeros = Buffer.alloc(1 << 20);
      const hashZeros = (n: number) => {
        for (let left = n; left > 0; left -= zeros.length) hash.update(zeros.subarray(0, Math.min(left, zeros.length)));
      };
      let pos = 0;
      // The last few frames decompressed (a run of chunks comes from one frame).
      const frames = new Map<string, Buffer>();
      // Contiguous chunks are gathered and written in 4 MiB pieces; gaps stay holes.
      const out = Buffer.allocUnsafe(4 << 20);
      let outStart = 0;
      let outLen = 0;
      const flush = async () => {
        let written = 0;
        while (written < outLen) written += (await fh.write(out, written, outLen - written, outStart + written)).bytesWritten;
        outLen = 0;
      };
      try {
        for (const [offset, length, pack, frameOffset, frameLength, skip, sha] of map.chunks) {
          const key = `${pack}:${frameOffset}`;
          let frame = frames.get(key);
          if (frame === undefined) {
            const pb = await packBytes(pack);
            if (frameOffset + frameLength > pb.length) fail('OCI_BAD_MANIFEST', `reassemble ${name}`, `chunk at ${offset} lies outside its pack`, map.packs[pack]);
            try {
              frame = decompress(pb.subarray(frameOffset, frameOffset + frameLength));
            } catch (e) {
              return fail('OCI_LAYER_INVALID', `decompress chunk at ${offset} of ${name}`, (e as Error).message, map.packs[pack], e);
            }
            frames.set(key, frame);
            if (frames.size > 4) frames.delete(frames.keys().next().value!);
          }
          if (skip + length > frame.length) fail('OCI_BAD_MANIFEST', `reassemble ${name}`, `chunk at ${offset} lies outside its frame`, sha);
          const data = frame.subarray(skip, skip + length);
          // The pack's digest (checked by the blob store) already covers these bytes; the sha256 in
          // the map identifies the chunk for reuse, and the whole image's digest is checked below.
          hashZeros(offset - pos);
          hash.update(data);
          if (outLen > 0 && (offset !== outStart + outLen || outLen + length > out.length)) await flush();
          if (outLen === 0) outStart = offset;
          data.copy(out, outLen);
          outLen += length;
          pos = offset + length;
          opts.onProgress?.({ done: pos, total: map.size });
        }
        await flush();
      } finally {
        // Downloads still running when something failed: let them end (they only fill the cache).
        await Promise.allSettled(ready.values());
      }
      hashZeros(map.size - pos);
      opts.onProgress?.({ done: map.size, total: map.size });
      const got = 'sha256:' + hash.digest('hex');
      if (got !== map.digest) fail('OCI_DIGEST_MISMATCH', `pull ${name}`, `the reassembled image hashes to ${got}`, map.digest);
    });
    return {
      reference: formatReference(ref),
      output,
      manifestDigest: remote.digest,
      imageDigest: map.digest,
      sizeBytes: map.size,
      chunks: map.chunks.length,
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
