/**
 * The convert command end to end: size modes, read-only images, labels and UUIDs,
 * determinism, directory sources, and the inspect/ls/cat commands reading the result.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, linkSync, chmodSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tarEntries } from '../helpers/tar-writer.js';
import { BIN, rootforge } from '../helpers/cli.js';
import { spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { assertFsckClean, assertSameTree, canMount, fsManifest, mountManifest, readerManifest, run } from '../helpers/image.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { HEADROOM } from '../../src/ext4/writer.js';
import { missingTool, skipOrFail } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'rf-cli-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const tarPath = join(work, 'in.tar');
writeFileSync(
  tarPath,
  tarEntries([
    { path: 'etc/', type: 'dir', mtime: 1000 },
    { path: 'etc/os-release', content: 'ID=test\n', mtime: 1000 },
    { path: 'usr/bin/tool', content: Buffer.alloc(3 << 20, 0x5a), mode: 0o755, mtime: 1000 },
    { path: 'bin', type: 'symlink', linkname: 'usr/bin', mtime: 1000 },
  ]),
);

function info(img: string): Record<string, unknown> {
  const r = rootforge(['inspect', img, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as Record<string, unknown>;
}

test('--size auto: contents plus the stated headroom, journal included', () => {
  const img = join(work, 'auto.img');
  const r = rootforge(['convert', `tar:${tarPath}`, '-o', img, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assertFsckClean(img);
  const i = info(img);
  assert.equal(statSync(img).size, i['sizeBytes']);
  assert.ok((i['journalBytes'] as number) >= 4 << 20);
  const free = (i['freeBlocks'] as number) * 4096;
  const used = (i['blocks'] as number) * 4096 - free;
  // headroom: at least the stated minimum, and small (not an overallocation)
  assert.ok(free >= HEADROOM.blocksMin * 4096, `free ${free}`);
  assert.ok(free <= used * HEADROOM.blocksFraction + HEADROOM.blocksMin * 4096 + 64 * 4096, `free ${free} used ${used}`);
  assert.ok((i['freeInodes'] as number) >= HEADROOM.inodesMin);
});

test('--size 64M: exactly that size; too small fails without output', () => {
  const img = join(work, 'fixed.img');
  assert.equal(rootforge(['convert', `tar:${tarPath}`, '-o', img, '--size', '64M', '-q']).code, 0);
  assert.equal(statSync(img).size, 64 << 20);
  assertFsckClean(img);
  assert.equal(info(img)['sizeBytes'], 64 << 20);
  const small = join(work, 'small.img');
  const r = rootforge(['convert', `tar:${tarPath}`, '-o', small, '--size', '2M']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /EXT4_NO_SPACE/);
  assert.throws(() => statSync(small));
});

test('--size +100M: auto plus that much free space and matching inodes', () => {
  const auto = info(join(work, 'auto.img'));
  const img = join(work, 'plus.img');
  assert.equal(rootforge(['convert', `tar:${tarPath}`, '-o', img, '--size', '+100M', '-q']).code, 0);
  assertFsckClean(img);
  const i = info(img);
  const extraFree = ((i['freeBlocks'] as number) - (auto['freeBlocks'] as number)) * 4096;
  assert.ok(extraFree >= 100 << 20 && extraFree < (100 << 20) + (8 << 20), `extra free ${extraFree}`);
  assert.ok((i['freeInodes'] as number) - (auto['freeInodes'] as number) >= (100 << 20) / HEADROOM.bytesPerInode);
});

test('--read-only: no journal, no headroom, smaller', () => {
  const img = join(work, 'ro.img');
  assert.equal(rootforge(['convert', `tar:${tarPath}`, '-o', img, '--read-only', '-q']).code, 0);
  assertFsckClean(img);
  const i = info(img);
  assert.equal(i['journalBytes'], 0);
  assert.equal((i['features'] as string[]).includes('has_journal'), false);
  assert.ok((i['freeBlocks'] as number) < 64, `free blocks ${i['freeBlocks']}`);
  assert.ok((i['sizeBytes'] as number) < (info(join(work, 'auto.img'))['sizeBytes'] as number));
});

test('label and UUID are set; the default UUID is derived from the contents', () => {
  const a = join(work, 'l1.img');
  assert.equal(rootforge(['convert', `tar:${tarPath}`, '-o', a, '--label', 'rootfs', '--uuid', '01234567-89ab-cdef-0123-456789abcdef', '-q']).code, 0);
  const i = info(a);
  assert.equal(i['label'], 'rootfs');
  assert.equal(i['uuid'], '01234567-89ab-cdef-0123-456789abcdef');
  assert.match(run('blkid', ['-o', 'export', a]).stdout.toString(), /LABEL=rootfs[\s\S]*UUID=01234567-89ab-cdef-0123-456789abcdef|UUID=01234567-89ab-cdef-0123-456789abcdef[\s\S]*LABEL=rootfs/);
  const other = join(work, 'other.tar');
  writeFileSync(other, tarEntries([{ path: 'etc/os-release', content: 'ID=other\n', mtime: 1000 }]));
  const b = join(work, 'u1.img');
  const c = join(work, 'u2.img');
  rootforge(['convert', `tar:${tarPath}`, '-o', b, '-q']);
  rootforge(['convert', `tar:${other}`, '-o', c, '-q']);
  assert.notEqual(info(b)['uuid'], info(c)['uuid']);
});

test('same input ⇒ byte-identical image, whatever the output path, clock or umask', () => {
  const a = join(work, 'det-a.img');
  mkdirSync(join(work, 'sub'), { recursive: true });
  const b = join(work, 'sub', 'det-b.img');
  assert.equal(rootforge(['convert', `tar:${tarPath}`, '-o', a, '-q']).code, 0);
  assert.equal(rootforge(['convert', `tar:${tarPath}`, '-o', b, '-q'], { TZ: 'Asia/Tokyo' }).code, 0);
  assert.ok(readFileSync(a).equals(readFileSync(b)));
  const c = join(work, 'det-c.img');
  assert.equal(rootforge(['convert', `tar:${tarPath}`, '-o', c, '-q'], { SOURCE_DATE_EPOCH: '1700000000' }).code, 0);
  assert.ok(!readFileSync(a).equals(readFileSync(c)), 'SOURCE_DATE_EPOCH changes superblock times');
});

test('tar:- reads the archive from standard input (compressed too)', () => {
  const img = join(work, 'stdin.img');
  const input = gzipSync(readFileSync(tarPath));
  const r = spawnSync(process.execPath, [BIN, 'convert', 'tar:-', '-o', img, '-q'], { input });
  assert.equal(r.status, 0, r.stderr.toString());
  assertFsckClean(img);
  assert.ok(readFileSync(img).equals(readFileSync(join(work, 'auto.img'))), 'same image as from the file');
});

test('dir: source keeps types, modes, times, hard links and owners (--owner maps them)', async (t) => {
  const asRoot = process.getuid?.() === 0;
  const missing = asRoot ? missingTool('setfattr', 'setcap') : null;
  if (missing) return skipOrFail(t, missing);
  const src = join(work, 'srcdir');
  mkdirSync(join(src, 'a/b'), { recursive: true });
  writeFileSync(join(src, 'a/file'), 'hello');
  chmodSync(join(src, 'a/file'), 0o4750);
  linkSync(join(src, 'a/file'), join(src, 'a/b/hard'));
  symlinkSync('../file', join(src, 'a/b/sym'));
  writeFileSync(join(src, 'big'), Buffer.alloc(200000, 7));
  utimesSync(join(src, 'big'), 1234567890.5, 1234567890.25);
  run('mkfifo', [join(src, 'fifo')]);
  if (asRoot) {
    run('setfattr', ['-n', 'user.k', '-v', 'v', join(src, 'big')], { allowFail: true });
    run('setcap', ['cap_net_raw+ep', join(src, 'a/file')], { allowFail: true });
  }
  const img = join(work, 'dir.img');
  const r = rootforge(['convert', `dir:${src}`, '-o', img, '-q']);
  assert.equal(r.code, 0, r.stderr);
  assertFsckClean(img);
  const ours = await readerManifest(img);
  const host = fsManifest(src);
  assertSameTree(ours, host);
  if (canMount()) assertSameTree(mountManifest(img), ours);
  const mapped = join(work, 'dir-owner.img');
  assert.equal(rootforge(['convert', `dir:${src}`, '-o', mapped, '--owner', '1234:5678', '-q']).code, 0);
  for (const e of await readerManifest(mapped)) {
    if (e.path === '') continue;
    assert.equal(e.uid, 1234, Buffer.from(e.path, 'hex').toString());
    assert.equal(e.gid, 5678);
  }
});

test('inspect, ls and cat read the image', async () => {
  const img = join(work, 'auto.img');
  const human = rootforge(['inspect', img]);
  assert.equal(human.code, 0);
  assert.match(human.stdout.toString(), /Features: .*metadata_csum/);
  assert.match(human.stdout.toString(), /Journal: +4\.0 MiB/);
  const ls = rootforge(['ls', img, '/']);
  assert.equal(ls.code, 0, ls.stderr);
  const lines = ls.stdout.toString().trim().split('\n');
  assert.deepEqual(lines.map((l) => l.split(' ').at(-1) === 'usr/bin' ? 'bin' : l.split(/\s+/).at(-1)), ['bin', 'etc', 'lost+found', 'usr']);
  assert.match(lines[0]!, /^lrwxrwxrwx .* bin -> usr\/bin$/);
  const cat = rootforge(['cat', img, '/bin/tool']);
  assert.equal(cat.code, 0, cat.stderr);
  assert.ok(cat.stdout.equals(Buffer.alloc(3 << 20, 0x5a)));
  assert.equal(rootforge(['cat', img, 'etc/os-release']).stdout.toString(), 'ID=test\n');
  const missing = rootforge(['cat', img, '/nope']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /EXT4_NOT_FOUND/);
  const image = await Ext4Image.open(img);
  assert.equal((await image.resolve('bin/tool')).size, 3 << 20);
  await image.close();
});
