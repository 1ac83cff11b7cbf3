/** What the VM runners share: the kernel they boot, their options, and a running VM. */
import type { AgentClient } from '../agent-client/agent-client.js';

export interface KernelRef {
  /** The uncompressed kernel (ELF vmlinux; QEMU boots it through its PVH note). */
  vmlinux: string;
  /** An initramfs that loads the modules the kernel needs and switches to the image. */
  initramfs?: string;
  name: string;
  /** Go architecture name: amd64, arm64. */
  arch: string;
}

export interface VmConfig {
  /** The ext4 root image (never modified: QEMU uses snapshot=on). */
  image: string;
  kernel: KernelRef;
  /** Default 1. */
  cpus?: number;
  /** Default 256. */
  memMiB?: number;
  /** Hard limit from VMM start to the agent's ready, ms. Default 60000. */
  bootTimeoutMs?: number;
  accel?: 'auto' | 'kvm' | 'tcg';
  /** init= on the kernel command line (the image's agent.json says which). */
  init?: string;
  /** Mount the root read-only (read-only images). */
  readOnlyRoot?: boolean;
  /** Where to keep the whole serial console (default: not kept beyond the last lines). */
  consoleLog?: string | null;
  /** Console output as it arrives (for --console). */
  onConsole?: (chunk: Buffer) => void;
  extraCmdline?: string[];
  /** The VMM binary (default qemu-system-<arch> / firecracker on PATH). */
  vmmBinary?: string;
  /** More disks after the root, in this order (see devices.ts for their guest names). */
  disks?: VmDisk[];
  /** virtio-fs shares served by a running virtiofsd (QEMU only; see devices.ts). */
  fsShares?: VmFsShare[];
}

export interface VmDisk {
  /** Drive id (QEMU drive id, Firecracker drive_id): letters, digits, '-' and '_'. */
  id: string;
  path: string;
  readOnly: boolean;
}

export interface VmFsShare {
  /** The virtio-fs tag the guest mounts. */
  tag: string;
  /** The virtiofsd's vhost-user socket. */
  socket: string;
}

/** Milliseconds since the VMM was started, unless noted. */
export interface BootTimings {
  vmm: 'qemu' | 'firecracker';
  accel: string;
  accelReason: string;
  vmmStartMs: number;
  /** The first console output: the kernel is running. */
  kernelMs?: number;
  /** The console line "Run /sbin/init as init process" arrived. */
  initMs?: number;
  /** The guest's own clock at that line (printk time). */
  initGuestMs?: number;
  /** The agent answered ready. */
  readyMs: number;
  /** The guest's uptime when the agent said ready (its own clock). */
  agentUptimeMs: number;
}

export interface Vm {
  readonly agent: AgentClient;
  readonly timings: BootTimings;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  consoleTail(n?: number): string;
  /** Asks the agent to power off; kills the VM if it does not stop in time. */
  shutdown(timeoutMs?: number): Promise<{ clean: boolean }>;
  /** Stops the VM at once. */
  kill(): Promise<void>;
}
