/**
 * The rootforge ext4 artifact: how an image is laid out in a registry (OCI image-spec 1.1
 * "artifact" usage: an image manifest with its own artifactType).
 *
 *   manifest (application/vnd.oci.image.manifest.v1+json)
 *     artifactType  application/vnd.rootforge.ext4.v1
 *     config        application/vnd.rootforge.ext4.chunkmap.v1+json   the chunk map (below)
 *     layers[]      application/vnd.rootforge.ext4.pack.v1             packs of chunks
 *     annotations   dev.rootforge.image.* (size, digest, uuid, architecture, …)
 *
 *   pack: zstd frames back to back (~8 MiB); a frame holds a run of chunks that were new and
 *     adjacent in the image (up to 1 MiB: big frames decompress at zstd's streaming speed, where
 *     one frame per 32 KiB chunk is ~3× slower), a lone new chunk its own. Chunks are deduplicated by the
 *     sha256 of their bytes; a new version's manifest lists the older packs it still uses and
 *     one or more new packs holding only its new chunks. Packs keep the request count low (a
 *     1.5 GB image is ~40,000 chunks but ~60 blobs), chunks keep a new version's upload small.
 *
 *   chunk map: { size, digest, packs: [blobDigest…], chunks: [[offset, length, pack, frameOffset,
 *     frameLength, offsetInFrame, sha256Hex], …] }
 *     offsets ascending, pieces disjoint; bytes no chunk covers are zeros (sparse on pull).
 *     `digest` is the sha256 of the whole image, checked after reassembly.
 */
import { fail } from '../errors.js';
import { parseDigest } from '../oci/digest.js';

export const ARTIFACT_TYPE = 'application/vnd.rootforge.ext4.v1';
export const CHUNKMAP_MEDIA_TYPE = 'application/vnd.rootforge.ext4.chunkmap.v1+json';
export const PACK_MEDIA_TYPE = 'application/vnd.rootforge.ext4.pack.v1';
/**
 * The largest pack a pull accepts: a pull holds a few whole packs in memory (push makes ~8 MiB
 * ones, `packBytes`), so a manifest naming huge packs must not decide how much memory that is.
 * With the defaults a pull holds at most ≈ 4 downloads ahead + 64 MiB of recent packs + the
 * frame slots: ≈ 450 MiB for the worst manifest a registry could serve (≈ 200 MiB in practice).
 */
export const MAX_PACK_BYTES = 64 << 20;
/**
 * The largest frame (decompressed) a pull accepts: push makes frames of ≤ 1 MiB (`frameBytes`),
 * and the reassembly's slots are as big as the largest frame.
 */
export const MAX_FRAME_BYTES = 16 << 20;
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Annotation keys on the artifact manifest. */
export const ANNOTATION = {
  size: 'dev.rootforge.image.size',
  digest: 'dev.rootforge.image.digest',
  uuid: 'dev.rootforge.image.uuid',
  label: 'dev.rootforge.image.label',
  architecture: 'dev.rootforge.image.architecture',
  version: 'dev.rootforge.version',
  chunks: 'dev.rootforge.image.chunks',
  packs: 'dev.rootforge.image.packs',
  specDigest: 'dev.rootforge.spec.digest',
  lockDigest: 'dev.rootforge.lock.digest',
  packagesDigest: 'dev.rootforge.packages.digest',
  title: 'org.opencontainers.image.title',
} as const;

/**
 * [image offset, length, pack index, frame's offset in the pack, frame's compressed length,
 * the chunk's offset in the decompressed frame, sha256 hex of the chunk's bytes].
 */
export type ChunkEntry = [number, number, number, number, number, number, string];

export interface ChunkMap {
  /** Image size in bytes. */
  size: number;
  /** sha256 of the whole image. */
  digest: string;
  /** Pack blob digests; chunk entries refer to them by index. */
  packs: string[];
  chunks: ChunkEntry[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ArtifactManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST;
  artifactType: typeof ARTIFACT_TYPE;
  config: Descriptor;
  layers: Descriptor[];
  annotations: Record<string, string>;
}

export function encodeChunkMap(map: ChunkMap): Buffer {
  return Buffer.from(JSON.stringify({ size: map.size, digest: map.digest, packs: map.packs, chunks: map.chunks }));
}

const HEX64 = /^[a-f0-9]{64}$/;

/** Parses and checks a chunk map: every piece inside the image, in order, not overlapping. */
export function parseChunkMap(bytes: Buffer, where: string): ChunkMap {
  const what = `read chunk map of ${where}`;
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    return fail('OCI_BAD_MANIFEST', what, 'not valid JSON', (e as Error).message, e);
  }
  const m = doc as Partial<ChunkMap>;
  if (typeof m !== 'object' || m === null || !Number.isSafeInteger(m.size) || (m.size as number) < 0 || typeof m.digest !== 'string' || !Array.isArray(m.chunks) || !Array.isArray(m.packs)) {
    fail('OCI_BAD_MANIFEST', what, 'expected {size, digest, packs, chunks}', where);
  }
  parseDigest(m.digest, what);
  for (const p of m.packs) parseDigest(String(p), what);
  let end = 0;
  for (const c of m.chunks) {
    const ok = Array.isArray(c) && c.length === 7 && c.slice(0, 6).every((n) => Number.isSafeInteger(n) && (n as number) >= 0) && typeof c[6] === 'string' && HEX64.test(c[6]);
    if (!ok) fail('OCI_BAD_MANIFEST', what, 'a chunk is not [offset, length, pack, frameOffset, frameLength, offsetInFrame, sha256]', JSON.stringify(c).slice(0, 200));
    const [offset, length, pack, , packLength] = c;
    if (offset < end || length <= 0 || offset + length > (m.size as number)) fail('OCI_BAD_MANIFEST', what, 'chunks overlap, are out of order or lie outside the image', `${offset}+${length}`);
    if (pack >= m.packs.length || packLength <= 0) fail('OCI_BAD_MANIFEST', what, 'a chunk names no pack', JSON.stringify(c).slice(0, 200));
    end = offset + length;
  }
  return m as ChunkMap;
}

export function isArtifactManifest(doc: unknown): doc is ArtifactManifest {
  const m = doc as Partial<ArtifactManifest> | null;
  return typeof m === 'object' && m !== null && (m.artifactType === ARTIFACT_TYPE || m.config?.mediaType === CHUNKMAP_MEDIA_TYPE);
}

/** Checks what pull relies on: the config is a chunk map and every layer a chunk blob. */
export function checkArtifactManifest(doc: unknown, where: string): ArtifactManifest {
  const what = `read artifact ${where}`;
  const m = doc as ArtifactManifest;
  if (!isArtifactManifest(doc)) fail('OCI_UNSUPPORTED_MEDIA_TYPE', what, 'not a rootforge ext4 artifact', where);
  if (m.config?.mediaType !== CHUNKMAP_MEDIA_TYPE) fail('OCI_BAD_MANIFEST', what, 'config is not a chunk map', m.config?.mediaType);
  if (!Array.isArray(m.layers)) fail('OCI_BAD_MANIFEST', what, 'no layers', where);
  for (const l of [m.config, ...m.layers]) {
    parseDigest(l.digest, what);
    if (!Number.isSafeInteger(l.size) || l.size < 0) fail('OCI_BAD_MANIFEST', what, 'bad blob size', l.size);
  }
  for (const l of m.layers) if (l.mediaType !== PACK_MEDIA_TYPE) fail('OCI_UNSUPPORTED_MEDIA_TYPE', what, 'unknown pack media type', l.mediaType);
  for (const l of [m.config, ...m.layers]) if (l.size > MAX_PACK_BYTES) fail('OCI_BAD_MANIFEST', what, `a blob larger than ${MAX_PACK_BYTES >> 20} MiB`, `${l.digest} ${l.size}`);
  return { ...m, annotations: typeof m.annotations === 'object' && m.annotations !== null ? m.annotations : {} };
}
