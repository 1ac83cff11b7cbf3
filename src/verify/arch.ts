/**
 * Architectures: the names images use (OCI/Go `GOARCH`: amd64, arm64, …) and what they mean in
 * ELF terms (e_machine, class, byte order), plus what the loaders derive from them: the Debian
 * multiarch triplets, musl's `ld-musl-<arch>` name and glibc's $PLATFORM values.
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
}

const le = ELFDATA2LSB;
const be = ELFDATA2MSB;

export const ARCHITECTURES: readonly ArchInfo[] = [
  { arch: 'amd64', machine: EM.X86_64, elfClass: ELFCLASS64, data: le, name: 'x86_64', triplets: ['x86_64-linux-gnu'], platforms: ['x86_64', 'haswell', 'xeon_phi'] },
  { arch: 'arm64', machine: EM.AARCH64, elfClass: ELFCLASS64, data: le, name: 'aarch64', triplets: ['aarch64-linux-gnu'], platforms: ['aarch64'] },
  { arch: '386', machine: EM.I386, elfClass: ELFCLASS32, data: le, name: 'i386', triplets: ['i386-linux-gnu'], platforms: ['i686', 'i586', 'i486', 'i386'] },
  { arch: 'arm', machine: EM.ARM, elfClass: ELFCLASS32, data: le, name: 'arm', triplets: ['arm-linux-gnueabihf', 'arm-linux-gnueabi'], platforms: ['v7l', 'v6l', 'v5l'] },
  { arch: 'ppc64le', machine: EM.PPC64, elfClass: ELFCLASS64, data: le, name: 'ppc64le', triplets: ['powerpc64le-linux-gnu'], platforms: ['power8', 'power9', 'power10'] },
  { arch: 'ppc64', machine: EM.PPC64, elfClass: ELFCLASS64, data: be, name: 'ppc64', triplets: ['powerpc64-linux-gnu'], platforms: ['power8', 'power9'] },
  { arch: 's390x', machine: EM.S390, elfClass: ELFCLASS64, data: be, name: 's390x', triplets: ['s390x-linux-gnu'], platforms: ['z13', 'z14', 'z15'] },
  { arch: 'riscv64', machine: EM.RISCV, elfClass: ELFCLASS64, data: le, name: 'riscv64', triplets: ['riscv64-linux-gnu'], platforms: ['riscv64'] },
  { arch: 'mips64le', machine: EM.MIPS, elfClass: ELFCLASS64, data: le, name: 'mips64el', triplets: ['mips64el-linux-gnuabi64'], platforms: ['mips64'] },
  { arch: 'loong64', machine: EM.LOONGARCH, elfClass: ELFCLASS64, data: le, name: 'loongarch64', triplets: ['loongarch64-linux-gnu'], platforms: ['loongarch64'] },
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

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips64el: 'mips64le' };

/** This host's architecture (Node's `process.arch`, mapped to the OCI name). */
export function hostArch(): ArchInfo | undefined {
  const name = NODE_ARCH[process.arch];
  return name === undefined ? undefined : archByName(name);
}
