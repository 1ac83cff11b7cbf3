/**
 * The Alpine part of a build spec — a contract other tools write specs against:
 *
 *   from: alpine:v3.23          a branch: its official minirootfs is the base (SHA-256 pinned
 *                               in the lock), its main + community the default repositories
 *   packages: [curl, git]       apk dependencies added to the world (`name`, `name>=1.2`, `!name`)
 *   profile: balanced           a package list: profiles/alpine/<name>.txt, or a .txt path
 *   repositories: [URL|DIR]     each holds <arch>/APKINDEX.tar.gz (default: the branch's, else the
 *                               base's /etc/apk/repositories)
 *   keys: [FILE]                extra trusted public keys (the base's /etc/apk/keys always are)
 */
import { archByName } from '../../verify/arch.js';
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fail } from '../../errors.js';
import { CDN, isUrl } from './repo.js';

export const PROFILES_DIR = new URL('../../../../profiles/alpine/', import.meta.url).pathname;

export interface AlpineSpec {
  /** `v3.23`, `edge` … when the base is `alpine:BRANCH`. */
  branch: string | undefined;
  profile: string | undefined;
  /** Profile packages then `packages`, without repeats. */
  packages: string[];
  /** As given (directories made absolute); empty: the default (see above). */
  repositories: string[];
  keys: string[];
  /** The lock file beside the spec (<spec name>.lock.json). */
  lock: string;
  /** Install what the lock says when it exists (false for `rootforge lock`, which renews it). */
  useLock: boolean;
}

export function alpineMirror(): string {
  return (process.env['ROOTFORGE_ALPINE_MIRROR'] || CDN).replace(/\/+$/, '');
}

export function branchRepositories(branch: string): string[] {
  const m = alpineMirror();
  return [`${m}/${branch}/main`, `${m}/${branch}/community`];
}

/** The apk architecture for an image architecture (GOARCH-style names). */
export function apkArch(arch: string): string {
  return archByName(arch)?.alpine ?? arch;
}

export function readProfile(profile: string, baseDir: string, shown: string): string[] {
  const path = /^[a-z0-9][a-z0-9_-]*$/.test(profile) ? join(PROFILES_DIR, `${profile}.txt`) : isAbsolute(profile) ? profile : join(baseDir, profile);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return fail('SPEC_INVALID', `use spec ${shown}`, `spec.profile: no such profile (${(e as NodeJS.ErrnoException).code})`, profile, e);
  }
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l !== '');
}

export function resolveAlpineSpec(
  s: { from?: string | undefined; packages?: string[] | undefined; profile?: string | undefined; repositories?: string[] | undefined; keys?: string[] | undefined },
  baseDir: string,
  name: string,
  shown: string,
): AlpineSpec | undefined {
  const m = /^alpine:(.+)$/.exec(s.from ?? '');
  const branch = m?.[1];
  if (!branch && s.packages === undefined && s.profile === undefined && s.repositories === undefined && s.keys === undefined) return undefined;
  if (branch !== undefined && !/^(v\d+\.\d+|edge|latest-stable)$/.test(branch)) fail('SPEC_INVALID', `use spec ${shown}`, 'spec.from: an Alpine branch is vN.N, edge or latest-stable', s.from);
  const packages: string[] = [];
  for (const p of [...(s.profile ? readProfile(s.profile, baseDir, shown) : []), ...(s.packages ?? [])]) if (!packages.includes(p)) packages.push(p);
  return {
    branch,
    profile: s.profile,
    packages,
    repositories: (s.repositories ?? []).map((r) => (isUrl(r) || isAbsolute(r) ? r : join(baseDir, r))),
    keys: (s.keys ?? []).map((k) => (isAbsolute(k) ? k : join(baseDir, k))),
    lock: join(baseDir, `${name}.lock.json`),
    useLock: true,
  };
}
