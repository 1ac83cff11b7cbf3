/**
 * `--size auto` and `+N` promise free space the guest can write (issue 9, defect 5a): the kernel
 * keeps min(2 % of the blocks, 4096) clusters of an ext4 filesystem for itself, so the image is
 * made that much bigger. Checked through the kernel: loop-mounted read-write, statfs's available
 * blocks must cover the promise, and writing into it must succeed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, rmdirSync, statfsSync, writeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { BLOCK_SIZE } from '../../src/ext4/format.js';
import { promisedFreeBlocks, reservedClusters, type SizeSpec } from '../../src/ext4/options.js';
import { skipOrFail } from '../helpers/fixtures.js';
import { assertFsckClean, canMount, run } from '../helpers/image.js';
import { tarEntries } from '../helpers/tar-writer.js';

test('reservedClusters follows the kernel: 2 % of the blocks, at most 4096', () => {
  assert.equal(reservedClusters(1000), 20);
  assert.equal(reservedClusters(204_799), 4095);
  assert.equal(reservedClusters(204_800), 4096);
  assert.equal(reservedClusters(10_000_000), 4096);
});

const CASES: { name: string; size: SizeSpec; fileBytes: number }[] = [
  { name: 'small auto-sized image', size: { mode: 'auto' }, fileBytes: 3 << 20 },
  { name: 'auto-sized image over 800 MB', size: { mode: 'auto' }, fileBytes: 820 << 20 },
  { name: '+64M image', size: { mode: 'plus', bytes: 64 << 20 }, fileBytes: 1 << 20 },
];

for (const c of CASES) {
  test(`${c.name}: df in the guest shows the promised headroom available`, { timeout: 300_000 }, async (t) => {
    if (!canMount()) return skipOrFail(t, 'needs root and loop devices to mount the image read-write');
    const dir = mkdtempSync(join(tmpdir(), 'rf-headroom-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const tar = join(dir, 'in.tar');
    // one big file of zeros (written as a tar stream to keep memory flat) and a few small ones
    const head = tarEntries([{ path: 'etc/hostname', content: 'sandbox\n' }, { path: 'usr/bin', type: 'dir' }]).subarray(0, -1024);
    const body = tarEntries([{ path: 'usr/lib/big.bin', content: Buffer.alloc(0) }]).subarray(0, 512);
    body.write(c.fileBytes.toString(8).padStart(11, '0'), 124, 'latin1'); // size field
    let sum = 0;
    body.fill(' ', 148, 156);
    for (const b of body) sum += b;
    body.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    writeFileSync(tar, head);
    const fd = openSync(tar, 'a');
    writeSync(fd, body);
    const chunk = Buffer.alloc(1 << 20);
    for (let left = c.fileBytes; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(left, chunk.length));
    writeSync(fd, Buffer.alloc((512 - (c.fileBytes % 512)) % 512 + 1024));
    closeSync(fd);

    const img = join(dir, 'out.img');
    const r = await convert(`tar:${tar}`, img, { size: c.size });
    rmSync(tar);
    assertFsckClean(img);
    const used = r.blocks - r.freeBlocks;
    const promised = promisedFreeBlocks(used, { size: c.size, readOnly: false });
    t.diagnostic(`${r.blocks} blocks, ${used} used, ${promised} promised, kernel reserve ${reservedClusters(r.blocks)}`);

    const mnt = mkdtempSync(join(tmpdir(), 'rf-headroom-mnt-'));
    run('mount', ['-t', 'ext4', '-o', 'loop', img, mnt]);
    try {
      const st = statfsSync(mnt);
      const available = (st.bavail * st.bsize) / BLOCK_SIZE;
      assert.ok(available >= promised, `df shows ${available} blocks available, ${promised} promised`);
      // and the guest can use it: fill all but 64 KiB of the promise (directory and extent blocks)
      const fill = Math.min(promised * BLOCK_SIZE - (64 << 10), 64 << 20);
      const out = openSync(join(mnt, 'fill'), 'w');
      try {
        const buf = Buffer.alloc(1 << 20, 0xa5);
        for (let left = fill; left > 0; left -= buf.length) writeSync(out, buf, 0, Math.min(left, buf.length));
        fsyncSync(out);
      } finally {
        closeSync(out);
      }
    } finally {
      run('umount', [mnt]);
      rmdirSync(mnt);
    }
  });
}
