/**
 * ELF on-disk format: constants and field offsets only, no I/O (like ext4/format.ts). Offsets are
 * bytes from the start of each struct, for the 32- and 64-bit layouts; the byte order is the
 * file's own (EI_DATA). Reference: the System V gABI, chapters 4 and 5, and <elf.h>.
 */

export const ELF_MAGIC = 0x7f454c46; // "\x7fELF", read big-endian
export const EI_NIDENT = 16;

// ---- e_ident (16 bytes, the same in both classes) ----
export const IDENT = {
  magic: 0x0, // 4 EI_MAG0..3
  class: 0x4, // 1 EI_CLASS: 1 = 32-bit, 2 = 64-bit
  data: 0x5, // 1 EI_DATA: 1 = little endian, 2 = big endian
  version: 0x6, // 1 EI_VERSION: 1
  osabi: 0x7, // 1 EI_OSABI
  abiVersion: 0x8, // 1 EI_ABIVERSION
} as const;

export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;

// ---- Elf32_Ehdr (52 bytes) / Elf64_Ehdr (64 bytes), after e_ident ----
export const EHDR32 = {
  type: 0x10, // 2 e_type
  machine: 0x12, // 2 e_machine
  version: 0x14, // 4 e_version
  entry: 0x18, // 4 e_entry
  phoff: 0x1c, // 4 e_phoff
  shoff: 0x20, // 4 e_shoff
  flags: 0x24, // 4 e_flags
  ehsize: 0x28, // 2 e_ehsize
  phentsize: 0x2a, // 2 e_phentsize
  phnum: 0x2c, // 2 e_phnum
  shentsize: 0x2e, // 2 e_shentsize
  shnum: 0x30, // 2 e_shnum
  shstrndx: 0x32, // 2 e_shstrndx
} as const;
export const EHDR32_SIZE = 52;

export const EHDR64 = {
  type: 0x10, // 2 e_type
  machine: 0x12, // 2 e_machine
  version: 0x14, // 4 e_version
  entry: 0x18, // 8 e_entry
  phoff: 0x20, // 8 e_phoff
  shoff: 0x28, // 8 e_shoff
  flags: 0x30, // 4 e_flags
  ehsize: 0x34, // 2 e_ehsize
  phentsize: 0x36, // 2 e_phentsize
  phnum: 0x38, // 2 e_phnum
  shentsize: 0x3a, // 2 e_shentsize
  shnum: 0x3c, // 2 e_shnum
  shstrndx: 0x3e, // 2 e_shstrndx
} as const;
export const EHDR64_SIZE = 64;

export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;

/** e_phnum value meaning "the real count is in section header 0's sh_info". */
export const PN_XNUM = 0xffff;

// ---- Elf32_Phdr (32 bytes) / Elf64_Phdr (56 bytes): note p_flags moves ----
export const PHDR32 = {
  type: 0x00, // 4 p_type
  offset: 0x04, // 4 p_offset
  vaddr: 0x08, // 4 p_vaddr
  paddr: 0x0c, // 4 p_paddr
  filesz: 0x10, // 4 p_filesz
  memsz: 0x14, // 4 p_memsz
  flags: 0x18, // 4 p_flags
  align: 0x1c, // 4 p_align
} as const;
export const PHDR32_SIZE = 32;

export const PHDR64 = {
  type: 0x00, // 4 p_type
  flags: 0x04, // 4 p_flags
  offset: 0x08, // 8 p_offset
  vaddr: 0x10, // 8 p_vaddr
  paddr: 0x18, // 8 p_paddr
  filesz: 0x20, // 8 p_filesz
  memsz: 0x28, // 8 p_memsz
  align: 0x30, // 8 p_align
} as const;
export const PHDR64_SIZE = 56;

export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_NOTE = 4;

// ---- Elf_Nhdr: n_namesz 4, n_descsz 4, n_type 4, then name and desc, each padded to 4 ----
export const NHDR_SIZE = 12;

// ---- Elf32_Shdr (40 bytes) / Elf64_Shdr (64 bytes): only read for PN_XNUM ----
export const SHDR32 = {
  name: 0x00, // 4 sh_name
  type: 0x04, // 4 sh_type
  flags: 0x08, // 4 sh_flags
  addr: 0x0c, // 4 sh_addr
  offset: 0x10, // 4 sh_offset
  size: 0x14, // 4 sh_size
  link: 0x18, // 4 sh_link
  info: 0x1c, // 4 sh_info
  addralign: 0x20, // 4 sh_addralign
  entsize: 0x24, // 4 sh_entsize
} as const;
export const SHDR32_SIZE = 40;

export const SHDR64 = {
  name: 0x00, // 4 sh_name
  type: 0x04, // 4 sh_type
  flags: 0x08, // 8 sh_flags
  addr: 0x10, // 8 sh_addr
  offset: 0x18, // 8 sh_offset
  size: 0x20, // 8 sh_size
  link: 0x28, // 4 sh_link
  info: 0x2c, // 4 sh_info
  addralign: 0x30, // 8 sh_addralign
  entsize: 0x38, // 8 sh_entsize
} as const;
export const SHDR64_SIZE = 64;

// ---- Elf32_Dyn (8 bytes) / Elf64_Dyn (16 bytes) ----
export const DYN32 = {
  tag: 0x0, // 4 d_tag (signed)
  val: 0x4, // 4 d_val / d_ptr
} as const;
export const DYN32_SIZE = 8;

export const DYN64 = {
  tag: 0x0, // 8 d_tag (signed)
  val: 0x8, // 8 d_val / d_ptr
} as const;
export const DYN64_SIZE = 16;

export const DT_NULL = 0;
export const DT_NEEDED = 1;
export const DT_STRTAB = 5;
export const DT_STRSZ = 10;
export const DT_SONAME = 14;
export const DT_RPATH = 15;
export const DT_RUNPATH = 29;
export const DT_FLAGS_1 = 0x6ffffffb;
export const DF_1_PIE = 0x08000000;

// ---- limits, as the kernel and ld.so apply them (fs/binfmt_elf.c) ----
export const MAX_PHDRS_BYTES = 65536; // binfmt_elf refuses larger program header tables
export const MAX_INTERP_LEN = 4096; // PATH_MAX: binfmt_elf refuses longer PT_INTERP
export const MAX_DYNAMIC_BYTES = 1 << 20; // ours: far above any real .dynamic (a few KiB)
export const MAX_STRING_LEN = 4096; // ours: a needed name or a run path longer than this is garbage

// ---- e_machine ----
export const EM = {
  I386: 3,
  MIPS: 8,
  PPC: 20,
  PPC64: 21,
  S390: 22,
  ARM: 40,
  X86_64: 62,
  AARCH64: 183,
  RISCV: 243,
  LOONGARCH: 258,
} as const;
