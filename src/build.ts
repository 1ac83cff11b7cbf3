/**
 * build(): a spec → a sandbox image. The base (scratch or any convert source) is read with
 * `strip:` applied, then provisioning adds the directory layout, essential /etc files, the
 * agent and its config, the init mode, session hooks and the files overlay, and the image is
 * written like convert's: one pass, exact size, atomic output.
 */
import { ingestSource, parseSource, resolveImage, type ConvertOptions } from './convert.js';
import type { FileHandle } from 'node:fs/promises';
import { Ext4Writer, type ImageSummary } from './ext4/writer.js';
import { parsePlatform } from './oci/manifest.js';
import type { ResolvedImage } from './oci/types.js';
import { detectArch, hostArch } from './provision/arch.js';
import { installAgent, initPath } from './provision/agent.js';
import type { ProvisionContext } from './provision/context.js';
import { etcFiles } from './provision/etc-files.js';
import { installInit } from './provision/init.js';
import { layout } from './provision/layout.js';
import { installSessionHooks } from './provision/session.js';
import { stripFilter } from './provision/strip.js';
import { ingestDir } from './sources/dir.js';
import { alpineBase, installAlpinePackages, type AlpineStepResult } from './sources/alpine/step.js';
import type { IngestContext, Progress, Warning } from './sources/types.js';
import type { ResolvedSpec } from './spec/load.js';
import { FsTree } from './tree/tree.js';
import { writeAtomically } from './util/atomic.js';
import { parseSize } from './util/size.js';

export interface BuildOptions {
  /** Seconds since the epoch for provisioned files and superblock times (SOURCE_DATE_EPOCH). */
  timestamp?: number;
  /** Registry/cache options for image bases (creds, tlsVerify, cacheDir, ...). */
  image?: Pick<ConvertOptions, 'creds' | 'tlsVerify' | 'cacheDir' | 'dockerConfigDir'>;
  onProgress?: (p: Progress) => void;
  onWarning?: (w: Warning) => void;
}

export interface BuildResult extends ImageSummary {
  output: string;
  arch: string;
  init: string;
  warnings: Warning[];
  /** Paths provisioning wrote or changed. */
  provisioned: string[];
  /** Alpine packages installed (spec packages/profile): what, the lock, scripts left for first boot. */
  alpine?: AlpineStepResult | undefined;
}

export async function buildImage(spec: ResolvedSpec, options: BuildOptions = {}): Promise<BuildResult> {
  const warnings: Warning[] = [];
  const onWarning = (w: Warning) => {
    warnings.push(w);
    options.onWarning?.(w);
  };
  const platform = spec.platform ? parsePlatform(spec.platform) : undefined;
  const alpine = spec.alpine ? await alpineBase(spec.alpine, platform?.architecture ?? hostArch(), options.image?.cacheDir) : undefined;
  const from = alpine?.from ?? spec.from;
  const src = from === 'scratch' ? null : await parseSource(from);
  let image: ResolvedImage | null = null;
  if (src && (src.kind === 'oci' || src.kind === 'docker-archive' || src.kind === 'docker')) {
    image = await resolveImage(src, { ...options.image, ...(platform ? { platform } : {}) });
  }
  const timestamp = options.timestamp ?? 0;
  const changed: string[] = [];
  let arch = '';
  let alpineResult: AlpineStepResult | undefined;
  let summary: ImageSummary;
  try {
    summary = await writeAtomically(spec.output, writeImage);
  } finally {
    await image?.close?.(); // a registry image's background downloads, connections
  }
  return { ...summary, output: spec.output, arch, init: initPath(spec), warnings, provisioned: changed, alpine: alpineResult };

  async function writeImage(fh: FileHandle): Promise<ImageSummary> {
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
    arch = platform?.architecture ?? image?.config.architecture ?? (await detectArch(tree, writer)) ?? hostArch();
    tree.followParentLinks = true;
    const p: ProvisionContext = { tree, writer, time, onWarning, changed };
    if (spec.alpine && alpine) {
      alpineResult = await installAlpinePackages(p, spec.alpine, arch, alpine, options.image?.cacheDir);
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
    return writer.finish(tree);
  }
}
