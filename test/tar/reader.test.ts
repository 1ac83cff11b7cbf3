import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRootforgeError } from '../../src/errors.js';
import { readTar } from '../../src/tar/reader.js';
import { tarEntries } from '../helpers/tar-writer.js';

const FILES = Array.from({ length: 8 }, (_, i) => ({ path: `f${i}`, content: Buffer.alloc(1000 * i + 1, 0x41 + i) }));
const TAR = tarEntries(FILES);

/** A source that records how it was used. */
function source(chunks: Uint8Array[], tail?: () => Uint8Array): AsyncIterable<Uint8Array> & { pulled: number; returned: boolean } {
  const s = {
    pulled: 0,
    returned: false,
    [Symbol.asyncIterator]() {
      let i = 0;
      return {
        next: async (): Promise<IteratorResult<Uint8Array>> => {
          s.pulled++;
          if (i < chunks.length) return { done: false, value: chunks[i++]! };
          if (tail !== undefined) return { done: false, value: tail() };
          return { done: true, value: undefined };
        },
        return: async (): Promise<IteratorResult<Uint8Array>> => {
          s.returned = true;
          return { done: true, value: undefined };
        },
      };
    },
  };
  return s;
}

const pieces = (b: Buffer, n: number): Buffer[] => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));

test('entries and bodies, in any chunking; bodies not read are skipped', async () => {
  for (const n of [1, 100, 512, 3000, TAR.length]) {
    const got: Array<[string, string | undefined]> = [];
    let i = 0;
    for await (const e of readTar(source(pieces(TAR, n)))) {
      if (i++ % 2 === 0) {
        const parts: Buffer[] = [];
        for await (const c of e.body) parts.push(Buffer.from(c));
        got.push([e.path, Buffer.concat(parts).toString('latin1')]);
      } else {
        got.push([e.path, undefined]);
      }
    }
    assert.deepEqual(
      got,
      FILES.map((f, j) => [f.path, j % 2 === 0 ? f.content.toString('latin1') : undefined]),
      `chunk ${n}`,
    );
  }
});

test('a body read halfway is skipped; a stale body iterator yields nothing', async () => {
  const bodies: Array<AsyncIterable<Buffer>> = [];
  const firstChunks: number[] = [];
  for await (const e of readTar(source(pieces(TAR, 700)))) {
    bodies.push(e.body);
    for await (const c of e.body) {
      firstChunks.push(c[0]!);
      break;
    }
  }
  assert.deepEqual(
    firstChunks,
    FILES.map((f) => f.content[0]),
  );
  for await (const _ of bodies[2]!) assert.fail('stale body yielded data');
});

test('breaking out early closes the source', async () => {
  const src = source(pieces(TAR, 1000));
  for await (const e of readTar(src)) {
    if (e.path === 'f1') break;
  }
  assert.ok(src.returned);
});

test('data after the end-of-archive marker is read (for trailing checksums) but ignored', async () => {
  const garbage = Array.from({ length: 5 }, () => Buffer.alloc(1 << 16, 0x5a));
  const src = source([TAR, ...garbage]);
  let n = 0;
  for await (const _ of readTar(src)) n++;
  assert.equal(n, FILES.length);
  assert.equal(src.pulled, 1 + garbage.length + 1, 'every chunk, then the end');
});

test('errors reach the consumer, inside a body or between entries', async () => {
  const cut = TAR.subarray(0, 512 * 6 + 100); // inside f2's body... or a later header
  await assert.rejects(
    (async () => {
      for await (const e of readTar(source(pieces(cut, 333)))) for await (const _ of e.body);
    })(),
    (e) => isRootforgeError(e, 'TAR_TRUNCATED'),
  );
  const bad = Buffer.from(TAR);
  bad[512 * 5 + 5] ^= 1; // f2's header: after f0 (header + 1 body block) and f1 (header + 2)
  await assert.rejects(
    (async () => {
      for await (const _ of readTar(source([bad])));
    })(),
    (e) => isRootforgeError(e, 'TAR_BAD_CHECKSUM'),
  );
});

test('warnings go to onWarning', async () => {
  const codes: string[] = [];
  for await (const _ of readTar(source([tarEntries([{ path: 'x' }], { end: false })]), { onWarning: (w) => codes.push(w.code) }));
  assert.deepEqual(codes, ['TAR_NO_END_MARKER']);
});
