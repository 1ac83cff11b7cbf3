/**
 * A throwaway microVM for the agent: QEMU `-M microvm` under TCG with Debian's cloud kernel and
 * an initramfs made of the Alpine minirootfs, the agent, and the virtio modules that kernel
 * builds as modules (virtio_ring, virtio, virtio_mmio, virtio_console — loaded by a tiny /init
 * that then execs the agent as PID 1). The host reaches the agent through a virtio-serial port
 * whose chardev is a Unix socket. Facts behind the flags: ../shared/MACHINE-NOTES.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { cacheDir } from './fixtures.js';
import { debianCloudKernel } from './kernel.js';

const MODULES = ['kernel/drivers/virtio/virtio_ring.ko', 'kernel/drivers/virtio/virtio.ko', 'kernel/drivers/virtio/virtio_mmio.ko', 'kernel/drivers/char/virtio_console.ko'];

export interface VmKernel {
  vmlinuz: string;
  modules: string; // /lib/modules/<release>
}

/** A cloud kernel with uncompressed virtio modules under `root` (/ or an extracted .deb), if any. */
function kernelUnder(root: string): VmKernel | undefined {
  const boot = join(root, 'boot');
  const releases = existsSync(boot) ? readdirSync(boot).filter((f) => /^vmlinuz-.*-cloud-amd64$/.test(f)).sort() : [];
  for (const f of releases.reverse()) {
    const modules = join(root, 'lib/modules', f.slice('vmlinuz-'.length));
    if (MODULES.every((m) => existsSync(join(modules, m)))) return { vmlinuz: join(boot, f), modules };
  }
  return undefined;
}

/**
 * Debian's cloud kernel with uncompressed virtio modules, or the reason there is none: the
 * host's own when installed, else the package the kernel tests download (test/helpers/kernel.ts),
 * unpacked once into the test cache — nothing is installed on the host.
 */
export async function findKernel(): Promise<VmKernel | string> {
  if (process.arch !== 'x64') return 'the VM test is x86_64 only';
  if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) return 'qemu-system-x86_64 missing (apt-get install qemu-system-x86)';
  if (spawnSync('bsdtar', ['--version']).status !== 0) return 'bsdtar missing (apt-get install libarchive-tools)';
  const installed = kernelUnder('/');
  if (installed) return installed;
  const deb = await debianCloudKernel();
  if ('skip' in deb) return deb.skip;
  const dir = join(cacheDir(), 'cloud-kernel', basename(deb.path, '.deb'));
  if (!existsSync(dir)) {
    const tmp = `${dir}.${process.pid}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    run('dpkg-deb', ['-x', deb.path, tmp]);
    renameSync(tmp, dir);
  }
  return kernelUnder(dir) ?? `no virtio modules in ${deb.path}`;
}

/** Builds an uncompressed newc initramfs at `out` from the Alpine tarball, agent and config. */
export function buildInitramfs(dir: string, out: string, alpineTarball: string, agentBin: string, kernel: VmKernel, agentJson: object): void {
  const root = join(dir, 'initramfs');
  mkdirSync(root, { recursive: true });
  run('tar', ['-xzf', alpineTarball, '-C', root]);
  mkdirSync(join(root, 'rfmod'));
  for (const m of MODULES) copyFileSync(join(kernel.modules, m), join(root, 'rfmod', m.split('/').pop()!));
  copyFileSync(agentBin, join(root, 'sbin', 'rootforge-agent'));
  mkdirSync(join(root, 'etc', 'rootforge'), { recursive: true });
  writeFileSync(join(root, 'etc', 'rootforge', 'agent.json'), JSON.stringify(agentJson));
  const names = MODULES.map((m) => m.split('/').pop()!.replace(/\.ko$/, ''));
  writeFileSync(
    join(root, 'init'),
    `#!/bin/sh\n# Load the virtio modules this kernel does not build in, then become the agent (PID 1).\nfor m in ${names.join(' ')}; do insmod /rfmod/$m.ko || echo "insmod $m failed"; done\nexec /sbin/rootforge-agent --verbose\n`,
    { mode: 0o755 },
  );
  run('bsdtar', ['--format', 'newc', '-cf', out, '-C', root, '.']);
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
}

/** tsc_early_khz for TCG: without it about half the boots hang calibrating the TSC. */
function tscKhz(): number {
  const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return m ? Math.round(Number(m[1]) * 1000) : 2_000_000;
}

export interface Vm {
  proc: ChildProcess;
  /** The virtio-serial chardev socket. */
  sock: string;
  console(): string;
  exited: Promise<number | null>;
}

export function startVm(kernel: VmKernel, initrd: string, sock: string): Vm {
  const args = [
    '-M', 'microvm,accel=tcg', '-m', '512', '-cpu', 'max', '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-kernel', kernel.vmlinuz, '-initrd', initrd,
    '-append', `console=ttyS0 rdinit=/init tsc_early_khz=${tscKhz()} reboot=t panic=-1 quiet`,
    '-serial', 'stdio',
    '-device', 'virtio-serial-device',
    '-chardev', `socket,id=agent,path=${sock},server=on,wait=off`,
    '-device', 'virtserialport,chardev=agent,name=org.rootforge.agent',
  ];
  const proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, sock, console: () => out, exited };
}
