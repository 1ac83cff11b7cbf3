/**
 * convert(): source → tree → ext4 image, in one pass, written atomically.
 */
import { constants as fsConstants } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fail } from './errors.js';
import { imageOptions, type Ext4Options } from './ext4/options.js';
import { Ext4Writer, type ImageSummary } from './ext4/writer.js';
import { copyFile, type FileHandle } from 'node:fs/promises';
import { defaultCacheDir, ImageCache } from './oci/cache.js';
import type { Credentials } from './oci/registry.js';
import { version } from './version.js';
import { ingestDir } from './sources/dir.js';
import { ingestTar } from './sources/tar.js';
import type { IngestContext, Progress, SourceSpec, Warning } from './sources/types.js';
import { FsTree } from './tree/tree.js';
import { writeAtomically, type OutputLimits } from './util/atomic.js';
import { imageJson, type ImageJson } from './oci/image-json.js';
import { hostPlatform } from './oci/manifest.js';
// The registry client, layouts, docker archives and the layer merger are loaded when an image
// source is read: a tar or directory conversion (and an up-to-date build) does without them.

import type { Platform, ResolvedImage } from './oci/types.js';

export interface ConvertOptions extends Ext4Options {
  /** Map every owner to this uid:gid. Default: keep the source's owners. */
  owner?: { uid: number; gid: number };
  /** Image sources: which platform to take from a multi-platform image. Default: the host's. */
  platform?: Platform;
  /** Registry sources: credentials (else the Docker config's). */
  creds?: Credentials;
  /** Registry sources: verify TLS certificates. Default true. */
  tlsVerify?: boolean;
  /** Directory with Docker's config.json. Default $DOCKER_CONFIG or ~/.docker. */
  dockerConfigDir?: string;
  /** The cache for blobs and finished images. Default $XDG_CACHE_HOME/rootforge. */
  cacheDir?: string;
  /** Image sources: reuse and fill the finished-image cache. Default true. */
  cache?: boolean;
  onProgress?: (p: Progress) => void;
  onWarning?: (w: Warning) => void;
  /** Largest the image may become, bytes (--max-size): OUTPUT_TOO_LARGE past it. Default none. */
  maxSize?: number;
  /** Free space the output's filesystem keeps, bytes: OUTPUT_DISK_FULL below it. Default max(1 GiB, 5 %). */
  minFreeBytes?: number;
  /** Image sources: most layers an image may have (--max-layers). Default 1000. */
  maxLayers?: number;
  /** Registry sources: slowest accepted transfer, bytes/s (--min-rate); 0: none. Default 1024. */
  minBytesPerSecond?: number;
  /** Registry sources: the window the transfer rate is averaged over, ms. Default 60 s. */
  rateWindowMs?: number;
}

export interface ConvertResult extends ImageSummary {
  output: string;
  source: SourceSpec;
  warnings: Warning[];
  /** Image sources: the manifest digest and config written to /etc/rootforge/image.json. */
  image?: ImageJson;
  /** Image sources: the image came from the finished-image cache (nothing was rebuilt). */
  cacheHit?: boolean;
  /**
   * On a cache hit: the output already held exactly this image (the same file the cache wrote
   * there, unchanged since: device, inode, size, mtime, ctime) and was left untouched.
   */
  upToDate?: boolean;
}

const TRANSPORTS = ['tar', 'dir', 'oci', 'docker-archive', 'docker'] as const;

/**
 * Parses a source: "tar:PATH", "dir:PATH", "oci:PATH[:REF]", "docker-archive:PATH[:REF]",
 * "docker://REF". A bare path is a directory or an archive by what it is.
 */
export async function parseSource(spec: string): Promise<SourceSpec> {
  if (spec.startsWith('docker://')) {
    const ref = spec.slice('docker://'.length);
    if (ref === '') fail('SOURCE_BAD_SPEC', `use source ${spec}`, 'missing image reference after docker://', spec);
    return { kind: 'docker', ref };
  }
  const m = /^([a-z][a-z0-9-]*):(.*)$/s.exec(spec);
  if (m && (TRANSPORTS as readonly string[]).includes(m[1]!)) {
    if (m[2] === '') fail('SOURCE_BAD_SPEC', `use source ${spec}`, 'missing path after the transport', spec);
    if (m[1] === 'oci' || m[1] === 'docker-archive') return { kind: m[1], ...splitRef(m[2]!) };
    if (m[1] === 'docker') fail('SOURCE_BAD_SPEC', `use source ${spec}`, 'registry images are written docker://HOST/REPO:TAG', spec);
    return { kind: m[1] as 'tar' | 'dir', path: m[2]! };
  }
  const st = await stat(spec).catch(() => null);
  if (st?.isDirectory()) return { kind: 'dir', path: spec };
  if (st?.isFile()) return { kind: 'tar', path: spec };
  if (m) fail('SOURCE_BAD_SPEC', `use source ${spec}`, `unknown transport "${m[1]}" (known: ${TRANSPORTS.join(', ')})`, spec);
  return fail('SOURCE_NOT_FOUND', `use source ${spec}`, 'no such file or directory', spec);
}

/** "PATH[:REF]" as skopeo reads it: the path ends at the first colon (REF may hold more). */
function splitRef(rest: string): { path: string; ref?: string } {
  const i = rest.indexOf(':');
  if (i > 0) return { path: rest.slice(0, i), ref: rest.slice(i + 1) };
  return { path: rest };
}

export async function convert(source: string | SourceSpec, output: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const src = typeof source === 'string' ? await parseSource(source) : source;
  const warnings: Warning[] = [];
  const onWarning = (w: Warning) => {
    warnings.push(w);
    options.onWarning?.(w);
  };
  if ((src.kind === 'tar' && src.path !== '-') || src.kind === 'docker-archive') {
    const st = await stat(src.path).catch((e: NodeJS.ErrnoException) =>
      fail('SOURCE_NOT_FOUND', `read archive ${src.path}`, e.code ?? String(e), src.path, e),
    );
    if (!st.isFile()) fail('SOURCE_BAD_SPEC', `read archive ${src.path}`, 'not a regular file', src.path);
  }
  if (src.kind === 'tar' || src.kind === 'dir') {
    const summary = await writeAtomically(output, (fh) => build(fh, src, null, options, onWarning), await outputLimits(options, src, null));
    return { ...summary, output, source: src, warnings };
  }
  // Image sources: resolve first (a registry tag becomes a manifest digest), then use the cache.
  const resolveStarted = performance.now();
  const image = await resolveImage(src, options);
  const resolveMs = Math.round(performance.now() - resolveStarted);
  try {
    const cache = options.cache === false ? null : new ImageCache(options.cacheDir ?? defaultCacheDir());
    const key = cache ? ImageCache.key(version(), image.source, image.manifestDigest, cacheOptions(options)) : '';
    const cached = cache ? await cache.lookup(key) : null;
    if (cached && cache) {
      const hit = { ...cached.summary, image: imageJson(image), cacheHit: true, output, source: src, warnings };
      // make-style: the output is still exactly what this entry wrote there, so leave it be
      const checkStarted = performance.now();
      if (await cache.upToDate(cached, output)) {
        return { ...hit, timings: { [RESOLVE_TIMING]: resolveMs, [UP_TO_DATE_TIMING]: Math.round(performance.now() - checkStarted) }, upToDate: true };
      }
      // a reflink where the filesystem has them (btrfs, XFS): no bytes copied; else a full copy
      const copyStarted = performance.now();
      const ino = await writeAtomically(output, async (fh, tmp) => {
        await copyFile(cached.path, tmp, fsConstants.COPYFILE_FICLONE);
        return (await fh.stat({ bigint: true })).ino;
      });
      await recordOutput(cache, key, output, ino, onWarning);
      return { ...hit, timings: { [RESOLVE_TIMING]: resolveMs, [COPY_TIMING]: Math.round(performance.now() - copyStarted) }, upToDate: false };
    }
    let ino = 0n;
    const built = await writeAtomically(
      output,
      async (fh) => {
        const r = await build(fh, src, image, options, onWarning);
        ino = (await fh.stat({ bigint: true })).ino;
        return r;
      },
      await outputLimits(options, src, image),
    );
    // A registry image's layers download while the first ones are converted: the time spent
    // waiting for them is part of "read source, stream data" and also reported on its own.
    const waited: Record<string, number> = image.waitedMs !== undefined ? { [WAIT_TIMING]: Math.round(image.waitedMs) } : {};
    const summary = { ...built, timings: { [RESOLVE_TIMING]: resolveMs, ...waited, ...built.timings } };
    if (cache) {
      const { image: _image, ...plain } = summary;
      const kept = await cache.store(key, output, { source: image.source, manifestDigest: image.manifestDigest, sizeBytes: summary.sizeBytes, toolVersion: version(), summary: plain }, options.minFreeBytes);
      if (!kept.stored) onWarning({ code: 'CACHE_SKIPPED', message: `The image was not kept in the image cache: ${kept.reason}` });
      else await recordOutput(cache, key, output, ino, onWarning);
    }
    return { ...summary, ...(cache ? { cacheHit: false } : {}), output, source: src, warnings };
  } catch (e) {
    throw await preferDownloadFailure(image, e);
  } finally {
    await image.close?.();
  }
}

/**
 * Notes in the cache entry that `output` holds its image, so the next hit can leave it alone. The
 * image is written either way: a cache that cannot be written to (read-only, full) only costs
 * the next run a copy, and says so.
 */
async function recordOutput(cache: ImageCache, key: string, output: string, ino: bigint, onWarning: (w: Warning) => void): Promise<void> {
  try {
    await cache.recordOutput(key, output, ino);
  } catch (e) {
    onWarning({ code: 'CACHE_OUTPUT_NOT_RECORDED', message: `The image cache could not record ${output} as up to date (the next run copies it again): ${(e as Error).message}` });
  }
}

/**
 * Layers are read while they download: a blob that is not what its digest says can first show
 * as a broken tar. Once the downloads have settled, their failure is the better explanation.
 */
export async function preferDownloadFailure(image: ResolvedImage, e: unknown): Promise<unknown> {
  if (!image.close) return e;
  await image.close();
  return image.downloadFailure?.() ?? e;
}

/**
 * The limits an output is written under (see util/atomic.ts): never fill the disk, never pass
 * --max-size; the input's size is given so an error can say how much it expanded.
 */
export async function outputLimits(options: ConvertOptions, src: SourceSpec | null, image: ResolvedImage | null): Promise<OutputLimits> {
  let inputBytes: number | undefined;
  if (image) inputBytes = image.manifest.layers.reduce((n, l) => n + l.size, 0);
  else if (src?.kind === 'tar' && src.path !== '-') inputBytes = (await stat(src.path)).size;
  return {
    ...(options.maxSize !== undefined ? { maxBytes: options.maxSize } : {}),
    ...(options.minFreeBytes !== undefined ? { minFreeBytes: options.minFreeBytes } : {}),
    ...(inputBytes !== undefined ? { inputBytes } : {}),
  };
}

/** convert()'s timing of resolving an image source (for a registry: manifests and config). */
export const RESOLVE_TIMING = 'resolve image (download)';
/** convert()'s timing, on a cache hit, of checking that the output is up to date. */
export const UP_TO_DATE_TIMING = 'check output up to date';
/** convert()'s timing, on a cache hit, of copying the cached image to the output. */
export const COPY_TIMING = 'copy cached image';
/** convert()'s timing of waiting for layer blobs still downloading (within the ingest timing). */
export const WAIT_TIMING = 'of which waiting for layer downloads';

/** Source → tree → image into `fh`. */
async function build(
  fh: FileHandle,
  src: SourceSpec,
  image: ResolvedImage | null,
  options: ConvertOptions,
  onWarning: (w: Warning) => void,
): Promise<ImageSummary & { image?: ImageJson }> {
  const writer = new Ext4Writer(fh, options);
  const defaultTime = { sec: options.timestamp ?? 0, nsec: 0 };
  const tree = new FsTree({ defaultTime, onRelease: (c) => writer.release(c), onWarning });
  const ctx: IngestContext = { tree, writer, owner: options.owner, defaultTime, onProgress: options.onProgress, onWarning };
  const started = performance.now();
  await ingestSource(src, image, ctx);
  const ingestMs = Math.round(performance.now() - started);
  const summary = await writer.finish(tree);
  return {
    ...summary,
    ...(image ? { image: imageJson(image) } : {}),
    timings: { 'read source, stream data': ingestMs, ...summary.timings },
  };
}

/** Reads a source (an image already resolved) into ctx.tree, streaming file data to the image. */
export async function ingestSource(src: SourceSpec, image: ResolvedImage | null, ctx: IngestContext): Promise<void> {
  if (src.kind === 'tar') await ingestTar(src.path, ctx);
  else if (src.kind === 'dir') await ingestDir(src.path, ctx);
  else if (image) {
    const [{ LayerMerger }, { addImageJson }] = await Promise.all([import('./oci/merge.js'), import('./oci/image-json.js')]);
    await new LayerMerger(ctx).apply(image.layers);
    addImageJson(ctx.tree, image, ctx.defaultTime);
  } else throw new Error('internal: image source without a resolved image');
}

/**
 * Every option that changes an image's bytes: part of the image cache key. The writer's options
 * come from `imageOptions`, the same list the writer's fingerprint is made from.
 */
export function cacheOptions(o: ConvertOptions): Record<string, unknown> {
  return { ...imageOptions(o), owner: o.owner ?? null };
}

/**
 * How each convert option reaches a cached image: `bytes` ones are in cacheOptions; `input` ones
 * choose or fetch the input, which the cache key names by its manifest digest; `none` change
 * nothing in the image. The mapped type makes a new option without a role a compile error.
 */
export const CONVERT_OPTION_ROLES: { [K in keyof Required<ConvertOptions>]: 'bytes' | 'input' | 'none' } = {
  size: 'bytes',
  readOnly: 'bytes',
  label: 'bytes',
  uuid: 'bytes',
  journalBlocks: 'bytes',
  journal: 'bytes',
  timestamp: 'bytes',
  owner: 'bytes',
  platform: 'input',
  creds: 'input',
  tlsVerify: 'input',
  dockerConfigDir: 'input',
  minBytesPerSecond: 'input',
  rateWindowMs: 'input',
  maxLayers: 'none', // limits refuse an input or an output; they never change an image's bytes
  maxSize: 'none',
  minFreeBytes: 'none',
  cacheDir: 'none',
  cache: 'none',
  onProgress: 'none',
  onWarning: 'none',
};

/** Resolves an image source to its manifest, config and layers. */
export async function resolveImage(src: Extract<SourceSpec, { kind: 'oci' | 'docker-archive' | 'docker' }>, options: ConvertOptions): Promise<ResolvedImage> {
  const platform = options.platform ?? hostPlatform();
  const explicit = options.platform !== undefined;
  const limits = options.maxLayers !== undefined ? { maxLayers: options.maxLayers } : {};
  if (src.kind === 'oci') return (await import('./oci/layout.js')).resolveOciLayout(src.path, src.ref, platform, explicit, limits);
  if (src.kind === 'docker-archive') return (await import('./oci/archive.js')).resolveDockerArchive(src.path, src.ref, platform, explicit, limits);
  const { openRegistryImage, parseDockerReference } = await import('./oci/registry.js');
  return openRegistryImage(parseDockerReference(src.ref), {
    cacheDir: options.cacheDir ?? defaultCacheDir(),
    // only an explicit --platform makes a single-platform image of another architecture an error
    ...(options.platform ? { platform: options.platform } : {}),
    ...(options.creds ? { creds: options.creds } : {}),
    ...(options.tlsVerify !== undefined ? { tlsVerify: options.tlsVerify } : {}),
    ...(options.dockerConfigDir ? { dockerConfigDir: options.dockerConfigDir } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...limits,
    ...(options.minFreeBytes !== undefined ? { minFreeBytes: options.minFreeBytes } : {}),
    ...(options.minBytesPerSecond !== undefined ? { minBytesPerSecond: options.minBytesPerSecond } : {}),
    ...(options.rateWindowMs !== undefined ? { rateWindowMs: options.rateWindowMs } : {}),
  });
}
