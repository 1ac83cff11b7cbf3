/**
 * The ELF reader: real host programs against readelf's view of them, synthetic files in every
 * class and byte order, and garbage (truncations at every length, random corruption) that must
 * come out as VERIFY_BAD_ELF or "not an ELF", never as a crash or another error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { isRootforgeError } from '../../src/errors.js';
import { bufferSource, decodeEhdr, decodeIdent, decodePhdr, isProgram, readElf, type ElfInfo } from '../../src/verify/elf.js';
import { skipOrFail } from '../helpers/fixtures.js';
import { buildElf, EM_386, EM_AARCH64, EM_S390, EM_X86_64 } from './elf-builder.js';
import { hostUsable } from './helpers.js';

const parse = (b: Buffer) => readElf(bufferSource(b));

/** readelf's answers for a host file: interpreter, needed, runpath, soname, machine. */
function readelf(path: string): { interp?: string; needed: string[]; runpath?: string; soname?: string; machine: string } {
  const l = spawnSync('readelf', ['-lW', path], { encoding: 'utf8' }).stdout;
  const d = spawnSync('readelf', ['-dW', path], { encoding: 'utf8' }).stdout;
  const h = spawnSync('readelf', ['-hW', path], { encoding: 'utf8' }).stdout;
  const interp = /Requesting program interpreter: (.*)\]/.exec(l)?.[1];
  const needed = [...d.matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1]!);
  const runpath = /\(RUNPATH\)\s+Library runpath: \[(.*)\]/.exec(d)?.[1];
  const soname = /\(SONAME\)\s+Library soname: \[(.*)\]/.exec(d)?.[1];
  const machine = /Machine:\s+(.*)/.exec(h)![1]!.trim();
  return { ...(interp ? { interp } : {}), needed, ...(runpath ? { runpath } : {}), ...(soname ? { soname } : {}), machine };
}

test('host programs and libraries read as readelf reads them', async (t) => {
  if (hostUsable()) return skipOrFail(t, hostUsable()!);
  const files = ['/bin/ls', '/bin/sh', '/sbin/ldconfig', '/lib64/ld-linux-x86-64.so.2'];
  const ldd = spawnSync('ldd', ['/bin/ls'], { encoding: 'utf8' }).stdout;
  for (const m of ldd.matchAll(/=> (\/\S+)/g)) files.push(m[1]!);
  if (spawnSync('readelf', ['--version']).status !== 0) {
    // No binutils (CI does not install it): ldd's answer for /bin/ls is the reference then.
    t.diagnostic('readelf is not installed: comparing /bin/ls with ldd only');
    const ls = (await parse(readFileSync('/bin/ls')))!;
    const listed = [...ldd.matchAll(/^\s+(\S+) => /gm)].map((m) => m[1]!);
    assert.ok(ls.needed.length > 0 && ls.needed.every((n) => listed.includes(n)), `${ls.needed} within ${listed}`);
    assert.ok(ldd.includes(`\t${ls.interp} (`), `interpreter ${ls.interp} in ldd's output`);
    return;
  }
  for (const f of files.filter((x) => existsSync(x))) {
    const e = (await parse(readFileSync(f)))!;
    const want = readelf(f);
    assert.equal(e.interp, want.interp, `${f} interp`);
    assert.deepEqual(e.needed, want.needed, `${f} needed`);
    assert.equal(e.runpath, want.runpath, `${f} runpath`);
    assert.equal(e.soname, want.soname, `${f} soname`);
    if (want.machine.includes('X86-64')) assert.equal(e.machine, EM_X86_64);
  }
  const ldconfig = (await parse(readFileSync('/sbin/ldconfig')))!;
  assert.equal(ldconfig.interp, undefined);
  assert.equal(isProgram(ldconfig), true, 'a static-pie is a program (DF_1_PIE)');
  const libc = files.find((f) => f.endsWith('/libc.so.6'));
  if (libc) assert.equal(isProgram((await parse(readFileSync(libc)))!), true, 'libc.so.6 has PT_INTERP: runnable');
  const selinux = files.find((f) => f.includes('libselinux'));
  if (selinux) assert.equal(isProgram((await parse(readFileSync(selinux)))!), false);
});

test('synthetic ELFs: 32/64-bit, little/big endian, every dynamic field', async () => {
  const cases: { bits: 32 | 64; endian: 'le' | 'be'; machine: number }[] = [
    { bits: 64, endian: 'le', machine: EM_X86_64 },
    { bits: 64, endian: 'le', machine: EM_AARCH64 },
    { bits: 32, endian: 'le', machine: EM_386 },
    { bits: 64, endian: 'be', machine: EM_S390 },
    { bits: 32, endian: 'be', machine: 20 },
  ];
  for (const c of cases) {
    const b = buildElf({ ...c, interp: '/lib/ld.so.1', needed: ['liba.so.1', 'libb.so.2'], rpath: '/r', runpath: '$ORIGIN/../lib', soname: 'libself.so', flags1: 0x08000000 });
    const e = (await parse(b)) as ElfInfo;
    const what = JSON.stringify(c);
    assert.equal(e.elfClass, c.bits === 64 ? 2 : 1, what);
    assert.equal(e.data, c.endian === 'le' ? 1 : 2, what);
    assert.equal(e.machine, c.machine, what);
    assert.equal(e.type, 3, what);
    assert.equal(e.interp, '/lib/ld.so.1', what);
    assert.deepEqual(e.needed, ['liba.so.1', 'libb.so.2'], what);
    assert.equal(e.rpath, '/r', what);
    assert.equal(e.runpath, '$ORIGIN/../lib', what);
    assert.equal(e.soname, 'libself.so', what);
    assert.equal(e.flags1, 0x08000000, what);
    assert.equal(e.dynamic, true, what);
  }
  const stat = (await parse(buildElf({ type: 2, static: true })))!;
  assert.deepEqual([stat.dynamic, stat.needed, stat.interp, isProgram(stat)], [false, [], undefined, true]);
  assert.equal(isProgram((await parse(buildElf({ needed: ['libc.so.6'] })))!), false, 'ET_DYN without PT_INTERP or DF_1_PIE is a library');
});

test('codecs decode the header and program header fields at their offsets', () => {
  const b = buildElf({ bits: 32, endian: 'be', machine: EM_S390, interp: '/x' });
  const id = decodeIdent(b)!;
  assert.deepEqual([id.elfClass, id.data, id.version], [1, 2, 1]);
  const eh = decodeEhdr(b, id);
  assert.deepEqual([eh.type, eh.machine, eh.phoff, eh.phentsize, eh.phnum, eh.ehsize], [3, EM_S390, 52, 32, 3, 52]);
  const ph = decodePhdr(b, 52, id);
  assert.deepEqual([ph.type, ph.offset, ph.filesz, ph.vaddr - ph.offset], [3, 52 + 3 * 32, 3, 0x10000]);
  assert.equal(decodeIdent(Buffer.from('#!/bin/sh\n')), null);
  assert.equal(decodeIdent(Buffer.alloc(0)), null);
});

test('not ELF: scripts, text, empty files', async () => {
  for (const s of ['', '#!/bin/sh\n', 'hello world', '\x7fEL']) assert.equal(await parse(Buffer.from(s, 'latin1')), null, JSON.stringify(s));
});

async function outcome(b: Buffer): Promise<string> {
  try {
    const e = await parse(b);
    return e ? 'elf' : 'other';
  } catch (e) {
    if (isRootforgeError(e, 'VERIFY_BAD_ELF')) return 'bad';
    throw e;
  }
}

/** Where the last PT_LOAD of a 64-bit little-endian file ends (read here by hand, not by src/). */
function loadEnd(b: Buffer): number {
  const phoff = Number(b.readBigUInt64LE(32));
  const phnum = b.readUInt16LE(56);
  let end = 0;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * 56;
    if (b.readUInt32LE(o) === 1) end = Math.max(end, Number(b.readBigUInt64LE(o + 8) + b.readBigUInt64LE(o + 32)));
  }
  return end;
}

test('every truncation of a real program inside its loaded segments is "bad", never a crash', async () => {
  const ls = readFileSync('/bin/ls');
  const end = loadEnd(ls);
  assert.ok(end > 4096 && end <= ls.length);
  const seen = new Map<string, number>();
  // Every length through the headers, then a stride through the rest (the dynamic section is near the end).
  const lengths = [...Array(2048).keys(), ...Array.from({ length: 400 }, (_, i) => Math.floor((ls.length * i) / 400))];
  for (const n of lengths) {
    const o = await outcome(ls.subarray(0, n));
    seen.set(o, (seen.get(o) ?? 0) + 1);
    if (n >= 4 && n < end) assert.equal(o, 'bad', `truncated to ${n} bytes`);
    else if (n >= end) assert.equal(o, 'elf', `truncated to ${n} bytes: only sections are lost`);
  }
  assert.ok(seen.get('bad')! > 2000);
  const e = await parse(ls.subarray(0, 100)).catch((x: Error) => x);
  assert.match(String(e), /Cannot read ELF: the program header table extends past the end of the file/);
});

test('random corruption of headers and dynamic section is reported, never thrown otherwise', async () => {
  const ls = readFileSync('/bin/ls');
  const syn = buildElf({ interp: '/lib/ld.so', needed: ['a', 'b'], runpath: 'x' });
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const counts = { elf: 0, bad: 0, other: 0 } as Record<string, number>;
  for (let i = 0; i < 3000; i++) {
    const src = i % 2 ? ls : syn;
    const b = Buffer.from(src);
    const hits = 1 + rand(4);
    for (let k = 0; k < hits; k++) {
      // Aim at the bytes that matter: ident, header, program headers, and anywhere.
      const where = rand(3) === 0 ? rand(64) : rand(3) === 0 ? 64 + rand(13 * 56) : rand(b.length);
      b[where] = rand(256);
    }
    counts[await outcome(b)]!++;
  }
  assert.ok(counts['bad']! > 100 && counts['elf']! > 100, JSON.stringify(counts));
});

test('limits: program header size, interpreter NUL, string table bounds, PN_XNUM', async () => {
  const base = buildElf({ interp: '/lib/ld.so', needed: ['liba.so'] });
  const phentsize = Buffer.from(base);
  phentsize.writeUInt16LE(55, 54);
  await assert.rejects(parse(phentsize), /unexpected program header size \(55\)/);
  const noNul = Buffer.from(base);
  noNul[64 + 3 * 56 + '/lib/ld.so'.length] = 0x41; // the interpreter's terminating NUL
  await assert.rejects(parse(noNul), /program interpreter path is not NUL-terminated/);
  const strsz = buildElf({ needed: ['liba.so'] });
  // The dynamic section ends DT_STRTAB, DT_STRSZ, DT_NULL: shrink DT_STRSZ below the needed name's offset.
  strsz.writeBigUInt64LE(1n, strsz.length - 2 * 16 + 8);
  await assert.rejects(parse(strsz), /string offset is outside the dynamic string table/);
  // PN_XNUM: e_phnum 0xffff and the real count in section header 0's sh_info.
  const sh0 = Buffer.alloc(64);
  sh0.writeUInt32LE(3, 0x2c); // sh_info
  const xnum = Buffer.concat([base, sh0]);
  xnum.writeBigUInt64LE(BigInt(base.length), 0x28); // e_shoff
  xnum.writeUInt16LE(0xffff, 56); // e_phnum
  const e = (await parse(xnum))!;
  assert.deepEqual([e.interp, e.needed], ['/lib/ld.so', ['liba.so']]);
  xnum.writeUInt16LE(40, 0x3a); // e_shentsize wrong for 64-bit
  await assert.rejects(parse(xnum), /unexpected section header size \(40\)/);
});
