/**
 * `rootforge kernel fetch`: the pinned Firecracker + jailer release and a Firecracker CI guest
 * kernel, from kernels.lock.json, into the cache:
 *
 *   <cacheDir>/firecracker/v<ver>-<arch>/firecracker, jailer, release.json
 *   <cacheDir>/kernels/fc-<ver>-<arch>/vmlinux, kernel.json
 *
 * Each step is idempotent (files already there with the pinned SHA-256 are not downloaded
 * again), resumable (download.ts keeps a .partial) and atomic (verified files are renamed in; the
 * release directory and the kernel entry appear whole). The release tarball is checked as a
 * whole, then each binary against its own pinned sum as it is taken out of it (streamed through
 * our tar reader, nothing else extracted); the tarball is deleted afterwards.
 */
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, isRootforgeError } from '../errors.js';
import type { HttpClient } from '../util/http.js';
import { defaultCacheDir } from '../util/cache-dir.js';
import { readTar } from '../tar/reader.js';
import { openArchive } from '../tar/decompress.js';
import { version as toolVersion } from '../version.js';
import { downloadVerified } from './download.js';
import { errno, KernelCache, sha256File, sha256Of, type KernelEntry } from './kernel-cache.js';
import { kernelImageInfo, type KernelArch } from './kernel-elf.js';
import { downloadUrl, hostKernelArch, loadKernelLock, pickFirecracker, pickKernel } from './kernel-lock.js';

export interface KernelFetchOptions {
  /** Default $XDG_CACHE_HOME/rootforge. */
  cacheDir?: string;
  /** Default: the kernels.lock.json shipped with rootforge. */
  lockPath?: string;
  /** Default: this machine's. */
  arch?: KernelArch;
  /** Default $FIRECRACKER_VERSION, else the lock file's default. */
  firecrackerVersion?: string;
  /** Default $KERNEL_VERSION, else the lock file's default. */
  kernelVersion?: string;
  /** Default $ROOTFORGE_DOWNLOAD_BASE: replaces each URL's scheme and host (kernel-lock.ts). */
  downloadBase?: string;
  /** What to fetch. Default both. */
  firecracker?: boolean;
  kernel?: boolean;
  /** Make the fetched kernel the default: 'auto' (default) only when no default is set. */
  setDefault?: boolean | 'auto';
  http?: HttpClient;
  onProgress?: (what: string, bytes: number, total: number | undefined) => void;
  /** Download retry tuning (tests). */
  attempts?: number;
  backoffMs?: number;
}

export interface FirecrackerFetched {
  version: string;
  arch: KernelArch;
  dir: string;
  firecracker: string;
  jailer: string;
  /** False when both binaries were already there and correct. */
  fetched: boolean;
}

export interface KernelFetched {
  version: string;
  entry: KernelEntry;
  fetched: boolean;
  madeDefault: boolean;
}

export interface KernelFetchResult {
  firecracker?: FirecrackerFetched;
  kernel?: KernelFetched;
}

export async function kernelFetch(options: KernelFetchOptions = {}): Promise<KernelFetchResult> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const lock = loadKernelLock(options.lockPath);
  const arch = options.arch ?? hostKernelArch();
  const base = options.downloadBase ?? process.env['ROOTFORGE_DOWNLOAD_BASE'];
  const result: KernelFetchResult = {};
  if (options.firecracker !== false) {
    const { version, release } = pickFirecracker(lock, arch, options.firecrackerVersion ?? process.env['FIRECRACKER_VERSION']);
    result.firecracker = await fetchFirecracker(cacheDir, version, arch, release, downloadUrl(release.url, base), options);
  }
  if (options.kernel !== false) {
    const { version, file } = pickKernel(lock, arch, options.kernelVersion ?? process.env['KERNEL_VERSION']);
    result.kernel = await fetchKernel(cacheDir, version, arch, file, downloadUrl(file.url, base), options);
  }
  return result;
}

async function fetchFirecracker(
  cacheDir: string,
  version: string,
  arch: KernelArch,
  release: { url: string; sha256: string; size?: number; files: Record<string, { member: string; sha256: string }> },
  url: URL,
  o: KernelFetchOptions,
): Promise<FirecrackerFetched> {
  const root = join(cacheDir, 'firecracker');
  const dir = join(root, `v${version}-${arch}`);
  const out: FirecrackerFetched = { version, arch, dir, firecracker: join(dir, 'firecracker'), jailer: join(dir, 'jailer'), fetched: false };
  if (await allCorrect(dir, release.files)) return out;

  const tgz = join(cacheDir, 'kernels', '.downloads', `${release.sha256}.tgz`);
  await downloadVerified({
    url,
    dest: tgz,
    sha256: release.sha256,
    ...(release.size !== undefined ? { size: release.size } : {}),
    ...(o.http !== undefined ? { http: o.http } : {}),
    ...(o.attempts !== undefined ? { attempts: o.attempts } : {}),
    ...(o.backoffMs !== undefined ? { backoffMs: o.backoffMs } : {}),
    onProgress: (b, t) => o.onProgress?.(`firecracker v${version}`, b, t),
  });

  const tmp = join(root, `.tmp-v${version}-${arch}-${process.pid}`);
  try {
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const wanted = new Map(Object.entries(release.files).map(([name, f]) => [f.member.replace(/^\.\//, ''), { name, sha256: f.sha256 }]));
    const found = new Set<string>();
    const archive = await openArchive(tgz);
    for await (const e of readTar(archive.stream)) {
      const w = wanted.get(e.path.replace(/^\.\//, ''));
      if (w === undefined || e.type !== 'file') continue;
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(Buffer.from(c));
      const bytes = Buffer.concat(parts);
      const got = sha256Of(bytes);
      if (got !== w.sha256) fail('KERNEL_CHECKSUM_MISMATCH', `take ${w.name} out of ${url.pathname.split('/').pop()}`, `it hashes to ${got}, the lock file says ${w.sha256}; nothing was kept`, e.path);
      await writeFile(join(tmp, w.name), bytes, { mode: 0o755 });
      await chmod(join(tmp, w.name), 0o755);
      found.add(w.name);
    }
    for (const [member, w] of wanted) if (!found.has(w.name)) fail('KERNEL_BAD_IMAGE', `take ${w.name} out of the Firecracker release`, 'not in the archive', member);
    const info = { version, arch, url: release.url, sha256: release.sha256, files: release.files, createdBy: toolVersion() };
    await writeFile(join(tmp, 'release.json'), JSON.stringify(info, null, 2) + '\n');
    await replaceDir(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    // a tarball whose members are wrong is not kept either
    if (isRootforgeError(e, 'KERNEL_CHECKSUM_MISMATCH')) await rm(tgz, { force: true });
    if (isRootforgeError(e)) throw e;
    return fail('KERNEL_CACHE_IO', `install Firecracker v${version}`, errno(e), dir, e);
  }
  await rm(tgz, { force: true });
  out.fetched = true;
  return out;
}

async function fetchKernel(cacheDir: string, version: string, arch: KernelArch, file: { url: string; sha256: string; size?: number }, url: URL, o: KernelFetchOptions): Promise<KernelFetched> {
  const cache = new KernelCache(cacheDir);
  const name = `fc-${version}-${arch}`;
  const existing = await cache.get(name);
  if (existing !== undefined && existing.meta.files.vmlinux.sha256 === file.sha256 && (await hashOrMissing(existing.vmlinux)) === file.sha256) {
    return { version, entry: existing, fetched: false, madeDefault: await cache.applyDefault(name, o.setDefault) };
  }
  const dl = join(cache.downloads, file.sha256);
  await downloadVerified({
    url,
    dest: dl,
    sha256: file.sha256,
    ...(file.size !== undefined ? { size: file.size } : {}),
    ...(o.http !== undefined ? { http: o.http } : {}),
    ...(o.attempts !== undefined ? { attempts: o.attempts } : {}),
    ...(o.backoffMs !== undefined ? { backoffMs: o.backoffMs } : {}),
    onProgress: (b, t) => o.onProgress?.(`kernel ${version}`, b, t),
  });
  const entry = await cache.commit(name, async (dir) => {
    const bytes = await readFile(dl);
    const info = kernelImageInfo(bytes, `use the downloaded kernel ${version}`);
    if (info.arch !== arch) fail('KERNEL_BAD_IMAGE', `use the downloaded kernel ${version}`, `it is an ${info.arch} kernel, not ${arch}`, file.url);
    await rename(dl, join(dir, 'vmlinux'));
    return {
      schema: 1,
      name,
      version,
      arch,
      source: { kind: 'firecracker-ci', url: file.url },
      files: { vmlinux: { sha256: file.sha256, size: bytes.length } },
      pvh: info.pvhEntry !== undefined,
      modules: [],
      builtinModules: [],
      cmdline: ['console=ttyS0', 'root=/dev/vda', 'rootfstype=ext4'],
      createdBy: toolVersion(),
    };
  });
  return { version, entry, fetched: true, madeDefault: await cache.applyDefault(name, o.setDefault) };
}

/** The file's SHA-256, or '' when it is gone (a damaged entry is fetched again). */
async function hashOrMissing(p: string): Promise<string> {
  try {
    return await sha256File(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

async function allCorrect(dir: string, files: Record<string, { sha256: string }>): Promise<boolean> {
  for (const [name, f] of Object.entries(files)) {
    const p = join(dir, name);
    try {
      await stat(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    if ((await sha256File(p)) !== f.sha256) return false;
  }
  return true;
}

/** Renames `tmp` to `dir`, moving an existing `dir` aside first and removing it after. */
async function replaceDir(tmp: string, dir: string): Promise<void> {
  try {
    await rename(tmp, dir);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
  }
  const aside = `${dir}.old-${process.pid}`;
  await rename(dir, aside);
  await rename(tmp, dir);
  await rm(aside, { recursive: true, force: true });
}
