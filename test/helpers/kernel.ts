/**
 * Real kernel material for the kernel tests: Debian's cloud kernel package (apt-get download,
 * following the linux-image-cloud-amd64 metapackage to the real linux-image-6.1.0-…-cloud-amd64),
 * cached in ~/.cache/rootforge-test/debs (or $ROOTFORGE_TEST_CACHE), and the initramfs /init
 * built from initrd/. Without apt or the mirror the tests skip, unless CI=true, where that fails.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from './fixtures.js';
import { aptDownload } from '../../src/kernel/kernel-deb.js';
import { dependsNames, readDebControl } from '../../src/kernel/deb.js';
import { initBinaryPath } from '../../src/kernel/initramfs.js';

export const REPO = new URL('../../../', import.meta.url).pathname;
const META = 'linux-image-cloud-amd64';

let cached: Promise<{ path: string; package: string } | { skip: string }> | undefined;

/** The real (non-meta) cloud kernel .deb, downloaded once and kept. */
export function debianCloudKernel(): Promise<{ path: string; package: string } | { skip: string }> {
  cached ??= fetchDeb();
  return cached;
}

async function fetchDeb(): Promise<{ path: string; package: string } | { skip: string }> {
  if (process.arch !== 'x64') return { skip: `the Debian cloud kernel tests use the amd64 package (this is ${process.arch})` };
  const dir = join(cacheDir(), 'debs');
  mkdirSync(dir, { recursive: true });
  const have = readdirSync(dir).filter((f) => /^linux-image-[0-9].*-cloud-amd64_.*\.deb$/.test(f));
  if (have.length > 0) {
    const f = have.sort().pop()!;
    return { path: join(dir, f), package: f.split('_')[0]! };
  }
  if (spawnSync('apt-get', ['--version']).status !== 0) return { skip: 'apt-get is not available' };
  const tmp = mkdtempSync(join(dir, '.dl-'));
  try {
    const meta = await aptDownload(META, tmp);
    const real = dependsNames((await readDebControl(meta))['Depends']).find((d) => d.startsWith('linux-image-'));
    if (real === undefined) return { skip: `${META} has no linux-image-* dependency` };
    const deb = await aptDownload(real, tmp);
    const dest = join(dir, deb.split('/').pop()!);
    renameSync(deb, dest);
    return { path: dest, package: real };
  } catch (e) {
    return { skip: `cannot download ${META} with apt-get: ${(e as Error).message}` };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** In CI a missing prerequisite fails the test instead of skipping it. */
export function skipOrFail(t: { skip: (m: string) => void }, reason: string): void {
  if (process.env['CI'] === 'true') throw new Error(`required in CI: ${reason}`);
  t.skip(reason);
}

let initBuilt: string | null | undefined;

/** build/initrd/linux-amd64/init, (re)built with scripts/build-initrd.mjs when Go is here. */
export function initBinary(): { path: string | null; why?: string } {
  if (initBuilt === undefined) {
    if (spawnSync('go', ['version']).status === 0) {
      const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'build-initrd.mjs'), '--arch', process.arch === 'arm64' ? 'arm64' : 'amd64', '--quiet'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`building the initrd init failed: ${r.stderr}`);
    }
    const p = initBinaryPath(process.arch === 'arm64' ? 'aarch64' : 'x86_64');
    initBuilt = existsSync(p) ? p : null;
  }
  if (initBuilt === null) {
    if (process.env['CI'] === 'true') throw new Error('no Go toolchain and no prebuilt build/initrd: CI must be able to build initrd/');
    return { path: null, why: 'no Go toolchain (apt-get install golang-go) and no build/initrd binary' };
  }
  return { path: initBuilt };
}

export function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd]).status === 0;
}
