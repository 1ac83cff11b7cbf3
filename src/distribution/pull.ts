/**
 * pull -o: a rootforge artifact in a registry → the ext4 image, byte for byte.
 *
 *   manifest ──▶ chunk map (config blob, via the blob cache)
 *   chunks, in image order, `concurrency` fetched ahead:
 *     cached? read it : GET blob → sha256 must equal its digest → into the cache
 *     zstd -d → length must match → pwrite at its offset (gaps stay holes: a sparse file)
 *   sha256 over the whole image (gaps hashed as zeros) must equal the chunk map's digest
 *
 * The output is a temporary file renamed into place only when everything checked out: a
 * tampered or missing chunk fails typed and leaves nothing. Every chunk goes through the blob
 * cache (<cache>/blobs), so a pull that stopped midway resumes where it was, and chunks shared
 * with another version already pulled are not downloaded again.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decompress } from 'zstd-napi';
import { fail, isRootforgeError } from '../errors.js';
import type { Credentials } from '../oci/auth.js';
import { BlobStore } from '../oci/blobstore.js';
import { sha256Digest } from '../oci/digest.js';
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
  /** Chunks fetched ahead of the one being written. Default 16. */
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
  /** Chunks downloaded by this pull, and found in the blob cache. */
  chunksFetched: number;
  chunksCached: number;
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
  const concurrency = opts.concurrency ?? 16;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) fail('OPTION_INVALID', 'pull artifact', 'concurrency must be a positive integer', concurrency);
  const name = `docker://${formatReference(ref)}`;
  const store = new BlobStore(join(opts.cacheDir, 'blobs'));
  const c = client(ref, opts);
  try {
    const remote = await getManifest(c, ref);
    const manifest: ArtifactManifest = checkArtifactManifest(remote.doc, name);
    const sizes = new Map(manifest.layers.map((l) => [l.digest, l.size]));
    const counts = { chunksFetched: 0, chunksCached: 0, bytesFetched: 0 };

    const getBlob = async (digest: string, size: number, what: string): Promise<Buffer> => {
      if (await store.has(digest)) {
        counts.chunksCached++;
        return readFile(store.path(digest));
      }
      for (let attempt = 1; ; attempt++) {
        try {
          const { body, offset } = await c.blobStream(ref.repository, digest);
          if (offset !== 0) fail('OCI_REGISTRY_ERROR', what, 'the registry answered a partial body', digest);
          const parts: Buffer[] = [];
          let n = 0;
          for await (const b of body) {
            n += b.length;
            if (n > size) fail('OCI_DIGEST_MISMATCH', what, `more bytes than the descriptor's size ${size}`, digest);
            parts.push(b);
          }
          if (n < size) fail('OCI_NETWORK', what, `connection ended after ${n} of ${size} bytes`, digest);
          const data = Buffer.concat(parts, n);
          const got = sha256Digest(data);
          if (got !== digest) fail('OCI_DIGEST_MISMATCH', what, `content hashes to ${got}`, digest);
          await store.put(digest, data);
          counts.chunksFetched++;
          counts.bytesFetched += n;
          return data;
        } catch (e) {
          if (!isRootforgeError(e, 'OCI_NETWORK') || attempt >= 3) throw e;
          await new Promise((r) => setTimeout(r, 250 * 2 ** (attempt - 1)));
        }
      }
    };

    const mapData = await getBlob(manifest.config.digest, manifest.config.size, `fetch chunk map of ${name}`);
    const map = parseChunkMap(mapData, name);
    const claimed = manifest.annotations[ANNOTATION.digest];
    if (claimed !== undefined && claimed !== map.digest) fail('OCI_BAD_MANIFEST', `pull ${name}`, `the annotation says image ${claimed}, the chunk map ${map.digest}`, remote.digest);
    for (const [, , d] of map.chunks) if (!sizes.has(d)) fail('OCI_BAD_MANIFEST', `pull ${name}`, 'the chunk map names a blob the manifest does not list', d);

    await writeAtomically(output, async (fh) => {
      await fh.truncate(map.size);
      const hash = createHash('sha256');
      const zeros = Buffer.alloc(1 << 20);
      const hashZeros = (n: number) => {
        for (let left = n; left > 0; left -= zeros.length) hash.update(zeros.subarray(0, Math.min(left, zeros.length)));
      };
      const pending: Promise<Buffer>[] = [];
      let next = 0;
      const startUpTo = (limit: number) => {
        for (; next < Math.min(limit, map.chunks.length); next++) {
          const [offset, , digest] = map.chunks[next]!;
          const p = getBlob(digest, sizes.get(digest)!, `fetch chunk at ${offset} of ${name}`);
          // Settled in order below; mark handled so a failure ahead of the reader is not "unhandled".
          p.catch(() => undefined);
          pending[next] = p;
        }
      };
      let pos = 0;
      try {
        for (let i = 0; i < map.chunks.length; i++) {
          startUpTo(i + concurrency);
          const [offset, length, digest] = map.chunks[i]!;
          const blob = await pending[i]!;
          delete pending[i];
          let data: Buffer;
          try {
            data = decompress(blob);
          } catch (e) {
            return fail('OCI_LAYER_INVALID', `decompress chunk at ${offset} of ${name}`, (e as Error).message, digest, e);
          }
          if (data.length !== length) fail('OCI_DIGEST_MISMATCH', `reassemble ${name}`, `chunk at ${offset} is ${data.length} bytes, the map says ${length}`, digest);
          hashZeros(offset - pos);
          hash.update(data);
          let written = 0;
          while (written < data.length) written += (await fh.write(data, written, data.length - written, offset + written)).bytesWritten;
          pos = offset + length;
          opts.onProgress?.({ done: pos, total: map.size });
        }
      } finally {
        // Fetches still running when a chunk failed: let them end (they only fill the cache).
        await Promise.allSettled(pending.filter((p) => p !== undefined));
      }
      hashZeros(map.size - pos);
      opts.onProgress?.({ done: map.size, total: map.size });
      const got = 'sha256:' + hash.digest('hex');
      if (got !== map.digest) fail('OCI_DIGEST_MISMATCH', `pull ${name}`, `the reassembled image hashes to ${got}`, map.digest);
      await fh.sync();
    });
    return {
      reference: formatReference(ref),
      output,
      manifestDigest: remote.digest,
      imageDigest: map.digest,
      sizeBytes: map.size,
      chunks: map.chunks.length,
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
