/**
 * build(): a spec → a sandbox image. The base (scratch or any convert source) is read with
 * `strip:` applied, then provisioning adds the directory layout, essential /etc files, the
 * agent and its config, the init mode, session hooks and the files overlay, and the image is
 * written like convert's: one pass, exact size, atomic output.
 */
import { ingestSource, outputLimits, parseSource, preferDownloadFailure, resolveImage, type ConvertOptions } from './convert.js';
import type { FileHandle } from 'node:fs/promises';
import { BuildRecords, buildKey } from './build-cache.js';
import { defaultCacheDir } from './util/cache-dir.js';
import type { ImageSummary } from './ext4/writer.js';
import { formatPlatform, parsePlatform } from './oci/manifest.js';
import type { Platform, ResolvedImage } from './oci/types.js';
import { hostArch, normalizeArch } from './provision/arch.js';
import { fail } from './errors.js';
import { initPath } from './provision/agent.js';
import type { ProvisionContext } from './provision/context.js';
import type { DebianPlan } from './sources/debian/index.js';
import type { InstalledPackage } from './sources/debian/records.js';
import type { AlpineStepResult } from './sources/alpine/step.js';
import type { IngestContext, Progress, Warning } from './sources/types.js';
import type { ResolvedSpec } from './spec/load.js';
import { writeAtomically } from './util/atomic.js';
import { parseSize } from './util/size.js';

export interface BuildOptions {
  /** Seconds since the epoch for provisioned files and superblock times (SOURCE_DATE_EPOCH). */
  timestamp?: number;
  /** Registry/cache options for image bases (creds, tlsVerify, cacheDir, ...). */
  image?: Pick<ConvertOptions, 'creds' | 'tlsVerify' | 'cacheDir' | 'dockerConfigDir'>;
  onProgress?: (p: Progress) => void;
  onWarning?: (w: Warning) => void;
  /** from: debian:… — also keep mmdebstrap's tar at this path (tests and benchmarks reuse it). */
  debianTarCopy?: string;
  /**
   * Skip the build when the output still holds what an earlier build of the same spec and inputs
   * wrote there (make-style; records in `<image.cacheDir>/builds`, see build-cache.ts for what the
   * key covers). Default true.
   */
  cache?: boolean;
}

export interface BuildResult extends ImageSummary {
  output: string;
  arch: string;
  init: string;
  warnings: Warning[];
  /** Paths provisioning wrote or changed. */
  provisioned: string[];
  /** from: debian:SUITE — what mmdebstrap installed, and the lock it followed. */
  debian?: { suite: string; codename: string | undefined; architecture: string; mode: string; epoch: number; lock: string | undefined; packages: InstalledPackage[] };
  /** Alpine packages installed (spec packages/profile): what, the lock, scripts left for first boot. */
  alpine?: AlpineStepResult | undefined;
  /** With the cache on: true when the output was already up to date and left alone (no build ran). */
  cacheHit?: boolean;
  /** On a hit: always true (the output held exactly this build's image). */
  upToDate?: boolean;
  /** Why this build could not be skipped even if nothing changed (an unlocked package set, say). */
  cacheSkipped?: string;
}

/**
 * What writing an image needs, loaded only when an image is written: an up-to-date build
 * (build-cache.ts) is then mostly Node's start.
 */
async function writeModules() {
  const [writer, tree, arch, agent, etc, init, lay, session, strip, manifest, dir] = await Promise.all([
    import('./ext4/writer.js'),
    import('./tree/tree.js'),
    import('./provision/arch.js'),
    import('./provision/agent.js'),
    import('./provision/etc-files.js'),
    import('./provision/init.js'),
    import('./provision/layout.js'),
    import('./provision/session.js'),
    import('./provision/strip.js'),
    import('./packages/manifest.js'),
    import('./sources/dir.js'),
  ]);
  return { Ext4Writer: writer.Ext4Writer, FsTree: tree.FsTree, detectArch: arch.detectArch, installAgent: agent.installAgent, etcFiles: etc.etcFiles, installInit: init.installInit, layout: lay.layout, installSessionHooks: session.installSessionHooks, stripFilter: strip.stripFilter, writePackagesManifest: manifest.writePackagesManifest, ingestDir: dir.ingestDir };
}

/** parsePlatform, with the uname names of architectures accepted (linux/aarch64 is linux/arm64). */
function normalizedPlatform(text: string): Platform {
  const p = parsePlatform(text);
  return { ...p, architecture: normalizeArch(p.architecture) };
}

export async function buildImage(spec: ResolvedSpec, options: BuildOptions = {}): Promise<BuildResult> {
  const warnings: Warning[] = [];
  const onWarning = (w: Warning) => {
    warnings.push(w);
    options.onWarning?.(w);
  };
  const platform = spec.platform ? normalizedPlatform(spec.platform) : undefined;
  // Debian: the spec's `architecture`, else the build's platform, else the host's.
  const debianMod = spec.debian ? await import('./sources/debian/index.js') : null;
  const alpineMod = spec.alpine ? await import('./sources/alpine/step.js') : null;
  const debianPlan: DebianPlan | null = spec.debian
    ? await debianMod!.prepareDebian(
        { ...spec.debian, ...(spec.debian.architecture === undefined && platform ? { architecture: platform.architecture } : {}) },
        { lockPath: spec.lockPath, lockRequired: spec.lockExplicit, epoch: options.timestamp, strip: spec.strip },
      )
    : null;
  const alpine = spec.alpine ? await alpineMod!.alpineBase(spec.alpine, platform?.architecture ?? hostArch(), options.image?.cacheDir) : undefined;
  const from = alpine?.from ?? spec.from;
  const src = from === 'scratch' || debianPlan ? null : await parseSource(from);
  let image: ResolvedImage | null = null;
  if (src && (src.kind === 'oci' || src.kind === 'docker-archive' || src.kind === 'docker')) {
    image = await resolveImage(src, { ...options.image, ...(platform ? { platform } : {}) });
  }
  const timestamp = options.timestamp ?? debianPlan?.epoch ?? 0;
  let debian: BuildResult['debian'];
  const changed: string[] = [];
  let arch = '';
  let alpineResult: AlpineStepResult | undefined;
  let summary: ImageSummary;
  // Not with debianTarCopy: the tar is made only by a build that runs mmdebstrap.
  const records = options.cache === false || options.debianTarCopy !== undefined ? null : new BuildRecords(options.image?.cacheDir ?? defaultCacheDir());
  let cacheSkipped: string | undefined;
  try {
    // The cache only ever saves work: a problem with it (an unreadable input the build will
    // report itself, an unreadable record) is a miss and a warning, never the build's failure.
    let keyed: Awaited<ReturnType<typeof buildKey>> | null = null;
    if (records) {
      try {
        keyed = await buildKey({ spec, timestamp: options.timestamp, src, image, debian: debianPlan, alpine });
      } catch (e) {
        keyed = { reason: `the build's inputs could not be checked: ${(e as Error).message}` };
        onWarning({ code: 'CACHE_SKIPPED', message: `Building in full: ${keyed.reason}` });
      }
    }
    cacheSkipped = keyed?.reason;
    const key = keyed?.key;
    if (records && key !== undefined) {
      const hit = await records.lookup(key, spec.output).catch((e: unknown) => {
        onWarning({ code: 'CACHE_SKIPPED', message: `The build record could not be read (building in full): ${(e as Error).message}` });
        return null;
      });
      if (hit) return { ...(hit as BuildResult), output: spec.output, cacheHit: true, upToDate: true };
    }
    // Never fill the disk, as convert does.
    const limits = await outputLimits(options.image ?? {}, src, image);
    let ino = 0n;
    summary = await writeAtomically(
      spec.output,
      async (fh) => {
        const r = await writeImage(fh);
        ino = (await fh.stat({ bigint: true })).ino;
        return r;
      },
      limits,
    );
    const result: BuildResult = { ...summary, output: spec.output, arch, init: initPath(spec), warnings, provisioned: changed, ...(debian ? { debian } : {}), alpine: alpineResult };
    if (records && key !== undefined) {
      await records.record(key, spec.output, ino, result, onWarning);
      return { ...result, cacheHit: false };
    }
    return { ...result, ...(cacheSkipped !== undefined ? { cacheSkipped } : {}) };
  } catch (e) {
    throw image ? await preferDownloadFailure(image, e) : e;
  } finally {
    await image?.close?.(); // a registry image's background downloads, connections
  }

  async function writeImage(fh: FileHandle): Promise<ImageSummary> {
    const { Ext4Writer, FsTree, detectArch, installAgent, etcFiles, installInit, layout, installSessionHooks, stripFilter, writePackagesManifest, ingestDir } = await writeModules();
    const writer = new Ext4Writer(fh, {
      size: parseSize(spec.size),
      readOnly: spec.readOnly,
      journal: spec.journal,
      label: spec.label,
      timestamp,
    });
    const time = { sec: timestamp, nsec: 0 };
    const tree = new FsTree({ defaultTime: time, onRelease: (c) => writer.release(c), onWarning });
    const ctx: IngestContext = { tree, writer, defaultTime: time, exclude: stripFilter(spec.strip), onProgress: options.onProgress, onWarning };
    if (src) await ingestSource(src, image, ctx);
    if (debianPlan) {
      const run = await debianMod!.ingestDebian(debianPlan, ctx, (phase) => options.onProgress?.({ done: 0, total: undefined, phase }), options.debianTarCopy);
      const o = debianPlan.options;
      debian = { suite: o.suite, codename: run.release?.codename, architecture: debianPlan.architecture, mode: debianPlan.mode, epoch: debianPlan.epoch, lock: debianPlan.lockPath, packages: run.packages };
    }
    const detected = image === null && src !== null ? await detectArch(tree, writer) : null;
    if (platform !== undefined && detected !== null && detected !== platform.architecture) {
      fail('SOURCE_PLATFORM_MISMATCH', `build for ${formatPlatform(platform)}`, `the base's programs are ${detected} (from its /bin/sh)`, spec.from);
    }
    arch = platform?.architecture ?? image?.config.architecture ?? debianPlan?.architecture ?? detected ?? hostArch();
    tree.followParentLinks = true;
    const p: ProvisionContext = { tree, writer, time, onWarning, changed };
    if (spec.alpine && alpine) {
      alpineResult = await alpineMod!.installAlpinePackages(p, spec.alpine, arch, alpine, options.image?.cacheDir);
      if (alpineResult.pending.length > 0 && (spec.init !== 'wrapper' || spec.readOnly)) {
        const why = spec.readOnly ? 'a read-only image cannot run them' : 'only init: wrapper runs them';
        onWarning({ code: 'APK_SCRIPTS_NOT_RUN', message: `${alpineResult.pending.length} package scripts wait for the first boot, but ${why} (${alpineResult.pending.slice(0, 3).join(', ')}${alpineResult.pending.length > 3 ? ', …' : ''})` });
      }
    }
    layout(p, spec, image !== null);
    await etcFiles(p, spec);
    await installAgent(p, spec, arch, image !== null);
    installInit(p, spec);
    installSessionHooks(p);
    if (spec.files) {
      await ingestDir(spec.files, { tree, writer, defaultTime: time, owner: spec.filesOwner, onWarning }, { applyRootAttrs: false });
      changed.push(`(files from ${spec.files})`);
    }
    await writePackagesManifest(p); // /etc/rootforge/packages.json from the dpkg or apk database, if any
    return writer.finish(tree);
  }
}
