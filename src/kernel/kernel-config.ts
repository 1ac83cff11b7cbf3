/**
 * Checks a kernel's build configuration (/boot/config-*) for what a rootforge microVM needs, and
 * says for each piece whether it is built in (y), a module (m: it must then be in the initramfs,
 * and this list is where the initramfs's module list comes from) or missing.
 *
 * "required": the VM cannot boot an image or reach the agent without it.
 * "recommended": a feature degrades (no direct vmlinux boot, no virtio-serial channel, …).
 * "optional": loaded when it is a module, not reported when missing.
 */
export type ConfigState = 'y' | 'm' | 'missing';

export interface ConfigCheck {
  symbol: string;
  state: ConfigState;
  need: 'required' | 'recommended' | 'optional';
  why: string;
  /** The module that provides it, when it can be one. */
  module?: string;
}

export interface ConfigReport {
  checks: ConfigCheck[];
  /** Required symbols that are missing: the kernel will not boot our images. */
  missing: string[];
  /** Recommended symbols that are missing. */
  warnings: string[];
  /** Modules the initramfs must load (checks in state m), in check order. */
  modules: string[];
}

interface Want {
  symbol: string;
  need: ConfigCheck['need'];
  why: string;
  module?: string;
  arch?: 'x86_64' | 'aarch64';
}

/** The list, in the order modules are wanted (dependencies are added by planModuleLoad). */
const WANTS: Want[] = [
  { symbol: 'BLK_DEV_INITRD', need: 'required', why: 'initramfs support (the modules below are loaded from one)' },
  { symbol: 'DEVTMPFS', need: 'required', why: 'device nodes in /dev for the root disk and the console (the initramfs and the agent mount it)' },
  { symbol: 'SERIAL_8250_CONSOLE', need: 'required', why: 'console=ttyS0: the serial console the boot log is read from', arch: 'x86_64' },
  { symbol: 'SERIAL_AMBA_PL011_CONSOLE', need: 'required', why: 'console=ttyAMA0: the PL011 serial console of QEMU -M virt (the boot log)', arch: 'aarch64' },
  { symbol: 'SERIAL_8250_CONSOLE', need: 'recommended', why: "console=ttyS0: Firecracker's serial console on aarch64 (an 8250 UART in the device tree)", arch: 'aarch64' },
  { symbol: 'SERIAL_OF_PLATFORM', need: 'recommended', why: 'the 8250 UART Firecracker describes in the device tree (aarch64)', arch: 'aarch64' },
  { symbol: 'VIRTIO', need: 'required', why: 'virtio core (with virtio_ring)', module: 'virtio' },
  { symbol: 'VIRTIO_MMIO', need: 'required', why: 'virtio-mmio transport: all devices of Firecracker and QEMU -M microvm', module: 'virtio_mmio' },
  { symbol: 'ACPI', need: 'recommended', why: 'ACPI tables: how QEMU microvm and Firecracker ≥ 1.8 describe virtio-mmio devices', arch: 'x86_64' },
  { symbol: 'VIRTIO_MMIO_CMDLINE_DEVICES', need: 'recommended', why: 'virtio-mmio devices given on the command line (Firecracker < 1.8, or ACPI off); otherwise ACPI describes them', arch: 'x86_64' },
  { symbol: 'VIRTIO_PCI', need: 'recommended', why: 'virtio-pci transport (QEMU -M q35/pc, microvm with pcie=on)', module: 'virtio_pci' },
  { symbol: 'VIRTIO_BLK', need: 'required', why: 'the root disk (/dev/vda)', module: 'virtio_blk' },
  { symbol: 'EXT4_FS', need: 'required', why: 'the root filesystem (rootforge images are ext4)', module: 'ext4' },
  { symbol: 'VIRTIO_CONSOLE', need: 'recommended', why: 'virtio-serial ports: the agent channel under QEMU (no vhost-vsock there)', module: 'virtio_console' },
  { symbol: 'VSOCKETS', need: 'recommended', why: 'AF_VSOCK: the agent channel under Firecracker', module: 'vsock' },
  { symbol: 'VIRTIO_VSOCKETS_COMMON', need: 'recommended', why: 'virtio vsock transport (common part)', module: 'vmw_vsock_virtio_transport_common' },
  { symbol: 'VIRTIO_VSOCKETS', need: 'recommended', why: 'virtio vsock transport (Firecracker vsock device)', module: 'vmw_vsock_virtio_transport' },
  { symbol: 'ARM_PSCI_FW', need: 'required', why: 'PSCI: how an arm64 guest powers off and reboots (the VM exits on shutdown)', arch: 'aarch64' },
  { symbol: 'PVH', need: 'recommended', why: 'PVH entry: the uncompressed vmlinux boots directly (Firecracker x86, QEMU -kernel vmlinux)', arch: 'x86_64' },
  { symbol: 'UNIX', need: 'recommended', why: 'Unix sockets (most programs in the image)', module: 'unix' },
  { symbol: 'OVERLAY_FS', need: 'recommended', why: 'overlayfs: the root of sandbox instances (base read-only, instance disk on top; rootforge instance)', module: 'overlay' },
  { symbol: 'TMPFS', need: 'recommended', why: 'tmpfs for /tmp and /run' },
  { symbol: 'VIRTIO_NET', need: 'optional', why: 'virtio-net: networking when the VM has a NIC', module: 'virtio_net' },
  { symbol: 'VIRTIO_FS', need: 'optional', why: 'virtio-fs shares (the agent mounts them when the VMM provides them)', module: 'virtiofs' },
  { symbol: 'HW_RANDOM_VIRTIO', need: 'optional', why: 'virtio-rng entropy', module: 'virtio_rng' },
];

/** CONFIG_X=y/m pairs from a .config ("# CONFIG_X is not set" and absent are both "missing"). */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

export function checkKernelConfig(config: ReadonlyMap<string, string>, arch: 'x86_64' | 'aarch64' = 'x86_64'): ConfigReport {
  const checks: ConfigCheck[] = [];
  for (const w of WANTS) {
    if (w.arch !== undefined && w.arch !== arch) continue;
    const v = config.get(w.symbol);
    const state: ConfigState = v === 'y' ? 'y' : v === 'm' ? 'm' : 'missing';
    const c: ConfigCheck = { symbol: w.symbol, state, need: w.need, why: w.why };
    if (w.module !== undefined) c.module = w.module;
    checks.push(c);
  }
  const modules: string[] = [];
  for (const c of checks) if (c.state === 'm' && c.module !== undefined && !modules.includes(c.module)) modules.push(c.module);
  return {
    checks,
    missing: checks.filter((c) => c.state === 'missing' && c.need === 'required').map((c) => c.symbol),
    warnings: checks.filter((c) => c.state === 'missing' && c.need === 'recommended').map((c) => c.symbol),
    modules,
  };
}

/** One line per check for people: "VIRTIO_BLK  module (virtio_blk, in the initramfs)  the root disk". */
export function formatConfigReport(r: ConfigReport): string {
  const lines: string[] = [];
  for (const c of r.checks) {
    if (c.need === 'optional' && c.state === 'missing') continue;
    const state = c.state === 'y' ? 'built in' : c.state === 'm' ? `module ${c.module ?? ''} (initramfs)`.replace('  ', ' ') : c.need === 'required' ? 'MISSING' : 'missing';
    lines.push(`  ${c.symbol.padEnd(28)} ${state.padEnd(56)} ${c.why}`);
  }
  return lines.join('\n');
}
