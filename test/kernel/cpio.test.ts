/**
 * The cpio newc writer against GNU cpio: `cpio -itv` lists what we wrote with the right types,
 * modes, owners, sizes and device numbers; `cpio -id` extracts the same bytes; our reader reads
 * what GNU cpio writes; same entries in any order ⇒ the same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readCpio, writeCpio, type CpioEntry } from '../../src/kernel/cpio.js';
import { isRootforgeError } from '../../src/errors.js';
import { skipOrFail, which } from '../helpers/kernel.js';

const haveCpio = which('cpio');

const big = randomBytes(70_001);
const ENTRIES: CpioEntry[] = [
  { path: 'init', type: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { path: 'lib/modules/6.1/kernel/virtio.ko', type: 'file', mode: 0o644, data: big },
  { path: 'etc/empty', type: 'file', mode: 0o600, uid: 1000, gid: 100 },
  { path: 'bin/sh', type: 'symlink', mode: 0o777, target: '/init' },
  { path: 'dev/console', type: 'chardev', mode: 0o600, major: 5, minor: 1 },
  { path: 'dev/vda', type: 'blockdev', mode: 0o660, major: 254, minor: 0 },
  { path: 'tmp', type: 'dir', mode: 0o1777 },
];

test('cpio -itvn lists our archive: types, modes, owners, sizes, devices, implied parents', (t) => {
  if (!haveCpio) return skipOrFail(t, 'cpio is not installed (apt-get install cpio)');
  const archive = writeCpio(ENTRIES, { mtime: 1_700_000_000 });
  assert.equal(archive.length % 512, 0);
  const r = spawnSync('cpio', ['-itvn', '--quiet'], { input: archive, encoding: 'utf8', env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  // sorted by path, parents first
  const names = lines.map((l) => l.split(/\s+/).slice(-1)[0]!);
  const expectOrder = ['bin', 'bin/sh', 'dev', 'dev/console', 'dev/vda', 'etc', 'etc/empty', 'init', 'lib', 'lib/modules', 'lib/modules/6.1', 'lib/modules/6.1/kernel', 'lib/modules/6.1/kernel/virtio.ko', 'tmp'];
  // a symlink line ends in "-> /init"
  assert.deepEqual(
    lines.map((l) => (l.includes(' -> ') ? l.split(' -> ')[0]!.split(/\s+/).pop()! : l.split(/\s+/).pop()!)),
    expectOrder,
  );
  assert.ok(names.length === expectOrder.length);
  const line = (p: string): string => lines.find((l) => l.endsWith(` ${p}`) || l.includes(` ${p} -> `))!;
  assert.match(line('init'), /^-rwxr-xr-x\s+1 0\s+0\s+18 /);
  assert.match(line('lib/modules/6.1/kernel/virtio.ko'), /^-rw-r--r--\s+1 0\s+0\s+70001 /);
  assert.match(line('etc/empty'), /^-rw-------\s+1 1000\s+100\s+0 /);
  assert.match(line('bin/sh'), /^lrwxrwxrwx .* bin\/sh -> \/init$/);
  assert.match(line('dev/console'), /^crw-------\s+1 0\s+0\s+5,\s+1 /);
  assert.match(line('dev/vda'), /^brw-rw----\s+1 0\s+0\s+254,\s+0 /);
  assert.match(line('tmp'), /^drwxrwxrwt\s+2 0\s+0\s+0 /);
  assert.match(line('lib'), /^drwxr-xr-x\s+2 0\s+0\s+0 /);
  assert.match(line('init'), /Nov 14\s+2023 init$/);
});

test('cpio -id extracts the same bytes and symlinks', (t) => {
  if (!haveCpio) return skipOrFail(t, 'cpio is not installed (apt-get install cpio)');
  const dir = mkdtempSync(join(tmpdir(), 'rf-cpio-'));
  try {
    const files = ENTRIES.filter((e) => e.type === 'file' || e.type === 'symlink' || e.type === 'dir');
    const r = spawnSync('cpio', ['-id', '--quiet', '--no-absolute-filenames'], { cwd: dir, input: writeCpio(files) });
    assert.equal(r.status, 0, r.stderr?.toString());
    assert.deepEqual(readFileSync(join(dir, 'lib/modules/6.1/kernel/virtio.ko')), big);
    assert.equal(readFileSync(join(dir, 'init'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal(readFileSync(join(dir, 'etc/empty')).length, 0);
    assert.equal(readlinkSync(join(dir, 'bin/sh')), '/init');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('round trip through our reader: every field, inode numbers 1..n in path order', () => {
  const archive = writeCpio(ENTRIES, { mtime: 42 });
  const recs = readCpio(archive);
  assert.equal(recs.length, 14);
  assert.deepEqual(
    recs.map((r) => r.ino),
    recs.map((_, i) => i + 1),
  );
  const by = new Map(recs.map((r) => [r.path, r]));
  assert.deepEqual(by.get('lib/modules/6.1/kernel/virtio.ko')!.data, big);
  assert.equal(by.get('init')!.mode, 0o100755);
  assert.equal(by.get('bin/sh')!.data.toString(), '/init');
  assert.deepEqual([by.get('dev/console')!.mode, by.get('dev/console')!.rmajor, by.get('dev/console')!.rminor], [0o020600, 5, 1]);
  assert.deepEqual([by.get('etc/empty')!.uid, by.get('etc/empty')!.gid], [1000, 100]);
  for (const r of recs) assert.equal(r.mtime, 42);
});

test('deterministic: the same entries in any order give the same bytes', () => {
  const a = writeCpio(ENTRIES, { mtime: 7 });
  const b = writeCpio([...ENTRIES].reverse(), { mtime: 7 });
  assert.ok(a.equals(b));
  assert.ok(!a.equals(writeCpio(ENTRIES, { mtime: 8 })));
});

test('our reader reads what GNU cpio -o -H newc writes', (t) => {
  if (!haveCpio) return skipOrFail(t, 'cpio is not installed (apt-get install cpio)');
  const dir = mkdtempSync(join(tmpdir(), 'rf-cpio-'));
  try {
    mkdirSync(join(dir, 'a/b'), { recursive: true });
    writeFileSync(join(dir, 'a/b/f'), big);
    writeFileSync(join(dir, 'a/g'), 'x');
    symlinkSync('b/f', join(dir, 'a/l'));
    const r = spawnSync('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: dir, input: 'a\na/b\na/b/f\na/g\na/l\n' });
    assert.equal(r.status, 0, r.stderr?.toString());
    const recs = readCpio(r.stdout);
    const by = new Map(recs.map((x) => [x.path, x]));
    assert.deepEqual([...by.keys()], ['a', 'a/b', 'a/b/f', 'a/g', 'a/l']);
    assert.deepEqual(by.get('a/b/f')!.data, big);
    assert.equal(by.get('a/l')!.data.toString(), 'b/f');
    assert.equal(by.get('a/l')!.mode & 0o170000, 0o120000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad entries are typed errors', () => {
  for (const bad of [
    [{ path: '/abs', type: 'file', mode: 0o644 }],
    [{ path: 'a/../b', type: 'file', mode: 0o644 }],
    [{ path: 'x', type: 'file', mode: 0o644 }, { path: 'x', type: 'dir', mode: 0o755 }],
    [{ path: 'f', type: 'file', mode: 0o644 }, { path: 'f/g', type: 'file', mode: 0o644 }],
    [{ path: 'l', type: 'symlink', mode: 0o777 }],
  ] as CpioEntry[][]) {
    assert.throws(() => writeCpio(bad), (e: unknown) => isRootforgeError(e, 'OPTION_INVALID'));
  }
  assert.throws(() => readCpio(Buffer.from('not a cpio archive at all, sorry'.repeat(5))), (e: unknown) => isRootforgeError(e, 'KERNEL_BAD_IMAGE'));
  const truncated = writeCpio(ENTRIES).subarray(0, 300);
  assert.throws(() => readCpio(truncated), (e: unknown) => isRootforgeError(e, 'KERNEL_BAD_IMAGE'));
});
