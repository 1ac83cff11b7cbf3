/**
 * GNU sparse files in every format GNU tar writes (old GNU 'S' with extension blocks, PAX 0.0,
 * 0.1, 1.0), made by GNU tar itself from real sparse files. References: the file's own bytes,
 * and Python tarfile's reading of the map.
 */
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isRootforgeError } from '../../src/errors.js';
import { collect, expandSparse, hasTool, lcg, pythonDump, run, sha256 } from '../helpers/tar-collect.js';
import { header, pad512, paxHeader } from '../helpers/tar-writer.js';

const haveTar = hasTool('tar') && hasTool('python3');
const work = mkdtempSync(join(tmpdir(), 'rf-sparse-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Writes `name` with data runs at the given offsets (4 KiB-aligned so ext4 keeps the holes). */
function sparseFile(name: string, size: number, runs: Array<[number, number]>, seed: number): Buffer {
  const path = join(work, name);
  const fd = openSync(path, 'w');
  const rand = lcg(seed);
  for (const [offset, length] of runs) {
    const data = Buffer.from(Array.from({ length }, () => 1 + Math.floor(rand() * 255)));
    writeSync(fd, data, 0, length, offset);
  }
  ftruncateSync(fd, size);
  closeSync(fd);
  return readFileSync(path);
}

const FILES: Array<{ name: string; size: number; runs: Array<[number, number]> }> = [
  { name: 'few', size: 3 * 1024 * 1024, runs: [[1 << 20, 5000], [2 << 20, 4096]] },
  // 50 runs: more than the 4 map entries of a GNU header, so two 21-entry extension blocks follow
  { name: 'many', size: 60 * 65536, runs: Array.from({ length: 50 }, (_, i) => [i * 65536 + 8192, 4096] as [number, number]) },
  { name: 'tail', size: 200_000, runs: [[196_608, 3392]] }, // data up to the very end
  { name: 'holes', size: 5_000_000, runs: [] }, // nothing but a hole
];

for (const format of ['gnu', 'pax-0.0', 'pax-0.1', 'pax-1.0'] as const) {
  test(`GNU tar --sparse (${format}) reads back byte-identical, maps equal to Python's`, { skip: !haveTar && 'GNU tar / python3 missing' }, () => {
    const contents = new Map(FILES.map((f, i) => [f.name, sparseFile(`${format}-${f.name}`, f.size, f.runs, i + 1)]));
    const args = format === 'gnu' ? ['--format=gnu'] : ['--format=pax', `--sparse-version=${format.slice(4)}`];
    const tarPath = join(work, `${format}.tar`);
    run('tar', ['--sparse', ...args, '-cf', tarPath, '-C', work, ...FILES.map((f) => `${format}-${f.name}`)]);
    const tar = readFileSync(tarPath);
    const py = pythonDump(tarPath);
    for (const chunking of ['one', 1000, 512] as const) {
      const { entries, warnings } = collect(tar, chunking);
      assert.deepEqual(warnings, []);
      assert.equal(entries.length, FILES.length);
      entries.forEach((e, i) => {
        const name = FILES[i]!.name;
        const h = e.header;
        assert.equal(h.path, `${format}-${name}`, 'GNU.sparse.name / real name, not GNUSparseFile.N');
        assert.equal(h.type, 'file');
        assert.equal(h.size, contents.get(name)!.length, `${name} size`);
        assert.equal(e.body.length, h.bodySize);
        assert.equal(sha256(expandSparse(h, e.body)), sha256(contents.get(name)!), `${name} content (${chunking})`);
        const pySegments = (py[i]!.sparse ?? []).filter(([, len]) => len > 0).map(([offset, length]) => ({ offset, length }));
        assert.deepEqual(h.sparse, pySegments, `${name} map`);
        assert.equal(py[i]!.sha256, sha256(contents.get(name)!), 'python agrees on the content');
        assert.equal(tar.toString('hex', h.offset, h.offset + Math.min(16, h.bodySize)), e.body.toString('hex', 0, Math.min(16, h.bodySize)), 'offset points at the data');
      });
    }
  });
}

test('sparse maps that cannot describe a file are TAR_BAD_SPARSE', () => {
  const entry = (records: Array<[string, string]>, size: number, body: Buffer) =>
    Buffer.concat([paxHeader(records, 'x'), header({ name: Buffer.from('s'), mode: 0o644, uid: 0, gid: 0, size, mtime: 0, typeflag: '0', magic: 'ustar' }), pad512(body), Buffer.alloc(1024)]);
  const bad = (what: string, tar: Buffer) => assert.throws(() => collect(tar), (e) => isRootforgeError(e, 'TAR_BAD_SPARSE'), what);
  bad('overlapping', entry([['GNU.sparse.size', '100'], ['GNU.sparse.map', '0,10,5,10']], 20, Buffer.alloc(20)));
  bad('past the size', entry([['GNU.sparse.size', '10'], ['GNU.sparse.map', '5,10']], 10, Buffer.alloc(10)));
  bad('odd map', entry([['GNU.sparse.size', '10'], ['GNU.sparse.map', '5']], 0, Buffer.alloc(0)));
  bad('more data than stored', entry([['GNU.sparse.size', '100'], ['GNU.sparse.map', '0,50']], 20, Buffer.alloc(20)));
  bad('1.0 map longer than the body', entry([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.realsize', '9']], 4, Buffer.from('3\n0\n')));
  bad('1.0 map with junk', entry([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.realsize', '9']], 512, Buffer.from('1\nzero\n9\n')));
  bad('unknown version', entry([['GNU.sparse.major', '2'], ['GNU.sparse.minor', '0']], 0, Buffer.alloc(0)));
});

test('a 1.0 map with comment lines, and stored data longer than the map (warned, skipped)', () => {
  const map = Buffer.from('#!gnu-sparse-format\n#format:1.0\n2\n10\n3\n20\n2\n');
  const body = Buffer.concat([pad512(map), Buffer.from('abcde'), Buffer.from('XYZ')]); // 3 extra bytes
  const tar = Buffer.concat([
    paxHeader(
      [
        ['GNU.sparse.major', '1'],
        ['GNU.sparse.minor', '0'],
        ['GNU.sparse.name', 'real'],
        ['GNU.sparse.realsize', '30'],
      ],
      'x',
    ),
    header({ name: Buffer.from('GNUSparseFile.0/real'), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: '0', magic: 'ustar' }),
    pad512(body),
    Buffer.alloc(1024),
  ]);
  for (const chunking of ['one', 1, 7] as const) {
    const { entries, warnings } = collect(tar, chunking);
    const h = entries[0]!.header;
    assert.equal(h.path, 'real');
    assert.deepEqual(h.sparse, [
      { offset: 10, length: 3 },
      { offset: 20, length: 2 },
    ]);
    assert.equal(h.size, 30);
    assert.equal(entries[0]!.body.toString(), 'abcde');
    assert.equal(h.offset, 1024 + 512 + 512, "after the pax header, the entry header and the padded map");
    assert.deepEqual(
      warnings.map((w) => w.code),
      ['TAR_SPARSE_EXCESS'],
    );
  }
});
