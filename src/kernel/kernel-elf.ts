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
 * takes on aarch64. The ELF structures are read with the one ELF reader, src/verify/elf.ts.
 */
import { fail } from '../errors.js';
import { decodeEhdr, decodeIdent, decodeNotes, decodePhdr, isElf, type ElfNote } from '../verify/elf.js';
import { EM, PHDR64_SIZE, PT_NOTE } from '../verify/elf-format.js';

export { isElf, type ElfNote };

export type KernelArch = 'x86_64' | 'aarch64';

export interface KernelImageInfo {
  format: 'elf' | 'arm64-image';
  arch: KernelArch;
  /** The PVH entry point (physical address) when the ELF has the Xen PHYS32_ENTRY note. */
  pvhEntry?: number;
  notes: ElfNote[];
}

const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export function isArm64Image(b: Uint8Array): boolean {
  return b.length >= 0x40 && b[0x38] === 0x41 && b[0x39] === 0x52 && b[0x3a] === 0x4d && b[0x3b] === 0x64;
}

/** Describes a vmlinux (ELF) or arm64 Image; KERNEL_BAD_IMAGE for anything else. */
export function kernelImageInfo(b: Buffer, what = 'read kernel image'): KernelImageInfo {
  if (isArm64Image(b)) return { format: 'arm64-image', arch: 'aarch64', notes: [] };
  if (!isElf(b)) fail('KERNEL_BAD_IMAGE', what, 'not an ELF file or arm64 Image');
  if (b[4] !== 2 || b[5] !== 1) fail('KERNEL_BAD_IMAGE', what, 'not a 64-bit little-endian ELF');
  if (b.length < 64) fail('KERNEL_BAD_IMAGE', what, 'the file is too short for the ELF header', `${b.length} bytes`);
  const ident = decodeIdent(b)!;
  const ehdr = decodeEhdr(b, ident);
  const arch: KernelArch | undefined = ehdr.machine === EM.X86_64 ? 'x86_64' : ehdr.machine === EM.AARCH64 ? 'aarch64' : undefined;
  if (arch === undefined) fail('KERNEL_BAD_IMAGE', what, 'unsupported ELF machine', ehdr.machine);
  const { phoff, phentsize, phnum } = ehdr;
  if (phentsize < PHDR64_SIZE || !(phoff + phnum * phentsize <= b.length)) fail('KERNEL_BAD_IMAGE', what, 'program headers outside the file');
  const notes: ElfNote[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = decodePhdr(b, phoff + i * phentsize, ident);
    if (ph.type !== PT_NOTE) continue;
    if (!(ph.offset + ph.filesz <= b.length)) fail('KERNEL_BAD_IMAGE', what, 'a note segment lies outside the file');
    notes.push(...decodeNotes(b, ph.offset, ph.filesz, ident));
  }
  const pvh = notes.find((n) => n.name === 'Xen' && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  const info: KernelImageInfo = { format: 'elf', arch, notes };
  if (pvh !== undefined && pvh.desc.length >= 4) info.pvhEntry = pvh.desc.length >= 8 ? Number(pvh.desc.readBigUInt64LE(0)) : pvh.desc.readUInt32LE(0);
  return info;
}
