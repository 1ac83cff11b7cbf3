/**
 * The kernel cache, beside the image cache (<cacheDir>/kernels):
 *
 *   kernels/default                 the default kernel's name (one line)
 *   kernels/<name>/vmlinux          uncompressed kernel: ELF (x86) or Image (arm64)
 *   kernels/<name>/initramfs.cpio   optional: the modules the kernel needs, and our /init
 *   kernels/<name>/config           optional: the kernel's build configuration
 *   kernels/<name>/kernel.json      what it is (KernelMeta); written last
 *   kernels/.tmp-<name>-<pid>-<n>/  an entry being built (removed on failure; `prune` takes leftovers)
 *   kernels/.downloads/<sha256>[.partial]  downloads in progress (resumable)
 *   firecracker/v<ver>-<arch>/      firecracker, jailer, release.json (kernel-fetch.ts)
 *
 * An entry appears whole or not at all: it is built in a temporary directory and renamed into
 * place; a replaced entry is moved aside first and removed after. A directory without
 * kernel.json is not an entry.
 *
 * Names are [A-Za-z0-9][A-Za-z0-9._+-]* (they become directory names).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, isRootforgeError } from '../errors.js';
import type { ConfigReport } from './kernel-config.js';
import type { KernelArch } from './kernel-elf.js';

export interface FileInfo {
  sha256: string;
  size: number;
}

export interface KernelMeta {
  schema: 1;
  name: string;
  /** The kernel release, e.g. "6.1.0-56-cloud-amd64" or "6.1.141". */
  version: string;
  arch: KernelArch;
  source:
    | { kind: 'deb'; package: string; packageVersion: string; debSha256: string }
    | { kind: 'firecracker-ci'; url: string }
    | { kind: 'file'; path: string; format: 'vmlinux' | 'bzImage' };
  files: { vmlinux: FileInfo; initramfs?: FileInfo; config?: FileInfo };
  /** The vmlinux has a PVH entry note (direct boot on x86). */
  pvh: boolean;
  /** Modules in the initramfs, in load order. */
  modules: { name: string; path: string; depends: string[] }[];
  /** Modules we wanted that are built in. */
  builtinModules: string[];
  /** The kernel configuration check, when the config is known. */
  config?: ConfigReport;
  /** Kernel command line parameters this kernel wants (root device, console). */
  cmdline: string[];
  /** What the initramfs was built from (to tell whether a rebuild would change it). */
  initramfsInputs?: { initSha256: string; modules: string };
  /** rootforge version that made the entry. */
  createdBy: string;
}

export interface KernelEntry {
  name: string;
  dir: string;
  meta: KernelMeta;
  vmlinux: string;
  initramfs?: string;
  /** Bytes of vmlinux + initramfs. */
  size: number;
  /** The entry's directory mtime (when it was made), for "newest". */
  createdMs: number;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
let counter = 0;

export function validKernelName(name: string): boolean {
  return NAME_RE.test(name);
}

export class KernelCache {
  readonly dir: string;

  constructor(readonly cacheDir: string) {
    this.dir = join(cacheDir, 'kernels');
  }

  get downloads(): string {
    return join(this.dir, '.downloads');
  }

  async list(): Promise<KernelEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      return fail('KERNEL_CACHE_IO', 'list kernels', errno(e), this.dir, e);
    }
    const out: KernelEntry[] = [];
    for (const n of names.sort()) {
      if (!NAME_RE.test(n)) continue;
      const e = await this.get(n);
      if (e !== undefined) out.push(e);
    }
    return out;
  }

  /** The entry, or undefined when there is none (or it is incomplete). */
  async get(name: string): Promise<KernelEntry | undefined> {
    if (!NAME_RE.test(name)) return undefined;
    const dir = join(this.dir, name);
    let meta: KernelMeta;
    let st;
    try {
      meta = JSON.parse(await readFile(join(dir, 'kernel.json'), 'utf8')) as KernelMeta;
      st = await stat(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      if (e instanceof SyntaxError) fail('KERNEL_CACHE_IO', `read kernel ${name}`, 'kernel.json is not valid JSON', join(dir, 'kernel.json'), e);
      return fail('KERNEL_CACHE_IO', `read kernel ${name}`, errno(e), dir, e);
    }
    const entry: KernelEntry = {
      name,
      dir,
      meta,
      vmlinux: join(dir, 'vmlinux'),
      size: meta.files.vmlinux.size + (meta.files.initramfs?.size ?? 0),
      createdMs: st.mtimeMs,
    };
    if (meta.files.initramfs !== undefined) entry.initramfs = join(dir, 'initramfs.cpio');
    return entry;
  }

  async getDefault(): Promise<string | undefined> {
    try {
      const name = (await readFile(join(this.dir, 'default'), 'utf8')).trim();
      return name === '' ? undefined : name;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return fail('KERNEL_CACHE_IO', 'read the default kernel', errno(e), join(this.dir, 'default'), e);
    }
  }

  async setDefault(name: string): Promise<void> {
    if ((await this.get(name)) === undefined) fail('KERNEL_NOT_FOUND', 'set the default kernel', 'no such kernel in the cache', name);
    await this.ensureDir();
    const tmp = join(this.dir, `.default.${process.pid}.${counter++}`);
    try {
      await writeFile(tmp, name + '\n');
      await rename(tmp, join(this.dir, 'default'));
    } catch (e) {
      await rm(tmp, { force: true });
      fail('KERNEL_CACHE_IO', 'set the default kernel', errno(e), this.dir, e);
    }
  }

  /** Makes `name` the default unless a default that still exists is set. Returns whether it did. */
  async defaultIfUnset(name: string): Promise<boolean> {
    const cur = await this.getDefault();
    if (cur !== undefined && (await this.get(cur)) !== undefined) return false;
    await this.setDefault(name);
    return true;
  }

  /** Applies a "make it the default" choice: true always, 'auto'/undefined only when none is set. */
  async applyDefault(name: string, how: boolean | 'auto' | undefined): Promise<boolean> {
    if (how === false) return false;
    if (how === true) {
      await this.setDefault(name);
      return true;
    }
    return this.defaultIfUnset(name);
  }

  /**
   * Builds an entry: `build` fills a fresh temporary directory and returns the metadata, which
   * is written as kernel.json last; then the directory is renamed to <name>. On any failure the
   * temporary directory is removed and an existing entry of that name is untouched.
   */
  async commit(name: string, build: (dir: string) => Promise<KernelMeta>): Promise<KernelEntry> {
    if (!NAME_RE.test(name)) fail('OPTION_INVALID', 'name a kernel', 'use letters, digits and . _ + - (at most 128)', name);
    await this.ensureDir();
    const tmp = join(this.dir, `.tmp-${name}-${process.pid}-${counter++}`);
    const final = join(this.dir, name);
    try {
      await mkdir(tmp);
      const meta = await build(tmp);
      await writeFile(join(tmp, 'kernel.json'), JSON.stringify(meta, null, 2) + '\n');
      let aside: string | undefined;
      try {
        await rename(tmp, final);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        aside = join(this.dir, `.old-${name}-${process.pid}-${counter++}`);
        await rename(final, aside);
        await rename(tmp, final);
      }
      if (aside !== undefined) await rm(aside, { recursive: true, force: true });
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      if (isRootforgeError(e)) throw e;
      return fail('KERNEL_CACHE_IO', `store kernel ${name}`, errno(e), final, e);
    }
    const entry = await this.get(name);
    if (entry === undefined) return fail('KERNEL_CACHE_IO', `store kernel ${name}`, 'the entry vanished after it was written', final);
    return entry;
  }

  async remove(name: string): Promise<void> {
    if ((await this.get(name)) === undefined) fail('KERNEL_NOT_FOUND', 'remove kernel', 'no such kernel in the cache', name);
    const aside = join(this.dir, `.old-${name}-${process.pid}-${counter++}`);
    await rename(join(this.dir, name), aside);
    await rm(aside, { recursive: true, force: true });
    if ((await this.getDefault()) === name) await rm(join(this.dir, 'default'), { force: true });
  }

  private async ensureDir(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (e) {
      fail('KERNEL_CACHE_IO', 'create the kernel cache', errno(e), this.dir, e);
    }
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

export function sha256Of(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export function fileInfo(b: Uint8Array): FileInfo {
  return { sha256: sha256Of(b), size: b.length };
}

export function errno(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message ?? String(e);
}
