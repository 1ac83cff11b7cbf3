/**
 * The edge-case corpus: a crafted archive with every kind of entry and attribute we promise to
 * keep. Reference: GNU tar's own extraction of the same archive (as root), read through the
 * kernel, compared attribute by attribute with the image mounted read-only and with our reader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { tarEntries, type WriterEntry } from '../helpers/tar-writer.js';
import { assertFsckClean, assertSameTree, impliedDirs, canMount, fsManifest, mountManifest, NO_MOUNT, readerManifest, run } from '../helpers/image.js';

const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');

function vfsAcl(entries: [number, number, number][]): Buffer {
  const b = Buffer.alloc(4 + entries.length * 8);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + i * 8);
    b.writeUInt16LE(perm, 6 + i * 8);
    b.writeUInt32LE(id, 8 + i * 8);
  });
  return b;
}
const U = 0xffffffff;
const ACL_ACCESS = vfsAcl([[1, 7, U], [2, 5, 1000], [4, 5, U], [8, 1, 2000], [0x10, 5, U], [0x20, 4, U]]);
const ACL_DEFAULT = vfsAcl([[1, 7, U], [4, 5, U], [0x20, 0, U]]);

export function corpusEntries(): WriterEntry[] {
  const t = (sec: number, nsec = 0) => ({ sec, nsec });
  const e: WriterEntry[] = [{ path: './', type: 'dir', mode: 0o755, mtime: t(1700000000, 1) }];
  const dir = (path: string, extra: Partial<WriterEntry> = {}) => e.push({ path, type: 'dir', mode: 0o755, mtime: t(1700000001, 2), ...extra });
  const file = (path: string | Buffer, content: string | Buffer, extra: Partial<WriterEntry> = {}) =>
    e.push({ path, content, mode: 0o644, mtime: t(1700000002, 123456789), ...extra });

  dir('etc');
  file('etc/hostname', 'sandbox\n');
  file('etc/shadow', 'root:*:1::::::\n', { mode: 0o640, gid: 42 });
  dir('bin');
  file('bin/su', Buffer.alloc(5000, 0x7f), { mode: 0o4755 });
  file('bin/wall', 'x', { mode: 0o2755, gid: 5 });
  dir('tmp', { mode: 0o1777 });
  // sizes around block boundaries and zero-filled ("sparse-looking") files
  file('sizes/empty', '');
  file('sizes/one', 'a');
  file('sizes/4095', Buffer.alloc(4095, 1));
  file('sizes/4096', Buffer.alloc(4096, 2));
  file('sizes/4097', Buffer.alloc(4097, 3));
  file('sizes/zeros-1M', Buffer.alloc(1 << 20));
  file('sizes/zeros-tail', Buffer.concat([Buffer.from('head'), Buffer.alloc(200000)]));
  // names
  file('names/' + 'n'.repeat(255), 'longest name');
  file('names/' + 'd'.repeat(120) + '/' + 'e'.repeat(120) + '/file', 'long path via pax');
  file('names/unicode-ünïcødé-日本語-🚀', 'utf8');
  file(Buffer.concat([Buffer.from('names/latin1-'), Buffer.from([0xe9, 0xe8])]), 'not utf-8');
  file('names/with space and \\ backslash', 'odd');
  file('names/.hidden', 'dot');
  let deep = 'deep';
  for (let i = 0; i < 40; i++) deep += `/level${i}`;
  file(deep + '/bottom', 'deep path');
  // symlinks: fast (< 60 bytes) and slow, absolute, dangling, long target
  e.push({ path: 'links/fast', type: 'symlink', linkname: '../etc/hostname', mtime: t(1700000003) });
  e.push({ path: 'links/slow', type: 'symlink', linkname: '../' + 'x'.repeat(70) + '/target', mtime: t(1700000003) });
  e.push({ path: 'links/absolute', type: 'symlink', linkname: '/etc/hostname', mtime: t(1700000003) });
  e.push({ path: 'links/dangling', type: 'symlink', linkname: 'nowhere', mtime: t(1700000003) });
  e.push({ path: 'links/long', type: 'symlink', linkname: 'y'.repeat(3000), mtime: t(1700000003) });
  e.push({ path: 'links/59', type: 'symlink', linkname: 'z'.repeat(59), mtime: t(1700000003) });
  e.push({ path: 'links/60', type: 'symlink', linkname: 'z'.repeat(60), mtime: t(1700000003) });
  // hard links, incl. a group whose first name is later replaced by another file
  file('hard/a', 'shared content');
  e.push({ path: 'hard/b', type: 'hardlink', linkname: 'hard/a', mtime: t(1700000002, 123456789) });
  e.push({ path: 'hard/c', type: 'hardlink', linkname: 'hard/a', mtime: t(1700000002, 123456789) });
  file('hard/x', 'will be replaced, link keeps it');
  e.push({ path: 'hard/y', type: 'hardlink', linkname: 'hard/x' });
  file('hard/x', 'the replacement');
  // devices, fifo
  e.push({ path: 'dev/null', type: 'chardev', mode: 0o666, devmajor: 1, devminor: 3 });
  e.push({ path: 'dev/sda', type: 'blockdev', mode: 0o660, gid: 6, devmajor: 8, devminor: 0 });
  e.push({ path: 'dev/nvme-big', type: 'blockdev', mode: 0o660, devmajor: 259, devminor: 300000 });
  e.push({ path: 'dev/fifo', type: 'fifo', mode: 0o600 });
  // owners and times
  file('owners/huge-ids', 'x', { uid: 4000000000, gid: 4000000001 });
  file('owners/nobody', 'x', { uid: 65534, gid: 65534 });
  file('times/pre-1970', 'x', { mtime: t(-1000000000, 5) });
  file('times/epoch', 'x', { mtime: t(0, 0) });
  file('times/post-2038', 'x', { mtime: t(4102444800, 999999999) });
  file('times/2106', 'x', { mtime: t(2 ** 32 + 12345, 42) });
  // xattrs: capabilities, user, trusted, security, ACLs (access + default), one needing a block
  file('xattr/ping', 'elf', { mode: 0o755, xattrs: { 'security.capability': CAP_NET_RAW } });
  file('xattr/user', 'x', { xattrs: { 'user.mime_type': 'text/plain', 'user.empty': '', 'user.bin': Buffer.from([0, 1, 2, 255, 10, 0]) } });
  file('xattr/trusted', 'x', { xattrs: { 'trusted.overlay.opaque': 'y' } });
  file('xattr/acl', 'x', { mode: 0o754, xattrs: { 'system.posix_acl_access': ACL_ACCESS } });
  dir('xattr/acldir', { mode: 0o754, xattrs: { 'system.posix_acl_access': ACL_ACCESS, 'system.posix_acl_default': ACL_DEFAULT } });
  file('xattr/big', 'x', { xattrs: { 'user.big': Buffer.alloc(3000, 0x41), 'user.small': 'v' } });
  file('xattr/big-twin', 'y', { xattrs: { 'user.big': Buffer.alloc(3000, 0x41), 'user.small': 'v' } });
  // a big directory (htree)
  for (let i = 0; i < 3000; i++) file(`bigdir/entry-${String(i).padStart(5, '0')}`, i % 7 === 0 ? `${i}` : '');
  // non-ASCII names in an indexed directory: checks the unsigned hash variant against e2fsck
  for (let i = 0; i < 300; i++) file(`bigdir/ünïcødé-${i}-日本語`, '');
  // replaced entries: file → file, dir metadata update, symlink → file
  file('replace/f', 'first');
  file('replace/f', 'second, longer than the first');
  dir('replace/d', { mode: 0o700 });
  file('replace/d/child', 'kept');
  dir('replace/d', { mode: 0o755, uid: 7 });
  e.push({ path: 'replace/l', type: 'symlink', linkname: 'f' });
  file('replace/l', 'now a file');
  // directory entries again at the end so their mtimes are final (as tar writers do)
  for (const d of ['etc', 'bin', 'sizes', 'names', 'links', 'hard', 'dev', 'owners', 'times', 'xattr', 'bigdir', 'replace']) {
    if (!e.some((x) => x.path === d && x.type === 'dir')) dir(d);
  }
  return e;
}

test('edge-case corpus: e2fsck-clean, kernel and our reader agree with GNU tar extraction', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'rf-corpus-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const tarPath = join(work, 'corpus.tar');
  const entries = corpusEntries();
  writeFileSync(tarPath, tarEntries(entries));
  const implied = impliedDirs(entries.map((x) => x.path));
  for (const readOnly of [false, true]) {
    const img = join(work, readOnly ? 'ro.img' : 'rw.img');
    const res = await convert(`tar:${tarPath}`, img, { readOnly });
    assert.equal(res.journalBlocks > 0, !readOnly);
    assertFsckClean(img);
    const ours = await readerManifest(img);
    if (!canMount()) {
      t.diagnostic(`kernel read-back skipped: ${NO_MOUNT}`);
      continue;
    }
    const kernel = mountManifest(img);
    assertSameTree(ours, kernel);
    const ext = join(work, `extract-${readOnly}`);
    mkdirSync(ext);
    run('tar', ['--xattrs', "--xattrs-include=*", '--numeric-owner', '-xpf', tarPath, '-C', ext]);
    assertSameTree(kernel, fsManifest(ext), { ignoreMtimeOf: implied });
  }
});
