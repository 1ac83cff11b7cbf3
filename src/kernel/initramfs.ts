/**
 * The small initramfs for a distribution kernel whose virtio drivers are modules: our /init
 * (initrd/, Go) and the modules to load, nothing else (no shell, no busybox, no udev).
 *
 *   init                                  rootforge-initrd (build/initrd/linux-<arch>/init), 0755
 *   etc/initrd-modules                    module paths in load order (read by /init)
 *   lib/modules/<release>/<path>.ko       each module, decompressed
 *   lib/modules/<release>/modules.dep     their dependencies, depmod's format (for people and modprobe)
 *   dev/console (c 5:1), dev/null (c 1:3) so PID 1 has a console before devtmpfs is mounted
 *   proc/ sys/ root/                      mount points (root/ is where the root device goes)
 *
 * Written with our cpio writer (uncompressed newc: every kernel reads it, nothing to
 * decompress at boot), deterministic: same modules and init ⇒ same bytes (mtime from
 * SOURCE_DATE_EPOCH, default 0).
 */
import { vmArch } from '../verify/arch.js';
import { existsSync, readFileSync } from 'node:fs';
import { fail } from '../errors.js';
import { writeCpio, type CpioEntry } from './cpio.js';
import type { KernelArch } from './kernel-elf.js';
import type { ModuleInfo } from './kernel-modules.js';

export interface InitramfsModule {
  info: ModuleInfo;
  /** The module's ELF bytes (decompressed). */
  data: Buffer;
}

export interface InitramfsOptions {
  arch: KernelArch;
  /** Kernel release: the directory under /lib/modules. */
  release: string;
  /** In load order. */
  modules: InitramfsModule[];
  /** modules.dep text for those modules. */
  modulesDep?: string;
  /** The /init binary. Default: initBinaryPath(arch). */
  init?: Buffer;
  /** Seconds since the epoch on every entry. Default $SOURCE_DATE_EPOCH or 0. */
  mtime?: number;
}

/** Where scripts/build-initrd.mjs puts /init for an architecture. */
export function initBinaryPath(arch: KernelArch): string {
  const goarch = vmArch(arch)!.arch;
  return new URL(`../../initrd/linux-${goarch}/init`, import.meta.url).pathname;
}

export function readInitBinary(arch: KernelArch): Buffer {
  const p = initBinaryPath(arch);
  if (!existsSync(p)) fail('KERNEL_INIT_MISSING', 'build the initramfs', 'the initramfs /init is not built (needs Go: `node scripts/build-initrd.mjs`, part of `npm run build`)', p);
  return readFileSync(p);
}

export function buildInitramfs(o: InitramfsOptions): Buffer {
  const init = o.init ?? readInitBinary(o.arch);
  const base = `lib/modules/${o.release}`;
  const entries: CpioEntry[] = [
    { path: 'init', type: 'file', mode: 0o755, data: init },
    { path: 'dev', type: 'dir', mode: 0o755 },
    { path: 'dev/console', type: 'chardev', mode: 0o600, major: 5, minor: 1 },
    { path: 'dev/null', type: 'chardev', mode: 0o666, major: 1, minor: 3 },
    { path: 'proc', type: 'dir', mode: 0o555 },
    { path: 'sys', type: 'dir', mode: 0o555 },
    { path: 'root', type: 'dir', mode: 0o700 },
  ];
  const list = ['# rootforge initramfs: modules in load order (each after its dependencies)'];
  for (const m of o.modules) {
    const rel = m.info.path.replace(/\.ko(\.(xz|zst|gz))?$/, '.ko');
    entries.push({ path: `${base}/${rel}`, type: 'file', mode: 0o644, data: m.data });
    list.push(`/${base}/${rel}`);
  }
  entries.push({ path: 'etc/initrd-modules', type: 'file', mode: 0o644, data: Buffer.from(list.join('\n') + '\n') });
  if (o.modulesDep !== undefined) entries.push({ path: `${base}/modules.dep`, type: 'file', mode: 0o644, data: Buffer.from(o.modulesDep) });
  return writeCpio(entries, { mtime: o.mtime ?? sourceDateEpoch() });
}

function sourceDateEpoch(): number {
  const v = process.env['SOURCE_DATE_EPOCH'];
  if (v === undefined || v === '') return 0;
  if (!/^\d+$/.test(v)) fail('OPTION_INVALID', 'use SOURCE_DATE_EPOCH', 'expected whole seconds since the epoch', v);
  return Number(v);
}
