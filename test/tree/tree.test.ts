/** FsTree semantics: replacement, metadata updates, implied parents, hard links, paths. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FsTree } from '../../src/tree/tree.js';
import type { Content } from '../../src/tree/types.js';
import { isRootforgeError } from '../../src/errors.js';

const T = { sec: 5, nsec: 6 };
const attrs = (mode = 0o644, uid = 1) => ({ mode, uid, gid: uid, mtime: T });
const bytes = (s: string): Content => ({ kind: 'bytes', data: Buffer.from(s) });

test('implied parents are root-owned 0755 with the default time', () => {
  const t = new FsTree({ defaultTime: { sec: 42, nsec: 0 } });
  t.addFile('a/b/c', attrs(0o600, 7), 1, bytes('x'));
  const a = t.get('a')!;
  assert.equal(a.kind, 'dir');
  assert.deepEqual([a.mode, a.uid, a.gid, a.mtime.sec], [0o755, 0, 0, 42]);
  assert.equal(t.get('a/b/c')!.uid, 7);
});

test('a directory entry for an existing directory updates only its metadata', () => {
  const t = new FsTree();
  t.addFile('d/x', attrs(), 0, null);
  t.addDir('d', attrs(0o700, 9));
  const d = t.get('d')!;
  assert.equal(d.mode, 0o700);
  assert.equal(d.uid, 9);
  assert.ok(d.children!.has('x'));
});

test('a later entry replaces an earlier one; a file replacing a directory drops its subtree', () => {
  const released: Content[] = [];
  const t = new FsTree({ onRelease: (c) => released.push(c) });
  t.addFile('f', attrs(), 1, bytes('1'));
  t.addFile('f', attrs(), 1, bytes('2'));
  assert.equal((t.get('f')!.content as { data: Buffer }).data.toString(), '2');
  assert.equal(released.length, 1);
  t.addFile('d/inner', attrs(), 1, bytes('in'));
  t.addSymlink('d', attrs(0o777), 'elsewhere');
  assert.equal(t.get('d')!.kind, 'symlink');
  assert.equal(t.get('d/inner'), undefined);
  assert.equal(released.length, 2, 'the dropped subtree released its file');
  t.addFile('s/x', attrs(), 0, null); // replaces nothing: s is new
  t.addFile('d/again', attrs(), 0, null); // d was a symlink: replaced by an implied directory
  assert.equal(t.get('d')!.kind, 'dir');
});

test('hard links share one inode; replacing one name keeps the others', () => {
  const released: Content[] = [];
  const t = new FsTree({ onRelease: (c) => released.push(c) });
  const a = t.addFile('a', attrs(), 1, bytes('a'));
  t.link('b', 'a');
  t.link('c', 'b');
  assert.equal(t.get('b'), a);
  assert.equal(a.links, 3);
  t.addFile('a', attrs(), 1, bytes('new'));
  assert.equal(a.links, 2);
  assert.equal(released.length, 0, 'content still named by b and c');
  t.remove('b');
  t.remove('c');
  assert.equal(released.length, 1);
});

test('hard-link errors are typed', () => {
  const t = new FsTree();
  t.addDir('dir', attrs(0o755));
  assert.throws(() => t.link('x', 'missing'), (e) => isRootforgeError(e, 'TAR_HARDLINK_TARGET'));
  assert.throws(() => t.link('x', 'dir'), (e) => isRootforgeError(e, 'TAR_HARDLINK_TARGET'));
});

test('paths are normalized and never leave the root', () => {
  assert.deepEqual(FsTree.split('./a//b/./c/'), ['a', 'b', 'c']);
  assert.deepEqual(FsTree.split('/../../etc/passwd'), ['etc', 'passwd']);
  assert.deepEqual(FsTree.split('a/../b'), ['b']);
  const t = new FsTree();
  t.addFile('../../escape', attrs(), 0, null);
  assert.ok(t.get('escape'));
  t.addDir('./', attrs(0o700));
  assert.equal(t.root.mode, 0o700);
});

test('names over 255 bytes and symlink targets over 4095 bytes are rejected', () => {
  const t = new FsTree();
  assert.throws(() => t.addFile('x'.repeat(256), attrs(), 0, null), (e) => isRootforgeError(e, 'EXT4_NAME_TOO_LONG'));
  t.addFile('x'.repeat(255), attrs(), 0, null);
  assert.throws(() => t.addSymlink('l', attrs(), 'y'.repeat(4096)), (e) => isRootforgeError(e, 'EXT4_SYMLINK_TOO_LONG'));
});

test('user.* xattrs are dropped from non-files with a warning', () => {
  const warnings: string[] = [];
  const t = new FsTree({ onWarning: (w) => warnings.push(w.code) });
  t.addSymlink('l', { ...attrs(), xattrs: new Map([['user.a', Buffer.from('1')], ['security.selinux', Buffer.from('ctx')]]) }, 't');
  assert.deepEqual([...t.get('l')!.xattrs.keys()], ['security.selinux']);
  assert.deepEqual(warnings, ['XATTR_DROPPED']);
});
