/**
 * Booting a rootforge image: read how it wants to start (its /etc/rootforge/agent.json), pick
 * the kernel, start QEMU or Firecracker, and wait for the agent. `checkBoot` adds the checks of
 * `rootforge verify --boot`: commands that must exit 0, a file round trip, a clean power-off.
 */
import { fail } from '../errors.js';
import { Ext4Image } from '../ext4/reader.js';
import type { AgentClient } from '../agent-client/agent-client.js';
import { startFirecracker } from './firecracker.js';
import { startQemu } from './qemu.js';
import { hostArch } from '../provision/arch.js';
import type { BootTimings, KernelRef, Vm, VmConfig } from './types.js';

export interface ImageBootInfo {
  /** init= for the kernel (agent.json "init"), undefined for the kernel's default. */
  init: string | undefined;
  vsockPort: number;
  /** The image has a rootforge agent configuration. */
  hasAgent: boolean;
  /** The image has no journal (built read-only). */
  readOnly: boolean;
  /** The image has /bin/sh (for an interactive shell). */
  shell: string | null;
  /**
   * The image's architecture (Go/OCI name: amd64, arm64): agent.json's "architecture", else
   * image.json's, else the machine of the agent's ELF header; null when nothing says.
   */
  arch: string | null;
}

const ELF_MACHINES: Record<number, string> = { 0x3e: 'amd64', 0xb7: 'arm64' };

/** Reads what booting needs from the image itself. */
export async function imageBootInfo(image: string): Promise<ImageBootInfo> {
  const img = await Ext4Image.open(image);
  try {
    let cfg: { init?: unknown; vsockPort?: unknown; architecture?: unknown } = {};
    let hasAgent = false;
    try {
      const st = await img.resolve('/etc/rootforge/agent.json');
      cfg = JSON.parse((await img.readData(st)).toString('utf8')) as typeof cfg;
      hasAgent = true;
    } catch (e) {
      if (!(e instanceof Error && 'code' in e && (e as { code: string }).code === 'EXT4_NOT_FOUND')) throw e;
    }
    let shell: string | null = null;
    for (const sh of ['/bin/sh', '/bin/bash', '/bin/ash']) {
      try {
        const st = await img.resolve(sh);
        if (st.kind === 'file') {
          shell = sh;
          break;
        }
      } catch (e) {
        if (!(e instanceof Error && 'code' in e && (e as { code: string }).code === 'EXT4_NOT_FOUND')) throw e;
      }
    }
    let arch = typeof cfg.architecture === 'string' && cfg.architecture !== '' ? cfg.architecture : null;
    arch ??= await imageJsonArch(img);
    arch ??= await agentElfArch(img);
    return {
      arch,
      init: typeof cfg.init === 'string' ? cfg.init : undefined,
      vsockPort: typeof cfg.vsockPort === 'number' ? cfg.vsockPort : 1024,
      hasAgent,
      readOnly: !img.features.includes('has_journal'),
      shell,
    };
  } finally {
    await img.close();
  }
}

async function lookup(img: Ext4Image, path: string): Promise<Awaited<ReturnType<Ext4Image['resolve']>> | null> {
  try {
    return await img.resolve(path);
  } catch (e) {
    if (e instanceof Error && 'code' in e && (e as { code: string }).code === 'EXT4_NOT_FOUND') return null;
    throw e;
  }
}

async function imageJsonArch(img: Ext4Image): Promise<string | null> {
  const st = await lookup(img, '/etc/rootforge/image.json');
  if (st === null || st.kind !== 'file') return null;
  const j = JSON.parse((await img.readData(st)).toString('utf8')) as { architecture?: unknown };
  return typeof j.architecture === 'string' && j.architecture !== '' ? j.architecture : null;
}

/** Images built before agent.json recorded the architecture: the agent binary's ELF machine. */
async function agentElfArch(img: Ext4Image): Promise<string | null> {
  const st = await lookup(img, '/usr/sbin/rootforge-agent');
  if (st === null || st.kind !== 'file' || st.size < 20) return null;
  const h = await img.readRange(st, 0, 20);
  if (h.readUInt32BE(0) !== 0x7f454c46 || h[5] !== 1) return null;
  return ELF_MACHINES[h.readUInt16LE(18)] ?? null;
}

/**
 * An image and a kernel of different architectures cannot boot: say so before any VM starts
 * (QEMU would run the wrong emulator, or the kernel would fail to exec init).
 */
export function checkArch(image: string, imageArch: string | null, kernel: KernelRef): void {
  if (imageArch === null || imageArch === kernel.arch) return;
  const pkg = imageArch === 'arm64' || imageArch === 'amd64' ? ` (e.g. \`rootforge kernel from-deb linux-image-cloud-${imageArch}\`)` : '';
  fail('VM_ARCH_MISMATCH', `boot ${image}`, `the image is ${imageArch} but kernel ${kernel.name} is ${kernel.arch}: boot it with a kernel for ${imageArch}${pkg}`, `image ${imageArch}, kernel ${kernel.arch}`);
}

export interface BootOptions extends Omit<VmConfig, 'image' | 'kernel' | 'init'> {
  vmm?: 'qemu' | 'firecracker';
  /** init= override; default the image's agent.json init. */
  init?: string;
}

/** Boots `image` with `kernel` and returns once its agent is ready. */
export async function bootImage(image: string, kernel: KernelRef, options: BootOptions = {}): Promise<Vm> {
  const info = await imageBootInfo(image);
  if (!info.hasAgent) {
    fail('VM_NO_AGENT', `boot ${image}`, 'the image has no rootforge agent (/etc/rootforge/agent.json); build it with `rootforge build`', image);
  }
  checkArch(image, info.arch, kernel);
  if (options.vmm === 'firecracker' && kernel.arch !== hostArch()) {
    // Firecracker is KVM only: no emulation of another architecture
    fail('VM_ARCH_MISMATCH', `boot ${image} with Firecracker`, `Firecracker runs only guests of the host's architecture (${hostArch()}); use --vmm qemu, which emulates ${kernel.arch}`, kernel.arch);
  }
  const config: VmConfig = { ...options, image, kernel, ...(options.init ?? info.init ? { init: options.init ?? info.init! } : {}) };
  if (options.vmm === 'firecracker') return startFirecracker(config, { vsockPort: info.vsockPort });
  return startQemu(config);
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

export interface BootCheckReport {
  ok: boolean;
  timings: BootTimings;
  checks: CheckResult[];
  /** The console's last lines when a check failed. */
  consoleTail?: string;
}

/**
 * The `verify --boot` checks on a running VM: the agent's own version, each expected command
 * (through `sh -c` when the image has a shell), a file round trip, and a clean power-off.
 */
export async function checkBoot(vm: Vm, expect: string[], shell: string | null): Promise<BootCheckReport> {
  const checks: CheckResult[] = [];
  const agent = vm.agent;
  await runCheck(checks, 'agent-exec', async () => {
    const r = await agent.exec(['/usr/sbin/rootforge-agent', '--version'], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`rootforge-agent --version exited ${r.code ?? r.signal}`);
    return `rootforge-agent ${r.stdout?.toString().trim()}`;
  });
  for (const cmd of expect) {
    await runCheck(checks, `expect: ${cmd}`, async () => {
      const argv = shell ? [shell, '-c', cmd] : cmd.split(/\s+/).filter(Boolean);
      const r = await agent.exec(argv, { timeoutMs: 120_000 });
      const out = `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`.trim().slice(-500);
      if (r.code !== 0) throw new Error(`exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}${out ? `: ${out}` : ''}`);
      return out.split('\n').slice(-1)[0] ?? '';
    });
  }
  await runCheck(checks, 'file-round-trip', async () => fileRoundTrip(agent));
  const shutdown = await vm.shutdown(15_000);
  checks.push({ name: 'power-off', ok: shutdown.clean, detail: shutdown.clean ? 'the VM stopped by itself' : 'the VM had to be killed' });
  const ok = checks.every((c) => c.ok);
  return { ok, timings: vm.timings, checks, ...(ok ? {} : { consoleTail: vm.consoleTail(40) }) };
}

async function fileRoundTrip(agent: AgentClient): Promise<string> {
  const data = Buffer.from(`rootforge verify ${Date.now()}\n\u0000\u00ff binary`);
  const path = '/tmp/.rootforge-verify';
  await agent.writeFile(path, data, { mode: 0o600 });
  const back = await agent.readFile(path);
  if (!back.equals(data)) throw new Error('the file read back differs');
  return `${data.length} bytes written and read back`;
}

async function runCheck(checks: CheckResult[], name: string, fn: () => Promise<string>): Promise<void> {
  try {
    checks.push({ name, ok: true, detail: await fn() });
  } catch (e) {
    checks.push({ name, ok: false, detail: (e as Error).message });
  }
}
