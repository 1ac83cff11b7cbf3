/**
 * Lock files (`rootforge lock`): every package of a package-set base with its exact version,
 * architecture and SHA-256 from the Packages index, plus where they came from and when (the
 * Release date, the default SOURCE_DATE_EPOCH of builds from the lock). The format is shared by
 * package-set sources (Debian here; Alpine can reuse it with source.type "alpine"):
 *
 *   {
 *     "version": 1,
 *     "source": { "type": "debian", "suite", "codename", "mirror", "components", "variant",
 *                 "architecture", "packages": [requested], "repositories": [...],
 *                 "date": <Release Date, seconds>, "inputs": "sha256:<hex of the spec's inputs>" },
 *     "packages": [ { "name", "version", "architecture", "sha256", "size", "source", "filename" } ]
 *   }
 *
 * Keys are written in a fixed order and packages sorted by name, so a lock diffs well and the
 * same resolution gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fail } from '../../errors.js';
import type { DebianOptions } from './options.js';
import type { InstalledPackage } from './records.js';

export const LOCK_VERSION = 1;

export interface LockedPackage {
  name: string;
  version: string;
  architecture: string;
  sha256: string;
  size?: number;
  source?: string;
  filename?: string;
}

export interface LockSource {
  type: string; // 'debian' (others: 'alpine')
  suite: string;
  codename?: string;
  mirror: string;
  components?: string[];
  variant?: string;
  architecture: string;
  packages: string[];
  repositories?: { uri: string; suite: string; components: string[] }[];
  /** Seconds since the epoch: the Release date; builds from this lock default SOURCE_DATE_EPOCH to it. */
  date: number;
  /** "sha256:<hex>" over the spec keys that choose the package set (see lockInputs). */
  inputs: string;
}

export interface LockFile {
  version: 1;
  source: LockSource;
  packages: LockedPackage[];
}

/**
 * The digest of what decides the package set: a lock goes stale when one of these changes. The
 * mirror is not in it (a lock may be built from a local copy of the same archive), nor strip.
 */
export async function lockInputs(o: DebianOptions, arch: string): Promise<string> {
  const keys = await Promise.all(o.repositories.map(async (r) => (r.key ? sha256(await readFile(r.key)) : null)));
  const inputs = {
    type: 'debian',
    suite: o.suite,
    packages: [...o.packages].sort(),
    variant: o.variant,
    components: o.components,
    architecture: arch,
    recommends: o.recommends,
    repositories: o.repositories.map((r, i) => ({ uri: r.uri, suite: r.suite, components: r.components, key: keys[i] })),
  };
  return `sha256:${sha256(Buffer.from(JSON.stringify(inputs)))}`;
}

export function makeLock(o: DebianOptions, arch: string, inputs: string, codename: string | undefined, date: number, installed: InstalledPackage[]): LockFile {
  return {
    version: LOCK_VERSION,
    source: {
      type: 'debian',
      suite: o.suite,
      ...(codename ? { codename } : {}),
      mirror: o.mirror,
      components: o.components,
      variant: o.variant,
      architecture: arch,
      packages: [...o.packages].sort(),
      repositories: o.repositories.map((r) => ({ uri: r.uri, suite: r.suite, components: r.components })),
      date,
      inputs,
    },
    packages: installed.map((p) => ({ name: p.name, version: p.version, architecture: p.architecture, sha256: p.sha256, size: p.size, source: p.source, filename: p.filename })),
  };
}

export function formatLock(lock: LockFile): string {
  return JSON.stringify(lock, null, 2) + '\n';
}

export async function readLock(path: string): Promise<LockFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return fail('LOCK_INVALID', `read lock ${path}`, (e as NodeJS.ErrnoException).code ?? String(e), path, e);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail('LOCK_INVALID', `read lock ${path}`, `not JSON: ${(e as Error).message}`, path, e);
  }
  return checkLock(raw, path);
}

/** Checks the shape of a parsed lock; errors name the field. */
export function checkLock(raw: unknown, shown: string): LockFile {
  const bad = (field: string, why: string, value?: unknown): never => fail('LOCK_INVALID', `use lock ${shown}`, `${field} ${why}`, value === undefined ? undefined : JSON.stringify(value));
  if (!isObj(raw)) return bad('the lock', 'must be a JSON object');
  if (raw['version'] !== LOCK_VERSION) bad('version', `must be ${LOCK_VERSION}`, raw['version']);
  const s = raw['source'];
  if (!isObj(s)) return bad('source', 'must be an object');
  for (const k of ['type', 'suite', 'mirror', 'architecture', 'inputs'] as const) if (typeof s[k] !== 'string') bad(`source.${k}`, 'must be a string', s[k]);
  if (!Number.isSafeInteger(s['date']) || (s['date'] as number) < 0) bad('source.date', 'must be a whole number of seconds', s['date']);
  if (!Array.isArray(s['packages'])) bad('source.packages', 'must be a list');
  const pkgs = raw['packages'];
  if (!Array.isArray(pkgs) || pkgs.length === 0) return bad('packages', 'must be a non-empty list');
  pkgs.forEach((p: unknown, i) => {
    if (!isObj(p)) return bad(`packages[${i}]`, 'must be an object');
    for (const k of ['name', 'version', 'architecture'] as const) if (typeof p[k] !== 'string' || p[k] === '') bad(`packages[${i}].${k}`, 'must be a non-empty string', p[k]);
    if (typeof p['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(p['sha256'])) bad(`packages[${i}].sha256`, 'must be 64 lowercase hex digits', p['sha256']);
    if (!/^[a-z0-9][a-z0-9+.-]*$/.test(p['name'] as string)) bad(`packages[${i}].name`, 'is not a package name', p['name']);
    if (!/^[A-Za-z0-9.+~:-]+$/.test(p['version'] as string)) bad(`packages[${i}].version`, 'is not a version', p['version']);
    return undefined;
  });
  return raw as unknown as LockFile;
}

/** What a locked build asks apt for: NAME=VERSION (NAME:ARCH=VERSION for a foreign architecture). */
export function lockedIncludes(lock: LockFile): string[] {
  const arch = lock.source.architecture;
  return lock.packages.map((p) => (p.architecture === arch || p.architecture === 'all' ? `${p.name}=${p.version}` : `${p.name}:${p.architecture}=${p.version}`));
}

/**
 * Compares what a build installed with its lock: every locked package at its version and
 * SHA-256, nothing else. Returns the differences (empty when they agree).
 */
export function lockDifferences(lock: LockFile, installed: InstalledPackage[]): string[] {
  const want = new Map(lock.packages.map((p) => [`${p.name}:${p.architecture}`, p]));
  const diffs: string[] = [];
  for (const p of installed) {
    const key = `${p.name}:${p.architecture}`;
    const w = want.get(key);
    if (!w) diffs.push(`${key} ${p.version} is not in the lock`);
    else {
      if (w.version !== p.version) diffs.push(`${key} is ${p.version}, the lock has ${w.version}`);
      else if (w.sha256 !== p.sha256) diffs.push(`${key}=${p.version} has SHA-256 ${p.sha256.slice(0, 16)}… on the mirror, the lock has ${w.sha256.slice(0, 16)}…`);
      want.delete(key);
    }
  }
  for (const [key, w] of want) diffs.push(`${key}=${w.version} was not installed`);
  return diffs;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
