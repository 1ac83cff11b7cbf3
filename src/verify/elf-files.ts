/**
 * ELF facts about files of an image, read once per inode (a library is looked at for every
 * program that needs it) and only in the ranges the parser asks for (Ext4Image.readRange).
 */
import { isRootforgeError } from '../errors.js';
import type { Ext4Image, Stat } from '../ext4/reader.js';
import { ELF_HEAD_BYTES, readElf, type ElfInfo } from './elf.js';

export type ElfResult =
  | { kind: 'elf'; elf: ElfInfo }
  | { kind: 'other' } // not an ELF file (a script, data, …)
  | { kind: 'bad'; error: string }; // an ELF, or meant to be, that cannot be read

const HEAD_BYTES = 32 * 1024;

export class ElfFiles {
  private readonly cache = new Map<number, Promise<ElfResult>>();
  /** How many distinct files were parsed (for the report's statistics). */
  parsed = 0;

  constructor(private readonly img: Ext4Image) {}

  read(st: Stat): Promise<ElfResult> {
    let p = this.cache.get(st.ino);
    if (!p) {
      p = this.parse(st);
      this.cache.set(st.ino, p);
    }
    return p;
  }

  private async parse(st: Stat): Promise<ElfResult> {
    this.parsed++;
    try {
      const extents = await this.img.extents(st);
      // One larger first read usually holds the headers and the dynamic string table too (it
      // follows .dynsym near the start): on a cold cache every separate read waits for the disk.
      const head = await this.img.readRange(st, 0, HEAD_BYTES, extents);
      const read = async (off: number, len: number): Promise<Buffer> => {
        if (off + len <= head.length) return head.subarray(off, off + len);
        return this.img.readRange(st, off, len, extents);
      };
      const elf = await readElf({ size: st.size, read }, head.subarray(0, ELF_HEAD_BYTES));
      return elf ? { kind: 'elf', elf } : { kind: 'other' };
    } catch (e) {
      // A corrupt ELF, or a file whose blocks the reader rejects, is a finding about that file:
      // it is reported by the check that met it. Anything else is a bug and propagates.
      if (isRootforgeError(e, 'VERIFY_BAD_ELF') || isRootforgeError(e, 'EXT4_BAD_IMAGE')) return { kind: 'bad', error: e.message };
      throw e;
    }
  }
}
