/**
 * push: an ext4 image → a rootforge artifact in a registry.
 *
 *   image ──chunkFile (FastCDC, zero runs cut out)──▶ chunk ──zstd──▶ blob
 *     blob ──HEAD: already there? skip ─▶ mount from --mount-from? ─▶ POST + PUT upload
 *   chunk map (config blob) + manifest (artifactType, annotations) ──PUT manifests/<tag>
 *
 * Chunking, compression and hashing run in this thread while up to `concurrency` blobs are
 * being checked or uploaded; reading waits when that many are in flight (bounded memory).
 * The manifest goes up last, so a tag never names an artifact with missing chunks; a push that
 * stopped midway is resumed by running it again (HEAD finds what is already there).
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { compress } from 'zstd-napi';
import { fail } from '../errors.js';
import { sha256Digest } from '../oci/digest.js';
import { formatReference, type RegistryRef } from '../oci/reference.js';
import { version } from '../version.js';
import { ANNOTATION, ARTIFACT_TYPE, CHUNK_MEDIA_TYPE, CHUNKMAP_MEDIA_TYPE, encodeChunkMap, OCI_MANIFEST, type ArtifactManifest, type ChunkMap, type Descriptor } from './artifact.js';
import { chunkFile } from './chunker.js';
import { readImageMeta } from './image-meta.js';
import { RegistryWriter, type RegistryWriterOptions } from './registry-writer.js';

export interface PushOptions extends RegistryWriterOptions {
  /** Blobs checked or uploaded at once. Default 8. */
  concurrency?: number;
  /** Repositories on the same registry to mount already-pushed chunks from (cross-repo mount). */
  mountFrom?: string[];
  /** zstd level for chunks. Default 3. */
  level?: number;
  /** Digests of the build's spec and lock, for the annotations (build --push sets them). */
  specDigest?: string;
  lockDigest?: string;
  /** Bytes of the image read so far, of `total`. */
  onProgress?: (p: { done: number; total: number }) => void;
}

export interface PushResult {
  reference: string;
  /** sha256 of the manifest: pull `REPO@<this>` to get exactly this image. */
  manifestDigest: string;
  /** sha256 of the image file. */
  imageDigest: string;
  sizeBytes: number;
  /** Data chunks in the image (zero runs excluded) and distinct blobs among them. */
  chunks: number;
  blobs: number;
  zeroBytes: number;
  /** Blobs uploaded, found already present, mounted from another repository. */
  uploaded: number;
  present: number;
  mounted: number;
  /** Compressed bytes of uploaded blobs (chunks, chunk map) and of all blobs. */
  uploadedBytes: number;
  blobBytes: number;
  /** Request body bytes sent, manifest included. */
  bytesSent: number;
  annotations: Record<string, string>;
}

export async function pushArtifact(image: string, ref: RegistryRef, options: PushOptions = {}): Promise<PushResult> {
  const what = `push ${image}`;
  const concurrency = options.concurrency ?? 8;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) fail('OPTION_INVALID', what, 'concurrency must be a positive integer', concurrency);
  if (ref.digest !== undefined && ref.tag === undefined) fail('OPTION_INVALID', what, 'push to a tag, not a digest (the digest is the result)', formatReference(ref));
  let size: number;
  try {
    size = (await stat(image)).size;
  } catch (e) {
    return fail('SOURCE_NOT_FOUND', what, (e as NodeJS.ErrnoException).code ?? String(e), image, e);
  }
  const meta = await readImageMeta(image);
  const writer = new RegistryWriter(ref.registry, options);
  const repo = ref.repository;
  const counts = { uploaded: 0, present: 0, mounted: 0, uploadedBytes: 0 };
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const send = async (digest: string, blob: Buffer) => {
    if (await writer.hasBlob(repo, digest)) {
      counts.present++;
      return;
    }
    for (const from of options.mountFrom ?? []) {
      if (await writer.mountBlob(repo, digest, from)) {
        counts.mounted++;
        return;
      }
    }
    await writer.uploadBlob(repo, digest, blob);
    counts.uploaded++;
    counts.uploadedBytes += blob.length;
  };
  const schedule = async (digest: string, blob: Buffer) => {
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
    const p: Promise<void> = send(digest, blob).then(
      () => void inFlight.delete(p),
      (e: unknown) => {
        inFlight.delete(p);
        failure ??= e;
      },
    );
    inFlight.add(p);
  };

  try {
    const hash = createHash('sha256');
    const zeros = Buffer.alloc(1 << 20);
    const chunks: ChunkMap['chunks'] = [];
    const blobs = new Map<string, number>();
    let zeroBytes = 0;
    for await (const piece of chunkFile(image, { onRead: (done) => options.onProgress?.({ done, total: size }) })) {
      if (piece.kind === 'zero') {
        zeroBytes += piece.length;
        for (let left = piece.length; left > 0; left -= zeros.length) hash.update(zeros.subarray(0, Math.min(left, zeros.length)));
        continue;
      }
      hash.update(piece.data);
      const blob = compress(piece.data, { compressionLevel: options.level ?? 3 });
      const digest = sha256Digest(blob);
      chunks.push([piece.offset, piece.data.length, digest]);
      if (blobs.has(digest)) continue;
      blobs.set(digest, blob.length);
      await schedule(digest, blob);
    }
    const imageDigest = 'sha256:' + hash.digest('hex');
    const mapBytes = encodeChunkMap({ size, digest: imageDigest, chunks });
    const mapDigest = sha256Digest(mapBytes);
    await schedule(mapDigest, mapBytes);
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;

    const annotations: Record<string, string> = {
      [ANNOTATION.title]: basename(image),
      [ANNOTATION.size]: String(size),
      [ANNOTATION.digest]: imageDigest,
      [ANNOTATION.uuid]: meta.uuid,
      [ANNOTATION.chunks]: String(chunks.length),
      [ANNOTATION.version]: version(),
    };
    if (meta.label !== '') annotations[ANNOTATION.label] = meta.label;
    if (meta.architecture !== undefined) annotations[ANNOTATION.architecture] = meta.architecture;
    if (meta.packagesDigest !== undefined) annotations[ANNOTATION.packagesDigest] = meta.packagesDigest;
    if (options.specDigest !== undefined) annotations[ANNOTATION.specDigest] = options.specDigest;
    if (options.lockDigest !== undefined) annotations[ANNOTATION.lockDigest] = options.lockDigest;
    const layers: Descriptor[] = [...blobs.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([digest, n]) => ({ mediaType: CHUNK_MEDIA_TYPE, digest, size: n }));
    const manifest: ArtifactManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: ARTIFACT_TYPE,
      config: { mediaType: CHUNKMAP_MEDIA_TYPE, digest: mapDigest, size: mapBytes.length },
      layers,
      annotations,
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const manifestDigest = sha256Digest(manifestBytes);
    const claimed = await writer.putManifest(repo, ref.tag ?? manifestDigest, manifestBytes, OCI_MANIFEST);
    if (claimed !== undefined && claimed !== manifestDigest) fail('OCI_DIGEST_MISMATCH', `push manifest of ${image}`, `the registry stored it as ${claimed}`, manifestDigest);
    return {
      reference: formatReference(ref),
      manifestDigest,
      imageDigest,
      sizeBytes: size,
      chunks: chunks.length,
      blobs: blobs.size,
      zeroBytes,
      ...counts,
      blobBytes: [...blobs.values()].reduce((a, b) => a + b, 0) + mapBytes.length,
      bytesSent: writer.bytesSent,
      annotations,
    };
  } finally {
    // Let uploads still running end before closing their connections (errors already kept).
    await Promise.allSettled(inFlight);
    writer.close();
  }
}
