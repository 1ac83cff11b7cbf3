/**
 * `rootforge boot DIR`: boots an instance. The base is attached read-only (/dev/vda), the
 * instance disk writable (/dev/vdb), a config disk read-only (/dev/vdc), then share disks
 * (Firecracker) — the guest's initramfs builds the overlay root and writes the config before any
 * init runs (initrd/overlay.go).
 *
 *   steps: read-record → check-base → make-workdir → shares → config-disk → boot
 *
 * Shares: under QEMU one virtiofsd per --share (virtio-fs, live, read-write unless :ro); under
 * Firecracker (no virtio-fs) the directory becomes an ext4 disk made by our converter at each
 * boot (read-only unless asked; guest writes stay on that disk, the host directory is not
 * changed). The agent mounts every share at its guest path.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { convert } from '../convert.js';
import { fail, RootforgeError } from '../errors.js';
import { bootImage, type BootOptions } from '../vm/boot.js';
import { diskDevice } from '../vm/devices.js';
import { Cleanups } from '../vm/steps.js';
import type { KernelRef, Vm, VmDisk, VmFsShare } from '../vm/types.js';
import { findVirtiofsd, startVirtiofsd } from '../vm/virtiofsd.js';
import { baseIdentity } from './base-hash.js';
import { configEntries, ustar, type GuestMount } from './config-disk.js';
import { diskPath, parseEnvAssignment, readRecord } from './record.js';
import { baseSshdTakesSetEnv } from './ssh.js';

export interface ShareSpec {
  hostDir: string;
  guestDir: string;
  readOnly: boolean;
}

/** HOSTDIR:GUESTDIR[:ro|:rw] */
export function parseShare(text: string): ShareSpec {
  const parts = text.split(':');
  let readOnly = false;
  if (parts.length === 3 && (parts[2] === 'ro' || parts[2] === 'rw')) {
    readOnly = parts.pop() === 'ro';
  }
  if (parts.length !== 2 || parts[0] === '' || !parts[1]!.startsWith('/')) {
    return fail('OPTION_INVALID', 'parse --share', 'expected HOSTDIR:GUESTDIR[:ro] with an absolute GUESTDIR', text);
  }
  const hostDir = resolve(parts[0]!);
  let st;
  try {
    st = statSync(hostDir);
  } catch (e) {
    return fail('SOURCE_NOT_FOUND', `share ${hostDir}`, (e as NodeJS.ErrnoException).code ?? String(e), hostDir, e);
  }
  if (!st.isDirectory()) fail('SOURCE_BAD_SPEC', `share ${hostDir}`, 'not a directory', hostDir);
  return { hostDir, guestDir: parts[1]!, readOnly };
}

export interface InstanceBootOptions extends Omit<BootOptions, 'disks' | 'fsShares' | 'readOnlyRoot'> {
  shares?: ShareSpec[];
  /** K=V for this boot only, over the instance's stored env. */
  env?: string[];
  /** Where remembered base hashes live. */
  cacheDir?: string;
  /** Check that the guest's root is the overlay once it is up. Default true (off only for stand-in VMMs in tests). */
  checkOverlay?: boolean;
}

export async function bootInstance(dir: string, kernel: KernelRef, o: InstanceBootOptions = {}): Promise<Vm> {
  const rec = await readRecord(dir);
  const base = rec.base.path;
  const id = await baseIdentity(base, o.cacheDir).catch((e: unknown) => {
    if (e instanceof RootforgeError && e.code === 'SOURCE_NOT_FOUND') fail('INSTANCE_BASE_CHANGED', `boot instance ${dir}`, 'its base image is gone', base, e);
    throw e;
  });
  if (id.sha256 !== rec.base.sha256) fail('INSTANCE_BASE_CHANGED', `boot instance ${dir}`, `the base's SHA-256 is ${id.sha256.slice(0, 12)}…, the instance was made from ${rec.base.sha256.slice(0, 12)}…`, base);
  const env = { ...rec.config.env };
  for (const a of o.env ?? []) {
    const [k, v] = parseEnvAssignment(a);
    env[k] = v;
  }
  const vmm = o.vmm ?? 'qemu';
  const cleanups = new Cleanups();
  try {
    const work = mkdtempSync(join(tmpdir(), 'rfinst-'));
    cleanups.add('remove instance workdir', () => rmSync(work, { recursive: true, force: true }));
    const disks: VmDisk[] = [
      { id: 'instance', path: diskPath(dir, rec), readOnly: false },
      { id: 'config', path: join(work, 'config.img'), readOnly: true },
    ];
    const fsShares: VmFsShare[] = [];
    const mounts: GuestMount[] = [];
    const shares = o.shares ?? [];
    if (vmm === 'qemu' && shares.length > 0) {
      const daemon = findVirtiofsd();
      if (!daemon) fail('INSTANCE_SHARE_FAILED', 'share a directory', 'no virtiofsd (Debian 12: qemu-system-common has /usr/lib/qemu/virtiofsd; Debian 13: apt-get install virtiofsd)', shares[0]!.hostDir);
      for (const [i, s] of shares.entries()) {
        const tag = `rfshare${i}`;
        const d = await startVirtiofsd(daemon, join(work, `fs${i}.sock`), s.hostDir, s.readOnly);
        cleanups.add(`stop virtiofsd ${s.hostDir}`, () => d.stop());
        fsShares.push({ tag, socket: d.socket });
        mounts.push({ tag, target: s.guestDir, type: 'virtiofs', readOnly: s.readOnly });
      }
    } else {
      for (const [i, s] of shares.entries()) {
        const path = join(work, `share${i}.ext4`);
        // a writable share disk gets room to write in; a read-only one is exactly its contents
        await convert(`dir:${s.hostDir}`, path, s.readOnly ? { readOnly: true } : { size: { mode: 'plus', bytes: 256 * 2 ** 20 } });
        disks.push({ id: `share${i}`, path, readOnly: s.readOnly });
        mounts.push({ tag: diskDevice(disks.length - 1), target: s.guestDir, type: 'ext4', readOnly: s.readOnly });
      }
    }
    const sshdSetEnv = await baseSshdTakesSetEnv(base);
    await writeFile(join(work, 'config.img'), ustar(configEntries(rec.config, env, mounts, { sshdSetEnv })), { mode: 0o600 });
    const { shares: _shares, env: _env, cacheDir: _cacheDir, checkOverlay = true, ...vmOptions } = o;
    const vm = await bootImage(base, kernel, {
      ...vmOptions,
      readOnlyRoot: true,
      disks,
      fsShares,
      extraCmdline: [...(o.extraCmdline ?? []), `rootforge.upper=${diskDevice(0)}`, `rootforge.config=${diskDevice(1)}`],
    });
    const ivm = new InstanceVm(vm, cleanups);
    if (checkOverlay) await checkOverlayRoot(ivm, dir);
    return ivm;
  } catch (e) {
    const failures = await cleanups.run();
    if (failures.length > 0) throw new AggregateError([e, ...failures], (e as Error).message);
    throw e;
  }
}

/**
 * An initramfs older than instance support ignores rootforge.upper= and boots the bare base:
 * that must be a clear failure, not a sandbox silently without its disk and config.
 */
async function checkOverlayRoot(vm: Vm, dir: string): Promise<void> {
  let mounts: string;
  try {
    mounts = (await vm.agent.readFile('/proc/mounts')).toString('utf8');
  } catch (e) {
    await vm.kill();
    throw e;
  }
  if (!/^overlay \/ overlay /m.test(mounts)) {
    await vm.kill();
    fail('VM_START_FAILED', `boot instance ${dir}`, 'the guest\'s root is not the overlay: the kernel\'s initramfs predates instance support (rebuild it: rootforge kernel from-deb PACKAGE --force)', mounts.split('\n').find((l) => / \/ /.test(l)) ?? '');
  }
}

/** The VM plus what the instance boot started beside it (virtiofsd, the workdir). */
class InstanceVm implements Vm {
  constructor(
    private readonly vm: Vm,
    private readonly cleanups: Cleanups,
  ) {}
  get agent() {
    return this.vm.agent;
  }
  get timings() {
    return this.vm.timings;
  }
  get exited() {
    return this.vm.exited;
  }
  consoleTail(n?: number): string {
    return this.vm.consoleTail(n);
  }
  async shutdown(timeoutMs?: number): Promise<{ clean: boolean }> {
    try {
      return await this.vm.shutdown(timeoutMs);
    } finally {
      await this.stopHelpers();
    }
  }
  async kill(): Promise<void> {
    try {
      await this.vm.kill();
    } finally {
      await this.stopHelpers();
    }
  }
  private async stopHelpers(): Promise<void> {
    const failures = await this.cleanups.run();
    if (failures.length > 0) throw new AggregateError(failures, 'Cannot stop the instance\'s helpers cleanly');
  }
}
