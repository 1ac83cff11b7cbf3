/**
 * The one architecture table. Each row gives the names images use (OCI/Go `GOARCH`: amd64,
 * arm64, …), what they mean in ELF terms (e_machine, class, byte order), the names of the other
 * tools (uname -m, Node's process.arch, Debian/dpkg, Alpine/apk, the qemu-system and qemu-user
 * binaries), and what the loaders derive from them: the Debian multiarch triplets, musl's
 * `ld-musl-<arch>` name and glibc's $PLATFORM values. Every module that translates between
 * these names looks them up here (provision/arch, oci/manifest, vm/kernel-*, vm/machine, the
 * Debian and Alpine sources).
 */
import { ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, EM } from './elf-format.js';

export interface ArchInfo {
  /** The OCI / Go name: amd64, arm64, … */
  arch: string;
  machine: number;
  elfClass: number;
  data: number;
  /** The name `uname -m` and ELF tools use: x86_64, aarch64, … */
  name: string;
  /** Debian multiarch triplets (first one preferred). */
  triplets: string[];
  /** glibc's $PLATFORM candidates (AT_PLATFORM differs by CPU; any of these may be used). */
  platforms: string[];
  /** Node's `process.arch` on such a host. */
  node: string;
  /** dpkg's architecture name. */
  debian: string;
  /** apk's architecture name, when Alpine builds for it. */
  alpine?: string;
  /** The OCI platform variant images of this architecture usually carry (arm: v7). */
  variant?: string;
  /** The qemu-system binary that runs a whole machine of it. */
  qemuSystem: string;
  /** The qemu-user emulator's suffix (qemu-<it>-static, binfmt_misc qemu-<it>). */
  qemuUser: string;
}

const le = ELFDATA2LSB;
const be = ELFDATA2MSB;

export const ARCHITECTURES: readonly ArchInfo[] = [
  { arch: 'amd64', machine: EM.X86_64, elfClass: ELFCLASS64, data: le, name: 'x86_64', triplets: ['x86_64-linux-gnu'], platforms: ['x86_64', 'haswell', 'xeon_phi'], node: 'x64', debian: 'amd64', alpine: 'x86_64', qemuSystem: 'qemu-system-x86_64', qemuUser: 'x86_64' },
  { arch: 'arm64', machine: EM.AARCH64, elfClass: ELFCLASS64, data: le, name: 'aarch64', triplets: ['aarch64-linux-gnu'], platforms: ['aarch64'], node: 'arm64', debian: 'arm64', alpine: 'aarch64', qemuSystem: 'qemu-system-aarch64', qemuUser: 'aarch64' },
  { arch: '386', machine: EM.I386, elfClass: ELFCLASS32, data: le, name: 'i386', triplets: ['i386-linux-gnu'], platforms: ['i686', 'i586', 'i486', 'i386'], node: 'ia32', debian: 'i386', alpine: 'x86', qemuSystem: 'qemu-system-i386', qemuUser: 'i386' },
  { arch: 'arm', machine: EM.ARM, elfClass: ELFCLASS32, data: le, name: 'arm', triplets: ['arm-linux-gnueabihf', 'arm-linux-gnueabi'], platforms: ['v7l', 'v6l', 'v5l'], node: 'arm', debian: 'armhf', alpine: 'armv7', variant: 'v7', qemuSystem: 'qemu-system-arm', qemuUser: 'arm' },
  { arch: 'ppc64le', machine: EM.PPC64, elfClass: ELFCLASS64, data: le, name: 'ppc64le', triplets: ['powerpc64le-linux-gnu'], platforms: ['power8', 'power9', 'power10'], node: 'ppc64', debian: 'ppc64el', alpine: 'ppc64le', qemuSystem: 'qemu-system-ppc64', qemuUser: 'ppc64le' },
  { arch: 'ppc64', machine: EM.PPC64, elfClass: ELFCLASS64, data: be, name: 'ppc64', triplets: ['powerpc64-linux-gnu'], platforms: ['power8', 'power9'], node: 'ppc64', debian: 'ppc64', qemuSystem: 'qemu-system-ppc64', qemuUser: 'ppc64' },
  { arch: 's390x', machine: EM.S390, elfClass: ELFCLASS64, data: be, name: 's390x', triplets: ['s390x-linux-gnu'], platforms: ['z13', 'z14', 'z15'], node: 's390x', debian: 's390x', alpine: 's390x', qemuSystem: 'qemu-system-s390x', qemuUser: 's390x' },
  { arch: 'riscv64', machine: EM.RISCV, elfClass: ELFCLASS64, data: le, name: 'riscv64', triplets: ['riscv64-linux-gnu'], platforms: ['riscv64'], node: 'riscv64', debian: 'riscv64', alpine: 'riscv64', qemuSystem: 'qemu-system-riscv64', qemuUser: 'riscv64' },
  { arch: 'mips64le', machine: EM.MIPS, elfClass: ELFCLASS64, data: le, name: 'mips64el', triplets: ['mips64el-linux-gnuabi64'], platforms: ['mips64'], node: 'mips64el', debian: 'mips64el', qemuSystem: 'qemu-system-mips64el', qemuUser: 'mips64el' },
  { arch: 'loong64', machine: EM.LOONGARCH, elfClass: ELFCLASS64, data: le, name: 'loongarch64', triplets: ['loongarch64-linux-gnu'], platforms: ['loongarch64'], node: 'loong64', debian: 'loong64', alpine: 'loongarch64', qemuSystem: 'qemu-system-loongarch64', qemuUser: 'loongarch64' },
];

/** The architecture of an ELF (machine + class + byte order), or undefined for ones not listed. */
export function archOf(machine: number, elfClass: number, data: number): ArchInfo | undefined {
  return ARCHITECTURES.find((a) => a.machine === machine && a.elfClass === elfClass && a.data === data);
}

/** Looks an architecture up by its OCI name, accepting the uname names too (x86_64, aarch64). */
export function archByName(name: string): ArchInfo | undefined {
  return ARCHITECTURES.find((a) => a.arch === name || a.name === name);
}

/** A human name for an ELF's machine: "x86_64 (amd64)", or "e_machine 999 (64-bit BE)". */
export function describeMachine(machine: number, elfClass: number, data: number): string {
  const a = archOf(machine, elfClass, data);
  if (a) return `${a.name} (${a.arch})`;
  return `e_machine ${machine} (${elfClass === ELFCLASS64 ? 64 : 32}-bit ${data === ELFDATA2MSB ? 'BE' : 'LE'})`;
}

/** The row for an architecture rootforge boots VMs of (amd64, arm64), by any of its names. */
export function vmArch(name: string | null | undefined): (ArchInfo & { arch: 'amd64' | 'arm64'; name: 'x86_64' | 'aarch64' }) | undefined {
  const a = name ? archByAnyName(name) : undefined;
  return a && (a.arch === 'amd64' || a.arch === 'arm64') ? (a as ArchInfo & { arch: 'amd64' | 'arm64'; name: 'x86_64' | 'aarch64' }) : undefined;
}

/** This host's architecture (Node's `process.arch`; ppc64 hosts are taken as little-endian). */
export function hostArch(): ArchInfo | undefined {
  return ARCHITECTURES.find((a) => a.node === process.arch);
}

/** The row with this ELF e_machine (any class or byte order; the first listed wins: ppc64le). */
export function archByMachine(machine: number): ArchInfo | undefined {
  return ARCHITECTURES.find((a) => a.machine === machine);
}

/** Looks an architecture up by any of its names: OCI, uname, Node, Debian, Alpine. */
export function archByAnyName(name: string): ArchInfo | undefined {
  return archByName(name) ?? ARCHITECTURES.find((a) => a.node === name || a.debian === name || a.alpine === name);
}

/** The Go/OCI name for an architecture given by any of its names; unknown names pass through. */
export function ociArchName(name: string): string {
  return archByAnyName(name)?.arch ?? name;
}
