/**
 * TarParser on archives built byte by byte with the test writer: entry semantics, extension
 * headers, end-of-archive handling, damaged input, and chunking independence.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRootforgeError, type ErrorCode } from '../../src/errors.js';
import { TarParser } from '../../src/tar/parser.js';
import type { TarHeader } from '../../src/tar/types.js';
import { utf8ToByteString } from '../../src/util/bytes.js';
import { collect, fingerprint, lcg, type Chunking } from '../helpers/tar-collect.js';
import { base256Field, entryBlocks, gnuLong, header, pad512, paxHeader, setChecksum, tarEntries } from '../helpers/tar-writer.js';

const END = Buffer.alloc(1024);

function throwsCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isRootforgeError(e), `expected RootforgeError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message !== undefined) assert.match(e.message, message);
    assert.match(e.message, /^Cannot read tar: /);
    return true;
  });
}

test('every basic type, with metadata, in ustar, pax and gnu', () => {
  for (const format of ['ustar', 'pax', 'gnu'] as const) {
    const tar = tarEntries(
      [
        { path: 'd/', type: 'dir', mode: 0o1777, uid: 1, gid: 2, uname: 'u', gname: 'g', mtime: 100 },
        { path: 'd/f', content: 'hello', mode: 0o4755, uid: 1000, gid: 1001, mtime: 1234567890 },
        { path: 'd/l', type: 'symlink', linkname: '../target' },
        { path: 'd/h', type: 'hardlink', linkname: 'd/f' },
        { path: 'dev/null', type: 'chardev', devmajor: 1, devminor: 3, mode: 0o666 },
        { path: 'dev/sda', type: 'blockdev', devmajor: 8, devminor: 0 },
        { path: 'p', type: 'fifo', mode: 0o600 },
      ],
      { format },
    );
    const { entries, warnings } = collect(tar);
    assert.deepEqual(warnings, [], format);
    const byPath = new Map(entries.map((e) => [e.header.path, e]));
    assert.deepEqual(
      entries.map((e) => [e.header.path, e.header.type]),
      [
        ['d/', 'dir'],
        ['d/f', 'file'],
        ['d/l', 'symlink'],
        ['d/h', 'hardlink'],
        ['dev/null', 'chardev'],
        ['dev/sda', 'blockdev'],
        ['p', 'fifo'],
      ],
    );
    const d = byPath.get('d/')!.header;
    assert.equal(d.mode, 0o1777);
    assert.deepEqual([d.uid, d.gid, d.uname, d.gname, d.mtime.sec], [1, 2, 'u', 'g', 100]);
    const f = byPath.get('d/f')!;
    assert.equal(f.body.toString(), 'hello');
    assert.equal(f.header.size, 5);
    assert.equal(f.header.bodySize, 5);
    assert.equal(f.header.mode, 0o4755);
    assert.deepEqual(f.header.mtime, { sec: 1234567890, nsec: 0 });
    assert.equal(byPath.get('d/l')!.header.linkname, '../target');
    assert.equal(byPath.get('d/h')!.header.linkname, 'd/f');
    assert.equal(byPath.get('d/h')!.header.size, 0);
    assert.deepEqual([byPath.get('dev/null')!.header.devmajor, byPath.get('dev/null')!.header.devminor], [1, 3]);
    assert.equal(byPath.get('dev/sda')!.header.devmajor, 8);
    assert.equal(byPath.get('p')!.header.mode, 0o600);
    // offset: the first body byte in the archive
    assert.equal(tar.toString('latin1', f.header.offset, f.header.offset + 5), 'hello');
  }
});

test('pax: long names, binary xattrs, nanosecond and negative times, big ids', () => {
  const longPath = `${'dir-'.repeat(40)}/${'f'.repeat(150)}`; // no ustar split possible
  const binary = Buffer.from([0, 1, 2, 0x0a, 0x3d, 0xff, 0x0a, 0]); // NUL, '\n', '=' inside a value
  const tar = tarEntries([
    {
      path: longPath,
      content: 'x',
      uid: 3_000_000_000,
      gid: 2 ** 32 - 2,
      mtime: { sec: -2, nsec: 500000000 },
      atime: { sec: 1795308893, nsec: 762010462 },
      ctime: { sec: 5, nsec: 1 },
      xattrs: { 'security.capability': binary, 'user.empty': Buffer.alloc(0), 'user.\xe9t\xe9': 'utf8 name' },
    },
    { path: 'lnk', type: 'symlink', linkname: 'L'.repeat(300) },
  ]);
  const [e, l] = collect(tar).entries;
  assert.equal(e!.header.path, longPath);
  assert.equal(e!.header.uid, 3_000_000_000);
  assert.equal(e!.header.gid, 2 ** 32 - 2);
  assert.deepEqual(e!.header.mtime, { sec: -2, nsec: 500000000 });
  assert.deepEqual(e!.header.atime, { sec: 1795308893, nsec: 762010462 });
  assert.deepEqual(e!.header.ctime, { sec: 5, nsec: 1 });
  assert.deepEqual(e!.header.xattrs.get('security.capability'), binary);
  assert.deepEqual(e!.header.xattrs.get('user.empty'), Buffer.alloc(0));
  assert.deepEqual(e!.header.xattrs.get(utf8ToByteString('user.\xe9t\xe9')), Buffer.from('utf8 name'));
  assert.equal(l!.header.linkname, 'L'.repeat(300));
});

test('names are byte strings: non-UTF-8 bytes survive, nothing is normalised', () => {
  const koi8 = Buffer.from([0xf0, 0xf2, 0xe9, 0xf7, 0xe5, 0xf4]);
  for (const format of ['ustar', 'pax', 'gnu'] as const) {
    const tar = tarEntries(
      [
        { path: Buffer.concat([Buffer.from('./a//'), koi8]), content: 'k' },
        { path: '/abs/../x/', type: 'dir' },
      ],
      { format },
    );
    const [a, b] = collect(tar).entries;
    assert.equal(a!.header.path, `./a//${koi8.toString('latin1')}`);
    assert.equal(b!.header.path, '/abs/../x/');
  }
});

test('GNU long name and link (L/K); the last of repeated L headers wins', () => {
  const name = 'n'.repeat(250);
  const tar = tarEntries([{ path: name, type: 'hardlink', linkname: 't'.repeat(120) }], { format: 'gnu' });
  const [e] = collect(tar).entries;
  assert.equal(e!.header.path, name);
  assert.equal(e!.header.linkname, 't'.repeat(120));
  // GNU tar and libarchive (test_read_format_gtar_redundant_L): the final L applies
  const twice = Buffer.concat([gnuLong('L', Buffer.from('first-long-name')), gnuLong('L', Buffer.from('second')), entryBlocks({ path: 'short' }, 'gnu'), END]);
  assert.equal(collect(twice).entries[0]!.header.path, 'second');
});

test('precedence: GNU.sparse.name > pax path > L > header name; pax linkpath > K', () => {
  const entry = header({ name: Buffer.from('header-name'), mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: '2', magic: 'ustar', linkname: Buffer.from('header-link') });
  const withL = Buffer.concat([gnuLong('L', Buffer.from('long-name')), gnuLong('K', Buffer.from('long-link')), entry, END]);
  let h = collect(withL).entries[0]!.header;
  assert.deepEqual([h.path, h.linkname], ['long-name', 'long-link']);
  const withPax = Buffer.concat([
    gnuLong('L', Buffer.from('long-name')),
    gnuLong('K', Buffer.from('long-link')),
    paxHeader(
      [
        ['path', 'pax-name'],
        ['linkpath', 'pax-link'],
      ],
      'x',
    ),
    entry,
    END,
  ]);
  h = collect(withPax).entries[0]!.header;
  assert.deepEqual([h.path, h.linkname], ['pax-name', 'pax-link']);
});

test('global pax headers apply to later entries; x overrides g; a later g replaces keys', () => {
  const tar = Buffer.concat([
    paxHeader(
      [
        ['uname', 'gbl'],
        ['mtime', '77.5'],
        ['SCHILY.xattr.user.a', 'from-g'],
        ['SCHILY.xattr.user.b', 'from-g'],
      ],
      'g',
    ),
    entryBlocks({ path: 'one', uname: 'hdr' }, 'ustar'),
    entryBlocks({ path: 'two', pax: [['uname', 'local'], ['SCHILY.xattr.user.b', 'from-x']] }, 'pax'),
    paxHeader([['uname', 'gbl2']], 'g'),
    entryBlocks({ path: 'three' }, 'ustar'),
    END,
  ]);
  const [one, two, three] = collect(tar).entries.map((e) => e.header);
  assert.equal(one!.uname, 'gbl');
  assert.deepEqual(one!.mtime, { sec: 77, nsec: 500000000 });
  assert.equal(one!.xattrs.get('user.a')!.toString(), 'from-g');
  assert.equal(two!.uname, 'local');
  assert.equal(two!.xattrs.get('user.a')!.toString(), 'from-g');
  assert.equal(two!.xattrs.get('user.b')!.toString(), 'from-x');
  assert.equal(three!.uname, 'gbl2');
  assert.deepEqual(three!.mtime, { sec: 77, nsec: 500000000 }, 'earlier global keys stay');
});

test('pax size overrides the header size; LIBARCHIVE.xattr and RHT.security.selinux', () => {
  const content = Buffer.alloc(700, 0x61);
  const entry = Buffer.concat([
    paxHeader(
      [
        ['size', '700'],
        ['LIBARCHIVE.xattr.user.%3D%25x', Buffer.from([0, 255, 10]).toString('base64').replace(/=+$/, '')],
        ['RHT.security.selinux', 'system_u:object_r:admin_home_t:s0'],
      ],
      'x',
    ),
    header({ name: Buffer.from('f'), mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: '0', magic: 'ustar' }),
    pad512(content),
    END,
  ]);
  const [e] = collect(entry).entries;
  assert.equal(e!.header.size, 700);
  assert.deepEqual(e!.body, content);
  assert.deepEqual(e!.header.xattrs.get('user.=%x'), Buffer.from([0, 255, 10]));
  assert.equal(e!.header.xattrs.get('security.selinux')!.toString(), 'system_u:object_r:admin_home_t:s0');
});

test('type mapping: contiguous, v7 trailing slash, unknown flags, dumpdir', () => {
  const warnings: string[] = [];
  const tar = tarEntries(
    [
      { path: 'contig', type: '7', content: 'c' },
      { path: 'olddir/', type: '\0', size: 1, format: 'v7' }, // test_compat_tar_directory: size, but no body
      { path: 'nextdir/', type: '0' },
      { path: 'weird', type: 'Q', content: 'body of an unknown type' },
      { path: 'dump', type: 'D', content: 'Yfile\0\0' },
      { path: 'after', content: 'ok' },
    ],
    { format: 'ustar' },
  );
  // the v7 header claims size 1 with no body following: rebuild it without the body block
  const entries = collect(tar, 'one', { onWarning: (w) => warnings.push(w.code) }).entries;
  assert.deepEqual(
    entries.map((e) => [e.header.path, e.header.type, e.body.toString()]),
    [
      ['contig', 'file', 'c'],
      ['olddir/', 'dir', ''],
      ['nextdir/', 'dir', ''],
      ['weird', 'file', 'body of an unknown type'],
      ['dump', 'dir', ''],
      ['after', 'file', 'ok'],
    ],
  );
  assert.ok(warnings.includes('TAR_UNKNOWN_TYPE'));
});

test('directories, symlinks and devices ignore a size (no body follows), with one warning', () => {
  const dir = header({ name: Buffer.from('d/'), mode: 0o755, uid: 0, gid: 0, size: 1000, mtime: 0, typeflag: '5', magic: 'ustar' });
  const sym = header({ name: Buffer.from('s'), mode: 0o777, uid: 0, gid: 0, size: 3, mtime: 0, typeflag: '2', magic: 'ustar', linkname: Buffer.from('abc') });
  const { entries, warnings } = collect(Buffer.concat([dir, sym, entryBlocks({ path: 'f', content: 'z' }, 'ustar'), END]));
  assert.deepEqual(
    entries.map((e) => e.header.path),
    ['d/', 's', 'f'],
  );
  assert.deepEqual(
    warnings.map((w) => w.code),
    ['TAR_SIZE_IGNORED', 'TAR_SIZE_IGNORED'],
  );
});

test('hard link sizes: ignored in GNU/v7, probed in ustar, obeyed after a pax header', () => {
  const link = (magic: 'gnu' | 'ustar' | 'v7') =>
    header({ name: Buffer.from('h'), mode: 0o644, uid: 0, gid: 0, size: 321, mtime: 0, typeflag: '1', magic, linkname: Buffer.from('f') });
  const next = entryBlocks({ path: 'next', content: 'n' }, 'ustar');
  // GNU and v7 (test_compat_tar_hardlink_1): the size is the target's, there is no body, and the
  // archive may even end right after the link header.
  for (const magic of ['gnu', 'v7'] as const) {
    assert.deepEqual(
      collect(Buffer.concat([link(magic), next, END])).entries.map((e) => e.header.path),
      ['h', 'next'],
    );
    assert.equal(collect(link(magic)).entries.length, 1);
  }
  // ustar: a valid header right after means no body
  assert.deepEqual(
    collect(Buffer.concat([link('ustar'), next, END])).entries.map((e) => e.header.path),
    ['h', 'next'],
  );
  // ustar: a body block that is not a header is the link's body, skipped
  const withBody = Buffer.concat([link('ustar'), pad512(Buffer.alloc(321, 0x78)), next, END]);
  assert.deepEqual(
    collect(withBody).entries.map((e) => [e.header.path, e.header.type, e.body.length]),
    [
      ['h', 'hardlink', 0],
      ['next', 'file', 1],
    ],
  );
  // after a pax header the size is a real body (pax allows hard links with data)
  const paxLink = Buffer.concat([paxHeader([['mtime', '1']], 'x'), link('ustar'), pad512(Buffer.alloc(321, 0x78)), next, END]);
  assert.deepEqual(
    collect(paxLink).entries.map((e) => e.header.path),
    ['h', 'next'],
  );
});

test('volume labels, multi-volume and rename entries are skipped with a warning', () => {
  const tar = Buffer.concat([
    header({ name: Buffer.from('My Label'), mode: 0, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: 'V', magic: 'gnu' }),
    header({ name: Buffer.from('cont'), mode: 0o644, uid: 0, gid: 0, size: 5, mtime: 0, typeflag: 'M', magic: 'gnu' }),
    pad512(Buffer.from('12345')),
    entryBlocks({ path: 'real', content: 'r' }, 'gnu'),
    END,
  ]);
  const { entries, warnings } = collect(tar);
  assert.deepEqual(
    entries.map((e) => e.header.path),
    ['real'],
  );
  assert.deepEqual(
    warnings.map((w) => w.code),
    ['TAR_SKIPPED_ENTRY', 'TAR_SKIPPED_ENTRY'],
  );
});

test('end of archive: stops at the zero blocks, ignores what follows', () => {
  const first = tarEntries([{ path: 'a', content: 'A' }]);
  const second = tarEntries([{ path: 'b', content: 'B' }]);
  const { entries, warnings } = collect(Buffer.concat([first, second, Buffer.from('garbage that is not tar')]));
  assert.deepEqual(
    entries.map((e) => e.header.path),
    ['a'],
  );
  assert.deepEqual(warnings, []);
  // the parser reports it is done, so a reader can stop pulling input
  const p = new TarParser({ entry() {}, data() {}, entryEnd() {} });
  p.write(first);
  assert.ok(p.finished);
  // an archive of zero blocks only is an empty archive
  assert.equal(collect(Buffer.alloc(10240)).entries.length, 0);
});

test('EOF exactly at a block boundary without zero blocks: accepted with a warning', () => {
  const tar = tarEntries([{ path: 'a', content: 'A' }], { end: false });
  const { entries, warnings } = collect(tar);
  assert.equal(entries.length, 1);
  assert.deepEqual(
    warnings.map((w) => w.code),
    ['TAR_NO_END_MARKER'],
  );
  // missing only part of the last padding: the data is complete
  const cut = collect(tar.subarray(0, 512 + 100));
  assert.equal(cut.entries[0]!.body.toString(), 'A');
  assert.deepEqual(
    cut.warnings.map((w) => w.code),
    ['TAR_NO_END_MARKER'],
  );
});

test('truncation inside a body or a header is TAR_TRUNCATED', () => {
  const tar = tarEntries([
    { path: 'a', content: Buffer.alloc(3000, 1) },
    { path: 'b', content: 'B' },
  ]);
  throwsCode(() => collect(tar.subarray(0, 512 + 1000)), 'TAR_TRUNCATED', /body of a/);
  throwsCode(() => collect(tar.subarray(0, 512 + 3072 + 100)), 'TAR_TRUNCATED', /header block \(offset 3584\)/);
  // the body complete but its padding cut: the data is all there, so only a warning
  const padCut = collect(tar.subarray(0, 512 + 3000));
  assert.equal(padCut.entries[0]!.body.length, 3000);
  assert.deepEqual(
    padCut.warnings.map((w) => w.code),
    ['TAR_NO_END_MARKER'],
  );
});

test('a flipped header byte is TAR_BAD_CHECKSUM naming the offset; random bytes are TAR_NOT_TAR', () => {
  const tar = tarEntries([
    { path: 'a', content: 'A' },
    { path: 'b', content: 'B' },
  ]);
  const bad = Buffer.from(tar);
  bad[1024 + 10] ^= 0x20;
  throwsCode(() => collect(bad), 'TAR_BAD_CHECKSUM', /offset 1024/);
  const rand = lcg(7);
  const noise = Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rand() * 256)));
  throwsCode(() => collect(noise), 'TAR_NOT_TAR');
  throwsCode(() => collect(Buffer.from('hello world\n')), 'TAR_NOT_TAR', /shorter than one tar block/);
  throwsCode(() => collect(Buffer.alloc(0)), 'TAR_NOT_TAR', /empty/);
  const firstBad = Buffer.from(tar);
  firstBad[0] ^= 1;
  throwsCode(() => collect(firstBad), 'TAR_NOT_TAR');
});

test('negative and oversized sizes are TAR_BAD_HEADER; a failed parser stays failed', () => {
  const b = header({ name: Buffer.from('x'), mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: '0', magic: 'gnu' });
  base256Field(-1, 12).copy(b, 124);
  setChecksum(b);
  throwsCode(() => collect(Buffer.concat([b, END])), 'TAR_BAD_HEADER', /negative size/);
  base256Field(2n ** 60n, 12).copy(b, 124);
  setChecksum(b);
  const p = new TarParser({ entry() {}, data() {}, entryEnd() {} });
  throwsCode(() => p.write(Buffer.concat([b, END])), 'TAR_BAD_HEADER');
  throwsCode(() => p.write(END), 'TAR_BAD_HEADER');
  throwsCode(() => p.end(), 'TAR_BAD_HEADER');
});

test('a GNU long name over 1 MiB is refused before it is buffered (TAR_BAD_PAX)', () => {
  const huge = header({ name: Buffer.from('././@LongLink'), mode: 0, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: 'L', magic: 'gnu' });
  base256Field(2 ** 40, 12).copy(huge, 124);
  setChecksum(huge);
  throwsCode(() => collect(Buffer.concat([huge, Buffer.alloc(4096)])), 'TAR_BAD_PAX', /larger than 1 MiB/);
});

test('an extended header followed by the end marker or EOF is an error', () => {
  throwsCode(() => collect(Buffer.concat([paxHeader([['path', 'x']], 'x'), END])), 'TAR_BAD_HEADER', /not followed by an entry/);
  throwsCode(() => collect(gnuLong('L', Buffer.from('x'))), 'TAR_TRUNCATED');
});

test('bodies are zero-copy views of the input', () => {
  const tar = tarEntries([{ path: 'big', content: Buffer.alloc(100_000, 7) }]);
  const views: Buffer[] = [];
  const p = new TarParser({ entry() {}, data: (c) => views.push(c), entryEnd() {} });
  p.write(tar);
  p.end();
  assert.equal(views.length, 1);
  assert.equal(views[0]!.buffer, tar.buffer, 'same ArrayBuffer');
  assert.equal(views[0]!.byteOffset, tar.byteOffset + 512);
});

test('any chunking gives the same entries and bodies as one write', () => {
  const rand = lcg(42);
  const files = Array.from({ length: 30 }, (_, i) => ({
    path: `${'p'.repeat(i * 7)}/file-${i}`,
    content: Buffer.from(Array.from({ length: Math.floor(rand() * 3000) }, () => Math.floor(rand() * 256))),
    mtime: { sec: i, nsec: i * 1000 },
    xattrs: i % 3 === 0 ? { [`user.k${i}`]: Buffer.from([i, 0, 10]) } : undefined,
  }));
  const plain = files.map((f) => ({ ...f, xattrs: undefined, mtime: f.mtime.sec }));
  const tar = Buffer.concat([
    tarEntries(plain, { format: 'gnu', end: false }),
    tarEntries(plain.slice(0, 15), { format: 'ustar', end: false }),
    tarEntries(files, { format: 'pax', recordSize: 10240, globalPax: [['comment', 'hi']] }),
  ]);
  const whole = fingerprint(collect(tar));
  assert.equal(whole.length, 75);
  const chunkings: Chunking[] = [1, 7, 511, 512, 513, 4096, { random: 1, max: 50 }, { random: 2, max: 2000 }];
  for (const c of chunkings) assert.deepEqual(fingerprint(collect(tar, c)), whole, JSON.stringify(c));
});

test('handler sees entry, data..., entryEnd in order; header fields are complete', () => {
  const tar = tarEntries([{ path: 'a', content: 'xyz' }, { path: 'e' }]);
  const events: string[] = [];
  let seen: TarHeader | undefined;
  const p = new TarParser({
    entry: (h) => {
      events.push(`entry ${h.path}`);
      seen ??= h;
    },
    data: (c) => events.push(`data ${c.toString()}`),
    entryEnd: () => events.push('end'),
  });
  for (const piece of [tar.subarray(0, 513), tar.subarray(513, 514), tar.subarray(514)]) p.write(piece);
  p.end();
  assert.deepEqual(events, ['entry a', 'data x', 'data y', 'data z', 'end', 'entry e', 'end']);
  assert.deepEqual(Object.keys(seen!).sort(), ['atime', 'bodySize', 'ctime', 'devmajor', 'devminor', 'gid', 'gname', 'headerOffset', 'linkname', 'mode', 'mtime', 'offset', 'path', 'size', 'sparse', 'type', 'uid', 'uname', 'xattrs'].sort());
});
