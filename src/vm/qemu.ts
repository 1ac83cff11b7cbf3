/**
 * The QEMU runner: `-M microvm` (virtio-mmio, like Firecracker), the root disk as a virtio-blk
 * device with snapshot=on (the image file is never written), the serial console captured to a
 * log, and a virtio-serial port named org.rootforge.agent whose host end is a Unix socket the
 * agent client connects to. KVM when it works, TCG otherwise (with tsc_early_khz). QEMU runs in
 * its own process group, killed on every exit path, with a hard timeout around the boot.
 *
 *   steps: check-inputs → find-qemu → choose-accel → make-workdir → spawn-qemu →
 *          connect-agent → wait-ready
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail, RootforgeError } from '../errors.js';
import { chooseAccel, hostTscKhz, type AccelChoice } from './accel.js';
import { AgentClient, connectUnix } from './agent-client.js';
import { ConsoleLog } from './console.js';
import { qemuDeviceArgs } from './devices.js';
import { Cleanups, runSteps, type Step } from './steps.js';
import type { BootTimings, KernelRef, Vm, VmConfig } from './types.js';

export const SERIAL_PORT_NAME = 'org.rootforge.agent';

interface QemuCtx {
  config: VmConfig;
  cleanups: Cleanups;
  qemu?: string;
  accel?: AccelChoice;
  dir?: string;
  sock?: string;
  child?: ChildProcess;
  started: number;
  console?: ConsoleLog;
  exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  agent?: AgentClient;
  timings: Partial<BootTimings>;
}

/** Every QEMU this process started, killed if the process exits first (never orphans). */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; // already gone is fine
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of running) killGroup(c);
  });
}

export function qemuBinary(arch: string): string {
  return arch === 'arm64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64';
}

/** The kernel command line for a rootforge image. */
export function kernelCmdline(config: VmConfig, accel: AccelChoice): string {
  const args = ['console=ttyS0', 'reboot=t', 'panic=-1', 'root=/dev/vda', 'rootfstype=ext4', config.readOnlyRoot ? 'ro' : 'rw', 'rootwait'];
  if (config.init) args.push(`init=${config.init}`);
  if (accel.accel === 'tcg') {
    const khz = hostTscKhz();
    if (khz) args.push(`tsc_early_khz=${khz}`);
  }
  args.push(...(config.extraCmdline ?? []));
  return args.join(' ');
}

export function qemuArgv(config: VmConfig, accel: AccelChoice, sock: string): string[] {
  const k: KernelRef = config.kernel;
  const machine = k.arch === 'arm64' ? 'virt' : 'microvm';
  const extra = qemuDeviceArgs(config, `${machine},accel=${accel.accel}`);
  const argv = [
    '-M',
    extra.machine,
    '-cpu',
    accel.accel === 'kvm' ? 'host' : 'max',
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
      const bin = ctx.config.vmmBinary ?? qemuBinary(ctx.config.kernel.arch);
      if (spawnSync('which', [bin]).status !== 0) fail('VM_VMM_MISSING', 'boot with QEMU', `${bin} is not installed (Debian: apt-get install qemu-system-x86)`, bin);
      ctx.qemu = bin;
    },
  },
  {
    name: 'choose-accel',
    async run(ctx) {
      ctx.accel = chooseAccel(ctx.config.accel ?? 'auto');
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
      installExitHook();
      const argv = qemuArgv(ctx.config, ctx.accel!, ctx.sock!);
      const child = spawn(ctx.qemu!, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(child);
      ctx.child = child;
      ctx.cleanups.add('kill qemu', async () => {
        killGroup(child);
        await ctx.exited;
        running.delete(child);
      });
      ctx.console = new ConsoleLog(ctx.config.consoleLog ?? null, ctx.started, ctx.config.onConsole ?? null);
      ctx.cleanups.add('close console log', () => ctx.console!.close());
      let stderr = '';
      child.stdout!.on('data', (c: Buffer) => ctx.console!.write(c));
      child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
      ctx.exited = new Promise((resolve) => {
        child.on('exit', (code, signal) => resolve({ code, signal }));
        child.on('error', (e) => {
          stderr += e.message;
          resolve({ code: -1, signal: null });
        });
      });
      ctx.timings.vmmStartMs = performance.now() - ctx.started;
      ctx.exited.then(({ code }) => {
        if (code !== 0 && stderr && !ctx.console!.events.kernelAt) ctx.console!.write(Buffer.from(`[qemu] ${stderr}\n`));
      });
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
          if (ctx.child!.exitCode !== null || performance.now() > deadline) {
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
      const timeoutMs = ctx.config.bootTimeoutMs ?? 60_000;
      let panicked: () => void = () => {};
      const panic = new Promise<'panic'>((resolve) => {
        panicked = () => resolve('panic');
        ctx.console!.whenPanic(() => panicked());
      });
      const exited = ctx.exited!.then(() => 'exited' as const);
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
      const ready = ctx.agent!.waitReady({ timeoutMs, pollMs: 200 }).then(
        (info) => ({ info }),
        (error: unknown) => ({ error }),
      );
      const first = await Promise.race([ready, panic, exited, timer]);
      if (first === 'panic') await failFromVm(ctx, 'VM_KERNEL_PANIC', `the kernel panicked: ${ctx.console!.events.panic}`);
      if (first === 'exited') await failFromVm(ctx, 'VM_EXITED', 'the VM stopped before the agent was ready');
      if (first === 'timeout') await failFromVm(ctx, 'VM_BOOT_TIMEOUT', `the agent did not answer within ${timeoutMs / 1000} s`);
      if (typeof first === 'object' && 'error' in first) {
        // the connection often breaks because the VM is going down: say that when it is so
        const gone = await Promise.race([ctx.exited!.then(() => true), sleep(1000).then(() => false)]);
        if (ctx.console!.events.panic) await failFromVm(ctx, 'VM_KERNEL_PANIC', `the kernel panicked: ${ctx.console!.events.panic}`);
        if (gone) await failFromVm(ctx, 'VM_EXITED', 'the VM stopped before the agent was ready');
        await failFromVm(ctx, 'VM_NO_AGENT', `the agent did not become ready: ${(first.error as Error).message}`);
      }
      const info = (first as { info: { uptimeMs: number } }).info;
      ctx.timings.readyMs = performance.now() - ctx.started;
      ctx.timings.agentUptimeMs = info.uptimeMs;
    },
  },
];

/** Fails with the VM's console tail in the message (after giving the console a moment). */
async function failFromVm(ctx: QemuCtx, code: 'VM_START_FAILED' | 'VM_KERNEL_PANIC' | 'VM_EXITED' | 'VM_BOOT_TIMEOUT' | 'VM_NO_AGENT', reason: string): Promise<never> {
  await Promise.race([ctx.exited, sleep(300)]);
  const tail = ctx.console?.lastLines(40) ?? '';
  throw new RootforgeError(code, `Cannot boot ${ctx.config.image}: ${reason}\n--- last console lines ---\n${tail || '(no console output)'}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
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
  const c = ctx.console!.events;
  const timings: BootTimings = {
    vmm: 'qemu',
    accel: ctx.accel!.accel,
    accelReason: ctx.accel!.reason,
    vmmStartMs: ctx.timings.vmmStartMs!,
    ...(c.kernelAt !== undefined ? { kernelMs: c.kernelAt } : {}),
    ...(c.initAt !== undefined ? { initMs: c.initAt } : {}),
    ...(c.initGuestSec !== undefined ? { initGuestMs: c.initGuestSec * 1000 } : {}),
    readyMs: ctx.timings.readyMs!,
    agentUptimeMs: ctx.timings.agentUptimeMs!,
  };
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
    return this.ctx.console!.lastLines(n);
  }

  get exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.ctx.exited!;
  }

  /** Asks the agent to power off, waits (bounded) for QEMU to exit, then kills whatever is left. */
  async shutdown(timeoutMs = 10_000): Promise<{ clean: boolean }> {
    let clean = false;
    try {
      await this.agent.shutdown({ timeoutMs: Math.min(timeoutMs, 5000) });
      const r = await Promise.race([this.ctx.exited!.then(() => true), sleep(timeoutMs).then(() => false)]);
      clean = r;
    } catch (e) {
      // the agent may close the connection as it powers off; only a VM still running is a failure
      clean = await Promise.race([this.ctx.exited!.then(() => true), sleep(timeoutMs).then(() => false)]);
      if (!clean) this.ctx.console?.write(Buffer.from(`[rootforge] shutdown request failed: ${(e as Error).message}\n`));
    }
    await this.kill();
    return { clean };
  }

  async kill(): Promise<void> {
    const failures = await this.ctx.cleanups.run();
    if (failures.length > 0) throw new AggregateError(failures, 'Cannot stop the VM cleanly');
  }
}
