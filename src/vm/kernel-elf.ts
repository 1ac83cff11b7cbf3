/**
 * Just enough ELF to tell what a kernel image is: class, machine, and its notes — above all the
 * Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY), which is what lets QEMU (-kernel vmlinux) and
 * Firecracker enter an uncompressed x86 vmlinux directly in 32-bit protected mode.
 *
 *   ELF64 header: 0x00 e_ident (0x7f 'E' 'L' 'F', class 2 = 64-bit, data 1 = LE)
 *                 0x12 2 e_machine (62 x86-64, 183 aarch64)
 *                 0x20 8 e_phoff   0x36 2 e_phentsize   0x38 2 e_phnum
 *   Phdr64:       0x00 4 p_type (4 = PT_NOTE)   0x08 8 p_offset   0x20 8 p_filesz
 *   Note:         namesz descsz type (u32 each), name, pad4, desc, pad4
 *
 * Also recognises the arm64 "Image" header (magic "ARM\x64" at 0x38), the format Firecracker
 * takes on aarch64.
 */
import { fail } from '../errors.js';

export type KernelArch = 'x86_64' | 'aarch64';

export interface ElfNote {
  name: string;
  type: number;
  desc: Buffer;
}

export interface KernelImageInfo {
  format: 'elf' | 'arm64-image';
  arch: KernelArch;
  /** The PVH entry point (physical address) when the ELF has the Xen PHYS32_ENTRY note. */
  pvhEntry?: number;
  notes: ElfNote[];
}

const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const PT_NOTE = 4;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

export function isArm64Image(b: Uint8Array): boolean {
  return b.length >= 0x40 && b[0x38] === 0x41 && b[0x39] === 0x52 && b[0x3a] === 0x4d && b[0x3b] === 0x64;
}

/** Describes a vmlinux (ELF) or arm64 Image; KERNEL_BAD_IMAGE for anything else. */
export function kernelImageInfo(b: Buffer, what = 'read kernel image'): KernelImageInfo {
  if (isArm64Image(b)) return { format: 'arm64-image', arch: 'aarch64', notes: [] };
  if (!isElf(b)) fail('KERNEL_BAD_IMAGE', what, 'not an ELF file or arm64 Image');
  if (b[4] !== 2 || b[5] !== 1) fail('KERNEL_BAD_IMAGE', what, 'not a 64-bit little-endian ELF');
  const machine = b.readUInt16LE(0x12);
  const arch: KernelArch | undefined = machine === EM_X86_64 ? 'x86_64' : machine === EM_AARCH64 ? 'aarch64' : undefined;
  if (arch === undefined) fail('KERNEL_BAD_IMAGE', what, 'unsupported ELF machine', machine);
  const notes = readNotes(b, what);
  const pvh = notes.find((n) => n.name === 'Xen' && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  const info: KernelImageInfo = { format: 'elf', arch, notes };
  if (pvh !== undefined && pvh.desc.length >= 4) info.pvhEntry = pvh.desc.length >= 8 ? Number(pvh.desc.readBigUInt64LE(0)) : pvh.desc.readUInt32LE(0);
  return info;
}

function readNotes(b: Buffer, what: string): ElfNote[] {
  const phoff = num(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  if (phentsize < 0x38 || phoff + phnum * phentsize > b.length) fail('KERNEL_BAD_IMAGE', what, 'program headers outside the file');
  const notes: ElfNote[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (b.readUInt32LE(ph) !== PT_NOTE) continue;
    const off = num(b.readBigUInt64LE(ph + 0x08));
    const size = num(b.readBigUInt64LE(ph + 0x20));
    if (off + size > b.length) fail('KERNEL_BAD_IMAGE', what, 'a note segment lies outside the file');
    let p = off;
    const end = off + size;
    while (end - p >= 12) {
      const namesz = b.readUInt32LE(p);
      const descsz = b.readUInt32LE(p + 4);
      const type = b.readUInt32LE(p + 8);
      const nameAt = p + 12;
      const descAt = nameAt + align4(namesz);
      if (descAt + descsz > end) break;
      notes.push({ name: b.toString('latin1', nameAt, nameAt + Math.max(0, namesz - 1)), type, desc: b.subarray(descAt, descAt + descsz) });
      p = descAt + align4(descsz);
    }
  }
  return notes;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function num(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}
