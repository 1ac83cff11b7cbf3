/**
 * Unit tests of src/ext4/datasink.ts: file bodies land at the blocks the allocator gave them
 * (stepping over reserved group starts), sparse files take blocks only for their data, the
 * fingerprint follows the content, and bad input is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockAllocator } from '../../src/ext4/alloc.js';
import { DataSink, sparseBlockRanges, writevFully } from '../../src/ext4/datasink.js';
import { BLOCKS_PER_GROUP } from '../../src/ext4/format.js';
import type { Content } from '../../src/tree/types.js';
import { RootforgeError } from '../../src/errors.js';

const G = BLOCKS_PER_GROUP;
const BS = 4096;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
  return b;
}

async function withSink(fn: (sink: DataSink, alloc: BlockAllocator, path: string) => Promise<void>, first = 16): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-sink-'));
  const path = join(dir, 'img');
  const fh = await open(path, 'w+');
  try {
    const alloc = new BlockAllocator(first);
    await fn(new DataSink(fh, alloc), alloc, path);
  } finally {
    await fh.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads a placed file back from the image through its runs. */
function readBack(img: Buffer, content: Content | null, size: number): Buffer {
  const out = Buffer.alloc(size);
  if (!content) return out;
  assert.equal(content.kind, 'placed');
  if (content.kind !== 'placed') return out;
  for (const r of content.runs) {
    const from = r.physical * BS;
    const len = Math.min(r.length * BS, size - r.logical * BS);
    img.copy(out, r.logical * BS, from, from + len);
  }
  return out;
}

test('bodies written in odd-sized chunks read back from their runs; reserved blocks are skipped', async () => {
  await withSink(async (sink, _alloc, path) => {
    const files = [pattern(10, 1), pattern(0, 2), pattern(5 * BS + 17, 3), pattern(40 * BS, 4), pattern(BS, 5)];
    const placed: (Content | null)[] = [];
    for (const [i, body] of files.entries()) {
      sink.beginFile(body.length);
      for (let off = 0; off < body.length; off += 3001 + i) {
        sink.write(body.subarray(off, Math.min(body.length, off + 3001 + i)));
        await sink.drain();
      }
      placed.push(sink.endFile());
    }
    await sink.flush();
    assert.equal(placed[1], null, 'an empty file has no blocks');
    const img = readFileSync(path);
    files.forEach((body, i) => assert.ok(readBack(img, placed[i]!, body.length).equals(body), `file ${i}`));
    // the 40-block file straddles group 1's two reserved blocks
    const runs = (placed[3] as Extract<Content, { kind: 'placed' }>).runs;
    assert.equal(runs.length, 2);
    assert.equal(runs[0]!.physical + runs[0]!.length, G);
    assert.equal(runs[1]!.physical, G + 2);
    assert.equal(runs[1]!.logical, runs[0]!.length);
    assert.equal(sink.bytesIn, files.reduce((n, f) => n + f.length, 0));
    // a one-run file (kept as one compact object) still reads as content with one run
    const one = placed[2] as Extract<Content, { kind: 'placed' }>;
    assert.deepEqual(one.runs.map((r) => [r.logical, r.length]), [[0, 6]]);
    assert.equal(one.runs[0]!.physical + 6, (placed[3] as Extract<Content, { kind: 'placed' }>).runs[0]!.physical);
  }, G - 12);
});

test('the content fingerprint changes with the bytes and not with the chunking', async () => {
  const crcOf = async (chunks: Buffer[]) => {
    let crc = -1;
    await withSink(async (sink) => {
      const size = chunks.reduce((n, c) => n + c.length, 0);
      sink.beginFile(size);
      for (const c of chunks) sink.write(c);
      const c = sink.endFile();
      await sink.flush();
      assert.ok(c && c.kind === 'placed');
      crc = c.crc;
    });
    return crc;
  };
  const body = pattern(100 * 1024, 9);
  const whole = await crcOf([body]);
  assert.equal(await crcOf([body.subarray(0, 7), body.subarray(7, 50000), body.subarray(50000)]), whole);
  const changed = Buffer.from(body);
  changed[5]! ^= 1;
  assert.notEqual(await crcOf([changed]), whole);
});

test('sparse files: blocks only for data segments, holes read as zeros', async () => {
  assert.deepEqual(sparseBlockRanges([{ offset: 0, length: 10 }, { offset: 5000, length: 10 }, { offset: 9 * BS, length: 0 }, { offset: 20 * BS + 5, length: BS }], 30 * BS), [
    { first: 0, count: 2 },
    { first: 20, count: 2 },
  ]);
  const isSparse = (e: unknown) => e instanceof RootforgeError && e.code === 'TAR_BAD_SPARSE';
  assert.throws(() => sparseBlockRanges([{ offset: 100, length: 10 }, { offset: 50, length: 10 }], 1000), isSparse);
  assert.throws(() => sparseBlockRanges([{ offset: 990, length: 20 }], 1000), isSparse);

  await withSink(async (sink, alloc, path) => {
    const segments = [{ offset: 3 * BS + 100, length: 2 * BS }, { offset: 100 * BS, length: 10 }];
    const size = 200 * BS;
    const before = alloc.next;
    sink.beginFile(size, segments);
    const data = [pattern(2 * BS, 1), pattern(10, 2)];
    const joined = Buffer.concat(data);
    sink.write(joined.subarray(0, 5000));
    sink.write(joined.subarray(5000));
    const c = sink.endFile();
    await sink.flush();
    assert.equal(alloc.next - before, 3 + 1, 'blocks 3..5 and 100 only');
    const back = readBack(readFileSync(path), c, size);
    const expected = Buffer.alloc(size);
    data[0]!.copy(expected, segments[0]!.offset);
    data[1]!.copy(expected, segments[1]!.offset);
    assert.ok(back.equals(expected));
  });
});

test('abortFile returns the blocks; too many or too few body bytes are refused', async () => {
  await withSink(async (sink, alloc) => {
    const before = alloc.next;
    sink.beginFile(10 * BS);
    sink.write(pattern(100, 1));
    sink.abortFile();
    assert.deepEqual(alloc.freeGaps(), [{ start: before, length: 10 }]);
    sink.beginFile(10);
    assert.throws(() => sink.write(Buffer.alloc(11)));
    sink.write(Buffer.alloc(5));
    assert.throws(() => sink.endFile());
    await sink.flush();
  });
  await withSink(async (sink) => {
    assert.throws(() => sink.beginFile(2 ** 44 + BS), (e: unknown) => e instanceof RootforgeError && e.code === 'EXT4_FILE_TOO_LARGE');
  });
});

test('writevFully writes every buffer at its position', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-writev-'));
  const fh = await open(join(dir, 'f'), 'w+');
  try {
    const parts = [pattern(3, 1), Buffer.alloc(0), pattern(70000, 2), pattern(5, 3)];
    await writevFully(fh, parts, 1000);
    await fh.sync();
    const got = readFileSync(join(dir, 'f'));
    assert.equal(got.length, 1000 + 70008);
    assert.ok(got.subarray(1000).equals(Buffer.concat(parts)));
  } finally {
    await fh.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
