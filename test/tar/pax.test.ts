import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRootforgeError } from '../../src/errors.js';
import { PaxReader, type PaxAttrs } from '../../src/tar/pax.js';
import type { TarWarningCode } from '../../src/tar/types.js';
import { collect } from '../helpers/tar-collect.js';
import { header, pad512, paxHeader, paxRecord } from '../helpers/tar-writer.js';

const END = Buffer.alloc(1024);

function readPax(body: Buffer, chunk = body.length || 1): { attrs: PaxAttrs; warnings: TarWarningCode[] } {
  const attrs: PaxAttrs = {};
  const warnings: TarWarningCode[] = [];
  const r = new PaxReader(attrs, body.length, 0, (code) => warnings.push(code));
  for (let i = 0; i < body.length; i += chunk) r.write(body, i, Math.min(body.length, i + chunk));
  r.finish();
  return { attrs, warnings };
}

const file = (size = 0) => header({ name: Buffer.from('f'), mode: 0o644, uid: 7, gid: 8, size, mtime: 99, typeflag: '0', magic: 'ustar' });

test('records are length-delimited: values may contain NUL, newline and "="', () => {
  const value = Buffer.from('a\nb=c\0d\n\n');
  const body = Buffer.concat([paxRecord('SCHILY.xattr.user.x', value), paxRecord('path', 'p\nq'), paxRecord('uid', '12')]);
  for (const chunk of [1, 2, 3, 5, body.length]) {
    const { attrs, warnings } = readPax(body, chunk);
    assert.deepEqual(attrs.xattrs?.get('user.x'), value, `chunk ${chunk}`);
    assert.equal(attrs.path, 'p\nq');
    assert.equal(attrs.uid, 12);
    assert.deepEqual(warnings, []);
  }
});

test('an 8 MB attribute of unknown type is skipped without keeping it (pax_large_attr)', () => {
  const big = Buffer.alloc(8_000_000, 0x2b);
  const body = Buffer.concat([paxRecord('unknown', big), paxRecord('path', 'foo')]);
  const { attrs, warnings } = readPax(body, 1 << 16);
  assert.equal(attrs.path, 'foo');
  assert.deepEqual(warnings, ['TAR_PAX_IGNORED']);
  // through the parser too, in small chunks
  const tar = Buffer.concat([header({ name: Buffer.from('PaxHeader'), mode: 0, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: 'x', magic: 'ustar' }), pad512(body), file(), END]);
  const r = collect(tar, 100_000);
  assert.equal(r.entries[0]!.header.path, 'foo');
});

test('a kept value over 1 MiB is TAR_BAD_PAX rather than an allocation', () => {
  const body = paxRecord('path', Buffer.alloc((1 << 20) + 1, 0x61));
  assert.throws(() => readPax(body), (e) => isRootforgeError(e, 'TAR_BAD_PAX') && /larger than 1 MiB/.test(e.message));
});

test('a bad size is fatal (TAR_BAD_PAX); other bad numbers fall back to the header with a warning', () => {
  for (const size of ['-19769411113659727436', '12x', '', '99999999999999999999']) {
    assert.throws(() => readPax(paxRecord('size', size)), (e) => isRootforgeError(e, 'TAR_BAD_PAX'), size);
  }
  const tar = Buffer.concat([paxHeader([['uid', 'abc'], ['gid', '-1'], ['mtime', 'never']], 'x'), file(), END]);
  const { entries, warnings } = collect(tar);
  assert.deepEqual([entries[0]!.header.uid, entries[0]!.header.gid, entries[0]!.header.mtime.sec], [7, 8, 99]);
  assert.deepEqual(
    warnings.map((w) => w.code),
    ['TAR_PAX_BAD_VALUE', 'TAR_PAX_BAD_VALUE', 'TAR_PAX_BAD_VALUE'],
  );
});

test('malformed records: warning, earlier records kept, rest of the header ignored', () => {
  const good = paxRecord('uname', 'kept');
  const cases: Array<[string, Buffer]> = [
    ['length past the end', Buffer.from('99 path=x\n')],
    ['no "="', Buffer.from('9 pathxx\n')],
    ['no newline', Buffer.from('9 path=xy')],
    ['not a number', Buffer.from('x path=y\n')],
    ['empty value without newline (test_read_pax_empty_val_no_nl)', Buffer.from('4 x=')],
  ];
  for (const [what, bad] of cases) {
    const { attrs, warnings } = readPax(Buffer.concat([good, bad, paxRecord('gname', 'lost')]));
    assert.equal(attrs.uname, 'kept', what);
    assert.equal(attrs.gname, undefined, what);
    assert.deepEqual(warnings, ['TAR_PAX_MALFORMED'], what);
  }
  // trailing NUL padding after the last record is not an error (libarchive stops at the NUL too)
  const padded = readPax(Buffer.concat([good, Buffer.alloc(20)]));
  assert.equal(padded.attrs.uname, 'kept');
  assert.deepEqual(padded.warnings, []);
});

test('hdrcharset=BINARY: names stay raw bytes either way', () => {
  const name = Buffer.from([0x61, 0xfc, 0xcc, 0x8c]);
  const { attrs, warnings } = readPax(Buffer.concat([paxRecord('hdrcharset', 'BINARY'), paxRecord('path', name), paxRecord('uname', Buffer.from([0xff]))]));
  assert.equal(attrs.path, name.toString('latin1'));
  assert.equal(attrs.uname, '\xff');
  assert.deepEqual(warnings, []);
});

test('unknown keywords warn once per keyword; known vendor noise is silent', () => {
  const rec = Buffer.concat([paxRecord('SCHILY.fflags', 'nodump'), paxRecord('SCHILY.dev', '5'), paxRecord('comment', 'x'), paxRecord('SCHILY.fflags', 'nodump')]);
  const tar = Buffer.concat([paxHeader([], 'x'), file(), header({ name: Buffer.from('PaxHeader'), mode: 0, uid: 0, gid: 0, size: rec.length, mtime: 0, typeflag: 'x', magic: 'ustar' }), pad512(rec), file(), END]);
  const { warnings } = collect(tar);
  assert.deepEqual(
    warnings.map((w) => [w.code, w.message]),
    [['TAR_PAX_IGNORED', 'Ignoring PAX keyword SCHILY.fflags']],
  );
});

test('GNU sparse 0.0 repeats keys: records are applied in order', () => {
  const body = Buffer.concat([
    paxRecord('GNU.sparse.size', '3145728'),
    paxRecord('GNU.sparse.numblocks', '2'),
    paxRecord('GNU.sparse.offset', '999936'),
    paxRecord('GNU.sparse.numbytes', '512'),
    paxRecord('GNU.sparse.offset', '3145728'),
    paxRecord('GNU.sparse.numbytes', '0'),
  ]);
  const { attrs } = readPax(body, 3);
  assert.deepEqual(attrs.gnuSparse?.map, [999936, 512, 3145728, 0]);
  assert.equal(attrs.gnuSparse?.realsize, 3145728);
});
