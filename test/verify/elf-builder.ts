/**
 * Builds small synthetic ELF files for tests, from the System V gABI tables (independently of
 * src/verify/elf.ts): any class, byte order and machine, with a program interpreter, needed
 * libraries, rpath/runpath/soname and DT_FLAGS_1. Nothing in them runs; they are what the
 * loaders read: one PT_LOAD covering the file, PT_INTERP, PT_DYNAMIC and a string table.
 *
 *   file layout:  Ehdr | Phdr × n | interp\0 | .dynstr | .dynamic (… DT_NULL)
 */

export interface ElfSpec {
  bits?: 32 | 64; // default 64
  endian?: 'le' | 'be'; // default 'le'
  machine?: number; // default 62 (x86_64)
  type?: number; // default 3 (ET_DYN)
  interp?: string;
  needed?: string[];
  rpath?: string;
  runpath?: string;
  soname?: string;
  flags1?: number;
  /** No PT_DYNAMIC at all (a static program). */
  static?: boolean;
}

export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;
export const EM_386 = 3;
export const EM_S390 = 22;

export function buildElf(spec: ElfSpec): Buffer {
  const is64 = (spec.bits ?? 64) === 64;
  const le = (spec.endian ?? 'le') === 'le';
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const dynent = is64 ? 16 : 8;
  const base = 0x10000; // vaddr of file offset 0

  // string table
  const strs: Buffer[] = [Buffer.from([0])];
  let strLen = 1;
  const addStr = (s: string): number => {
    const off = strLen;
    const b = Buffer.from(s + '\0', 'latin1');
    strs.push(b);
    strLen += b.length;
    return off;
  };
  const dyn: [number, number][] = [];
  for (const n of spec.needed ?? []) dyn.push([1, addStr(n)]); // DT_NEEDED
  if (spec.rpath !== undefined) dyn.push([15, addStr(spec.rpath)]); // DT_RPATH
  if (spec.runpath !== undefined) dyn.push([29, addStr(spec.runpath)]); // DT_RUNPATH
  if (spec.soname !== undefined) dyn.push([14, addStr(spec.soname)]); // DT_SONAME
  if (spec.flags1 !== undefined) dyn.push([0x6ffffffb, spec.flags1]); // DT_FLAGS_1
  const dynstr = Buffer.concat(strs);

  const hasInterp = spec.interp !== undefined;
  const hasDyn = !spec.static;
  const phnum = 1 + (hasInterp ? 1 : 0) + (hasDyn ? 1 : 0);
  const interpOff = ehsize + phnum * phentsize;
  const interp = hasInterp ? Buffer.from(spec.interp + '\0', 'latin1') : Buffer.alloc(0);
  const strOff = interpOff + interp.length;
  const dynOff = align(strOff + dynstr.length, 8);
  dyn.push([5, base + strOff]); // DT_STRTAB (an address)
  dyn.push([10, dynstr.length]); // DT_STRSZ
  dyn.push([0, 0]); // DT_NULL
  const size = hasDyn ? dynOff + dyn.length * dynent : strOff + dynstr.length;
  const b = Buffer.alloc(size);

  const u16 = (off: number, v: number) => (le ? b.writeUInt16LE(v, off) : b.writeUInt16BE(v, off));
  const u32 = (off: number, v: number) => (le ? b.writeUInt32LE(v >>> 0, off) : b.writeUInt32BE(v >>> 0, off));
  const word = (off: number, v: number) => {
    if (!is64) return u32(off, v);
    return le ? b.writeBigUInt64LE(BigInt(v), off) : b.writeBigUInt64BE(BigInt(v), off);
  };

  // e_ident
  b.write('\x7fELF', 0, 'latin1');
  b[4] = is64 ? 2 : 1; // EI_CLASS
  b[5] = le ? 1 : 2; // EI_DATA
  b[6] = 1; // EI_VERSION
  // Ehdr
  u16(16, spec.type ?? 3); // e_type
  u16(18, spec.machine ?? EM_X86_64); // e_machine
  u32(20, 1); // e_version
  word(24, base); // e_entry
  word(is64 ? 32 : 28, ehsize); // e_phoff
  word(is64 ? 40 : 32, 0); // e_shoff
  u16(is64 ? 52 : 40, ehsize); // e_ehsize
  u16(is64 ? 54 : 42, phentsize); // e_phentsize
  u16(is64 ? 56 : 44, phnum); // e_phnum
  u16(is64 ? 58 : 46, is64 ? 64 : 40); // e_shentsize

  // Phdrs: (type, offset, filesz)
  const phdr = (i: number, type: number, offset: number, filesz: number) => {
    const o = ehsize + i * phentsize;
    u32(o, type); // p_type
    if (is64) {
      u32(o + 4, 4); // p_flags
      word(o + 8, offset); // p_offset
      word(o + 16, base + offset); // p_vaddr
      word(o + 24, base + offset); // p_paddr
      word(o + 32, filesz); // p_filesz
      word(o + 40, filesz); // p_memsz
      word(o + 48, 8); // p_align
    } else {
      word(o + 4, offset); // p_offset
      word(o + 8, base + offset); // p_vaddr
      word(o + 12, base + offset); // p_paddr
      word(o + 16, filesz); // p_filesz
      word(o + 20, filesz); // p_memsz
      u32(o + 24, 4); // p_flags
      word(o + 28, 8); // p_align
    }
  };
  let i = 0;
  if (hasInterp) phdr(i++, 3, interpOff, interp.length); // PT_INTERP
  phdr(i++, 1, 0, size); // PT_LOAD: the whole file
  if (hasDyn) phdr(i++, 2, dynOff, dyn.length * dynent); // PT_DYNAMIC

  interp.copy(b, interpOff);
  if (hasDyn) {
    dynstr.copy(b, strOff);
    dyn.forEach(([tag, val], k) => {
      word(dynOff + k * dynent, tag);
      word(dynOff + k * dynent + dynent / 2, val);
    });
  }
  return b;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
