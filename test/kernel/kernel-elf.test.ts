/**
 * Kernel images and modules read through the one ELF reader (src/verify/elf.ts): a vmlinux's PVH
 * note, a module's .modinfo, and the image architecture probe, on hand-built files laid out from
 * the System V gABI tables (not from our reader).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelImageInfo } from '../../src/kernel/kernel-elf.js';
import { parseModinfo } from '../../src/kernel/kernel-modules.js';
import { elfMachineOf } from '../../src/verify/elf.js';
import { RootforgeError } from '../../src/errors.js';
import { buildElf, EM_AARCH64, EM_S390 } from '../verify/elf-builder.js';

/** ELF64 LE header + one PT_NOTE program header + a "Xen" note of type 18 (PHYS32_ENTRY). */
function vmlinux(machine: number, entry: number): Buffer {
  const note = Buffer.alloc(12 + 4 + 4);
  note.writeUInt32LE(4, 0); // namesz "Xen\0"
  note.writeUInt32LE(4, 4); // descsz
  note.writeUInt32LE(18, 8); // type
  note.write('Xen\0', 12, 'latin1');
  note.writeUInt32LE(entry, 16);
  const b = Buffer.alloc(64 + 56 + note.length);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(2, 0x10); // ET_EXEC
  b.writeUInt16LE(machine, 0x12);
  b.writeBigUInt64LE(64n, 0x20); // e_phoff
  b.writeUInt16LE(56, 0x36); // e_phentsize
  b.writeUInt16LE(1, 0x38); // e_phnum
  b.writeUInt32LE(4, 64); // p_type PT_NOTE
  b.writeBigUInt64LE(120n, 64 + 0x08); // p_offset
  b.writeBigUInt64LE(BigInt(note.length), 64 + 0x20); // p_filesz
  note.copy(b, 120);
  return b;
}

/** ELF64 relocatable with sections: null, .shstrtab, .modinfo. */
function module(modinfo: string): Buffer {
  const shstr = Buffer.from('\0.shstrtab\0.modinfo\0', 'latin1');
  const info = Buffer.from(modinfo, 'latin1');
  const dataOff = 64;
  const shoff = dataOff + shstr.length + info.length;
  const b = Buffer.alloc(shoff + 3 * 64);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(1, 0x10); // ET_REL
  b.writeBigUInt64LE(BigInt(shoff), 0x28);
  b.writeUInt16LE(64, 0x3a);
  b.writeUInt16LE(3, 0x3c);
  b.writeUInt16LE(1, 0x3e); // e_shstrndx
  shstr.copy(b, dataOff);
  info.copy(b, dataOff + shstr.length);
  const sh = (i: number, name: number, off: number, size: number) => {
    const at = shoff + i * 64;
    b.writeUInt32LE(name, at);
    b.writeBigUInt64LE(BigInt(off), at + 0x18);
    b.writeBigUInt64LE(BigInt(size), at + 0x20);
  };
  sh(1, 1, dataOff, shstr.length);
  sh(2, 11, dataOff + shstr.length, info.length);
  return b;
}

const isCode = (code: string) => (e: unknown) => e instanceof RootforgeError && e.code === code;

test('vmlinux: architecture and PVH entry from its notes', () => {
  const info = kernelImageInfo(vmlinux(62, 0x1000abc));
  assert.equal(info.format, 'elf');
  assert.equal(info.arch, 'x86_64');
  assert.equal(info.pvhEntry, 0x1000abc);
  assert.deepEqual(info.notes.map((n) => [n.name, n.type]), [['Xen', 18]]);
  assert.equal(kernelImageInfo(vmlinux(183, 0)).arch, 'aarch64');
  assert.throws(() => kernelImageInfo(vmlinux(EM_S390, 0)), isCode('KERNEL_BAD_IMAGE'));
  assert.throws(() => kernelImageInfo(Buffer.from('MZ not an elf')), isCode('KERNEL_BAD_IMAGE'));
  const outside = vmlinux(62, 0);
  outside.writeUInt16LE(500, 0x38); // e_phnum far past the end
  assert.throws(() => kernelImageInfo(outside), (e: unknown) => isCode('KERNEL_BAD_IMAGE')(e) && /program headers outside/.test((e as Error).message));
  const notePast = vmlinux(62, 0);
  notePast.writeBigUInt64LE(2n ** 60n, 64 + 0x20); // p_filesz beyond 2^53
  assert.throws(() => kernelImageInfo(notePast), isCode('KERNEL_BAD_IMAGE'));
});

test('module: .modinfo key=value pairs, repeated keys kept in order', () => {
  const m = parseModinfo(module('license=GPL\0alias=virtio:d00000001v*\0alias=pci:v1AF4*\0softdep=pre: crc32c\0'), 'virtio_net.ko');
  assert.deepEqual(m.get('license'), ['GPL']);
  assert.deepEqual(m.get('alias'), ['virtio:d00000001v*', 'pci:v1AF4*']);
  assert.deepEqual(m.get('softdep'), ['pre: crc32c']);
  const bad = module('license=GPL\0');
  bad.writeUInt16LE(9, 0x3c); // more sections than the file holds
  assert.throws(() => parseModinfo(bad, 'x.ko'), isCode('KERNEL_BAD_IMAGE'));
  assert.throws(() => parseModinfo(buildElf({ bits: 32 }), 'x.ko'), isCode('KERNEL_BAD_IMAGE'));
});

test('image architecture probe: e_machine in the file byte order, null for non-ELF', () => {
  assert.equal(elfMachineOf(buildElf({ machine: EM_AARCH64 })), EM_AARCH64);
  assert.equal(elfMachineOf(buildElf({ machine: EM_S390, endian: 'be' })), EM_S390);
  assert.equal(elfMachineOf(buildElf({ machine: 3, bits: 32 })), 3);
  assert.equal(elfMachineOf(Buffer.from('#!/bin/sh\necho hi\n')), null);
  assert.equal(elfMachineOf(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1])), null);
});
