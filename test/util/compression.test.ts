/** The shared magic-number table (src/util/compression.ts) and its two users' views of it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { detectCompression } from '../../src/util/compression.js';
import { detect } from '../../src/tar/decompress.js';
import { detectCompression as kernelDetect } from '../../src/kernel/kernel-decompress.js';
import { RootforgeError } from '../../src/errors.js';

const CASES: [string, number[]][] = [
  ['gzip', [0x1f, 0x8b, 8, 0]],
  ['gzip', [0x1f, 0x9e, 0, 0]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd, 0]],
  ['zstd', [0x5e, 0x2a, 0x4d, 0x18, 0]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lzma', [0x5d, 0x00, 0x00, 0x80]],
  ['bzip2', [0x42, 0x5a, 0x68, 0x39]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
  ['lz4-frame', [0x04, 0x22, 0x4d, 0x18]],
  ['lzo', [0x89, 0x4c, 0x5a, 0x4f]],
  ['compress', [0x1f, 0x9d, 0x90]],
  ['lzip', [0x4c, 0x5a, 0x49, 0x50]],
  ['none', [0x7f, 0x45, 0x4c, 0x46]],
  ['none', []],
  ['none', [0x1f]],
  ['none', [0xfd, 0x37, 0x7a, 0x58, 0x5a]], // xz magic cut short
];

test('one table of magic numbers, and kernel code sees the same one', () => {
  for (const [kind, bytes] of CASES) {
    assert.equal(detectCompression(Uint8Array.from(bytes)), kind, bytes.join(','));
    assert.equal(kernelDetect(Uint8Array.from(bytes)), kind);
  }
  assert.equal(detectCompression(gzipSync(Buffer.from('x'))), 'gzip');
});

test('the tar reader accepts gzip and zstd and names every other format in a typed error', () => {
  assert.equal(detect(gzipSync(Buffer.alloc(10)), 'in'), 'gzip');
  assert.equal(detect(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0]), 'in'), 'zstd');
  assert.equal(detect(Buffer.from('plain text'), 'in'), 'none');
  const named: [number[], string][] = [
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz compression'],
    [[0x02, 0x21, 0x4c, 0x18], 'lz4 (legacy) compression'],
    [[0x04, 0x22, 0x4d, 0x18], 'lz4 compression'],
    [[0x1f, 0x9d, 0], 'Unix compress (.Z) compression'],
    [[0x42, 0x5a, 0x68], 'bzip2 compression'],
  ];
  for (const [bytes, label] of named) {
    assert.throws(
      () => detect(Buffer.from(bytes), 'in.tar'),
      (e: unknown) => e instanceof RootforgeError && e.code === 'TAR_UNSUPPORTED_COMPRESSION' && e.message.includes(label) && e.message.includes('in.tar'),
    );
  }
});
