/**
 * Robustness: damaged archives either parse (the damage missed anything that matters) or fail
 * with a typed RootforgeError: never a TypeError/RangeError, a hang, or a huge allocation. The
 * seeds cover every extension the reader handles: PAX (local, global, binary xattrs, ACL text,
 * sparse 0.1 and 1.0), GNU long names, old GNU sparse with extension blocks, v7.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isRootforgeError } from '../../src/errors.js';
import { collect, fingerprint } from '../helpers/tar-collect.js';
import { base256Field, header, pad512, paxHeader, setChecksum, tarEntries } from '../helpers/tar-writer.js';

function oldGnuSparse(): Buffer {
  // 6 segments: 4 in the header, 2 in one extension block
  const h = header({ name: Buffer.from('sp'), mode: 0o644, uid: 0, gid: 0, size: 6 * 512, mtime: 0, typeflag: 'S', magic: 'gnu' });
  for (let i = 0; i < 4; i++) {
    Buffer.from((i * 4096).toString(8).padStart(11, '0') + '\0').copy(h, 386 + i * 24);
    Buffer.from((512).toString(8).padStart(11, '0') + '\0').copy(h, 386 + i * 24 + 12);
  }
  h[482] = 1;
  Buffer.from((40960).toString(8).padStart(11, '0') + '\0').copy(h, 483);
  setChecksum(h);
  const ext = Buffer.alloc(512);
  for (let i = 0; i < 2; i++) {
    Buffer.from(((4 + i) * 4096).toString(8).padStart(11, '0') + '\0').copy(ext, i * 24);
    Buffer.from((512).toString(8).padStart(11, '0') + '\0').copy(ext, i * 24 + 12);
  }
  return Buffer.concat([h, ext, Buffer.alloc(6 * 512, 0x61)]);
}

const SEEDS: Record<string, Buffer> = {
  pax: tarEntries(
    [
      { path: 'd/', type: 'dir', pax: [['SCHILY.acl.default', 'user::rwx,group::r-x,other::---,user:5:rwx']] },
      { path: `d/${'n'.repeat(150)}`, content: 'body', xattrs: { 'user.b': Buffer.from([0, 10, 61]) }, mtime: { sec: -3, nsec: 7 } },
      { path: 'l', type: 'symlink', linkname: 'x'.repeat(120) },
      { path: 'h', type: 'hardlink', linkname: 'l' },
      { path: 's', content: 'abc', pax: [['GNU.sparse.size', '9000'], ['GNU.sparse.map', '10,1,8000,2'], ['GNU.sparse.name', 'real']] },
    ],
    { globalPax: [['comment', 'g'], ['uname', 'root']] },
  ),
  gnu: tarEntries(
    [
      { path: 'L'.repeat(300), content: 'long' },
      { path: 'k', type: 'symlink', linkname: 'K'.repeat(200), uid: 3_000_000 },
    ],
    { format: 'gnu' },
  ),
  sparse10: Buffer.concat([
    paxHeader([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.realsize', '100']], 'x'),
    header({ name: Buffer.from('GNUSparseFile.0/f'), mode: 0o644, uid: 0, gid: 0, size: 514, mtime: 0, typeflag: '0', magic: 'ustar' }),
    pad512(Buffer.concat([pad512(Buffer.from('1\n50\n2\n')), Buffer.from('zz')])),
    Buffer.alloc(1024),
  ]),
  oldSparse: Buffer.concat([oldGnuSparse(), Buffer.alloc(1024)]),
  v7: tarEntries([{ path: 'v7dir/', type: '\0' }, { path: 'f', content: 'x' }], { format: 'v7' }),
};

/** Parses, returning a summary, or undefined for a typed failure; anything else fails the test. */
function parseOrTypedError(tar: Buffer, chunk: number): unknown {
  try {
    return fingerprint(collect(tar, chunk));
  } catch (e) {
    if (isRootforgeError(e)) return undefined;
    throw e;
  }
}

test('every seed parses cleanly as built', () => {
  for (const [name, tar] of Object.entries(SEEDS)) assert.notEqual(parseOrTypedError(tar, tar.length), undefined, name);
});

test('random byte damage: a result or a typed error, the same in any chunking', () => {
  const seeds = Object.values(SEEDS);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: seeds.length - 1 }),
      fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
      fc.boolean(),
      fc.integer({ min: 1, max: 700 }),
      (which, edits, fixChecksums, chunk) => {
        const tar = Buffer.from(seeds[which]!);
        for (const { at, value } of edits) tar[at % tar.length] = value;
        // Also damage *inside* valid headers (past the checksum), to reach the decoders.
        if (fixChecksums) for (let off = 0; off + 512 <= tar.length; off += 512) if (tar[off + 257] === 0x75) setChecksum(tar, off);
        const whole = parseOrTypedError(tar, tar.length);
        assert.deepEqual(parseOrTypedError(tar, chunk), whole);
      },
    ),
    { numRuns: 3000, seed: 20261122 },
  );
});

test('random truncation: a result (maybe with warnings) or a typed error', () => {
  for (const tar of Object.values(SEEDS)) {
    for (let cut = 0; cut < tar.length; cut += 37) parseOrTypedError(tar.subarray(0, cut), 100);
  }
});

test('absurd numbers in extension headers are refused, not allocated', () => {
  for (const flag of ['x', 'g', 'L', 'K', 'A']) {
    const h = header({ name: Buffer.from('e'), mode: 0, uid: 0, gid: 0, size: 0, mtime: 0, typeflag: flag, magic: 'gnu' });
    base256Field(2 ** 52, 12).copy(h, 124);
    setChecksum(h);
    assert.equal(parseOrTypedError(Buffer.concat([h, Buffer.alloc(8192, 0x31)]), 4096), undefined, flag);
  }
});
