/**
 * What differs between guest architectures under QEMU, in one place: the QEMU binary, the
 * machine, the CPU model, the serial console's name and the kernel parameters that only make
 * sense on one of them. The runner (qemu.ts) adds the same disks and the same virtio-serial agent
 * channel on both: `-M microvm` and `-M virt` both have virtio-mmio transports, so the
 * `virtio-*-device` devices are the same.
 *
 *   amd64  qemu-system-x86_64  -M microvm  console=ttyS0 (8250)   reboot=t, tsc_early_khz under TCG
 *   arm64  qemu-system-aarch64 -M virt     console=ttyAMA0 (PL011) PSCI power-off ends the VM
 *
 * KVM only runs a guest of the host's own architecture: an arm64 guest on an x86_64 host is
 * always TCG (and the other way round).
 */
import { vmArch } from '../verify/arch.js';
import { hostArch } from '../provision/arch.js';
import { chooseAccel, hostTscKhz, type AccelChoice } from './accel.js';

export type GuestArch = 'amd64' | 'arm64';

export interface MachineProfile {
  arch: GuestArch;
  /** The QEMU binary on PATH. */
  qemu: string;
  /** The Debian package that has it (for the "not installed" message). */
  qemuPackage: string;
  /** -M value without the accel part. */
  machine: string;
  /** The serial console device the kernel writes its log to. */
  console: string;
  /** -cpu for an accelerator. */
  cpu(accel: AccelChoice): string;
  /** Kernel parameters this architecture needs (after console=, before the root= ones). */
  cmdline(accel: AccelChoice): string[];
}

const AMD64: MachineProfile = {
  arch: 'amd64',
  qemu: vmArch('amd64')!.qemuSystem,
  qemuPackage: 'qemu-system-x86',
  machine: 'microvm',
  console: 'ttyS0',
  cpu: (a) => (a.accel === 'kvm' ? 'host' : 'max'),
  cmdline(a) {
    const args = ['reboot=t'];
    if (a.accel === 'tcg') {
      // under TCG about half the boots otherwise hang calibrating the TSC (MACHINE-NOTES)
      const khz = hostTscKhz();
      if (khz) args.push(`tsc_early_khz=${khz}`);
    }
    return args;
  },
};

const ARM64: MachineProfile = {
  arch: 'arm64',
  qemu: vmArch('arm64')!.qemuSystem,
  qemuPackage: 'qemu-system-arm',
  machine: 'virt',
  console: 'ttyAMA0',
  // under TCG a plain ARMv8 core: "max" emulates pointer authentication (QARMA), which makes
  // every function call cost several times more
  cpu: (a) => (a.accel === 'kvm' ? 'host' : 'cortex-a72'),
  cmdline: () => [],
};

const PROFILES: Record<GuestArch, MachineProfile> = { amd64: AMD64, arm64: ARM64 };

/** The profile for a Go/OCI architecture name (also accepts x86_64 and aarch64). */
export function machineProfile(arch: string): MachineProfile | undefined {
  const a = vmArch(arch);
  return a ? PROFILES[a.arch] : undefined;
}

/**
 * The accelerator for a guest: KVM rules as for the host (accel.ts), but only when the guest is
 * the host's architecture; a forced kvm for a foreign guest is kept (QEMU then says why it fails).
 */
export function chooseGuestAccel(guest: GuestArch, want: 'auto' | 'kvm' | 'tcg' = 'auto', env: NodeJS.ProcessEnv = process.env, host = hostArch()): AccelChoice {
  const forced = env['ROOTFORGE_ACCEL'];
  if (guest !== host && want === 'auto' && (forced === undefined || forced === '' || forced === 'auto')) {
    return { accel: 'tcg', reason: `${guest} guest on this ${host} host (KVM runs only the host's architecture)` };
  }
  return chooseAccel(want, env);
}
