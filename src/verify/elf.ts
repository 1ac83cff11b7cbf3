/**
 * A minimal ELF reader for `verify`: the identification, the file header, the program headers and
 * the dynamic section, and from its string table the needed libraries, rpath, runpath and soname.
 * It reads only those ranges (through an ElfSource), never whole files: a 100 MB shared library
 * costs a few small reads. 32- and 64-bit, either byte order.
 *
 * Garbage in is a VERIFY_BAD_ELF error saying what is wrong, never a crash or a misread: every
 * offset and size is checked against the file size before it is used, and the limits the kernel
 * applies (binfmt_elf) are applied here too, so what we accept is what it would load.
 */
import { fail } from '../errors.js';
import {
  DF_1_PIE,
  DT_FLAGS_1,
  DT_NEEDED,
  DT_NULL,
  DT_RPATH,
  DT_RUNPATH,
  DT_SONAME,
  DT_STRSZ,
  DT_STRTAB,
  DYN32,
  DYN32_SIZE,
  DYN64,
  DYN64_SIZE,
  EHDR32,
  EHDR32_SIZE,
  EHDR64,
  EHDR64_SIZE,
  EI_NIDENT,
  NHDR_SIZE,
  ELF_MAGIC,
  ELFCLASS32,
  ELFCLASS64,
  ELFDATA2LSB,
  ELFDATA2MSB,
  ET_DYN,
  ET_EXEC,
  IDENT,
  MAX_DYNAMIC_BYTES,
  MAX_INTERP_LEN,
  MAX_PHDRS_BYTES,
  MAX_STRING_LEN,
  PHDR32,
  PHDR32_SIZE,
  PHDR64,
  PHDR64_SIZE,
  PN_XNUM,
  PT_DYNAMIC,
  PT_INTERP,
  PT_LOAD,
  SHDR32,
  SHDR32_SIZE,
  SHDR64,
  SHDR64_SIZE,
} from './elf-format.js';

/** Random access to a file's bytes; `read` returns fewer bytes at the end of the file. */
export interface ElfSource {
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export function bufferSource(b: Buffer): ElfSource {
  return { size: b.length, read: async (off, len) => b.subarray(Math.min(off, b.length), Math.min(off + len, b.length)) };
}

// ---------------------------------------------------------------- e_ident

/** Whether `b` starts with the ELF magic "\x7fELF". */
export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

/**
 * e_machine from the first 20 bytes of a file, in the file's byte order; null when the bytes are
 * not an ELF header with a known byte order (callers probing several files just move on).
 */
export function elfMachineOf(head: Buffer): number | null {
  if (head.length < EHDR32.machine + 2 || !isElf(head)) return null;
  const data = head[IDENT.data];
  if (data === ELFDATA2LSB) return head.readUInt16LE(EHDR32.machine);
  if (data === ELFDATA2MSB) return head.readUInt16BE(EHDR32.machine);
  return null;
}


export interface ElfIdent {
  elfClass: number;
  data: number;
  version: number;
  osabi: number;
  abiVersion: number;
}

/** The identification bytes, or null when `b` does not start with the ELF magic. */
export function decodeIdent(b: Buffer): ElfIdent | null {
  if (b.length < 4 || b.readUInt32BE(IDENT.magic) !== ELF_MAGIC) return null;
  if (b.length < EI_NIDENT) bad('the file is too short for the ELF identification', `${b.length} bytes`);
  const ident = {
    elfClass: b[IDENT.class]!,
    data: b[IDENT.data]!,
    version: b[IDENT.version]!,
    osabi: b[IDENT.osabi]!,
    abiVersion: b[IDENT.abiVersion]!,
  };
  if (ident.elfClass !== ELFCLASS32 && ident.elfClass !== ELFCLASS64) bad('unknown ELF class', ident.elfClass);
  if (ident.data !== ELFDATA2LSB && ident.data !== ELFDATA2MSB) bad('unknown ELF byte order', ident.data);
  return ident;
}

/** Field accessors in the file's byte order; 64-bit values beyond 2^53 come back as NaN. */
class Fields {
  readonly is64: boolean;
  constructor(private readonly ident: ElfIdent) {
    this.is64 = ident.elfClass === ELFCLASS64;
  }
  u16(b: Buffer, off: number): number {
    return this.ident.data === ELFDATA2LSB ? b.readUInt16LE(off) : b.readUInt16BE(off);
  }
  u32(b: Buffer, off: number): number {
    return this.ident.data === ELFDATA2LSB ? b.readUInt32LE(off) : b.readUInt32BE(off);
  }
  u64(b: Buffer, off: number): number {
    const v = this.ident.data === ELFDATA2LSB ? b.readBigUInt64LE(off) : b.readBigUInt64BE(off);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : NaN;
  }
  /** An address-sized (Elf32_Addr/Off or Elf64_Addr/Off/Xword) field. */
  word(b: Buffer, off: number): number {
    return this.is64 ? this.u64(b, off) : this.u32(b, off);
  }
  /** A signed address-sized field (d_tag). */
  sword(b: Buffer, off: number): number {
    if (!this.is64) return this.ident.data === ELFDATA2LSB ? b.readInt32LE(off) : b.readInt32BE(off);
    const v = this.ident.data === ELFDATA2LSB ? b.readBigInt64LE(off) : b.readBigInt64BE(off);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : NaN;
  }
}

// ---------------------------------------------------------------- Elf32_Ehdr / Elf64_Ehdr

export interface ElfHeader {
  type: number;
  machine: number;
  version: number;
  entry: number;
  phoff: number;
  shoff: number;
  flags: number;
  ehsize: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

export function ehdrSize(ident: ElfIdent): number {
  return ident.elfClass === ELFCLASS64 ? EHDR64_SIZE : EHDR32_SIZE;
}

export function decodeEhdr(b: Buffer, ident: ElfIdent): ElfHeader {
  const f = new Fields(ident);
  const o = f.is64 ? EHDR64 : EHDR32;
  if (b.length < ehdrSize(ident)) bad('the file is too short for the ELF header', `${b.length} bytes`);
  return {
    type: f.u16(b, o.type),
    machine: f.u16(b, o.machine),
    version: f.u32(b, o.version),
    entry: f.word(b, o.entry),
    phoff: f.word(b, o.phoff),
    shoff: f.word(b, o.shoff),
    flags: f.u32(b, o.flags),
    ehsize: f.u16(b, o.ehsize),
    phentsize: f.u16(b, o.phentsize),
    phnum: f.u16(b, o.phnum),
    shentsize: f.u16(b, o.shentsize),
    shnum: f.u16(b, o.shnum),
    shstrndx: f.u16(b, o.shstrndx),
  };
}

// ---------------------------------------------------------------- Elf32_Phdr / Elf64_Phdr

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export function phdrSize(ident: ElfIdent): number {
  return ident.elfClass === ELFCLASS64 ? PHDR64_SIZE : PHDR32_SIZE;
}

export function decodePhdr(b: Buffer, off: number, ident: ElfIdent): ProgramHeader {
  const f = new Fields(ident);
  const o = f.is64 ? PHDR64 : PHDR32;
  return {
    type: f.u32(b, off + o.type),
    flags: f.u32(b, off + o.flags),
    offset: f.word(b, off + o.offset),
    vaddr: f.word(b, off + o.vaddr),
    paddr: f.word(b, off + o.paddr),
    filesz: f.word(b, off + o.filesz),
    memsz: f.word(b, off + o.memsz),
    align: f.word(b, off + o.align),
  };
}

// ---------------------------------------------------------------- Elf32_Shdr / Elf64_Shdr

export interface SectionHeader {
  name: number;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
}

export function shdrSize(ident: ElfIdent): number {
  return ident.elfClass === ELFCLASS64 ? SHDR64_SIZE : SHDR32_SIZE;
}

export function decodeShdr(b: Buffer, off: number, ident: ElfIdent): SectionHeader {
  const f = new Fields(ident);
  const o = f.is64 ? SHDR64 : SHDR32;
  return {
    name: f.u32(b, off + o.name),
    type: f.u32(b, off + o.type),
    flags: f.word(b, off + o.flags),
    addr: f.word(b, off + o.addr),
    offset: f.word(b, off + o.offset),
    size: f.word(b, off + o.size),
    link: f.u32(b, off + o.link),
    info: f.u32(b, off + o.info),
    addralign: f.word(b, off + o.addralign),
    entsize: f.word(b, off + o.entsize),
  };
}

// ---------------------------------------------------------------- Elf32_Dyn / Elf64_Dyn

export interface DynEntry {
  tag: number;
  val: number;
}

export function dynSize(ident: ElfIdent): number {
  return ident.elfClass === ELFCLASS64 ? DYN64_SIZE : DYN32_SIZE;
}

export function decodeDyn(b: Buffer, off: number, ident: ElfIdent): DynEntry {
  const f = new Fields(ident);
  const o = f.is64 ? DYN64 : DYN32;
  return { tag: f.sword(b, off + o.tag), val: f.word(b, off + o.val) };
}

// ---------------------------------------------------------------- notes (PT_NOTE segments)

export interface ElfNote {
  name: string;
  type: number;
  desc: Buffer;
}

/**
 * The notes in b[off, off + size): {namesz, descsz, type} then the NUL-terminated name and the
 * desc, each padded to 4 bytes. A note running past the end stops the list.
 */
export function decodeNotes(b: Buffer, off: number, size: number, ident: ElfIdent): ElfNote[] {
  const f = new Fields(ident);
  const notes: ElfNote[] = [];
  const end = off + size;
  let p = off;
  while (end - p >= NHDR_SIZE) {
    const namesz = f.u32(b, p);
    const descsz = f.u32(b, p + 4);
    const type = f.u32(b, p + 8);
    const nameAt = p + NHDR_SIZE;
    const descAt = nameAt + align4(namesz);
    if (descAt + descsz > end) break;
    notes.push({ name: b.toString('latin1', nameAt, nameAt + Math.max(0, namesz - 1)), type, desc: b.subarray(descAt, descAt + descsz) });
    p = descAt + align4(descsz);
  }
  return notes;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

// ---------------------------------------------------------------- the parser

export interface ElfInfo extends ElfIdent {
  type: number;
  machine: number;
  /** PT_INTERP: the program interpreter (byte string), if any. */
  interp?: string;
  /** Has a PT_DYNAMIC segment. */
  dynamic: boolean;
  /** DT_NEEDED names (byte strings), in order. */
  needed: string[];
  rpath?: string;
  runpath?: string;
  soname?: string;
  flags1: number;
}

/** How much of a file to read first: the header and, in practice, all program headers. */
export const ELF_HEAD_BYTES = 4096;

/**
 * Parses what the loaders need from an ELF file. Returns null when the file is not an ELF at
 * all (no magic); throws VERIFY_BAD_ELF when it is one but truncated or inconsistent. `head`
 * may hold the file's first bytes already read (up to ELF_HEAD_BYTES).
 */
export async function readElf(src: ElfSource, head?: Buffer): Promise<ElfInfo | null> {
  const first = head ?? (await src.read(0, Math.min(src.size, ELF_HEAD_BYTES)));
  const ident = decodeIdent(first);
  if (!ident) return null;
  const eh = decodeEhdr(first, ident);
  const at = async (off: number, len: number, what: string): Promise<Buffer> => {
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off + len > src.size) {
      bad(`${what} extends past the end of the file`, `${off}+${len} > ${src.size} bytes`);
    }
    if (off + len <= first.length) return first.subarray(off, off + len);
    const b = await src.read(off, len);
    if (b.length < len) bad(`${what} extends past the end of the file`, `${off}+${len} > ${src.size} bytes`);
    return b;
  };

  let phnum = eh.phnum;
  if (phnum === PN_XNUM) {
    // More than 0xfffe program headers: the count is in section header 0 (gABI "Extended numbering").
    if (eh.shentsize !== shdrSize(ident)) bad('unexpected section header size', eh.shentsize);
    phnum = decodeShdr(await at(eh.shoff, eh.shentsize, 'the section header table'), 0, ident).info;
  }
  const info: ElfInfo = { ...ident, type: eh.type, machine: eh.machine, dynamic: false, needed: [], flags1: 0 };
  if (phnum === 0) return info; // object files, core dumps without segments: nothing to load
  if (eh.phentsize !== phdrSize(ident)) bad('unexpected program header size', eh.phentsize);
  const tableBytes = phnum * eh.phentsize;
  if (tableBytes > MAX_PHDRS_BYTES) bad('too many program headers', phnum);
  const table = await at(eh.phoff, tableBytes, 'the program header table');
  const phdrs: ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) phdrs.push(decodePhdr(table, i * eh.phentsize, ident));

  // A loadable segment past the end of the file is a truncated file: mapping it would fault.
  for (const p of phdrs) {
    if (p.type === PT_LOAD && !(Number.isSafeInteger(p.offset + p.filesz) && p.offset + p.filesz <= src.size)) {
      bad('a loadable segment extends past the end of the file', `${p.offset}+${p.filesz} > ${src.size} bytes`);
    }
  }

  const interp = phdrs.find((p) => p.type === PT_INTERP);
  if (interp) {
    // binfmt_elf: 2 ≤ p_filesz ≤ PATH_MAX and the last byte is NUL, else ENOEXEC.
    if (interp.filesz < 2 || interp.filesz > MAX_INTERP_LEN) bad('implausible program interpreter length', interp.filesz);
    const b = await at(interp.offset, interp.filesz, 'the program interpreter path');
    if (b[b.length - 1] !== 0) bad('the program interpreter path is not NUL-terminated', b.toString('latin1'));
    info.interp = b.subarray(0, b.indexOf(0)).toString('latin1');
  }

  const dyn = phdrs.find((p) => p.type === PT_DYNAMIC);
  if (!dyn) return info;
  info.dynamic = true;
  if (dyn.filesz > MAX_DYNAMIC_BYTES) bad('implausibly large dynamic section', dyn.filesz);
  const dynBytes = await at(dyn.offset, dyn.filesz, 'the dynamic section');
  const entSize = dynSize(ident);
  const needed: number[] = [];
  let strtab: number | undefined;
  let strsz: number | undefined;
  let rpath: number | undefined;
  let runpath: number | undefined;
  let soname: number | undefined;
  for (let off = 0; off + entSize <= dynBytes.length; off += entSize) {
    const d = decodeDyn(dynBytes, off, ident);
    if (d.tag === DT_NULL) break;
    if (d.tag === DT_NEEDED) needed.push(d.val);
    else if (d.tag === DT_STRTAB) strtab = d.val;
    else if (d.tag === DT_STRSZ) strsz = d.val;
    else if (d.tag === DT_RPATH) rpath = d.val;
    else if (d.tag === DT_RUNPATH) runpath = d.val;
    else if (d.tag === DT_SONAME) soname = d.val;
    else if (d.tag === DT_FLAGS_1) info.flags1 = d.val;
  }
  const wanted = [...needed, rpath, runpath, soname].filter((v): v is number => v !== undefined);
  if (wanted.length === 0) return info;
  if (strtab === undefined) bad('the dynamic section names libraries but has no DT_STRTAB');

  // DT_STRTAB is an address: the PT_LOAD segment holding it gives its place in the file.
  const seg = phdrs.find((p) => p.type === PT_LOAD && p.vaddr <= strtab && strtab < p.vaddr + p.filesz);
  if (!seg) bad('DT_STRTAB is not inside any loaded segment', `0x${strtab.toString(16)}`);
  const base = seg.offset + (strtab - seg.vaddr);
  const limit = seg.offset + seg.filesz - base;
  const size = Math.min(strsz ?? limit, limit);
  if (!Number.isSafeInteger(size) || base + size > src.size) bad('the dynamic string table extends past the end of the file', `${base}+${size} > ${src.size} bytes`);
  const strings = await readStrings(src, base, size, wanted);
  info.needed = needed.map((o) => strings.get(o)!);
  if (rpath !== undefined) info.rpath = strings.get(rpath)!;
  if (runpath !== undefined) info.runpath = strings.get(runpath)!;
  if (soname !== undefined) info.soname = strings.get(soname)!;
  return info;
}

/**
 * Reads NUL-terminated strings at `offsets` of a string table of `size` bytes at file offset
 * `base`. Needed names usually sit close together, so nearby offsets share one read.
 */
async function readStrings(src: ElfSource, base: number, size: number, offsets: number[]): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  const sorted = [...new Set(offsets)].sort((a, b) => a - b);
  for (const o of sorted) if (!Number.isSafeInteger(o) || o >= size) bad('a string offset is outside the dynamic string table', o);
  const slack = 256; // a typical name fits; longer ones are read again below
  let i = 0;
  while (i < sorted.length) {
    const start = sorted[i]!;
    let end = Math.min(size, start + slack);
    let j = i + 1;
    while (j < sorted.length && sorted[j]! < end + 4096) end = Math.min(size, sorted[j++]! + slack);
    const win = await src.read(base + start, end - start);
    for (let k = i; k < j; k++) {
      const o = sorted[k]!;
      let s = win.subarray(o - start);
      let nul = s.indexOf(0);
      if (nul < 0) {
        s = await src.read(base + o, Math.min(MAX_STRING_LEN, size - o));
        nul = s.indexOf(0);
        if (nul < 0) bad('unterminated string in the dynamic string table', o);
      }
      out.set(o, s.subarray(0, nul).toString('latin1'));
    }
    i = j;
  }
  return out;
}

/** Whether the kernel would run this ELF as a program (rather than it being a library). */
export function isProgram(e: ElfInfo): boolean {
  if (e.type === ET_EXEC) return true;
  // A PIE is ET_DYN like a library: it has an interpreter, or (static-pie) DF_1_PIE.
  return e.type === ET_DYN && (e.interp !== undefined || (e.flags1 & DF_1_PIE) !== 0);
}

/** Class, byte order and machine: what must agree between a program and its libraries. */
export function elfKey(e: { elfClass: number; data: number; machine: number }): string {
  return `${e.elfClass}/${e.data}/${e.machine}`;
}

function bad(reason: string, value?: unknown): never {
  return fail('VERIFY_BAD_ELF', 'read ELF', reason, value);
}
