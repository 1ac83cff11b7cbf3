/**
 * `from: debian:SUITE` — a Debian package set as an image base, built by mmdebstrap and read
 * from its pipe (mmdebstrap.ts), optionally pinned by a lock (lock.ts).
 *
 *   prepareDebian()  host checks (mmdebstrap, mode, foreign arch, proxy), the lock (stale or
 *                    not), SOURCE_DATE_EPOCH (the caller's, else the lock's, else the suite's
 *                    Release date) — everything that can fail before an output file exists
 *   ingestDebian()   runs mmdebstrap into the tree; a locked build must install exactly the lock
 *   lockDebian()     resolves the package set without keeping a root (format null) → a lock
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheDir } from '../../oci/cache.js';
import { fail } from '../../errors.js';
import type { StripItem } from '../../spec/types.js';
import type { IngestContext } from '../types.js';
import { checkForeignArch, chooseMode, fetchReleaseDate, hostAptProxy, hostDebianArch, requireMmdebstrap, type AptProxy, type MmdebstrapMode } from './host.js';
import { lockDifferences, lockedIncludes, lockInputs, makeLock, readLock, type LockFile } from './lock.js';
import { runMmdebstrap, type MmdebstrapRun } from './mmdebstrap.js';
import type { DebianOptions } from './options.js';

export interface DebianPlan {
  options: DebianOptions;
  program: string;
  mode: MmdebstrapMode;
  architecture: string;
  proxy: AptProxy;
  /** The lock this build installs exactly, if any. */
  lock: LockFile | undefined;
  lockPath: string | undefined;
  /** SOURCE_DATE_EPOCH for mmdebstrap and the image. */
  epoch: number;
  strip: StripItem[];
  /** Where .deb files are kept between builds; undefined: none. */
  debCache: string | undefined;
}

export interface PrepareOptions {
  /** The lock file to use when it exists. */
  lockPath: string;
  /** The spec named the lock: it must exist. */
  lockRequired: boolean;
  /** false: ignore any lock (`rootforge lock` re-resolving). */
  useLock?: boolean;
  /** SOURCE_DATE_EPOCH given by the caller. */
  epoch: number | undefined;
  strip: StripItem[];
  /** rootforge's cache directory (default $XDG_CACHE_HOME/rootforge): .debs go to <it>/debs. */
  cacheDir?: string | undefined;
}

export async function prepareDebian(o: DebianOptions, p: PrepareOptions): Promise<DebianPlan> {
  const program = requireMmdebstrap();
  const mode = chooseMode();
  const host = hostDebianArch();
  const architecture = o.architecture ?? host;
  checkForeignArch(architecture, host);
  const proxy = hostAptProxy();
  let lock: LockFile | undefined;
  if (p.useLock !== false && (p.lockRequired || existsSync(p.lockPath))) {
    lock = await readLock(p.lockPath);
    if (lock.source.type !== 'debian') fail('LOCK_STALE', `use lock ${p.lockPath}`, `it locks a ${lock.source.type} base, the spec builds from debian:${o.suite}`, lock.source.type);
    const inputs = await lockInputs(o, architecture);
    if (lock.source.inputs !== inputs) {
      fail('LOCK_STALE', `use lock ${p.lockPath}`, `the spec's suite, packages, variant, components, repositories or architecture changed since it was written; run rootforge lock`, p.lockPath);
    }
  }
  const epoch = p.epoch ?? lock?.source.date ?? (await fetchReleaseDate(o.mirror, o.suite, proxy));
  // ROOTFORGE_DEB_CACHE=off: download every package every time (benchmarks compare like with like)
  const debCache = process.env['ROOTFORGE_DEB_CACHE'] === 'off' ? undefined : join(p.cacheDir ?? defaultCacheDir(), 'debs');
  return { options: o, program, mode, architecture, proxy, lock, lockPath: lock ? p.lockPath : undefined, epoch, strip: p.strip, debCache };
}

/** Builds the base into the tree; with a lock, fails (typed) unless exactly the lock was installed. */
export async function ingestDebian(plan: DebianPlan, ctx: IngestContext, onPhase?: (phase: string) => void, tarCopy?: string): Promise<MmdebstrapRun> {
  const run = await runMmdebstrap(
    plan.program,
    plan.options,
    { mode: plan.mode, format: 'tar', architecture: plan.architecture, strip: plan.strip, proxy: plan.proxy, lockedIncludes: plan.lock ? lockedIncludes(plan.lock) : undefined, debCache: plan.debCache },
    { epoch: plan.epoch, ingest: ctx, onPhase, tarCopy },
  );
  if (plan.lock) {
    const diffs = lockDifferences(plan.lock, run.packages);
    if (diffs.length > 0) {
      fail('LOCK_MISMATCH', `build from lock ${plan.lockPath}`, `the mirror gave ${diffs.length} package(s) other than locked: ${diffs.slice(0, 8).join('; ')}${diffs.length > 8 ? '; …' : ''}`, plan.options.mirror);
    }
  }
  return run;
}

/** Resolves the spec's package set against the mirror (mmdebstrap, format null) into a lock. */
export async function lockDebian(plan: DebianPlan, onPhase?: (phase: string) => void): Promise<LockFile> {
  const run = await runMmdebstrap(
    plan.program,
    plan.options,
    { mode: plan.mode, format: 'null', architecture: plan.architecture, strip: plan.strip, proxy: plan.proxy, debCache: plan.debCache },
    { epoch: plan.epoch, onPhase },
  );
  const date = run.release?.date ?? plan.epoch;
  const inputs = await lockInputs(plan.options, plan.architecture);
  return makeLock(plan.options, plan.architecture, inputs, run.release?.codename, date, run.packages);
}

export type { DebianOptions } from './options.js';
export type { LockFile } from './lock.js';
