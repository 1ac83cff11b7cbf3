/**
 * Opening a layer blob: digest-verified as it is read, decompressed by what its bytes are (gzip,
 * zstd or plain tar — media types are checked but the magic decides, as registries mislabel).
 */
import type { FileHandle } from 'node:fs/promises';
import { fail } from '../errors.js';
import { openArchiveStream, readRing } from '../tar/decompress.js';
import { verifyDigest } from './digest.js';
import { openRegular } from './files.js';
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

/**
 * A Layer whose blob is the file at `path`: a regular file (not a symlink, device or FIFO) of
 * exactly the descriptor's size, of which no more than that size is ever read.
 */
export function fileLayer(descriptor: Descriptor, path: string): Layer {
  checkLayerMediaType(descriptor);
  return {
    descriptor,
    async open() {
      const what = `read layer ${descriptor.digest}`;
      const { fh, size } = await openRegular(path, what, 'OCI_BAD_LAYOUT', { code: 'OCI_BAD_LAYOUT', reason: 'blob missing' });
      if (size !== descriptor.size) {
        await fh.close();
        fail('OCI_DIGEST_MISMATCH', what, `the blob is ${size} bytes where the descriptor says ${descriptor.size}`, path);
      }
      // Read into a few reused buffers, closing the handle when it ends or is stopped: a fresh
      // buffer per read made a layer of a gigabyte a gigabyte of garbage (≈100 MB more peak RSS).
      const raw = size > 0 ? readRing(fh, size, path) : closed(fh);
      return layerTar(descriptor, raw);
    },
  };
}

async function* closed(fh: FileHandle): AsyncGenerator<Buffer> {
  await fh.close();
}

/** The uncompressed tar of a layer whose blob bytes are `raw`, checked against its digest as it streams. */
export async function layerTar(descriptor: Descriptor, raw: AsyncIterable<Buffer>): Promise<AsyncIterable<Buffer>> {
  const verified = verifyDigest(raw, descriptor.digest, descriptor.size, `read layer ${descriptor.digest}`);
  const archive = await openArchiveStream(verified, { reuseOutput: true }); // see Layer.open
  return archive.stream;
}
