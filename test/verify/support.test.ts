/**
 * The pieces under verify: Ext4Image.readRange against readData, ImageFs path resolution and
 * globbing inside an image, and the bounded-concurrency helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ext4Image } from '../../src/ext4/reader.js';
import { ImageFs, normalize } from '../../src/verify/image-fs.js';
import { drain, mapLimit } from '../../src/verify/pool.js';
import { buildImage, Tree } from './helpers.js';

function sample(): Tree {
  const big = Buffer.alloc(3 * 4096 + 123);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 12)) & 0xff;
  return new Tree()
    .file('/data/big', big)
    .file('/data/small', 'hello\n')
    .file('/data/empty', '')
    .dir('/real/dir')
    .file('/real/dir/f', 'f\n')
    .symlink('/abs', '/real/dir')
    .symlink('/real/rel', 'dir/f')
    .symlink('/real/up', '../real/./dir/f')
    .symlink('/real/chain', 'rel')
    .symlink('/dangling', '/nowhere/x')
    .symlink('/loop1', 'loop2')
    .symlink('/loop2', '/loop1')
    .file('/etc/a.conf', 'a')
    .file('/etc/b.conf', 'b')
    .file('/etc/.hidden.conf', 'h')
    .file('/etc/c.txt', 'c');
}

test('readRange returns exactly the bytes readData has, clipped at the end of the file', async (t) => {
  const img = await Ext4Image.open(await buildImage(t, sample(), 'range'));
  t.after(() => img.close());
  for (const p of ['/data/big', '/data/small', '/data/empty']) {
    const st = await img.lookup(p);
    const all = await img.readData(st);
    const cases = [[0, 0], [0, 1], [0, st.size], [0, st.size + 100], [4095, 2], [4096, 4096], [1, 3 * 4096], [st.size, 10], [st.size + 5, 10]];
    for (let i = 0; i < 50; i++) cases.push([Math.floor(Math.random() * (st.size + 10)), Math.floor(Math.random() * 9000)]);
    for (const [off, len] of cases) {
      const want = all.subarray(Math.min(off!, all.length), Math.min(off! + len!, all.length));
      assert.deepEqual(await img.readRange(st, off!, len!), want, `${p} ${off}+${len}`);
    }
  }
  const st = await img.lookup('/data/big');
  await assert.rejects(img.readRange(st, -1, 4), /Cannot read file range/);
});

test('ImageFs resolves like open(2) in a chroot, and globs like glob(3)', async (t) => {
  const img = await Ext4Image.open(await buildImage(t, sample(), 'fs'));
  t.after(() => img.close());
  const fs = new ImageFs(img);
  const ok = async (p: string) => {
    const r = await fs.resolve(p);
    assert.ok(r.ok, `${p}: ${!r.ok && r.reason}`);
    return r;
  };
  assert.equal((await ok('/abs/f')).path, '/real/dir/f');
  assert.equal((await ok('/real/rel')).path, '/real/dir/f');
  assert.equal((await ok('/real/up')).path, '/real/dir/f');
  assert.deepEqual((await ok('/real/chain')).via, ['/real/chain -> rel', '/real/rel -> dir/f']);
  assert.equal((await ok('/../../real/./dir/../dir/f')).path, '/real/dir/f', '.. stops at the root');
  assert.equal((await ok('abs')).st.kind, 'dir');
  const link = await fs.resolve('/abs', false);
  assert.ok(link.ok && link.st.kind === 'symlink' && link.path === '/abs');
  const r1 = await fs.resolve('/dangling');
  assert.ok(!r1.ok && r1.code === 'ENOENT' && r1.reason === 'no such file or directory (/nowhere)');
  const r2 = await fs.resolve('/data/small/x');
  assert.ok(!r2.ok && r2.code === 'ENOTDIR' && r2.reason === 'not a directory (/data/small)');
  const r3 = await fs.resolve('/loop1');
  assert.ok(!r3.ok && r3.code === 'ELOOP' && /^symbolic link loop/.test(r3.reason));
  assert.deepEqual(await fs.glob('/etc/*.conf'), ['/etc/a.conf', '/etc/b.conf']);
  assert.deepEqual(await fs.glob('/etc/[ab].con?'), ['/etc/a.conf', '/etc/b.conf']);
  assert.deepEqual(await fs.glob('/etc/.*.conf'), ['/etc/.hidden.conf']);
  assert.deepEqual(await fs.glob('/*/dir/f'), ['/real/dir/f'], '/abs/dir/f does not exist (/abs is the dir itself)');
  assert.deepEqual(await fs.glob('/nowhere/*'), []);
  assert.equal(normalize('//a/./b/../c/'), '/a/c');
});

test('mapLimit keeps order and the bound; drain walks what it is given; both wait on failure', async () => {
  let active = 0;
  let peak = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
    peak = Math.max(peak, ++active);
    await new Promise((r) => setTimeout(r, x));
    active--;
    return x * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(peak, 2);
  const seen: number[] = [];
  await drain([1], 3, async (n, push) => {
    seen.push(n);
    if (n < 20) push(n * 2), push(n * 2 + 1);
  });
  assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 39 }, (_, i) => i + 1));
  let running = 0;
  let finished = 0;
  await assert.rejects(
    drain([0, 1, 2, 3, 4, 5], 3, async (n) => {
      running++;
      await new Promise((r) => setTimeout(r, n === 0 ? 1 : 20));
      running--;
      finished++;
      if (n === 0) throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(running, 0, 'nothing still running when the error is thrown');
  assert.equal(finished, 3, 'no new item started after the failure');
  await assert.rejects(mapLimit([0, 1, 2], 2, async (n) => { if (n === 0) throw new Error('bad'); await new Promise((r) => setTimeout(r, 10)); }), /bad/);
});
