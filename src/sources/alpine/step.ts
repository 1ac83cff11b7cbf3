/**
 * The Alpine step of `rootforge build`: picks the base (the branch's minirootfs) before the
 * image is read, and installs the spec's packages into the tree after it, with the lock when
 * there is one. build-image.ts calls these two functions and nothing else from here.
 */
import { fail } from '../../errors.js';
import { defaultCacheDir } from '../../oci/cache.js';
import { readTreeFile, type ProvisionContext } from '../../provision/context.js';
import { installApk, type ApkInstallResult } from './install.js';
import { makeLock, pinsOf, readLock, type AlpineLock } from './lock.js';
import { latestMinirootfs, minirootfsTar, type MinirootfsPin } from './minirootfs.js';
import { apkArch, branchRepositories, type AlpineSpec } from './spec.js';

export interface AlpineBase {
  /** A tar: source for the minirootfs, when the spec's base is alpine:BRANCH. */
  from: string | undefined;
  pin: MinirootfsPin | undefined;
  lock: AlpineLock | null;
}

/** Resolves `alpine:BRANCH` to the cached minirootfs tarball (pinned by the lock when present). */
export async function alpineBase(alpine: AlpineSpec, arch: string, cacheDir?: string): Promise<AlpineBase> {
  const lock = alpine.useLock ? await readLock(alpine.lock) : null;
  if (!alpine.branch) return { from: undefined, pin: undefined, lock };
  const a = apkArch(arch);
  const pin = lock?.source.minirootfs ?? (await latestMinirootfs(alpine.branch, a));
  const path = await minirootfsTar(pin, cacheDir ?? defaultCacheDir());
  return { from: `tar:${path}`, pin, lock };
}

export interface AlpineStepResult extends ApkInstallResult {
  lock: AlpineLock;
}

export async function installAlpinePackages(ctx: ProvisionContext, alpine: AlpineSpec, arch: string, base: AlpineBase, cacheDir?: string): Promise<AlpineStepResult> {
  const a = apkArch(arch);
  let repositories = alpine.repositories;
  if (repositories.length === 0 && alpine.branch) repositories = branchRepositories(alpine.branch);
  if (repositories.length === 0) {
    // like apk: the image's own /etc/apk/repositories (tagged lines `@tag URL` are left out)
    const text = (await readTreeFile(ctx, 'etc/apk/repositories'))?.toString('utf8') ?? '';
    repositories = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('@'));
  }
  if (repositories.length === 0) fail('SPEC_INVALID', 'install Alpine packages', 'spec.repositories is empty and the base has no /etc/apk/repositories', alpine.packages.join(' '));
  if (base.lock && base.lock.source.arch !== a) fail('APK_LOCK_MISMATCH', `use lock ${alpine.lock}`, `it is for ${base.lock.source.arch}, the image is ${a}`, alpine.lock);
  const result = await installApk(ctx, {
    repositories,
    packages: alpine.packages,
    keys: alpine.keys,
    arch: a,
    pins: base.lock ? pinsOf(base.lock) : undefined,
    cacheDir: cacheDir ?? defaultCacheDir(),
  });
  const lock = makeLock({ kind: 'alpine', branch: alpine.branch, arch: a, minirootfs: base.pin, repositories, world: result.world }, result.installed);
  return { ...result, lock };
}
