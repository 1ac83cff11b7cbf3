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

/** The Debian package (scripts/system-packages.txt) that brings each tool the tests run. */
const TOOL_PACKAGES: Record<string, string> = {
  mmdebstrap: 'mmdebstrap', bsdtar: 'libarchive-tools', setfattr: 'attr', getfattr: 'attr', setfacl: 'acl',
  getfacl: 'acl', setcap: 'libcap2-bin', getcap: 'libcap2-bin', umoci: 'umoci', skopeo: 'skopeo',
  'docker-registry': 'docker-registry', htpasswd: 'apache2-utils', openssl: 'openssl', cpio: 'cpio', lz4: 'lz4',
  depmod: 'kmod', readelf: 'binutils', 'qemu-system-x86_64': 'qemu-system-x86', go: 'golang-go',
  e2fsck: 'e2fsprogs', debugfs: 'e2fsprogs', python3: 'python3', zstd: 'zstd', mkfifo: 'coreutils',
};

/**
 * null when every tool is on PATH, else the reason to skip, naming the line that installs it.
 */
export function missingTool(...tools: string[]): string | null {
  for (const t of tools) {
    if (spawnSync('which', [t]).status === 0) continue;
    const pkg = TOOL_PACKAGES[t] ?? t;
    return `${t} is not installed (./scripts/install-deps installs it; or apt-get install ${pkg})`;
  }
  return null;
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
  const missing = missingTool('mmdebstrap');
  if (missing) return { skip: missing };
  const tmp = `${path}.${process.pid}.tmp`;
  const r = spawnSync('mmdebstrap', ['--variant=minbase', '--format=tar', '--quiet', 'bookworm', tmp, 'http://deb.debian.org/debian'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) return { skip: `mmdebstrap failed: ${r.stderr?.toString().slice(-500)}` };
  renameSync(tmp, path);
  return { path };
}
