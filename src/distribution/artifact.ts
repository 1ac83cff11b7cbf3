/**
 * The rootforge ext4 artifact: how an image is laid out in a registry (OCI image-spec 1.1
 * "artifact" usage: an image manifest with its own artifactType).
 *
 *   manifest (application/vnd.oci.image.manifest.v1+json)
 *     artifactType  application/vnd.rootforge.ext4.v1
 *     config        application/vnd.rootforge.ext4.chunkmap.v1+json   the chunk map (below)
 *     layers[]      application/vnd.rootforge.ext4.chunk.v1+zstd       one per distinct chunk
 *     annotations   dev.rootforge.image.* (size, digest, uuid, architecture, …)
 *
 *   chunk map: { size, digest, chunks: [[offset, length, blobDigest], …] }
 *     offsets ascending, pieces disjoint; bytes no chunk covers are zeros (sparse on pull).
 *     `digest` is the sha256 of the whole image, checked after reassembly.
 *
 * Layers are sorted by digest and listed once each, so the manifest is deterministic and a
 * chunk repeated in the image is stored once.
 */
import { fail } from '../errors.js';
import { parseDigest } from '../oci/digest.js';

export const ARTIFACT_TYPE = 'application/vnd.rootforge.ext4.v1';
export const CHUNKMAP_MEDIA_TYPE = 'application/vnd.rootforge.ext4.chunkmap.v1+json';
export const CHUNK_MEDIA_TYPE = 'application/vnd.rootforge.ext4.chunk.v1+zstd';
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
  specDigest: 'dev.rootforge.spec.digest',
  lockDigest: 'dev.rootforge.lock.digest',
  packagesDigest: 'dev.rootforge.packages.digest',
  title: 'org.opencontainers.image.title',
} as const;

export interface ChunkMap {
  /** Image size in bytes. */
  size: number;
  /** sha256 of the whole image. */
  digest: string;
  /** [offset, uncompressed length, blob digest], by offset. */
  chunks: [number, number, string][];
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
  return Buffer.from(JSON.stringify({ size: map.size, digest: map.digest, chunks: map.chunks }));
}

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
  if (typeof m !== 'object' || m === null || !Number.isSafeInteger(m.size) || (m.size as number) < 0 || typeof m.digest !== 'string' || !Array.isArray(m.chunks)) {
    fail('OCI_BAD_MANIFEST', what, 'expected {size, digest, chunks}', where);
  }
  parseDigest(m.digest, what);
  let end = 0;
  for (const c of m.chunks) {
    if (!Array.isArray(c) || c.length !== 3 || !Number.isSafeInteger(c[0]) || !Number.isSafeInteger(c[1]) || typeof c[2] !== 'string') {
      fail('OCI_BAD_MANIFEST', what, 'a chunk is not [offset, length, digest]', JSON.stringify(c));
    }
    const [offset, length, digest] = c;
    if (offset < end || length <= 0 || offset + length > (m.size as number)) fail('OCI_BAD_MANIFEST', what, 'chunks overlap, are out of order or lie outside the image', `${offset}+${length}`);
    parseDigest(digest, what);
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
  for (const l of m.layers) if (l.mediaType !== CHUNK_MEDIA_TYPE) fail('OCI_UNSUPPORTED_MEDIA_TYPE', what, 'unknown chunk media type', l.mediaType);
  return { ...m, annotations: typeof m.annotations === 'object' && m.annotations !== null ? m.annotations : {} };
}
