/**
 * TreeNode, the compact object behind Inode: every field reads back what was written, shared
 * stamps never leak a change from one node to another, and the packed fields hold their ranges.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FsTree } from '../../src/tree/tree.js';
import { TreeNode } from '../../src/tree/node.js';

const T1 = { sec: 100, nsec: 1 };
const T2 = { sec: 200, nsec: 2 };
const T3 = { sec: 300, nsec: 3 };

test('fields read back what was written, for every kind', () => {
  const t = new FsTree();
  const x = new Map([['user.a', Buffer.from('1')]]);
  const f = t.addFile('f', { mode: 0o4755, uid: 1000, gid: 2000, mtime: T1, atime: T2, ctime: T3, xattrs: x }, 12345, null);
  assert.deepEqual([f.kind, f.mode, f.uid, f.gid, f.size, f.links, f.content, f.target, f.children], ['file', 0o4755, 1000, 2000, 12345, 1, null, '', null]);
  assert.deepEqual([f.mtime, f.atime, f.ctime], [T1, T2, T3]);
  assert.equal(f.xattrs, x);
  const l = t.addSymlink('l', { mode: 0o644, uid: 0, gid: 0, mtime: T1 }, 'some/where');
  assert.deepEqual([l.kind, l.mode, l.target, l.content, l.children, l.size], ['symlink', 0o777, 'some/where', null, null, 0]);
  assert.equal(l.atime, l.mtime);
  const c = t.addSpecial('c', 'chardev', { mode: 0o600, uid: 0, gid: 5, mtime: T2 }, 4095, 1 << 19);
  assert.deepEqual([c.kind, c.major, c.minor, c.gid], ['chardev', 4095, 1 << 19, 5]);
  const d = t.addDir('d', { mode: 0o1777, uid: 3, gid: 4, mtime: T3 });
  assert.deepEqual([d.kind, d.mode, d.children!.size, d.content, d.target], ['dir', 0o1777, 0, null, '']);
  for (const kind of ['blockdev', 'fifo', 'socket'] as const) assert.equal(t.addSpecial(kind, kind, { mode: 0o644, uid: 0, gid: 0, mtime: T1 }).kind, kind);
});

test('nodes that share a stamp stay independent when one changes', () => {
  const a = new TreeNode('file', 0o644, 0, 0, T1);
  const b = new TreeNode('file', 0o644, 0, 0, { ...T1 });
  a.uid = 7;
  a.mtime = T2;
  a.xattrs = new Map([['user.k', Buffer.from('v')]]);
  a.major = 3;
  assert.deepEqual([b.uid, b.mtime, b.xattrs.size, b.major], [0, T1, 0, 0]);
  assert.deepEqual([a.uid, a.gid, a.mtime, a.xattrs.size, a.major], [7, 0, T2, 1, 3]);
  // changing mtime keeps atime and ctime as they were
  assert.deepEqual([a.atime, a.ctime], [T1, T1]);
  a.atime = T3;
  assert.deepEqual([a.atime, a.ctime, a.mtime], [T3, T1, T2]);
  a.xattrs = new Map();
  assert.equal(a.xattrs.size, 0);
});

test('mode keeps only the permission bits; kind, links and mode do not disturb each other', () => {
  const n = new TreeNode('socket', 0o170777, 0, 0, T1);
  assert.deepEqual([n.kind, n.mode], ['socket', 0o777]);
  n.links = 65000;
  n.mode = 0o7000;
  assert.deepEqual([n.kind, n.mode, n.links], ['socket', 0o7000, 65000]);
});

test('link counts beyond the packed field are kept exactly', () => {
  const n = new TreeNode('file', 0o644, 0, 0, T1);
  for (const v of [65534, 65535, 65536, 1_000_000, 65535, 65534, 3, 0, -1, 2]) {
    n.links = v;
    assert.equal(n.links, v);
    assert.deepEqual([n.kind, n.mode], ['file', 0o644]);
  }
  const t = new FsTree();
  t.addFile('f', { mode: 0o644, uid: 0, gid: 0, mtime: T1 }, 0, null);
  for (let i = 0; i < 70_000; i++) t.link(`l${i}`, 'f');
  assert.equal(t.get('f')!.links, 70_001);
  for (let i = 0; i < 70_000; i++) t.remove(`l${i}`);
  assert.equal(t.get('f')!.links, 1);
});

test('fields a kind does not have cannot be set', () => {
  const d = new TreeNode('dir', 0o755, 0, 0, T1);
  assert.throws(() => (d.content = { kind: 'bytes', data: Buffer.from('x') }), /internal/);
  assert.throws(() => (d.target = 'x'), /internal/);
  const f = new TreeNode('file', 0o644, 0, 0, T1);
  assert.throws(() => (f.children = new Map()), /internal/);
  f.content = null; // clearing is always allowed
  assert.equal(f.content, null);
});
