/**
 * The lock of an Alpine build: the exact base and packages, so a later build installs the same
 * bytes or fails (APK_LOCK_MISMATCH / APK_CHECKSUM_MISMATCH) instead of drifting.
 *
 *   { "version": 1,
 *     "source": { "kind": "alpine", "branch": "v3.23", "arch": "x86_64",
 *                 "minirootfs": { "url": "…", "sha256": "…" }, "repositories": [...], "world": [...] },
 *     "packages": [ { "name", "version", "architecture", "checksum": "Q1…", "repository", "size" } ] }
 *
 * `checksum` is apk's package identity (SHA-1 of the signed control stream, which pins the
 * data stream through its datahash).
 */
import { readFile } from 'node:fs/promises';
import { fail } from '../../errors.js';
import { writeAtomically } from '../../util/atomic.js';
import type { InstalledSummary } from './install.js';
import type { MinirootfsPin } from './minirootfs.js';

export interface AlpineLock {
  version: 1;
  source: {
    kind: 'alpine';
    branch?: string | undefined;
    arch: string;
    minirootfs?: MinirootfsPin | undefined;
    repositories: string[];
    world: string[];
  };
  packages: Array<{ name: string; version: string; architecture: string; checksum: string; repository: string; size: number }>;
}

export function makeLock(source: AlpineLock['source'], installed: InstalledSummary[]): AlpineLock {
  const packages = installed
    .map((p) => ({ name: p.name, version: p.version, architecture: p.arch, checksum: p.checksum, repository: p.repository, size: p.size }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { version: 1, source, packages };
}

export async function writeLock(path: string, lock: AlpineLock): Promise<void> {
  await writeAtomically(path, (fh) => fh.writeFile(JSON.stringify(lock, null, 2) + '\n'));
}

/** Reads a lock; null when there is none. */
export async function readLock(path: string): Promise<AlpineLock | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let lock: AlpineLock;
  try {
    lock = JSON.parse(text) as AlpineLock;
  } catch (e) {
    return fail('APK_LOCK_MISMATCH', `read lock ${path}`, 'not JSON', path, e);
  }
  if (lock.version !== 1 || lock.source?.kind !== 'alpine' || !Array.isArray(lock.packages)) fail('APK_LOCK_MISMATCH', `read lock ${path}`, 'not a version 1 Alpine lock', path);
  return lock;
}

export function pinsOf(lock: AlpineLock): Map<string, { version: string; checksum: string }> {
  return new Map(lock.packages.map((p) => [p.name, { version: p.version, checksum: p.checksum }]));
}
