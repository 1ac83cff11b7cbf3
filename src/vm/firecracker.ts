/**
 * The Firecracker runner. The VM is described by one JSON config (boot-source, drives,
 * machine-config, vsock with a host Unix socket) and started with `firecracker --no-api
 * --config-file`, or through the jailer. The agent is reached through Firecracker's vsock
 * relay: connect to the host socket, send `CONNECT <port>\n`, read `OK <hostport>\n`.
 *
 *   steps: check-inputs → find-firecracker → make-workdir → write-config → spawn-firecracker →
 *          connect-agent → wait-ready
 *
 * These CI machines cannot run Firecracker (no usable KVM); its tests use a stand-in binary
 * that relays the vsock socket to a real agent, and check the generated config.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail, RootforgeError } from '../errors.js';
import { AgentClient, connectFirecrackerVsock } from './agent-client.js';
import { ConsoleLog } from './console.js';
import { Cleanups, runSteps, type Step } from './steps.js';
import type { BootTimings, Vm, VmConfig } from './types.js';

export const DEFAULT_VSOCK_PORT = 1024;
/** The host is CID 2 and this machine's own vsock is 3: guests start at 4. */
export const GUEST_CID = 4;

export interface FirecrackerOptions {
  /** vsock port the agent listens on (agent.json vsockPort). Default 1024. */
  vsockPort?: number;
  /** Run through `jailer` (with its own chroot); default false. */
  jailer?: { binary?: string; uid: number; gid: number; chrootBase?: string; id?: string };
}

export interface FirecrackerConfig {
  'boot-source': { kernel_image_path: string; boot_args: string; initrd_path?: string };
  drives: { drive_id: string; path_on_host: string; is_root_device: boolean; is_read_only: boolean }[];
  'machine-config': { vcpu_count: number; mem_size_mib: number; smt?: boolean };
  vsock: { guest_cid: number; uds_path: string };
}

/** Firecracker's documented boot args plus ours: serial console, no PCI, panic = exit. */
export function firecrackerBootArgs(config: VmConfig): string {
  const args = ['console=ttyS0', 'reboot=k', 'panic=1', 'pci=off', 'root=/dev/vda', 'rootfstype=ext4', config.readOnlyRoot ? 'ro' : 'rw', 'rootwait'];
  if (config.init) args.push(`init=${config.init}`);
  args.push(...(config.extraCmdline ?? []));
  return args.join(' ');
}

/** The VM config Firecracker's --config-file takes (also what `build --emit-firecracker-config` writes). */
export function firecrackerConfig(config: VmConfig, vsockUds: string): FirecrackerConfig {
  const out: FirecrackerConfig = {
    'boot-source': { kernel_image_path: config.kernel.vmlinux, boot_args: firecrackerBootArgs(config) },
    drives: [
      { drive_id: 'rootfs', path_on_host: config.image, is_root_device: true, is_read_only: config.readOnlyRoot ?? false },
      // instance disk, config disk, share disks: /dev/vdb, /dev/vdc, … in this order
      ...(config.disks ?? []).map((d) => ({ drive_id: d.id, path_on_host: d.path, is_root_device: false, is_read_only: d.readOnly })),
    ],
    'machine-config': { vcpu_count: config.cpus ?? 1, mem_size_mib: config.memMiB ?? 256 },
    vsock: { guest_cid: GUEST_CID, uds_path: vsockUds },
  };
  if (config.kernel.initramfs) out['boot-source'].initrd_path = config.kernel.initramfs;
  return out;
}

interface FcCtx {
  config: VmConfig;
  options: FirecrackerOptions;
  cleanups: Cleanups;
  started: number;
  binary?: string;
  dir?: string;
  uds?: string;
  configPath?: string;
  child?: ChildProcess;
  console?: ConsoleLog;
  exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  agent?: AgentClient;
  timings: Partial<BootTimings>;
}

const STEPS: Step<FcCtx>[] = [
  {
    name: 'check-inputs',
    async run({ config }) {
      if ((config.fsShares?.length ?? 0) > 0) fail('OPTION_INVALID', `boot ${config.image}`, 'Firecracker has no virtio-fs: give shares to it as disks', config.fsShares!.map((s) => s.tag).join(','));
      for (const p of [config.image, config.kernel.vmlinux, config.kernel.initramfs, ...(config.disks ?? []).map((d) => d.path)]) {
        if (p !== undefined && !existsSync(p)) fail('VM_START_FAILED', `boot ${config.image}`, 'a file the VM needs does not exist', p);
      }
    },
  },
  {
    name: 'find-firecracker',
    async run(ctx) {
      const bin = ctx.config.vmmBinary ?? 'firecracker';
      const found = bin.includes('/') ? existsSync(bin) : spawnSync('which', [bin]).status === 0;
      if (!found) fail('VM_VMM_MISSING', 'boot with Firecracker', `${bin} is not installed (rootforge kernel fetch downloads the pinned release)`, bin);
      ctx.binary = bin;
    },
  },
  {
    name: 'make-workdir',
    async run(ctx) {
      const dir = mkdtempSync(join(tmpdir(), 'rffc-'));
      ctx.dir = dir;
      ctx.uds = join(dir, 'vsock.sock');
      ctx.cleanups.add('remove workdir', () => rmSync(dir, { recursive: true, force: true }));
    },
  },
  {
    name: 'write-config',
    async run(ctx) {
      ctx.configPath = join(ctx.dir!, 'vm.json');
      writeFileSync(ctx.configPath, JSON.stringify(firecrackerConfig(ctx.config, ctx.uds!), null, 2));
    },
  },
  {
    name: 'spawn-firecracker',
    async run(ctx) {
      const j = ctx.options.jailer;
      const [cmd, args] = j
        ? [j.binary ?? 'jailer', ['--id', j.id ?? 'rootforge', '--exec-file', ctx.binary!, '--uid', String(j.uid), '--gid', String(j.gid), ...(j.chrootBase ? ['--chroot-base-dir', j.chrootBase] : []), '--', '--no-api', '--config-file', ctx.configPath!]]
        : [ctx.binary!, ['--no-api', '--config-file', ctx.configPath!]];
      const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      ctx.child = child;
      ctx.exited = new Promise((resolve) => {
        child.on('exit', (code, signal) => resolve({ code, signal }));
        child.on('error', () => resolve({ code: -1, signal: null }));
      });
      ctx.cleanups.add('kill firecracker', async () => {
        if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
          }
        }
        await ctx.exited;
      });
      ctx.console = new ConsoleLog(ctx.config.consoleLog ?? null, ctx.started, ctx.config.onConsole ?? null);
      ctx.cleanups.add('close console log', () => ctx.console!.close());
      child.stdout!.on('data', (c: Buffer) => ctx.console!.write(c));
      child.stderr!.on('data', (c: Buffer) => ctx.console!.write(c));
      ctx.timings.vmmStartMs = performance.now() - ctx.started;
    },
  },
  {
    name: 'connect-agent',
    async run(ctx) {
      const deadline = performance.now() + (ctx.config.bootTimeoutMs ?? 60_000);
      const port = ctx.options.vsockPort ?? DEFAULT_VSOCK_PORT;
      // the relay refuses (or the guest has not listened yet) until the agent is up: retry
      for (;;) {
        try {
          const sock = await connectFirecrackerVsock(ctx.uds!, port, { timeoutMs: 2000 });
          ctx.agent = new AgentClient(sock);
          ctx.cleanups.add('close agent connection', () => ctx.agent!.close());
          return;
        } catch (e) {
          if (ctx.child!.exitCode !== null || ctx.child!.signalCode !== null) await fcFail(ctx, 'VM_EXITED', 'Firecracker exited before the agent answered');
          if (performance.now() > deadline) await fcFail(ctx, 'VM_BOOT_TIMEOUT', `no agent on vsock port ${port}: ${(e as Error).message}`);
          await new Promise((r) => setTimeout(r, 100).unref());
        }
      }
    },
  },
  {
    name: 'wait-ready',
    async run(ctx) {
      const left = Math.max(1000, (ctx.config.bootTimeoutMs ?? 60_000) - (performance.now() - ctx.started));
      try {
        const info = await ctx.agent!.waitReady({ timeoutMs: left, pollMs: 200 });
        ctx.timings.readyMs = performance.now() - ctx.started;
        ctx.timings.agentUptimeMs = info.uptimeMs;
      } catch (e) {
        await fcFail(ctx, 'VM_NO_AGENT', `the agent did not become ready: ${(e as Error).message}`);
      }
    },
  },
];

async function fcFail(ctx: FcCtx, code: 'VM_EXITED' | 'VM_BOOT_TIMEOUT' | 'VM_NO_AGENT', reason: string): Promise<never> {
  const tail = ctx.console?.lastLines(40) ?? '';
  throw new RootforgeError(code, `Cannot boot ${ctx.config.image}: ${reason}\n--- last console lines ---\n${tail || '(no console output)'}`);
}

export async function startFirecracker(config: VmConfig, options: FirecrackerOptions = {}): Promise<Vm> {
  const ctx: FcCtx = { config, options, cleanups: new Cleanups(), started: performance.now(), timings: {} };
  try {
    await runSteps(STEPS, ctx);
  } catch (e) {
    const failures = await ctx.cleanups.run();
    if (failures.length > 0) throw new AggregateError([e, ...failures], (e as Error).message);
    throw e;
  }
  const c = ctx.console!.events;
  const timings: BootTimings = {
    vmm: 'firecracker',
    accel: 'kvm',
    accelReason: 'Firecracker always uses KVM',
    vmmStartMs: ctx.timings.vmmStartMs!,
    ...(c.kernelAt !== undefined ? { kernelMs: c.kernelAt } : {}),
    ...(c.initAt !== undefined ? { initMs: c.initAt } : {}),
    ...(c.initGuestSec !== undefined ? { initGuestMs: c.initGuestSec * 1000 } : {}),
    readyMs: ctx.timings.readyMs!,
    agentUptimeMs: ctx.timings.agentUptimeMs!,
  };
  return {
    agent: ctx.agent!,
    timings,
    exited: ctx.exited!,
    consoleTail: (n = 40) => ctx.console!.lastLines(n),
    async shutdown(timeoutMs = 10_000) {
      let clean = false;
      try {
        await ctx.agent!.shutdown({ timeoutMs: Math.min(timeoutMs, 5000) });
      } catch (e) {
        void e; // the connection may drop as the guest powers off; whether it exits decides
      }
      clean = await Promise.race([ctx.exited!.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
      const failures = await ctx.cleanups.run();
      if (failures.length > 0) throw new AggregateError(failures, 'Cannot stop the VM cleanly');
      return { clean };
    },
    async kill() {
      const failures = await ctx.cleanups.run();
      if (failures.length > 0) throw new AggregateError(failures, 'Cannot stop the VM cleanly');
    },
  };
}
