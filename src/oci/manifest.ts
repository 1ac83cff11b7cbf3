/**
 * Parsing and checking image indexes, manifests and configs, and choosing a platform.
 */
import { hostArch } from '../verify/arch.js';
import { fail } from '../errors.js';
import { parseDigest } from './digest.js';
import { MEDIA, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './types.js';

export function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (e) {
    return fail('OCI_BAD_MANIFEST', `read ${what}`, 'not valid JSON', (e as Error).message, e);
  }
}

export function checkDescriptor(d: unknown, what: string): Descriptor {
  const o = d as Partial<Descriptor> | null;
  if (!o || typeof o !== 'object' || typeof o.mediaType !== 'string' || typeof o.digest !== 'string' || typeof o.size !== 'number') {
    fail('OCI_BAD_MANIFEST', `read ${what}`, 'descriptor needs mediaType, digest and size', JSON.stringify(d)?.slice(0, 200));
  }
  parseDigest(o.digest!, `read ${what}`);
  if (!Number.isSafeInteger(o.size) || o.size! < 0) fail('OCI_BAD_MANIFEST', `read ${what}`, 'bad size', o.size);
  return o as Descriptor;
}

export function isIndex(mediaType: string | undefined, doc: unknown): boolean {
  if (mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList) return true;
  if (mediaType === MEDIA.ociManifest || mediaType === MEDIA.dockerManifest) return false;
  return Array.isArray((doc as { manifests?: unknown }).manifests);
}

export function parseIndex(bytes: Buffer, what: string): ImageIndex {
  const doc = parseJson(bytes, what) as Partial<ImageIndex>;
  if (doc.schemaVersion !== 2 || !Array.isArray(doc.manifests)) fail('OCI_BAD_MANIFEST', `read ${what}`, 'not an image index (schemaVersion 2 with manifests)', what);
  doc.manifests.forEach((m, i) => checkDescriptor(m, `${what} manifests[${i}]`));
  return doc as ImageIndex;
}

/**
 * Most layers an image may have unless the caller allows more. Docker's overlay driver stops at
 * 127 and real images have a few dozen; each layer costs a download, a decompressor and a merge
 * pass, so a manifest listing 100,000 (tiny) layers is a CPU sink, not an image.
 */
export const DEFAULT_MAX_LAYERS = 1000;

/** Refuses more than `maxLayers` layers (checked before any layer is looked at). */
export function checkLayerCount(count: number, maxLayers: number | undefined, what: string): void {
  const max = maxLayers ?? DEFAULT_MAX_LAYERS;
  if (count > max) fail('OCI_TOO_MANY_LAYERS', `read ${what}`, `${count} layers, more than the limit of ${max} (raise it with --max-layers)`, count);
}

export function parseManifest(bytes: Buffer, what: string, maxLayers?: number): ImageManifest {
  const doc = parseJson(bytes, what) as Omit<Partial<ImageManifest>, 'schemaVersion'> & { schemaVersion?: number };
  if (doc.schemaVersion === 1) fail('OCI_UNSUPPORTED_MEDIA_TYPE', `read ${what}`, 'Docker schema 1 manifests are not supported', what);
  if (doc.schemaVersion !== 2 || !doc.config || !Array.isArray(doc.layers)) fail('OCI_BAD_MANIFEST', `read ${what}`, 'not an image manifest (schemaVersion 2 with config and layers)', what);
  checkLayerCount(doc.layers.length, maxLayers, what);
  checkDescriptor(doc.config, `${what} config`);
  doc.layers.forEach((l, i) => checkDescriptor(l, `${what} layers[${i}]`));
  return doc as ImageManifest;
}

export function parseConfig(bytes: Buffer, what: string): ImageConfig {
  const doc = parseJson(bytes, what);
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) fail('OCI_BAD_MANIFEST', `read ${what}`, 'config is not a JSON object', what);
  return doc as ImageConfig;
}

/** The platform this host runs (Go's GOARCH names, as images use). */
export function hostPlatform(): Platform {
  const a = hostArch();
  if (!a) return { os: 'linux', architecture: process.arch };
  return a.variant ? { os: 'linux', architecture: a.arch, variant: a.variant } : { os: 'linux', architecture: a.arch };
}

/** Parses "linux/amd64", "linux/arm64/v8", "amd64". */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length === 1 && parts[0]) return { os: 'linux', architecture: parts[0] };
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) fail('OPTION_INVALID', 'parse --platform', 'expected OS/ARCH[/VARIANT]', text);
  return parts[2] ? { os: parts[0], architecture: parts[1], variant: parts[2] } : { os: parts[0], architecture: parts[1] };
}

export function formatPlatform(p: Platform | undefined): string {
  if (!p) return 'unknown';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Picks the manifest for `want` from an index; arm64 images often omit the v8 variant. */
export function selectPlatform(index: ImageIndex, want: Platform, what: string): Descriptor {
  const manifests = index.manifests.filter((m) => m.mediaType !== 'application/vnd.in-toto+json' && m.platform?.architecture !== 'unknown');
  const match = (m: Descriptor, strictVariant: boolean) =>
    m.platform !== undefined &&
    m.platform.os === want.os &&
    m.platform.architecture === want.architecture &&
    (!strictVariant || (m.platform.variant ?? '') === (want.variant ?? '') || (want.architecture === 'arm64' && (m.platform.variant ?? 'v8') === (want.variant ?? 'v8')));
  const found = manifests.find((m) => match(m, true)) ?? (want.variant ? undefined : manifests.find((m) => match(m, false)));
  if (!found) {
    const have = manifests.map((m) => formatPlatform(m.platform)).join(', ') || 'none';
    return fail('OCI_NO_PLATFORM', `select a manifest in ${what}`, `no image for ${formatPlatform(want)} (it has: ${have})`, formatPlatform(want));
  }
  return found;
}
