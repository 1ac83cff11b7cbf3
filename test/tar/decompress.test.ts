import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { isRootforgeError, type ErrorCode } from '../../src/errors.js';
import { open } from 'node:fs/promises';
import { detect, openArchive, openArchiveStream, readRing } from '../../src/tar/decompress.js';
import { readTar } from '../../src/tar/reader.js';
import { hasTool, lcg, run } from '../helpers/tar-collect.js';
import { tarEntries } from '../helpers/tar-writer.js';

const work = mkdtempSync(join(tmpdir(), 'rf-dec-'));
after(() => rmSync(work, { recursive: true, force: true }));

const rand = lcg(3);
/** ~3 MB archive of incompressible-ish files, so compressed streams span many chunks. */
const TAR = tarEntries(
  Array.from({ length: 12 }, (_, i) => ({
    path: `f${i}`,
    content: Buffer.from(Array.from({ length: 250_000 }, () => Math.floor(rand() * 64))),
  })),
);

function file(name: string, data: Buffer): string {
  const p = join(work, name);
  writeFileSync(p, data);
  return p;
}

async function drain(stream: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

async function rejectsCode(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isRootforgeError(e), `expected RootforgeError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

const haveCli = ['gzip', 'zstd', 'xz', 'bzip2', 'lz4'].every(hasTool);

test('format is found from the bytes, not the name; chunks stay valid after later ones arrive', { skip: !haveCli && 'compressors missing' }, async () => {
  const variants: Array<[string, Buffer, string]> = [
    ['plain.tar.gz', TAR, 'none'], // misleading extension
    ['gz.tar', run('gzip', ['-c'], { input: TAR }), 'gzip'],
    ['zst.bin', run('zstd', ['-q', '-c'], { input: TAR }), 'zstd'],
  ];
  for (const [name, data, compression] of variants) {
    for (const chunkSize of [65536, 1 << 20]) {
      const a = await openArchive(file(name, data), { chunkSize });
      assert.equal(a.compression, compression, name);
      const chunks = await drain(a.stream);
      // every chunk kept until the end must still hold its bytes: nothing is reused under us
      assert.ok(Buffer.concat(chunks).equals(TAR), `${name} (${chunkSize})`);
      assert.equal(a.bytesRead(), data.length, `${name} bytesRead`);
      assert.equal(a.compressedSize, data.length);
    }
  }
});

test('a plain tar whose first name starts like a compressor magic is still plain tar', () => {
  const tar = tarEntries([{ path: 'BZh91AY&SY', content: 'not bzip2' }]);
  assert.equal(detect(tar, 'x'), 'none');
  const gz = tarEntries([{ path: '\x1f\x8b', content: 'not gzip' }]);
  assert.equal(detect(gz, 'x'), 'none');
});

test('xz, bzip2, lz4 (and .Z, lzip) are refused by name', { skip: !haveCli && 'compressors missing' }, async () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['a.xz', run('xz', ['-c'], { input: TAR }), /xz compression is not supported/],
    ['a.bz2', run('bzip2', ['-c'], { input: TAR }), /bzip2 compression is not supported/],
    ['a.lz4', run('lz4', ['-c'], { input: TAR }), /lz4 compression is not supported/],
    ['a.Z', Buffer.from([0x1f, 0x9d, 0x90, 0x00]), /Unix compress/],
    ['a.lz', Buffer.from('LZIP\x01'), /lzip/],
  ];
  for (const [name, data, message] of cases) {
    await rejectsCode(openArchive(file(name, data)), 'TAR_UNSUPPORTED_COMPRESSION', message);
    await rejectsCode(openArchiveStream(Readable.from([data])), 'TAR_UNSUPPORTED_COMPRESSION', message);
  }
});

test('truncated or corrupt gzip and zstd are TAR_BAD_COMPRESSION', { skip: !haveCli && 'compressors missing' }, async () => {
  const gz = run('gzip', ['-c'], { input: TAR });
  const zst = run('zstd', ['-q', '-c'], { input: TAR });
  const flip = (b: Buffer, at: number) => {
    const c = Buffer.from(b);
    c[at] ^= 0x55;
    return c;
  };
  const bad: Array<[string, Buffer]> = [
    ['cut.gz', gz.subarray(0, gz.length >> 1)],
    ['cut-trailer.gz', gz.subarray(0, gz.length - 4)],
    ['corrupt.gz', flip(gz, gz.length >> 1)],
    ['cut.zst', zst.subarray(0, zst.length >> 1)],
    ['cut-end.zst', zst.subarray(0, zst.length - 3)],
    ['corrupt.zst', flip(zst, zst.length >> 1)],
  ];
  for (const [name, data] of bad) {
    await rejectsCode(drain((await openArchive(file(name, data))).stream), 'TAR_BAD_COMPRESSION', /^Cannot read archive: corrupt or truncated|zstd data ends inside a frame/);
    // the tar reader on top passes the same error through
    const entries = readTar((await openArchive(file(name, data))).stream);
    await rejectsCode(
      (async () => {
        for await (const e of entries) for await (const _ of e.body);
      })(),
      'TAR_BAD_COMPRESSION',
    );
  }
});

test('missing files and empty input', async () => {
  await rejectsCode(openArchive(join(work, 'nope.tar')), 'SOURCE_NOT_FOUND');
  const empty = await openArchive(file('empty', Buffer.alloc(0)));
  assert.equal(empty.compression, 'none');
  await rejectsCode(
    (async () => {
      for await (const _ of readTar(empty.stream));
    })(),
    'TAR_NOT_TAR',
    /empty/,
  );
});

test('stream variant (stdin): tiny first chunks are gathered to see the magic', { skip: !hasTool('zstd') && 'zstd missing' }, async () => {
  const zst = run('zstd', ['-q', '-c'], { input: TAR });
  const bytes = Array.from(zst.subarray(0, 600)).map((b) => new Uint8Array([b])); // one byte per chunk, not even Buffers
  const a = await openArchiveStream(Readable.from([...bytes, zst.subarray(600)], { objectMode: true }));
  assert.equal(a.compression, 'zstd');
  assert.ok(Buffer.concat(await drain(a.stream)).equals(TAR));
  assert.equal(a.bytesRead(), zst.length);
});

for (const [format, tool] of [['zstd', 'zstd'], ['gzip', 'gzip']] as const) {
  test(`${format} on the worker thread: equal bytes with and without reused buffers; early stop ends the worker`, { skip: !hasTool(tool) && `${tool} missing`, timeout: 60_000 }, async () => {
    // several MiB of varied data: many ring slots, so the worker has to wait for freed ones
    const big = Buffer.alloc(9 << 20);
    let x = 7;
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((x = (x * 1103515245 + 12345) >>> 0) & 0x0f0f0f0f, i);
    const path = file(`big.${format}`, run(tool, ['-q', '-c'], { input: big }));
    assert.ok(Buffer.concat(await drain((await openArchive(path)).stream)).equals(big), 'fresh chunks');
    // reused buffers: each chunk is valid until the next is asked for, so copy it right away
    const copies: Buffer[] = [];
    const views: Buffer[] = [];
    for await (const chunk of (await openArchive(path, { reuseOutput: true })).stream) {
      copies.push(Buffer.from(chunk));
      views.push(chunk);
    }
    assert.ok(Buffer.concat(copies).equals(big), 'reused chunks, copied as they come');
    assert.ok(copies.length > 4, 'more chunks than ring slots');
    assert.ok(!Buffer.concat(views).equals(big), 'the views were reused: keeping them without copying would be wrong');
    // stop after the first chunk: the worker is terminated (else this test file would never exit)
    for await (const chunk of (await openArchive(path, { reuseOutput: true })).stream) {
      assert.ok(chunk.length > 0);
      break;
    }
  });
}

test('readRing: exactly the first SIZE bytes, in a few reused buffers, and the file is closed', async () => {
  const chunk = 64 << 10;
  const data = Buffer.alloc(40 * chunk + 123);
  const r = lcg(7);
  for (let i = 0; i < data.length; i++) data[i] = r() & 0xff;
  const path = join(work, 'ring.bin');
  writeFileSync(path, data);
  const size = 37 * chunk + 5; // less than the file: the rest is never read
  const fh = await open(path, 'r');
  const got: Buffer[] = [];
  const memories = new Set<ArrayBufferLike>();
  for await (const c of readRing(fh, size, path, chunk)) {
    memories.add(c.buffer);
    got.push(Buffer.from(c)); // a consumer copies what it keeps
  }
  assert.ok(Buffer.concat(got).equals(data.subarray(0, size)));
  assert.ok(memories.size <= 8, `${memories.size} buffers for ${got.length} chunks`);
  await assert.rejects(fh.read(Buffer.alloc(1), 0, 1, 0), /EBADF|closed/i, 'closed at the end');
  // stopped early: closed too
  const fh2 = await open(path, 'r');
  for await (const c of readRing(fh2, size, path, chunk)) if (c.length > 0) break;
  await assert.rejects(fh2.read(Buffer.alloc(1), 0, 1, 0), /EBADF|closed/i, 'closed when stopped');
});

test('openArchiveStream: a source that reuses one buffer for tiny first chunks is still recognised and read whole', async () => {
  const { gzipSync } = await import('node:zlib');
  const tar = tarEntries([{ path: 'etc/hostname', content: 'reused\n' }]);
  const gz = gzipSync(tar);
  const shared = Buffer.alloc(64);
  async function* reusing(): AsyncGenerator<Buffer> {
    for (let off = 0; off < gz.length; off += shared.length) {
      const n = gz.copy(shared, 0, off, off + shared.length); // the same memory every time
      yield shared.subarray(0, n);
    }
  }
  const archive = await openArchiveStream(reusing());
  assert.equal(archive.compression, 'gzip');
  const out: Buffer[] = [];
  for await (const c of archive.stream) out.push(Buffer.from(c));
  assert.ok(Buffer.concat(out).equals(tar));
});

test('a compressed stream abandoned without return() does not keep the process from exiting', async () => {
  const { gzipSync } = await import('node:zlib');
  const { spawnSync } = await import('node:child_process');
  const r = lcg(11);
  const body = Buffer.alloc(6 << 20);
  for (let i = 0; i < body.length; i += 4) body.writeUInt32LE(r(), i);
  const gz = join(work, 'abandoned.gz');
  writeFileSync(gz, gzipSync(body, { level: 1 }));
  const mod = new URL('../../src/tar/decompress.js', import.meta.url).href;
  const code = `import { openArchive } from ${JSON.stringify(mod)};
    const it = (await openArchive(process.argv[1], { reuseOutput: true })).stream[Symbol.asyncIterator]();
    const first = await it.next();
    process.stdout.write(String(first.value.length)); // and the stream is left as it is`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', code, gz], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.signal, null, 'the process exited by itself (no timeout)');
  assert.equal(child.status, 0, child.stderr);
  assert.ok(Number(child.stdout) > 0);
});
