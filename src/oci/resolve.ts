/**
 * From an index (an OCI layout's index.json, or one fetched) to a ResolvedImage: pick the
 * manifest by reference and platform, read and check the manifest and config, and describe the
 * layers. Blob access is abstract so layouts on disk and inside docker-archive tars share it.
 */
import { fail } from '../errors.js';
import { sha256Digest } from './digest.js';
import { formatPlatform, isIndex, parseConfig, parseIndex, parseJson, parseManifest, selectPlatform } from './manifest.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageLimits, Layer, Platform, ResolvedImage } from './types.js';

export interface BlobAccess {
  /** A small blob (index, manifest, config), digest-verified. */
  read(d: { digest: string; size?: number }, what: string): Promise<Buffer>;
  /** A layer blob, read lazily and verified as it streams. */
  layer(d: Descriptor): Layer;
}

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';

/** Finds `ref` (a tag, a full image name, or a digest) among an index's manifests. */
export function findInIndex(index: ImageIndex, ref: string | undefined, what: string): Descriptor {
  const names = (d: Descriptor) => [d.annotations?.[REF_NAME], d.annotations?.[CONTAINERD_NAME]].filter((x): x is string => !!x);
  if (ref === undefined || ref === '') {
    if (index.manifests.length === 1) return index.manifests[0]!;
    const known = index.manifests.flatMap(names).join(', ') || index.manifests.map((m) => m.digest).join(', ');
    return fail('OCI_NOT_FOUND', `choose an image in ${what}`, `it holds ${index.manifests.length} images; name one (${known})`, what);
  }
  const hit = ref.startsWith('sha256:')
    ? index.manifests.find((d) => d.digest === ref)
    : index.manifests.find((d) => names(d).some((n) => n === ref || n.endsWith(`:${ref}`) || stripDockerIo(n) === stripDockerIo(ref)));
  if (!hit) {
    const known = index.manifests.flatMap(names).join(', ') || 'no names';
    return fail('OCI_NOT_FOUND', `find image ${ref} in ${what}`, `no such reference (known: ${known})`, ref);
  }
  return hit;
}

function stripDockerIo(name: string): string {
  return name.replace(/^docker\.io\//, '').replace(/^library\//, '');
}

/**
 * Follows `desc` (an index or a manifest) to an image for `platform`. A single-platform image is
 * taken as it is, unless the platform was asked for explicitly and the image is for another.
 */
export async function resolveDescriptor(access: BlobAccess, desc: Descriptor, platform: Platform, source: string, explicitPlatform = false, limits: ImageLimits = {}): Promise<ResolvedImage> {
  let d = desc;
  let fromIndex = false;
  for (let depth = 0; ; depth++) {
    if (depth > 4) fail('OCI_BAD_MANIFEST', `resolve ${source}`, 'indexes nested too deep', desc.digest);
    const bytes = await access.read(d, `manifest ${d.digest}`);
    const doc = parseJson(bytes, `manifest ${d.digest}`);
    if (isIndex(d.mediaType, doc)) {
      const index = parseIndex(bytes, `index ${d.digest}`);
      d = selectPlatform(index, platform, source);
      fromIndex = true;
      continue;
    }
    const manifest = parseManifest(bytes, `manifest ${d.digest}`, limits.maxLayers);
    const config = parseConfig(await access.read(manifest.config, `config ${manifest.config.digest}`), `config ${manifest.config.digest}`);
    if (explicitPlatform) checkPlatform(config, platform, source, fromIndex);
    return {
      source,
      manifestDigest: d.digest,
      manifest,
      config,
      layers: manifest.layers.map((l) => access.layer(l)),
    };
  }
}

/** With an explicit --platform, a single-platform image of another architecture is an error. */
export function checkPlatform(config: ImageConfig, want: Platform, source: string, fromIndex: boolean): void {
  if (fromIndex || config.architecture === undefined) return;
  if (config.architecture !== want.architecture || (config.os ?? 'linux') !== want.os) {
    fail('OCI_NO_PLATFORM', `use ${source}`, `the image is for ${config.os ?? '?'}/${config.architecture}`, formatPlatform(want));
  }
}

/** For manifests made up locally (legacy docker-archive): its canonical bytes and digest. */
export function syntheticDigest(doc: unknown): string {
  return sha256Digest(Buffer.from(JSON.stringify(doc)));
}
