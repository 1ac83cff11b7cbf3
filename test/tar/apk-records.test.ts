/**
 * What src/tar gives the apk reader (src/sources/alpine/tar.ts) beyond plain tar: apk-tools'
 * APK-TOOLS.checksum.* PAX records on the header, and a check of the bytes after the end marker.
 * Then the apk adapter on top: the same archives, with apk's refusals as APK_BAD_PACKAGE.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRootforgeError } from '../../src/errors.js';
import { readSmallTar } from '../../src/sources/alpine/tar.js';
import { collect } from '../helpers/tar-collect.js';
import { header, pad512, paxRecord } from '../helpers/tar-writer.js';

const END = Buffer.alloc(1024);
const SHA1 = 'a94a8fe5ccb19ba61c4c0873d391e987982fbbd3'; // sha1('test')

function entry(name: string, body: string, pax: Array<[string, string]> = [], typeflag = '0'): Buffer {
  const parts: Buffer[] = [];
  if (pax.length > 0) {
    const records = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
    parts.push(header({ name: Buffer.from('PaxHeader'), mode: 0, uid: 0, gid: 0, size: records.length, mtime: 0, typeflag: 'x', magic: 'ustar' }), pad512(records));
  }
  const b = Buffer.from(body);
  parts.push(header({ name: Buffer.from(name), mode: 0o644, uid: 0, gid: 0, size: b.length, mtime: 1700000000, typeflag, magic: 'ustar' }), pad512(b));
  return Buffer.concat(parts);
}

test('APK-TOOLS.checksum.* records are on the header (no TAR_PAX_IGNORED); headers without them have none', () => {
  const tar = Buffer.concat([entry('a', 'test', [['APK-TOOLS.checksum.SHA1', SHA1]]), entry('b', 'x'), END]);
  for (const chunking of ['one', 1, 7] as const) {
    const r = collect(tar, chunking);
    assert.equal(r.entries[0]!.header.checksums?.get('SHA1'), SHA1);
    assert.equal(r.entries[1]!.header.checksums, undefined);
    assert.deepEqual(r.warnings, []);
  }
});

test('checkTrailing: non-zero bytes after the end marker are a TAR_TRAILING_DATA warning, zeros are not; off by default', () => {
  const junk = Buffer.concat([entry('a', 'x'), END, Buffer.alloc(512), Buffer.from('junk'), Buffer.alloc(508)]);
  const zeros = Buffer.concat([entry('a', 'x'), END, Buffer.alloc(9216)]);
  for (const chunking of ['one', 1, 100] as const) {
    assert.deepEqual(collect(junk, chunking, { checkTrailing: true }).warnings.map((w) => w.code), ['TAR_TRAILING_DATA'], `chunking ${chunking}`);
    assert.deepEqual(collect(zeros, chunking, { checkTrailing: true }).warnings, []);
    assert.deepEqual(collect(junk, chunking).warnings, []);
  }
});

test('apk reader: entries with their SHA-1; a stream without end blocks is complete', () => {
  const out = readSmallTar(Buffer.concat([entry('.PKGINFO', 'pkgname = x\n'), entry('usr/a', 'test', [['APK-TOOLS.checksum.SHA1', SHA1]])]), 'test stream');
  assert.deepEqual(out.map((e) => [e.entry.name, e.body.toString()]), [['.PKGINFO', 'pkgname = x\n'], ['usr/a', 'test']]);
  assert.equal(out[1]!.entry.sha1?.toString('hex'), SHA1);
  assert.equal(out[1]!.entry.mtime, 1700000000);
  assert.equal(out[0]!.entry.sha1, null);
});

test('apk reader: what apk-tools refuses is APK_BAD_PACKAGE, the tar error kept as cause', () => {
  const bad = (tar: Buffer, reason: RegExp) =>
    assert.throws(() => readSmallTar(tar, 'test stream'), (e) => isRootforgeError(e, 'APK_BAD_PACKAGE') && reason.test(e.message) && /^Cannot read test stream: /.test(e.message));
  bad(Buffer.concat([entry('a', 'x'), END, Buffer.from('junk'), Buffer.alloc(508)]), /after the end-of-archive/);
  bad(Buffer.concat([entry('a', 'x', [], 'Z'), END]), /TAR_UNKNOWN_TYPE/);
  bad(Buffer.concat([entry('a', 'x', [['APK-TOOLS.checksum.SHA1', 'zz']]), END]), /bad APK-TOOLS\.checksum\.SHA1/);
  bad(entry('a', 'some body').subarray(0, 515), /cut inside an entry \(offset 515\)/); // in the body
  bad(entry('a', 'some body').subarray(0, 600), /cut inside an entry \(offset 600\)/); // in the padding
  const damaged = Buffer.concat([entry('a', 'x'), END]);
  damaged[0] ^= 1;
  assert.throws(() => readSmallTar(damaged, 'test stream'), (e) => isRootforgeError(e, 'APK_BAD_PACKAGE') && isRootforgeError((e as Error).cause));
});
