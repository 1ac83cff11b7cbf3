/**
 * The QEMU runner: `-M microvm` (virtio-mmio, like Firecracker; `-M virt` for arm64 guests:
 * machine.ts has what differs per architecture), the root disk as a virtio-blk
 * device with snapshot=on (the image file is never written), the serial console captured to a
 * log, and a virtio-serial port named org.rootforge.agent whose host end is a Unix socket the
 * agent client connects to. KVM when it works, TCG otherwise (with tsc_early_khz). QEMU runs in
 * its own process group, killed on every exit path, with a hard timeout around the boot.
 *
 *   steps: check-inputs → find-qemu → choose-accel → make-workdir → spawn-qemu →
 *          connect-agent → wait-ready
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail } from '../errors.js';
import type { AccelChoice } from './accel.js';
import { AgentClient, connectUnix } from '../agent-client/agent-client.js';
import { chooseGuestAccel, machineProfile, type MachineProfile } from './machine.js';
import { qemuDeviceArgs } from './devices.js';
import { Cleanups, runSteps, type Step } from './steps.js';
import { bootTimings, failFromVm as vmFail, shutdownVm, sleep, spawnVmm, waitAgentReady, type VmExit, type VmmProcess } from './vmm-process.js';
import type { BootTimings, KernelRef, Vm, VmConfig } from './types.js';

export const SERIAL_PORT_NAME = 'org.rootforge.agent';

interface QemuCtx {
  config: VmConfig;
  cleanups: Cleanups;
  qemu?: string;
  accel?: AccelChoice;
  dir?: string;
  sock?: string;
  vmm?: VmmProcess;
  started: number;
  agent?: AgentClient;
  timings: Partial<BootTimings>;
}

export function qemuBinary(arch: string): string {
  return profileOf(arch).qemu;
}

/** The machine profile (machine.ts) for a kernel's architecture; VM_ARCH_MISMATCH for others. */
function profileOf(arch: string): MachineProfile {
  const p = machineProfile(arch);
  if (p === undefined) fail('VM_ARCH_MISMATCH', 'boot with QEMU', 'no QEMU machine for this architecture (amd64 and arm64 are supported)', arch);
  return p;
}

/** The kernel command line for a rootforge image. */
export function kernelCmdline(config: VmConfig, accel: AccelChoice): string {
  const p = profileOf(config.kernel.arch);
  const args = [`console=${p.console}`, ...p.cmdline(accel), 'panic=-1', 'root=/dev/vda', 'rootfstype=ext4', config.readOnlyRoot ? 'ro' : 'rw', 'rootwait'];
  if (config.init) args.push(`init=${config.init}`);
  args.push(...(config.extraCmdline ?? []));
  return args.join(' ');
}

export function qemuArgv(config: VmConfig, accel: AccelChoice, sock: string): string[] {
  const k: KernelRef = config.kernel;
  const profile = profileOf(k.arch);
  const extra = qemuDeviceArgs(config, `${profile.machine},accel=${accel.accel}`);
  const argv = [
    '-M',
    extra.machine,
    '-cpu',
    profile.cpu(accel),
    '-smp',
    String(config.cpus ?? 1),
    '-m',
    String(config.memMiB ?? 256),
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-serial',
    'stdio',
    '-kernel',
    k.vmlinux,
  ];
  if (k.initramfs) argv.push('-initrd', k.initramfs);
  argv.push('-append', kernelCmdline(config, accel));
  argv.push('-drive', `id=root,file=${config.image},format=raw,if=none,snapshot=on${config.readOnlyRoot ? ',readonly=on' : ''}`);
  argv.push('-device', 'virtio-blk-device,drive=root');
  argv.push(...extra.argv);
  argv.push('-device', 'virtio-serial-device');
  argv.push('-chardev', `socket,id=agent,path=${sock},server=on,wait=off`);
  argv.push('-device', `virtserialport,chardev=agent,name=${SERIAL_PORT_NAME}`);
  return argv;
}

const STEPS: Step<QemuCtx>[] = [
  {
    name: 'check-inputs',
    async run({ config }) {
      for (const [what, p] of [
        ['image', config.image],
        ['kernel', config.kernel.vmlinux],
        ['initramfs', config.kernel.initramfs],
      ] as const) {
        if (p !== undefined && !existsSync(p)) fail('VM_START_FAILED', `boot ${config.image}`, `the ${what} does not exist`, p);
      }
    },
  },
  {
    name: 'find-qemu',
    async run(ctx) {
      const profile = profileOf(ctx.config.kernel.arch);
      const bin = ctx.config.vmmBinary ?? profile.qemu;
      if (spawnSync('which', [bin]).status !== 0) fail('VM_VMM_MISSING', 'boot with QEMU', `${bin} is not installed (Debian: apt-get install ${profile.qemuPackage})`, bin);
      ctx.qemu = bin;
    },
  },
  {
    name: 'choose-accel',
    async run(ctx) {
      ctx.accel = chooseGuestAccel(profileOf(ctx.config.kernel.arch).arch, ctx.config.accel ?? 'auto');
    },
  },
  {
    name: 'make-workdir',
    async run(ctx) {
      // socket paths are limited to 108 bytes: a short directory under the temp dir
      const dir = mkdtempSync(join(tmpdir(), 'rfvm-'));
      ctx.dir = dir;
      ctx.sock = join(dir, 'agent.sock');
      ctx.cleanups.add('remove workdir', () => rmSync(dir, { recursive: true, force: true }));
    },
  },
  {
    name: 'spawn-qemu',
    async run(ctx) {
      const argv = qemuArgv(ctx.config, ctx.accel!, ctx.sock!);
      ctx.vmm = spawnVmm('qemu', ctx.qemu!, argv, { config: ctx.config, started: ctx.started, cleanups: ctx.cleanups });
      ctx.timings.vmmStartMs = performance.now() - ctx.started;
    },
  },
  {
    name: 'connect-agent',
    async run(ctx) {
      // QEMU creates the socket as it starts; retry briefly until it accepts
      const deadline = performance.now() + 10_000;
      for (;;) {
        try {
          const sock = await connectUnix(ctx.sock!, { timeoutMs: 2000 });
          ctx.agent = new AgentClient(sock);
          ctx.cleanups.add('close agent connection', () => ctx.agent!.close());
          return;
        } catch (e) {
          if (ctx.vmm!.child.exitCode !== null || performance.now() > deadline) {
            await failFromVm(ctx, 'VM_START_FAILED', `QEMU did not open the agent socket: ${(e as Error).message}`);
          }
          await sleep(50);
        }
      }
    },
  },
  {
    name: 'wait-ready',
    async run(ctx) {
      const info = await waitAgentReady(ctx.config.image, ctx.vmm!, ctx.agent!, ctx.config.bootTimeoutMs ?? 60_000);
      ctx.timings.readyMs = performance.now() - ctx.started;
      ctx.timings.agentUptimeMs = info.uptimeMs;
    },
  },
];

function failFromVm(ctx: QemuCtx, code: 'VM_START_FAILED', reason: string): Promise<never> {
  return vmFail(ctx.config.image, ctx.vmm, code, reason);
}

/** Boots the image under QEMU and returns once the agent is ready. */
export async function startQemu(config: VmConfig): Promise<Vm> {
  const ctx: QemuCtx = { config, cleanups: new Cleanups(), started: performance.now(), timings: {} };
  try {
    await runSteps(STEPS, ctx);
  } catch (e) {
    const failures = await ctx.cleanups.run();
    if (failures.length > 0) throw new AggregateError([e, ...failures], (e as Error).message);
    throw e;
  }
  const timings = bootTimings('qemu', ctx.accel!.accel, ctx.accel!.reason, ctx.vmm!.console, {
    vmmStartMs: ctx.timings.vmmStartMs!,
    readyMs: ctx.timings.readyMs!,
    agentUptimeMs: ctx.timings.agentUptimeMs!,
  });
  return new RunningVm(ctx, timings);
}

class RunningVm implements Vm {
  constructor(
    private readonly ctx: QemuCtx,
    readonly timings: BootTimings,
  ) {}

  get agent(): AgentClient {
    return this.ctx.agent!;
  }

  consoleTail(n = 40): string {
    return this.ctx.vmm!.console.lastLines(n);
  }

  get exited(): Promise<VmExit> {
    return this.ctx.vmm!.exited;
  }

  /** Asks the agent to power off, waits (bounded) for QEMU to exit, then kills whatever is left. */
  async shutdown(timeoutMs = 10_000): Promise<{ clean: boolean }> {
    const { clean } = await shutdownVm(this.ctx.vmm!, this.agent, this.ctx.cleanups, timeoutMs);
    return { clean };
  }

  async kill(): Promise<void> {
    const failures = await this.ctx.cleanups.run();
    if (failures.length > 0) throw new AggregateError(failures, 'Cannot stop the VM cleanly');
  }
}
