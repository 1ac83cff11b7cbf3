/**
 * push: an ext4 image → a rootforge artifact in a registry.
 *
 *   image ──chunkFile (FastCDC, zero runs cut out)──▶ chunk ──sha256──▶ known already?
 *     yes: the chunk map points into the older pack that holds it
 *     no:  gathered with the new chunks next to it into a frame (≤ 1 MiB) ──zstd──▶ appended to
 *          the current pack; a full pack (~8 MiB) is uploaded
 *          (HEAD: already there? skip ─▶ POST + PUT)
 *   chunk map (config blob) + manifest (artifactType, annotations, every pack used) ──PUT
 *
 * "Known" chunks come from the chunk maps of the artifacts already in the target repository
 * (its tags, up to 32) and in the --mount-from repositories; packs of the latter are mounted
 * into the target (cross-repository mount) or, where the registry refuses, copied. Chunking,
 * hashing and compression run in this thread while up to `concurrency` packs upload. The
 * manifest goes up last, so a tag never names an artifact with missing packs; a push that stopped
 * midway is resumed by running it again (HEAD finds the packs already uploaded).
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { compress } from 'zstd-napi';
import { fail, isRootforgeError } from '../errors.js';
import { sha256Digest } from '../oci/digest.js';
import { formatReference, type RegistryRef } from '../oci/reference.js';
import { RegistryClient } from '../oci/registry-client.js';
import { version } from '../version.js';
import { ANNOTATION, ARTIFACT_TYPE, checkArtifactManifest, MAX_FRAME_BYTES, MAX_PACK_BYTES, CHUNKMAP_MEDIA_TYPE, encodeChunkMap, isArtifactManifest, OCI_MANIFEST, PACK_MEDIA_TYPE, parseChunkMap, type ArtifactManifest, type ChunkEntry } from './artifact.js';
import { chunkFile } from './chunker.js';
import { readImageMeta } from './image-meta.js';
import { RegistryWriter, type RegistryWriterOptions } from './registry-writer.js';

export interface PushOptions extends RegistryWriterOptions {
  /** Packs checked or uploaded at once. Default 4. */
  concurrency?: number;
  /** Repositories on the same registry whose artifacts' chunks may be reused (mounted). */
  mountFrom?: string[];
  /** zstd level for chunks. Default 3. */
  level?: number;
  /** Compressed bytes per pack. Default 8 MiB. */
  packBytes?: number;
  /** Uncompressed bytes per frame at most. Default 1 MiB. */
  frameBytes?: number;
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
  /** Data chunks in the image (zero runs excluded); of them, new ones (stored in new packs). */
  chunks: number;
  newChunks: number;
  zeroBytes: number;
  /** Packs the artifact uses, and blobs (packs, chunk map) uploaded, found present, mounted. */
  blobs: number;
  uploaded: number;
  present: number;
  mounted: number;
  /** Compressed bytes of uploaded blobs, and of all the artifact's blobs. */
  uploadedBytes: number;
  blobBytes: number;
  /** Request body bytes sent, manifest included. */
  bytesSent: number;
  annotations: Record<string, string>;
}

/** Where a chunk's bytes are; filled in for new chunks when their frame and pack are closed. */
interface Loc {
  pack?: string;
  frameOffset: number;
  frameLength: number;
  skip: number;
}

/** The pack being filled: closed frames, and the run of new chunks of the frame being filled. */
interface Pending {
  parts: Buffer[];
  size: number;
  locs: Loc[];
  frame: Buffer[];
  frameBytes: number;
  frameLocs: Loc[];
}

/** Reads the chunk maps of the rootforge artifacts tagged in `repos`: sha256 → where it is. */
async function knownChunks(client: RegistryClient, writer: RegistryWriter, repos: string[]): Promise<{ chunks: Map<string, Loc>; packRepo: Map<string, string>; packSize: Map<string, number> }> {
  const chunks = new Map<string, Loc>();
  const packRepo = new Map<string, string>();
  const packSize = new Map<string, number>();
  const seenMaps = new Set<string>();
  for (const repo of repos) {
    for (const tag of (await writer.listTags(repo)).slice(0, 32)) {
      let doc: unknown;
      try {
        doc = JSON.parse((await client.getManifest(repo, tag, [OCI_MANIFEST])).bytes.toString('utf8'));
      } catch (e) {
        // A tag deleted meanwhile, or not an OCI manifest: nothing to reuse from it.
        if (isRootforgeError(e, 'OCI_NOT_FOUND') || isRootforgeError(e, 'OCI_BAD_MANIFEST') || isRootforgeError(e, 'OCI_UNSUPPORTED_MEDIA_TYPE')) continue;
        throw e;
      }
      if (!isArtifactManifest(doc)) continue;
      const m = checkArtifactManifest(doc, `${repo}:${tag}`);
      if (seenMaps.has(m.config.digest)) continue;
      seenMaps.add(m.config.digest);
      const parts: Buffer[] = [];
      for await (const b of (await client.blobStream(repo, m.config.digest)).body) parts.push(b);
      const bytes = Buffer.concat(parts);
      if (sha256Digest(bytes) !== m.config.digest) fail('OCI_DIGEST_MISMATCH', `read chunk map of ${repo}:${tag}`, `content hashes to ${sha256Digest(bytes)}`, m.config.digest);
      const map = parseChunkMap(bytes, `${repo}:${tag}`);
      for (const l of m.layers) {
        packSize.set(l.digest, l.size);
        if (!packRepo.has(l.digest)) packRepo.set(l.digest, repo);
      }
      for (const [, , pack, frameOffset, frameLength, skip, sha] of map.chunks) if (!chunks.has(sha)) chunks.set(sha, { pack: map.packs[pack]!, frameOffset, frameLength, skip });
    }
  }
  return { chunks, packRepo, packSize };
}

export async function pushArtifact(image: string, ref: RegistryRef, options: PushOptions = {}): Promise<PushResult> {
  const what = `push ${image}`;
  const concurrency = options.concurrency ?? 4;
  const packBytes = options.packBytes ?? 8 << 20;
  const frameBytes = options.frameBytes ?? 1 << 20;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) fail('OPTION_INVALID', what, 'concurrency must be a positive integer', concurrency);
  if (!Number.isSafeInteger(packBytes) || packBytes < 1 || packBytes > MAX_PACK_BYTES / 2) fail('OPTION_INVALID', what, `pack size must be a positive integer up to ${MAX_PACK_BYTES >> 21} MiB`, packBytes);
  if (!Number.isSafeInteger(frameBytes) || frameBytes < 1 || frameBytes > MAX_FRAME_BYTES / 2) fail('OPTION_INVALID', what, `frame size must be a positive integer up to ${MAX_FRAME_BYTES >> 21} MiB`, frameBytes);
  if (ref.digest !== undefined && ref.tag === undefined) fail('OPTION_INVALID', what, 'push to a tag, not a digest (the digest is the result)', formatReference(ref));
  let size: number;
  try {
    size = (await stat(image)).size;
  } catch (e) {
    return fail('SOURCE_NOT_FOUND', what, (e as NodeJS.ErrnoException).code ?? String(e), image, e);
  }
  const meta = await readImageMeta(image);
  const writer = new RegistryWriter(ref.registry, options);
  const client = new RegistryClient(ref.registry, {
    ...(options.creds !== undefined ? { creds: options.creds } : {}),
    ...(options.dockerConfigDir !== undefined ? { dockerConfigDir: options.dockerConfigDir } : {}),
    tlsVerify: options.tlsVerify ?? true,
  });
  const repo = ref.repository;
  const counts = { uploaded: 0, present: 0, mounted: 0, uploadedBytes: 0 };
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const send = async (digest: string, blob: Buffer) => {
    if (await writer.hasBlob(repo, digest)) {
      counts.present++;
      return;
    }
    await writer.uploadBlob(repo, digest, blob);
    counts.uploaded++;
    counts.uploadedBytes += blob.length;
  };
  const schedule = async (task: () => Promise<void>) => {
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
    const p: Promise<void> = task().then(
      () => void inFlight.delete(p),
      (e: unknown) => {
        inFlight.delete(p);
        failure ??= e;
      },
    );
    inFlight.add(p);
  };

  try {
    const known = await knownChunks(client, writer, [repo, ...(options.mountFrom ?? []).filter((r) => r !== repo)]);
    const hash = createHash('sha256');
    const zeros = Buffer.alloc(1 << 20);
    const pieces: { offset: number; length: number; sha: string; loc: Loc }[] = [];
    const packs: string[] = [];
    const packIndex = new Map<string, number>();
    const packSize = new Map(known.packSize);
    const newPacks = new Set<string>();
    const seen = new Map<string, Loc>();
    const newPending = (): Pending => ({ parts: [], size: 0, locs: [], frame: [], frameBytes: 0, frameLocs: [] });
    let current = newPending();
    let newChunks = 0;
    let zeroBytes = 0;
    const refPack = (digest: string) => {
      let i = packIndex.get(digest);
      if (i === undefined) {
        i = packs.push(digest) - 1;
        packIndex.set(digest, i);
      }
      return i;
    };
    const closeFrame = () => {
      if (current.frame.length === 0) return;
      const z = compress(current.frame.length === 1 ? current.frame[0]! : Buffer.concat(current.frame, current.frameBytes), { compressionLevel: options.level ?? 3 });
      for (const l of current.frameLocs) {
        l.frameOffset = current.size;
        l.frameLength = z.length;
      }
      current.parts.push(z);
      current.size += z.length;
      current.frame = [];
      current.frameBytes = 0;
      current.frameLocs = [];
    };
    const seal = async () => {
      closeFrame();
      if (current.parts.length === 0) return;
      const blob = Buffer.concat(current.parts, current.size);
      const digest = sha256Digest(blob);
      for (const l of current.locs) l.pack = digest;
      packSize.set(digest, blob.length);
      newPacks.add(digest);
      current = newPending();
      await schedule(() => send(digest, blob));
    };
    for await (const piece of chunkFile(image, { onRead: (done) => options.onProgress?.({ done, total: size }) })) {
      if (piece.kind === 'zero') {
        closeFrame();
        zeroBytes += piece.length;
        for (let left = piece.length; left > 0; left -= zeros.length) hash.update(zeros.subarray(0, Math.min(left, zeros.length)));
        continue;
      }
      hash.update(piece.data);
      const sha = createHash('sha256').update(piece.data).digest('hex');
      let loc = seen.get(sha) ?? known.chunks.get(sha);
      if (loc === undefined) {
        if (current.frameBytes + piece.data.length > frameBytes) closeFrame();
        if (current.size >= packBytes) await seal();
        loc = { frameOffset: -1, frameLength: -1, skip: current.frameBytes };
        current.frame.push(piece.data);
        current.frameBytes += piece.data.length;
        current.frameLocs.push(loc);
        current.locs.push(loc);
        newChunks++;
      } else {
        // A frame holds only chunks adjacent in the image.
        closeFrame();
      }
      seen.set(sha, loc);
      pieces.push({ offset: piece.offset, length: piece.data.length, sha, loc });
    }
    await seal();
    const chunks: ChunkEntry[] = pieces.map(({ offset, length, sha, loc }) => [offset, length, refPack(loc.pack!), loc.frameOffset, loc.frameLength, loc.skip, sha]);
    const imageDigest = 'sha256:' + hash.digest('hex');
    // Packs reused from other repositories: mount them here, or copy them where mounting is refused.
    for (const digest of packs) {
      const from = known.packRepo.get(digest);
      if (newPacks.has(digest) || from === undefined || from === repo) continue;
      await schedule(async () => {
        if (await writer.hasBlob(repo, digest)) return void counts.present++;
        if (await writer.mountBlob(repo, digest, from)) return void counts.mounted++;
        const parts: Buffer[] = [];
        for await (const b of (await client.blobStream(from, digest)).body) parts.push(b);
        const blob = Buffer.concat(parts);
        if (sha256Digest(blob) !== digest) fail('OCI_DIGEST_MISMATCH', `copy pack from ${from}`, `content hashes to ${sha256Digest(blob)}`, digest);
        await writer.uploadBlob(repo, digest, blob);
        counts.uploaded++;
        counts.uploadedBytes += blob.length;
      });
    }
    const mapBytes = encodeChunkMap({ size, digest: imageDigest, packs, chunks });
    const mapDigest = sha256Digest(mapBytes);
    await schedule(() => send(mapDigest, mapBytes));
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;

    const annotations: Record<string, string> = {
      [ANNOTATION.title]: basename(image),
      [ANNOTATION.size]: String(size),
      [ANNOTATION.digest]: imageDigest,
      [ANNOTATION.uuid]: meta.uuid,
      [ANNOTATION.chunks]: String(chunks.length),
      [ANNOTATION.packs]: String(packs.length),
      [ANNOTATION.version]: version(),
    };
    if (meta.label !== '') annotations[ANNOTATION.label] = meta.label;
    if (meta.architecture !== undefined) annotations[ANNOTATION.architecture] = meta.architecture;
    if (meta.packagesDigest !== undefined) annotations[ANNOTATION.packagesDigest] = meta.packagesDigest;
    if (options.specDigest !== undefined) annotations[ANNOTATION.specDigest] = options.specDigest;
    if (options.lockDigest !== undefined) annotations[ANNOTATION.lockDigest] = options.lockDigest;
    const manifest: ArtifactManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: ARTIFACT_TYPE,
      config: { mediaType: CHUNKMAP_MEDIA_TYPE, digest: mapDigest, size: mapBytes.length },
      layers: packs.map((digest) => ({ mediaType: PACK_MEDIA_TYPE, digest, size: packSize.get(digest)! })),
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
      newChunks,
      zeroBytes,
      blobs: packs.length,
      ...counts,
      blobBytes: packs.reduce((n, d) => n + packSize.get(d)!, 0) + mapBytes.length,
      bytesSent: writer.bytesSent,
      annotations,
    };
  } finally {
    // Let uploads still running end before closing their connections (errors already kept).
    await Promise.allSettled(inFlight);
    writer.close();
    client.close();
  }
}
