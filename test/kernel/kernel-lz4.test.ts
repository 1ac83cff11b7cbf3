/**
 * Our LZ4 legacy-format decoder against the reference encoder, `lz4 -l` (the format the kernel
 * uses): random, repetitive, mixed and empty data, multi-block streams (> 8 MiB), a real binary,
 * concatenated streams; and corrupt input is a typed error, never a crash or an out-of-range write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { decompressLz4Legacy, isLz4Legacy } from '../../src/kernel/lz4.js';
import { isRootforgeError } from '../../src/errors.js';
import { skipOrFail, which } from '../helpers/kernel.js';

const haveLz4 = which('lz4');

function lz4Legacy(data: Buffer, level = '-1'): Buffer {
  const r = spawnSync('lz4', ['-l', level, '-c', '-q'], { input: data, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, r.stderr?.toString());
  return r.stdout;
}

function roundTrip(data: Buffer, level?: string): void {
  const compressed = lz4Legacy(data, level);
  assert.ok(isLz4Legacy(compressed));
  const out = decompressLz4Legacy(compressed);
  assert.equal(out.length, data.length);
  assert.ok(out.equals(data), 'decompressed bytes differ');
  assert.ok(decompressLz4Legacy(compressed, { expectedSize: data.length }).equals(data));
}

/** Text-like data: words from a small vocabulary with random lengths (many short matches). */
function mixed(n: number, seed: number): Buffer {
  const words = ['virtio', 'kernel', ' ', '\n', 'module', '0x', 'ffff', 'mmio', 'rootforge', '\0\0\0\0'];
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; ) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = x % 7 === 0 ? randomBytes(1 + (x % 5)).toString('latin1') : words[x % words.length]!;
    i += out.write(w, i, 'latin1');
  }
  return out;
}

test('random, repetitive, mixed and empty data round-trip through lz4 -l', (t) => {
  if (!haveLz4) return skipOrFail(t, 'lz4 is not installed (apt-get install lz4)');
  roundTrip(Buffer.alloc(0));
  roundTrip(Buffer.from('a'));
  roundTrip(randomBytes(1000)); // incompressible: literals only
  roundTrip(Buffer.alloc(100_000, 0x41)); // one long run: overlapping matches, length extensions
  roundTrip(Buffer.from('abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc'.repeat(1000)));
  roundTrip(mixed(300_000, 1));
  roundTrip(mixed(300_000, 2), '-9'); // high compression: longer, farther matches
});

test('multi-block streams (more than 8 MiB) round-trip', (t) => {
  if (!haveLz4) return skipOrFail(t, 'lz4 is not installed (apt-get install lz4)');
  const data = Buffer.concat([mixed(6 << 20, 3), randomBytes(3 << 20), Buffer.alloc(9 << 20, 7)]);
  roundTrip(data);
});

test('a real binary round-trips (qemu or node)', (t) => {
  if (!haveLz4) return skipOrFail(t, 'lz4 is not installed (apt-get install lz4)');
  const path = which('qemu-system-x86_64') ? spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).stdout.trim() : process.execPath;
  const size = Math.min(statSync(path).size, 24 << 20);
  const data = readFileSync(path).subarray(0, size);
  const out = decompressLz4Legacy(lz4Legacy(Buffer.from(data)));
  assert.equal(createHash('sha256').update(out).digest('hex'), createHash('sha256').update(data).digest('hex'));
});

test('concatenated legacy streams decode as one (the magic between them is skipped)', (t) => {
  if (!haveLz4) return skipOrFail(t, 'lz4 is not installed (apt-get install lz4)');
  const a = mixed(50_000, 4);
  const b = mixed(60_000, 5);
  assert.ok(decompressLz4Legacy(Buffer.concat([lz4Legacy(a), lz4Legacy(b)])).equals(Buffer.concat([a, b])));
});

test('corrupt input: typed errors, never a crash', (t) => {
  if (!haveLz4) return skipOrFail(t, 'lz4 is not installed (apt-get install lz4)');
  const data = mixed(200_000, 6);
  const good = lz4Legacy(data);
  const typed = (e: unknown): boolean => isRootforgeError(e, 'KERNEL_DECOMPRESS_FAILED');
  assert.throws(() => decompressLz4Legacy(Buffer.from('not lz4')), typed);
  assert.throws(() => decompressLz4Legacy(good.subarray(0, good.length - 100)), typed); // truncated block
  assert.throws(() => decompressLz4Legacy(Buffer.concat([good, Buffer.from([1, 2])])), typed); // stray bytes
  assert.throws(() => decompressLz4Legacy(good, { expectedSize: data.length + 1 }), typed);
  // every single-byte corruption in the first kilobyte of the block: an error or some output
  let errors = 0;
  for (let i = 8; i < 1024; i++) {
    const bad = Buffer.from(good);
    bad[i] = bad[i]! ^ 0xa5;
    try {
      decompressLz4Legacy(bad);
    } catch (e) {
      assert.ok(typed(e), `byte ${i}: ${(e as Error).message}`);
      errors++;
    }
  }
  assert.ok(errors > 0);
});
