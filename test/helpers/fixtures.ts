/**
 * Real-world inputs for tests: the shared fixtures beside the checkout (absent on a user's
 * machine: tests skip with a message) and a Debian minbase tar made by mmdebstrap, cached.
 */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const ROOT = new URL('../../../', import.meta.url).pathname;
export const SHARED = join(ROOT, '..', 'shared');
export const ALPINE_X86 = join(SHARED, 'fixtures/alpine/alpine-minirootfs-3.20.3-x86_64.tar.gz');
export const CONFORMANCE = join(SHARED, 'fixtures/tar-conformance');
export const NO_SHARED = `../shared/fixtures is not beside this checkout (${SHARED}); it exists in CI`;

export function cacheDir(): string {
  const dir = process.env['ROOTFORGE_TEST_CACHE'] ?? join(homedir(), '.cache', 'rootforge-test');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** In CI (CI=true) a missing prerequisite is a failure, not a skip. */
export function skipOrFail(t: { skip: (msg: string) => void }, reason: string): void {
  if (process.env['CI'] === 'true') throw new Error(`required in CI: ${reason}`);
  t.skip(reason);
}

/**
 * A Debian bookworm minbase tar from mmdebstrap (network to the Debian mirror), cached between
 * runs. Returns null with the reason when mmdebstrap is missing or fails.
 */
export function debianMinbase(): { path: string } | { skip: string } {
  const path = join(cacheDir(), 'minbase.tar');
  if (existsSync(path)) return { path };
  const which = spawnSync('which', ['mmdebstrap']);
  if (which.status !== 0) return { skip: 'mmdebstrap is not installed (apt-get install mmdebstrap; .ci/run does)' };
  const tmp = `${path}.${process.pid}.tmp`;
  const r = spawnSync('mmdebstrap', ['--variant=minbase', '--format=tar', '--quiet', 'bookworm', tmp, 'http://deb.debian.org/debian'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) return { skip: `mmdebstrap failed: ${r.stderr?.toString().slice(-500)}` };
  renameSync(tmp, path);
  return { path };
}
