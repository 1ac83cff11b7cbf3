/**
 * kernels.lock.json: what `rootforge kernel fetch` may download, with versions, URLs and SHA-256
 * per architecture. Checked in at the package root; `--lock FILE` (or `lockPath`) uses another.
 *
 *   { "schema": 1,
 *     "firecracker": { "default": "1.17.0", "versions": { "1.17.0": { "x86_64": {
 *         "url": …tgz, "sha256": …, "files": { "firecracker": { "member": "release-…/firecracker-…", "sha256": … },
 *                                              "jailer": { … } } }, "aarch64": { … } } } },
 *     "kernels": { "default": "6.1.141", "versions": { "6.1.141": { "x86_64": { "url", "sha256", "size"? } } } } }
 *
 * FIRECRACKER_VERSION / KERNEL_VERSION choose another entry ("v1.16.1" and "1.16.1" are the
 * same). A version or architecture that is not in the lock file is KERNEL_NOT_PINNED: there is
 * deliberately no "download without checking" switch — Firecracker's CI bucket publishes no
 * checksums, so an unpinned download could not be verified against anything, and a lock file
 * that can be bypassed by an environment variable pins nothing. To use another version, add it
 * with its checksum to a lock file of your own and pass --lock.
 *
 * ROOTFORGE_DOWNLOAD_BASE (or `downloadBase`) replaces every URL's scheme and host, keeping its
 * path: with base http://127.0.0.1:8080/mirror, https://github.com/a/b.tgz is fetched from
 * http://127.0.0.1:8080/mirror/a/b.tgz. For mirrors and for tests.
 */
import { hostArch, vmArch } from '../verify/arch.js';
import { readFileSync } from 'node:fs';
import { fail } from '../errors.js';
import type { KernelArch } from './kernel-elf.js';

export interface LockedFile {
  url: string;
  sha256: string;
  size?: number;
}

export interface LockedRelease extends LockedFile {
  /** Files taken out of the archive, by the name they get in the cache. */
  files: Record<string, { member: string; sha256: string }>;
}

export interface KernelLock {
  schema: 1;
  firecracker: { default: string; versions: Record<string, Partial<Record<KernelArch, LockedRelease>> & { sources?: string }> };
  kernels: { default: string; versions: Record<string, Partial<Record<KernelArch, LockedFile>> & { sources?: string }> };
}

/** The lock file shipped with rootforge (package root). */
export const DEFAULT_LOCK_PATH = new URL('../../../kernels.lock.json', import.meta.url).pathname;

const HEX64 = /^[0-9a-f]{64}$/;
const ARCHES: KernelArch[] = ['x86_64', 'aarch64'];

export function loadKernelLock(path: string = DEFAULT_LOCK_PATH): KernelLock {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return fail('KERNEL_LOCK_INVALID', 'read the kernel lock file', (e as NodeJS.ErrnoException).code ?? String(e), path, e);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail('KERNEL_LOCK_INVALID', 'read the kernel lock file', `not JSON: ${(e as Error).message}`, path, e);
  }
  validate(raw, path);
  return raw as KernelLock;
}

function validate(raw: unknown, path: string): void {
  const bad = (where: string, why: string): never => fail('KERNEL_LOCK_INVALID', 'read the kernel lock file', `${where}: ${why}`, path);
  const obj = (v: unknown, where: string): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(where, 'expected an object');
    return v as Record<string, unknown>;
  };
  const file = (v: unknown, where: string): Record<string, unknown> => {
    const f = obj(v, where);
    if (typeof f['url'] !== 'string' || !/^https?:\/\//.test(f['url'])) bad(`${where}.url`, 'expected an http(s) URL');
    if (typeof f['sha256'] !== 'string' || !HEX64.test(f['sha256'])) bad(`${where}.sha256`, 'expected 64 lowercase hex digits');
    if (f['size'] !== undefined && !(Number.isSafeInteger(f['size']) && (f['size'] as number) > 0)) bad(`${where}.size`, 'expected a positive integer');
    return f;
  };
  const top = obj(raw, '(top)');
  if (top['schema'] !== 1) bad('schema', 'expected 1');
  for (const section of ['firecracker', 'kernels'] as const) {
    const s = obj(top[section], section);
    const versions = obj(s['versions'], `${section}.versions`);
    if (typeof s['default'] !== 'string' || versions[s['default']] === undefined) bad(`${section}.default`, 'must name one of the versions');
    for (const [ver, entry] of Object.entries(versions)) {
      const e = obj(entry, `${section}.versions.${ver}`);
      for (const arch of ARCHES) {
        if (e[arch] === undefined) continue;
        const f = file(e[arch], `${section}.versions.${ver}.${arch}`);
        if (section === 'firecracker') {
          const files = obj(f['files'], `${section}.versions.${ver}.${arch}.files`);
          for (const name of ['firecracker', 'jailer']) {
            const m = obj(files[name], `${section}.versions.${ver}.${arch}.files.${name}`);
            if (typeof m['member'] !== 'string' || m['member'] === '') bad(`…${arch}.files.${name}.member`, 'expected the path inside the archive');
            if (typeof m['sha256'] !== 'string' || !HEX64.test(m['sha256'])) bad(`…${arch}.files.${name}.sha256`, 'expected 64 lowercase hex digits');
          }
        }
      }
    }
  }
}

/** "v1.17.0" → "1.17.0". */
export function normalizeVersion(v: string): string {
  return v.trim().replace(/^v/, '');
}

export function pickFirecracker(lock: KernelLock, arch: KernelArch, version?: string): { version: string; release: LockedRelease } {
  const v = version !== undefined && version !== '' ? normalizeVersion(version) : lock.firecracker.default;
  const entry = lock.firecracker.versions[v];
  if (entry === undefined) fail('KERNEL_NOT_PINNED', `fetch Firecracker ${v}`, `not in the lock file (pinned: ${Object.keys(lock.firecracker.versions).join(', ')}); add it with its checksums to a lock file and pass --lock`, v);
  const release = entry[arch];
  if (release === undefined) fail('KERNEL_NOT_PINNED', `fetch Firecracker ${v}`, `the lock file has no ${arch} build of it`, arch);
  return { version: v, release };
}

export function pickKernel(lock: KernelLock, arch: KernelArch, version?: string): { version: string; file: LockedFile } {
  const v = version !== undefined && version !== '' ? normalizeVersion(version) : lock.kernels.default;
  const entry = lock.kernels.versions[v];
  if (entry === undefined) fail('KERNEL_NOT_PINNED', `fetch guest kernel ${v}`, `not in the lock file (pinned: ${Object.keys(lock.kernels.versions).join(', ')}); add it with its checksum to a lock file and pass --lock`, v);
  const file = entry[arch];
  if (file === undefined) fail('KERNEL_NOT_PINNED', `fetch guest kernel ${v}`, `the lock file has no ${arch} build of it`, arch);
  return { version: v, file };
}

/** The URL to fetch: the lock file's, or its path under the download base. */
export function downloadUrl(url: string, base: string | undefined): URL {
  const u = new URL(url);
  if (base === undefined || base === '') return u;
  let b: URL;
  try {
    b = new URL(base);
  } catch (e) {
    return fail('OPTION_INVALID', 'use ROOTFORGE_DOWNLOAD_BASE', 'not a URL', base, e);
  }
  return new URL(b.href.replace(/\/+$/, '') + u.pathname);
}

/** This machine's architecture in kernel/Firecracker terms. */
export function hostKernelArch(): KernelArch {
  const host = vmArch(hostArch()?.arch);
  if (host) return host.name;
  return fail('OPTION_INVALID', 'pick an architecture', 'Firecracker runs on x86_64 and aarch64 only; pass --arch', process.arch);
}

export function parseKernelArch(v: string): KernelArch {
  const a = vmArch(v);
  if (a) return a.name;
  return fail('OPTION_INVALID', 'use --arch', 'expected x86_64 (amd64) or aarch64 (arm64)', v);
}
