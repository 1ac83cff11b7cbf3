import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync, chmodSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isRootforgeError } from '../../src/errors.js';
import { checksumMatches, decodeHeader, isZeroBlock } from '../../src/tar/header.js';
import { hasTool, run } from '../helpers/tar-collect.js';
import { base256Field, header, setChecksum } from '../helpers/tar-writer.js';

/** A ustar header written out field by field, the way the POSIX spec lays it out. */
function goldenUstar(): Buffer {
  const b = Buffer.alloc(512);
  b.write('hello.txt', 0, 'latin1'); //          0 100 name
  b.write('0000644\0', 100, 'latin1'); //      100   8 mode
  b.write('0001750\0', 108, 'latin1'); //      108   8 uid  (1000)
  b.write('0000144\0', 116, 'latin1'); //      116   8 gid  (100)
  b.write('00000000005\0', 124, 'latin1'); //  124  12 size
  b.write('14525046270\0', 136, 'latin1'); //  136  12 mtime (1700023480)
  b.write('0', 156, 'latin1'); //              156   1 typeflag
  b.write('ustar\x0000', 257, 'latin1'); //    257   8 magic + version
  b.write('tim', 265, 'latin1'); //            265  32 uname
  b.write('staff', 297, 'latin1'); //          297  32 gname
  b.write('0000000\0', 329, 'latin1'); //      329   8 devmajor
  b.write('0000000\0', 337, 'latin1'); //      337   8 devminor
  b.write('some/dir', 345, 'latin1'); //       345 155 prefix
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1'); // 148 8 chksum
  return b;
}

test('decodes a golden ustar header, prefix joined to the name', () => {
  const b = goldenUstar();
  assert.ok(checksumMatches(b, 0));
  const h = decodeHeader(b, 0, 0);
  assert.equal(h.format, 'ustar');
  assert.equal(h.name, 'some/dir/hello.txt');
  assert.equal(h.mode, 0o644);
  assert.equal(h.uid, 1000);
  assert.equal(h.gid, 100);
  assert.equal(h.size, 5);
  assert.equal(h.mtime, 1700023480);
  assert.equal(h.typeflag, 0x30);
  assert.equal(h.uname, 'tim');
  assert.equal(h.gname, 'staff');
  assert.equal(h.atime, undefined);
});

test('checksum: unsigned sum, the old signed-char sum, and rejections', () => {
  const b = goldenUstar();
  // A name with high bytes, checksummed the way old BSD/Solaris tars did (signed chars).
  b.write('caf\xe9\xff', 0, 'latin1');
  b.fill(0x20, 148, 156);
  let signed = 0;
  for (const x of b) signed += (x << 24) >> 24;
  b.write(signed.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  assert.ok(checksumMatches(b, 0), 'signed checksum accepted');
  setChecksum(b);
  assert.ok(checksumMatches(b, 0), 'unsigned checksum accepted');
  const flipped = Buffer.from(b);
  flipped[20] ^= 0x01;
  assert.equal(checksumMatches(flipped, 0), false);
  const garbage = Buffer.from(b);
  garbage[150] = 0x39; // '9' is not octal
  assert.equal(checksumMatches(garbage, 0), false);
  assert.equal(checksumMatches(Buffer.alloc(512), 0), false, 'a zero block has no checksum');
  assert.ok(isZeroBlock(Buffer.alloc(1024), 512));
  assert.equal(isZeroBlock(b, 0), false);
});

test('GNU header: base-256 size of 2 GiB, GNU atime/ctime, no prefix', () => {
  const b = header({ name: Buffer.from('big'), mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 1, typeflag: '0', magic: 'gnu', atime: 1000, ctime: 2000 });
  base256Field(2 ** 31 + 7, 12).copy(b, 124); // 124 12 size
  Buffer.from('zzzz').copy(b, 345 + 12 + 12); // GNU "offset" field: must not be read as a prefix
  setChecksum(b);
  const h = decodeHeader(b, 0, 0);
  assert.equal(h.format, 'gnu');
  assert.equal(h.size, 2 ** 31 + 7);
  assert.equal(h.name, 'big');
  assert.equal(h.atime, 1000);
  assert.equal(h.ctime, 2000);
});

test('negative or oversized numbers are TAR_BAD_HEADER', () => {
  const neg = header({ name: Buffer.from('n'), mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: '0', magic: 'gnu' });
  base256Field(-5, 12).copy(neg, 124);
  setChecksum(neg);
  assert.throws(() => decodeHeader(neg, 0, 1536), (e) => isRootforgeError(e, 'TAR_BAD_HEADER') && /negative size/.test(e.message) && /1536/.test(e.message));
  const huge = Buffer.from(neg);
  base256Field(2n ** 53n, 12).copy(huge, 124);
  setChecksum(huge);
  assert.throws(() => decodeHeader(huge, 0, 0), (e) => isRootforgeError(e, 'TAR_BAD_HEADER'));
  const negUid = Buffer.from(neg);
  base256Field(0, 12).copy(negUid, 124);
  base256Field(-1, 8).copy(negUid, 108);
  setChecksum(negUid);
  assert.throws(() => decodeHeader(negUid, 0, 0), (e) => isRootforgeError(e, 'TAR_BAD_HEADER') && /uid/.test(e.message));
  // a negative mtime is fine (pre-1970)
  const old = Buffer.from(neg);
  base256Field(0, 12).copy(old, 124);
  base256Field(-315619200, 12).copy(old, 136);
  setChecksum(old);
  assert.equal(decodeHeader(old, 0, 0).mtime, -315619200);
});

test('v7 header: no magic, so no user/group names or device numbers', () => {
  const b = header({ name: Buffer.from('dir/'), mode: 0o755, uid: 3, gid: 4, size: 0, mtime: 9, typeflag: 0, magic: 'v7' });
  b.write('root', 265, 'latin1'); // garbage where ustar would have uname
  setChecksum(b);
  const h = decodeHeader(b, 0, 0);
  assert.equal(h.format, 'v7');
  assert.equal(h.uname, '');
  assert.equal(h.typeflag, 0);
});

test('decodes headers written by GNU tar from a file with known metadata', { skip: !hasTool('tar') && 'GNU tar not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-hdr-'));
  try {
    writeFileSync(join(dir, 'f'), 'abcdef');
    if (process.getuid?.() === 0) chownSync(join(dir, 'f'), 1234, 5678); // before chmod: chown clears setuid
    chmodSync(join(dir, 'f'), 0o4751);
    utimesSync(join(dir, 'f'), 981173106, 981173106); // 2001-02-03T04:05:06Z
    for (const format of ['gnu', 'ustar', 'pax', 'v7']) {
      const tar = run('tar', ['--format=' + format, '--numeric-owner', '-cf', '-', '-C', dir, 'f']);
      const off = format === 'pax' ? findEntryBlock(tar) : 0;
      assert.ok(checksumMatches(tar, off), format);
      const h = decodeHeader(tar, off, off);
      assert.equal(h.name, 'f', format);
      assert.equal(h.mode, 0o4751, format);
      assert.equal(h.size, 6, format);
      assert.equal(h.mtime, 981173106, format);
      if (process.getuid?.() === 0) assert.deepEqual([h.uid, h.gid], [1234, 5678], format);
      assert.equal(tar.toString('latin1', off + 512, off + 518), 'abcdef');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The block after any 'x' header and its records. */
function findEntryBlock(tar: Buffer): number {
  let off = 0;
  while (tar[off + 156] === 0x78) off += 512 + Math.ceil(decodeHeader(tar, off, off).size / 512) * 512;
  return off;
}
