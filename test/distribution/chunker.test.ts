/**
 * The content-defined chunker: pieces cover the file exactly and in order, sizes stay within
 * MIN..MAX, zero runs are cut out, the same bytes always give the same cuts, and an insertion
 * near the start moves only the chunks around it (the property that makes v2 uploads small).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { CHUNK_MAX, CHUNK_MIN, chunkFile, GEAR, ZERO_RUN_MIN, type Piece } from '../../src/distribution/chunker.js';

const work = mkdtempSync(join(tmpdir(), 'rf-chunker-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function noise(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

async function pieces(data: Buffer, name: string): Promise<Piece[]> {
  const path = join(work, name);
  writeFileSync(path, data);
  const out: Piece[] = [];
  for await (const p of chunkFile(path)) out.push(p);
  return out;
}

const id = (p: Piece) => (p.kind === 'data' ? createHash('sha256').update(p.data).digest('hex') : `zero:${p.length}`);

test('the gear table is fixed (changing it would change every chunk ever pushed)', () => {
  assert.equal(GEAR.length, 256);
  assert.equal(createHash('sha256').update(Buffer.from(GEAR.buffer)).digest('hex').length, 64);
  assert.equal(GEAR[0], createHash('sha256').update('rootforge-fastcdc-gear-v1:0').digest().readUInt32BE(0));
  assert.equal(new Set(GEAR).size, 256);
});

test('pieces cover the file in order; sizes within bounds; zero runs cut out; deterministic', async () => {
  const data = Buffer.concat([noise(1, 3 << 20), Buffer.alloc(1 << 20), noise(2, 5000), Buffer.alloc(ZERO_RUN_MIN - 4096), noise(3, 2 << 20), Buffer.alloc(300_000)]);
  const ps = await pieces(data, 'a');
  let pos = 0;
  const rebuilt = Buffer.alloc(data.length);
  for (const p of ps) {
    assert.equal(p.offset, pos, 'contiguous');
    if (p.kind === 'data') {
      p.data.copy(rebuilt, p.offset);
      pos += p.data.length;
      assert.ok(p.data.length <= CHUNK_MAX);
    } else {
      assert.ok(p.length >= ZERO_RUN_MIN && p.offset % 4096 === 0);
      pos += p.length;
    }
  }
  assert.equal(pos, data.length);
  assert.ok(rebuilt.equals(data));
  const zero = ps.filter((p) => p.kind === 'zero');
  assert.equal(zero.length, 2, 'the 1 MiB run and the tail; the short run stays inside a chunk');
  const small = ps.filter((p, i) => p.kind === 'data' && p.data.length < CHUNK_MIN && ps[i + 1]?.kind !== 'zero' && i !== ps.length - 1);
  assert.deepEqual(small, [], 'only a chunk cut short by a zero run or the end is below MIN');
  const again = await pieces(data, 'b');
  assert.deepEqual(again.map(id), ps.map(id));
});

test('an insertion near the start changes only the chunks around it', async () => {
  const base = noise(7, 8 << 20);
  const edited = Buffer.concat([base.subarray(0, 100_000), Buffer.from('a few inserted bytes'), base.subarray(100_000)]);
  const a = new Set((await pieces(base, 'c')).map(id));
  const b = await pieces(edited, 'd');
  const fresh = b.filter((p) => !a.has(id(p)));
  assert.ok(fresh.length <= 3, `${fresh.length} new chunks of ${b.length}`);
});
