/**
 * oci:PATH[:REF] — an OCI image layout directory (image-spec image-layout.md): `oci-layout`,
 * `index.json`, `blobs/<alg>/<hex>`. REF is a tag (the ref.name annotation) or a digest.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { readVerified } from './digest.js';
import { MAX_JSON_BYTES, readRegular } from './files.js';
import { fileLayer } from './layer.js';
import { parseIndex, parseJson } from './manifest.js';
import { findInIndex, resolveDescriptor, type BlobAccess } from './resolve.js';
import type { Descriptor, ImageLimits, Platform, ResolvedImage } from './types.js';

export async function resolveOciLayout(dir: string, ref: string | undefined, platform: Platform, explicitPlatform = false, limits: ImageLimits = {}): Promise<ResolvedImage> {
  const source = `oci:${dir}${ref ? `:${ref}` : ''}`;
  const layoutFile = await readRegular(join(dir, 'oci-layout'), MAX_JSON_BYTES, `open ${source}`, 'OCI_BAD_LAYOUT', {
    code: 'SOURCE_NOT_FOUND',
    reason: 'no oci-layout file: not an OCI image layout',
  });
  const version = (parseJson(layoutFile, 'oci-layout') as { imageLayoutVersion?: string }).imageLayoutVersion;
  if (version !== '1.0.0') fail('OCI_BAD_LAYOUT', `open ${source}`, 'unsupported imageLayoutVersion', version);
  const indexFile = await readRegular(join(dir, 'index.json'), MAX_JSON_BYTES, `open ${source}`, 'OCI_BAD_LAYOUT', { code: 'OCI_BAD_LAYOUT', reason: 'no index.json' });
  const index = parseIndex(indexFile, `${dir}/index.json`);
  const desc = findInIndex(index, ref, source);
  return resolveDescriptor(dirBlobs(dir), desc, platform, source, explicitPlatform, limits);
}

/** Blobs as files under `root/blobs/sha256/`. */
export function dirBlobs(root: string): BlobAccess {
  const path = (digest: string) => join(root, 'blobs', ...digest.split(':'));
  return {
    async read(d, what) {
      const p = path(d.digest);
      await stat(p).catch((e: NodeJS.ErrnoException) => fail('OCI_BAD_LAYOUT', `read ${what}`, 'blob missing from the layout', d.digest, e));
      return readVerified(p, d.digest, `read ${what}`, MAX_JSON_BYTES, d.size);
    },
    layer(d: Descriptor) {
      return fileLayer(d, path(d.digest));
    },
  };
}
