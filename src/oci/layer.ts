/**
 * Opening a layer blob: digest-verified as it is read, decompressed by what its bytes are (gzip,
 * zstd or plain tar — media types are checked but the magic decides, as registries mislabel).
 */
import { createReadStream } from 'node:fs';
import { fail } from '../errors.js';
import { openArchiveStream } from '../tar/decompress.js';
import { verifyDigest } from './digest.js';
import { MEDIA, type Descriptor, type Layer } from './types.js';

const LAYER_TYPES = new Set<string>([
  MEDIA.ociLayer,
  MEDIA.ociLayerGzip,
  MEDIA.ociLayerZstd,
  MEDIA.ociLayerNondistGzip,
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  MEDIA.dockerLayerGzip,
  MEDIA.dockerLayerForeignGzip,
  'application/x-tar',
]);

export function checkLayerMediaType(d: Descriptor): void {
  if (!LAYER_TYPES.has(d.mediaType)) fail('OCI_UNSUPPORTED_MEDIA_TYPE', 'read layer', 'not a tar layer media type', `${d.mediaType} ${d.digest}`);
}

/** A Layer whose blob is the file at `path`. */
export function fileLayer(descriptor: Descriptor, path: string): Layer {
  checkLayerMediaType(descriptor);
  return {
    descriptor,
    open: () => layerTar(descriptor, createReadStream(path, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>),
  };
}

/** The uncompressed tar of a layer whose blob bytes are `raw`, checked against its digest as it streams. */
export async function layerTar(descriptor: Descriptor, raw: AsyncIterable<Buffer>): Promise<AsyncIterable<Buffer>> {
  const verified = verifyDigest(raw, descriptor.digest, descriptor.size, `read layer ${descriptor.digest}`);
  const archive = await openArchiveStream(verified);
  return archive.stream;
}
