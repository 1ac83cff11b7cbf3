/**
 * Scale and layout: a 100 000-entry directory (htree), a file spanning block groups (extents
 * around backup superblocks), sparse files from real GNU tar archives (holes stay holes, extent
 * index blocks beyond 4 extents).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync, ftruncateSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { IFL_INDEX } from '../../src/ext4/format.js';
import { tarEntries } from '../helpers/tar-writer.js';
import { assertFsckClean, assertSameTree, canMount, fsManifest, mountManifest, readerManifest, run, withMount } from '../helpers/image.js';

const work = mkdtempSync(join(tmpdir(), 'rf-large-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** Names long enough that 100 000 of them need a two-level index. */
const name = (i: number) => `a-reasonably-long-file-name-number-${i}.txt`;

test('a 100 000-entry directory is hash-indexed, e2fsck-clean and found by the kernel', { timeout: 300_000 }, async () => {
  const N = 100_000;
  const entries = [{ path: 'big/', type: 'dir' as const }];
  for (let i = 0; i < N; i++) entries.push({ path: `big/${name(i)}`, type: 'file' as never });
  const tar = join(work, 'bigdir.tar');
  writeFileSync(tar, tarEntries(entries, { format: 'ustar' }));
  const img = join(work, 'bigdir.img');
  await convert(`tar:${tar}`, img);
  assertFsckClean(img); // e2fsck checks every htree block's hash ranges
  const image = await Ext4Image.open(img);
  const dir = await image.lookup('big');
  assert.ok(dir.flags & IFL_INDEX, 'directory has the htree index flag');
  assert.equal((await image.readdir(dir)).length, N);
  await image.close();
  const htree = run('debugfs', ['-R', 'htree big', img]).stdout.toString();
  assert.match(htree, /Indirect levels: 1/);
  if (canMount()) {
    withMount(img, (mnt) => {
      // names spread over the hash space; `stat` makes the kernel look each up through the index
      const names = [0, 1, 7, 4242, 50000, 99998, 99999].map((i) => join(mnt, 'big', name(i)));
      assert.equal(run('stat', ['-c', '%s', ...names]).stdout.toString().trim().split('\n').length, names.length);
      assert.notEqual(run('stat', [join(mnt, 'big', name(N))], { allowFail: true }).code, 0);
    });
  }
});

test('a 300 MiB file spans block groups and reads back exactly', { timeout: 300_000 }, async (t) => {
  const src = join(work, 'bigfile-src');
  mkdirSync(src);
  const fd = openSync(join(src, 'blob'), 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < 300; i++) {
    chunk.fill(i & 0xff);
    chunk.writeUInt32LE(i, 0);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  utimesSync(join(src, 'blob'), 1700000000, 1700000000); // the default GNU format keeps whole seconds
  const tar = join(work, 'bigfile.tar');
  run('tar', ['-cf', tar, '-C', src, '.']);
  const img = join(work, 'bigfile.img');
  await convert(`tar:${tar}`, img);
  assertFsckClean(img);
  const image = await Ext4Image.open(img);
  const st = await image.lookup('blob');
  const extents = await image.extents(st);
  assert.ok(extents.length >= 3, `extents: ${extents.length}`); // split at groups 1 and 2's boundaries (backup sb at 1)
  assert.ok(!extents.some((e) => e.physical <= 32768 && e.physical + e.length > 32768), 'data does not overlap the backup superblock');
  await image.close();
  const ours = await readerManifest(img);
  assertSameTree(ours, fsManifest(src), { ignoreMtimeOf: new Set(['']) });
  if (canMount()) assertSameTree(mountManifest(img), ours);
  else t.diagnostic('kernel read-back skipped (not root)');
});

test('sparse files from GNU tar (pax 1.0 and old GNU formats) keep their holes', async (t) => {
  const src = join(work, 'sparse-src');
  mkdirSync(src);
  const fd = openSync(join(src, 'many-holes'), 'w');
  ftruncateSync(fd, 402 * 65536);
  // the first data starts at block 16: index entries must carry their child's first block
  for (let i = 1; i <= 400; i++) writeSync(fd, Buffer.from(`data segment ${i}\n`), 0, undefined, i * 65536 + 100);
  closeSync(fd);
  const fd2 = openSync(join(src, 'tail-only'), 'w');
  ftruncateSync(fd2, 50 << 20);
  writeSync(fd2, Buffer.from('end'), 0, undefined, (50 << 20) - 3);
  closeSync(fd2);
  utimesSync(join(src, 'many-holes'), 1700000000, 1700000000); // old GNU format: whole seconds
  utimesSync(join(src, 'tail-only'), 1700000000, 1700000000);
  for (const format of ['pax', 'gnu']) {
    const tar = join(work, `sparse-${format}.tar`);
    run('tar', ['--sparse', `--format=${format}`, '-cf', tar, '-C', src, '.']);
    const img = join(work, `sparse-${format}.img`);
    await convert(`tar:${tar}`, img, { readOnly: true });
    assertFsckClean(img);
    const image = await Ext4Image.open(img);
    const many = await image.lookup('many-holes');
    const ext = await image.extents(many);
    assert.equal(ext.length, 400, 'one extent per data segment: an extent tree with index blocks');
    assert.ok(many.blocks512 / 8 < 420, `allocated blocks ${many.blocks512 / 8}`);
    const tail = await image.lookup('tail-only');
    assert.ok(tail.blocks512 / 8 <= 2, 'a 50 MiB file with 3 bytes of data takes one block');
    await image.close();
    const ours = await readerManifest(img);
    assertSameTree(ours, fsManifest(src), { ignoreMtimeOf: new Set(['']) });
    if (canMount()) assertSameTree(mountManifest(img), ours);
    else t.diagnostic('kernel read-back skipped (not root)');
  }
});
