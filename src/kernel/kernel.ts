/**
 * Kernels for the VM runners: `resolveKernel(spec)` turns what a user passes as --kernel into
 * the files a VMM needs.
 *
 *   undefined              the default kernel of the cache (kernels/default); `kernel from-deb`
 *                          and `kernel fetch` make what they add the default when none is set,
 *                          `kernel default NAME` changes it
 *   a path to a vmlinux    used in place (an ELF, or an arm64 Image)
 *   a path to a bzImage    its vmlinux extracted into the cache once (file-<sha256 prefix>)
 *   a path to a .deb       `kernel from-deb` on it (cached; rebuilt only when it changed)
 *   a cache name           kernels/<name>
 *   a package name         linux-image-…: `kernel from-deb` through apt-get download
 *
 * The pieces: kernel-cache.ts (the cache), kernel-fetch.ts (pinned Firecracker + CI kernels),
 * kernel-deb.ts (Debian packages → vmlinux + initramfs), bzimage.ts, lz4.ts, cpio.ts,
 * initramfs.ts, kernel-config.ts, kernel-modules.ts.
 */
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fail } from '../errors.js';
import { defaultCacheDir } from '../util/cache-dir.js';
import { version as toolVersion } from '../version.js';
import { extractVmlinux, isBzImage, releaseOf } from './bzimage.js';
import { KernelCache, fileInfo, sha256Of, validKernelName, type KernelEntry } from './kernel-cache.js';
import { kernelFromDeb, type FromDebOptions } from './kernel-deb.js';
import { isArm64Image, isElf, kernelImageInfo, type KernelArch } from './kernel-elf.js';

export { KernelCache, type KernelEntry, type KernelMeta } from './kernel-cache.js';
export { kernelFetch, type KernelFetchOptions, type KernelFetchResult } from './kernel-fetch.js';
export { kernelFromDeb, type FromDebOptions, type FromDebResult } from './kernel-deb.js';

export interface ResolvedKernel {
  /** Cache name, or the file's name for a vmlinux used in place. */
  name: string;
  /** The uncompressed kernel to boot. */
  vmlinux: string;
  /** The initramfs to pass with it, when the kernel needs one. */
  initramfs?: string;
  arch: KernelArch;
  /** Kernel release ("6.1.0-56-cloud-amd64"), or "unknown". */
  version: string;
  /** The vmlinux has a PVH entry (direct boot on x86). */
  pvh: boolean;
  /** Command line parameters the kernel wants (console, root device, filesystem type). */
  cmdline: string[];
  /** The cache entry, when it came from the cache. */
  entry?: KernelEntry;
}

export interface ResolveKernelOptions {
  /** Default $XDG_CACHE_HOME/rootforge. */
  cacheDir?: string;
  /** Passed on when a .deb or package has to be turned into a kernel. */
  fromDeb?: Omit<FromDebOptions, 'cacheDir'>;
  /**
   * The architecture the kernel must have (the image's). With no spec: the default kernel when
   * it has this architecture, else the cached kernel of this architecture that sorts last by
   * name (the newest release of a `kernel from-deb` series), else KERNEL_NOT_FOUND.
   */
  arch?: KernelArch;
}

const DEFAULT_CMDLINE = ['console=ttyS0', 'root=/dev/vda', 'rootfstype=ext4'];

export async function resolveKernel(spec: string | undefined, opts: ResolveKernelOptions = {}): Promise<ResolvedKernel> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const cache = new KernelCache(cacheDir);
  if (spec === undefined || spec === '') {
    const name = await cache.getDefault();
    let entry = name === undefined ? undefined : await cache.get(name);
    if (opts.arch !== undefined && entry?.meta.arch !== opts.arch) {
      const same = (await cache.list()).filter((e) => e.meta.arch === opts.arch).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const pick = same.pop();
      if (pick !== undefined) return fromEntry(pick);
      const pkg = opts.arch === 'aarch64' ? 'linux-image-cloud-arm64' : 'linux-image-cloud-amd64';
      fail('KERNEL_NOT_FOUND', `find a kernel for ${opts.arch}`, `the cache has none${entry !== undefined ? ` (the default, ${entry.name}, is ${entry.meta.arch})` : ''}: run \`rootforge kernel from-deb ${pkg}\` first`, cache.dir);
    }
    if (entry === undefined) {
      fail('KERNEL_NOT_FOUND', 'find the default kernel', name === undefined ? 'none is set: run `rootforge kernel from-deb linux-image-cloud-amd64` (or `rootforge kernel fetch`) first' : 'the default kernel is no longer in the cache', name ?? join(cache.dir, 'default'));
    }
    return fromEntry(entry);
  }
  const kind = await fileKind(spec);
  if (kind === 'deb') return fromEntry((await kernelFromDeb(spec, { ...opts.fromDeb, cacheDir })).entry);
  if (kind === 'elf') {
    const bytes = await readFile(spec);
    const info = kernelImageInfo(bytes, `use kernel ${spec}`);
    return { name: basename(spec), vmlinux: resolve(spec), arch: info.arch, version: linuxVersion(bytes) ?? 'unknown', pvh: info.pvhEntry !== undefined, cmdline: DEFAULT_CMDLINE };
  }
  if (kind === 'bzimage') return fromEntry(await cacheBzImage(cache, spec));
  if (kind === 'other') fail('KERNEL_BAD_IMAGE', 'use kernel', 'not a vmlinux (ELF), arm64 Image, bzImage or .deb', spec);
  // not a file: a cache name, then a package name
  if (validKernelName(spec)) {
    const entry = await cache.get(spec);
    if (entry !== undefined) return fromEntry(entry);
  }
  if (/^linux-image-[a-z0-9+.-]+$/.test(spec)) return fromEntry((await kernelFromDeb(spec, { ...opts.fromDeb, cacheDir })).entry);
  const names = (await cache.list()).map((e) => e.name);
  return fail('KERNEL_NOT_FOUND', 'find kernel', `no such file, cached kernel (${names.length > 0 ? names.join(', ') : 'the cache is empty'}) or linux-image-* package`, spec);
}

function fromEntry(e: KernelEntry): ResolvedKernel {
  const r: ResolvedKernel = { name: e.name, vmlinux: e.vmlinux, arch: e.meta.arch, version: e.meta.version, pvh: e.meta.pvh, cmdline: e.meta.cmdline, entry: e };
  if (e.initramfs !== undefined) r.initramfs = e.initramfs;
  return r;
}

async function fileKind(p: string): Promise<'none' | 'deb' | 'elf' | 'bzimage' | 'other'> {
  try {
    if (!(await stat(p)).isFile()) return 'none';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      if (p.includes('/')) fail('KERNEL_NOT_FOUND', 'use kernel', 'no such file', p);
      return 'none';
    }
    return fail('KERNEL_NOT_FOUND', 'use kernel', code ?? String(e), p, e);
  }
  const fh = await open(p, 'r');
  const head = Buffer.alloc(0x250);
  try {
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  if (head.toString('latin1', 0, 8) === '!<arch>\n') return 'deb';
  if (isElf(head) || isArm64Image(head)) return 'elf';
  if (isBzImage(head)) return 'bzimage';
  return 'other';
}

/** A bzImage given by path: its vmlinux extracted once into the cache, keyed by content. */
async function cacheBzImage(cache: KernelCache, path: string): Promise<KernelEntry> {
  const bz = await readFile(path);
  const sha = sha256Of(bz);
  const name = `file-${sha.slice(0, 16)}`;
  const existing = await cache.get(name);
  if (existing !== undefined) return existing;
  const { header, vmlinux } = await extractVmlinux(bz);
  const info = kernelImageInfo(vmlinux, `use kernel ${path}`);
  return cache.commit(name, async (dir) => {
    await writeFile(join(dir, 'vmlinux'), vmlinux);
    return {
      schema: 1,
      name,
      version: releaseOf(header.version) ?? 'unknown',
      arch: info.arch,
      source: { kind: 'file', path: resolve(path), format: 'bzImage' },
      files: { vmlinux: fileInfo(vmlinux) },
      pvh: info.pvhEntry !== undefined,
      modules: [],
      builtinModules: [],
      cmdline: DEFAULT_CMDLINE,
      createdBy: toolVersion(),
    };
  });
}

/** "6.1.141" from the "Linux version 6.1.141 (…)" banner inside a vmlinux. */
export function linuxVersion(vmlinux: Buffer): string | undefined {
  // the first occurrence may be a format string ("Linux version %s"): take the first real one
  for (let at = vmlinux.indexOf('Linux version '); at >= 0; at = vmlinux.indexOf('Linux version ', at + 1)) {
    const m = /^Linux version ([0-9][^\s%]*) \(/.exec(vmlinux.toString('latin1', at, at + 200));
    if (m) return m[1];
  }
  return undefined;
}
