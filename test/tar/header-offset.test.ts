/** headerOffset: an entry's raw bytes (extension headers included) can be cut out and re-read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TarParser } from '../../src/tar/parser.js';
import type { TarHeader } from '../../src/tar/types.js';
import { tarEntries } from '../helpers/tar-writer.js';

function parse(buf: Buffer): TarHeader[] {
  const out: TarHeader[] = [];
  const p = new TarParser({ entry: (h) => out.push(h), data: () => {}, entryEnd: () => {} });
  p.write(buf);
  p.end();
  return out;
}

test('each entry sliced at [headerOffset, body end) parses alone to the same entry', () => {
  const tar = tarEntries([
    { path: 'plain', content: 'x'.repeat(700), format: 'ustar' },
    { path: 'p/' + 'long'.repeat(40), content: 'pax named', xattrs: { 'user.a': 'b' } },
    { path: 'g/' + 'gnu'.repeat(50), content: 'gnu long name', format: 'gnu' },
    { path: 'dir/', type: 'dir' },
  ]);
  const entries = parse(tar);
  assert.equal(entries[0]!.headerOffset, 0);
  for (const e of entries) {
    const end = e.offset + Math.ceil(e.bodySize / 512) * 512;
    const alone = parse(Buffer.concat([tar.subarray(e.headerOffset, end), Buffer.alloc(1024)]));
    assert.equal(alone.length, 1);
    assert.equal(alone[0]!.path, e.path);
    assert.equal(alone[0]!.size, e.size);
    assert.deepEqual([...alone[0]!.xattrs], [...e.xattrs]);
    assert.ok(e.headerOffset < e.offset);
  }
});
