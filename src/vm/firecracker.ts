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
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { AgentClient, connectFirecrackerVsock } from '../agent-client/agent-client.js';
import { Cleanups, runSteps, type Step } from './steps.js';
import type { BootTimings, Vm, VmConfig } from './types.js';
import { bootTimings, failFromVm, shutdownVm, sleep, spawnVmm, waitAgentReady, type VmmProcess } from './vmm-process.js';

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

/**
 * Firecracker's documented boot args plus ours: serial console, no PCI, panic = exit. On aarch64
 * Firecracker's getting-started adds keep_bootcon (its 8250 UART comes from the device tree, so
 * the early console is kept until it is registered); the kernel there is the arm64 Image.
 */
export function firecrackerBootArgs(config: VmConfig): string {
  const args = [...(config.kernel.arch === 'arm64' ? ['keep_bootcon'] : []), 'console=ttyS0', 'reboot=k', 'panic=1', 'pci=off', 'root=/dev/vda', 'rootfstype=ext4', config.readOnlyRoot ? 'ro' : 'rw', 'rootwait'];
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
  vmm?: VmmProcess;
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
      // Firecracker logs to stderr: it goes to the console log with the guest's serial output.
      ctx.vmm = spawnVmm('firecracker', cmd, args, { config: ctx.config, started: ctx.started, cleanups: ctx.cleanups, stderrToConsole: true });
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
          const child = ctx.vmm!.child;
          if (ctx.vmm!.console.events.panic) await failFromVm(ctx.config.image, ctx.vmm, 'VM_KERNEL_PANIC', `the kernel panicked: ${ctx.vmm!.console.events.panic}`);
          if (child.exitCode !== null || child.signalCode !== null) await failFromVm(ctx.config.image, ctx.vmm, 'VM_EXITED', 'Firecracker exited before the agent answered');
          if (performance.now() > deadline) await failFromVm(ctx.config.image, ctx.vmm, 'VM_BOOT_TIMEOUT', `no agent on vsock port ${port}: ${(e as Error).message}`);
          await sleep(100);
        }
      }
    },
  },
  {
    name: 'wait-ready',
    async run(ctx) {
      const left = Math.max(1000, (ctx.config.bootTimeoutMs ?? 60_000) - (performance.now() - ctx.started));
      const info = await waitAgentReady(ctx.config.image, ctx.vmm!, ctx.agent!, left);
      ctx.timings.readyMs = performance.now() - ctx.started;
      ctx.timings.agentUptimeMs = info.uptimeMs;
    },
  },
];

export async function startFirecracker(config: VmConfig, options: FirecrackerOptions = {}): Promise<Vm> {
  const ctx: FcCtx = { config, options, cleanups: new Cleanups(), started: performance.now(), timings: {} };
  try {
    await runSteps(STEPS, ctx);
  } catch (e) {
    const failures = await ctx.cleanups.run();
    if (failures.length > 0) throw new AggregateError([e, ...failures], (e as Error).message);
    throw e;
  }
  const vmm = ctx.vmm!;
  const timings: BootTimings = bootTimings('firecracker', 'kvm', 'Firecracker always uses KVM', vmm.console, {
    vmmStartMs: ctx.timings.vmmStartMs!,
    readyMs: ctx.timings.readyMs!,
    agentUptimeMs: ctx.timings.agentUptimeMs!,
  });
  return {
    agent: ctx.agent!,
    timings,
    exited: vmm.exited,
    consoleTail: (n = 40) => vmm.console.lastLines(n),
    async shutdown(timeoutMs = 10_000) {
      const { clean } = await shutdownVm(vmm, ctx.agent!, ctx.cleanups, timeoutMs);
      return { clean };
    },
    async kill() {
      const failures = await ctx.cleanups.run();
      if (failures.length > 0) throw new AggregateError(failures, 'Cannot stop the VM cleanly');
    },
  };
}
