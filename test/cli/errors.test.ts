/**
 * Bad input: every case is a typed error with a stable code, a non-zero exit, a message of the
 * form "Cannot X: reason (value)", no stack trace, and no output file — an existing file at the
 * output path is left untouched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tarEntries } from '../helpers/tar-writer.js';
import { rootforge } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'rf-err-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const good = tarEntries([
  { path: 'etc/', type: 'dir' },
  { path: 'etc/hostname', content: 'box\n' },
  { path: 'big', content: Buffer.alloc(100000, 1) },
]);

/** Flips a name byte in the n-th header (found by its ustar magic). */
function flipHeaderByte(tar: Buffer, n: number): Buffer {
  const headers: number[] = [];
  for (let off = 0; off + 512 <= tar.length; off += 512) if (tar.toString('latin1', off + 257, off + 262) === 'ustar') headers.push(off);
  const b = Buffer.from(tar);
  const at = headers[n]! + 5;
  b[at] = b[at]! ^ 0x40;
  return b;
}

// pseudo-random but fixed bytes (no Math.random: reproducible failures)
function noise(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 2463534242;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const cases: { name: string; input: Buffer; code: string; args?: string[] }[] = [
  { name: 'truncated tar (mid body)', input: good.subarray(0, 512 * 6 + 100), code: 'TAR_TRUNCATED' },
  { name: 'truncated tar (mid header)', input: good.subarray(0, 512 * 3 + 200), code: 'TAR_TRUNCATED' },
  { name: 'bad header checksum', input: flipHeaderByte(good, 2), code: 'TAR_BAD_CHECKSUM' },
  { name: 'random bytes', input: noise(64 * 1024), code: 'TAR_NOT_TAR' },
  { name: 'truncated gzip', input: gzipSync(good).subarray(0, 200), code: 'TAR_BAD_COMPRESSION' },
  { name: 'hard link to a missing target', input: tarEntries([{ path: 'a', type: 'hardlink', linkname: 'nowhere' }]), code: 'TAR_HARDLINK_TARGET' },
  { name: 'name longer than 255 bytes', input: tarEntries([{ path: 'd/' + 'x'.repeat(256), content: 'x' }]), code: 'EXT4_NAME_TOO_LONG' },
  { name: 'does not fit the fixed size', input: tarEntries([{ path: 'big', content: Buffer.alloc(3 << 20, 1) }]), code: 'EXT4_NO_SPACE', args: ['--size', '1M'] },
];

for (const c of cases) {
  test(`bad input: ${c.name} → ${c.code}, exit 1, no output`, () => {
    const input = join(work, `${c.code}-${c.name.replace(/\W+/g, '-')}.tar`);
    writeFileSync(input, c.input);
    const out = join(work, `${c.name.replace(/\W+/g, '-')}.img`);
    const r = rootforge(['convert', `tar:${input}`, '-o', out, ...(c.args ?? [])]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`\\[${c.code}\\]`), r.stderr);
    assert.match(r.stderr, /Cannot [^:]+: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace without --debug');
    assert.equal(existsSync(out), false, 'no output file');
    assert.deepEqual(readdirSync(work).filter((f) => f.includes('.tmp')), [], 'no temp file left');
  });
}

test('a failed run leaves an existing image untouched', () => {
  const out = join(work, 'existing.img');
  writeFileSync(out, 'previous image');
  const input = join(work, 'trunc.tar');
  writeFileSync(input, good.subarray(0, 700));
  const r = rootforge(['convert', `tar:${input}`, '-o', out]);
  assert.equal(r.code, 1);
  assert.equal(readFileSync(out, 'utf8'), 'previous image');
});

test('--debug adds the stack trace', () => {
  const input = join(work, 'trunc2.tar');
  writeFileSync(input, good.subarray(0, 700));
  const r = rootforge(['convert', `tar:${input}`, '-o', join(work, 'dbg.img'), '--debug']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\n\s+at /);
});

test('usage errors exit 2 with usage text', () => {
  const r = rootforge(['convert', 'tar:x.tar']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing -o/);
  assert.match(r.stderr, /Usage: rootforge convert/);
  const u = rootforge(['frobnicate']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /unknown command/);
});

test('missing source and unknown transport are typed errors', () => {
  const r = rootforge(['convert', 'tar:/nonexistent/x.tar', '-o', join(work, 'm.img')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[SOURCE_NOT_FOUND\]/);
  const u = rootforge(['convert', 'ftp:whatever', '-o', join(work, 'u.img')]);
  assert.equal(u.code, 1);
  assert.match(u.stderr, /\[SOURCE_BAD_SPEC\]|\[SOURCE_NOT_FOUND\]/);
});
