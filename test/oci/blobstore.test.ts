/**
 * The blob store on its own: verified fetches, resuming a partial, a source that ignores the
 * offset, digest and size mismatches (nothing unverified is ever stored), retries, locks held by
 * live and dead processes, put/list/remove. Cross-process fetches are in registry-faults.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobStore, type BlobOpener } from '../../src/oci/blobstore.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { isRootforgeError, RootforgeError } from '../../src/errors.js';

const work = mkdtempSync(join(tmpdir(), 'rf-blobstore-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;
const newStore = (options = {}) => new BlobStore(join(work, `store${n++}`), options);

const data = randomBytes(300_000);
const digest = sha256Digest(data);
const hex = digest.slice(7);

/** A source serving `bytes` from the asked offset in chunks, recording the offsets asked for. */
function source(bytes: Buffer, opts: { chunk?: number; failAfter?: number; ignoreOffset?: boolean } = {}): BlobOpener & { offsets: number[] } {
  const offsets: number[] = [];
  const open = async (offset: number) => {
    offsets.push(offset);
    const start = opts.ignoreOffset ? 0 : offset;
    async function* body(): AsyncGenerator<Buffer> {
      const chunk = opts.chunk ?? 65536;
      for (let i = start, sent = 0; i < bytes.length; i += chunk) {
        if (opts.failAfter !== undefined && sent >= opts.failAfter) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        const c = bytes.subarray(i, i + chunk);
        sent += c.length;
        yield c;
      }
    }
    return { body: body(), offset: start };
  };
  return Object.assign(open, { offsets });
}

function files(store: BlobStore): string[] {
  const dir = join(store.root, 'sha256');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

test('fetch stores a verified blob under sha256/<hex>; a second fetch does not download', async () => {
  const store = newStore();
  const src = source(data);
  const seen: number[] = [];
  const r = await store.fetch(digest, data.length, src, { onProgress: (b) => seen.push(b) });
  assert.deepEqual(r, { path: join(store.root, 'sha256', hex), fetched: true });
  assert.ok(readFileSync(r.path).equals(data));
  assert.equal(seen.at(-1), data.length);
  assert.deepEqual(files(store), [hex]);
  assert.equal(await store.has(digest), true);
  const again = await store.fetch(digest, data.length, src);
  assert.equal(again.fetched, false);
  assert.deepEqual(src.offsets, [0]);
});

test('an existing partial is resumed from its length and the whole content verified', async () => {
  const store = newStore();
  mkdirSync(join(store.root, 'sha256'), { recursive: true });
  writeFileSync(join(store.root, 'sha256', `${hex}.partial`), data.subarray(0, 123_457));
  const src = source(data);
  await store.fetch(digest, data.length, src);
  assert.deepEqual(src.offsets, [123_457]);
  assert.ok(readFileSync(store.path(digest)).equals(data));
  assert.deepEqual(files(store), [hex]);
});

test('a poisoned resumed prefix is discarded and the download restarts from byte 0 once, in the same run', async () => {
  const store = newStore();
  mkdirSync(join(store.root, 'sha256'), { recursive: true });
  const bad = Buffer.from(data.subarray(0, 1000));
  bad[10] ^= 1;
  writeFileSync(join(store.root, 'sha256', `${hex}.partial`), bad);
  const src = source(data);
  const progress: number[] = [];
  const r = await store.fetch(digest, data.length, src, { onProgress: (b) => progress.push(b) });
  assert.equal(r.fetched, true);
  assert.deepEqual(src.offsets, [1000, 0], 'resumed at 1000, then started over from 0');
  assert.ok(progress.includes(0) && progress.at(-1) === data.length);
  assert.ok(readFileSync(r.path).equals(data));
  assert.deepEqual(files(store), [hex]);
});

test('a source that keeps sending wrong bytes: the restart happens once, then OCI_DIGEST_MISMATCH and nothing behind', async () => {
  const store = newStore();
  mkdirSync(join(store.root, 'sha256'), { recursive: true });
  const wrong = Buffer.from(data);
  wrong[200_000] ^= 1;
  writeFileSync(join(store.root, 'sha256', `${hex}.partial`), wrong.subarray(0, 1000));
  const src = source(wrong);
  await assert.rejects(store.fetch(digest, data.length, src), (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH'));
  assert.deepEqual(src.offsets, [1000, 0]);
  assert.deepEqual(files(store), []);
});

test('a source that ignores the offset (HTTP 200 to a Range) restarts the partial from 0', async () => {
  const store = newStore();
  mkdirSync(join(store.root, 'sha256'), { recursive: true });
  writeFileSync(join(store.root, 'sha256', `${hex}.partial`), data.subarray(0, 5000));
  const src = source(data, { ignoreOffset: true });
  const r = await store.fetch(digest, data.length, src);
  assert.equal(r.fetched, true);
  assert.deepEqual(src.offsets, [5000]);
  assert.ok(readFileSync(r.path).equals(data));
});

test('a bare iterable is taken to start at the offset asked for', async () => {
  const store = newStore();
  mkdirSync(join(store.root, 'sha256'), { recursive: true });
  writeFileSync(join(store.root, 'sha256', `${hex}.partial`), data.subarray(0, 7));
  await store.fetch(digest, data.length, async (offset) => (async function* () {
    yield data.subarray(offset);
  })());
  assert.ok(readFileSync(store.path(digest)).equals(data));
});

test('wrong content, too many bytes, or a partial longer than the blob: OCI_DIGEST_MISMATCH, nothing stored', async () => {
  const store = newStore();
  const other = Buffer.from(data);
  other[200_000] ^= 0xff;
  await assert.rejects(store.fetch(digest, data.length, source(other)), (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH') && /content hashes to sha256:/.test(e.message));
  assert.deepEqual(files(store), []);
  await assert.rejects(store.fetch(digest, data.length, source(Buffer.concat([data, Buffer.from('x')]))), (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH') && /more bytes/.test(e.message));
  assert.deepEqual(files(store), []);
  // A partial longer than the blob cannot be a prefix of it: start over.
  writeFileSync(join(store.root, 'sha256', `${hex}.partial`), Buffer.alloc(data.length + 10));
  assert.equal((await store.fetch(digest, data.length, source(data))).fetched, true);
  assert.deepEqual(files(store), [hex]);
});

test('a body that breaks off is resumed from the partial; one that keeps failing leaves it', async () => {
  const store = newStore();
  // Each attempt delivers 64 KiB more then fails: progress each time, so it keeps going.
  const src = source(data, { failAfter: 65536 });
  const r = await store.fetch(digest, data.length, src, { backoffMs: 1 });
  assert.equal(r.fetched, true);
  assert.deepEqual(src.offsets, [0, 65536, 131072, 196608, 262144]);
  assert.ok(readFileSync(r.path).equals(data));

  const store2 = newStore();
  let calls = 0;
  const stuck: BlobOpener = async (offset) => {
    calls++;
    return source(data, { failAfter: offset === 0 ? 65536 : 0 })(offset);
  };
  await assert.rejects(store2.fetch(digest, data.length, stuck, { backoffMs: 1, attempts: 3 }), (e) => isRootforgeError(e, 'OCI_NETWORK') && /65536 of 300000 bytes kept/.test(e.message));
  assert.equal(calls, 4); // one with progress, then three in a row without
  assert.deepEqual(files(store2), [`${hex}.partial`]);
  assert.equal(statSync(join(store2.root, 'sha256', `${hex}.partial`)).size, 65536);
  // The next run resumes it.
  const src3 = source(data);
  await store2.fetch(digest, data.length, src3);
  assert.deepEqual(src3.offsets, [65536]);
});

test('a body that ends short without an error counts as a network failure, not a mismatch', async () => {
  const store = newStore();
  let first = true;
  const open: BlobOpener = async (offset) => {
    const end = first ? 1000 : data.length;
    first = false;
    return { body: (async function* () { yield data.subarray(offset, end); })(), offset };
  };
  assert.equal((await store.fetch(digest, data.length, open, { backoffMs: 1 })).fetched, true);
});

test('errors that are not transfer failures are not retried', async () => {
  const store = newStore();
  let calls = 0;
  const open: BlobOpener = async () => {
    calls++;
    throw new RootforgeError('OCI_NOT_FOUND', 'Cannot get blob: not found');
  };
  await assert.rejects(store.fetch(digest, data.length, open), (e) => isRootforgeError(e, 'OCI_NOT_FOUND'));
  assert.equal(calls, 1);
});

test('put stores small verified blobs; list shows complete blobs only; remove deletes', async () => {
  const store = newStore();
  assert.deepEqual(await store.list(), []);
  const a = Buffer.from('{"schemaVersion":2}');
  const da = sha256Digest(a);
  await store.put(da, a);
  await store.put(da, a); // idempotent
  await assert.rejects(store.put(digest, a), (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH'));
  writeFileSync(join(store.root, 'sha256', `${hex}.partial`), 'x');
  writeFileSync(join(store.root, 'sha256', `${hex}.lock`), `999999999 ${hostname()}\n`);
  const list = await store.list();
  assert.deepEqual(list.map((b) => [b.digest, b.size]), [[da, a.length]]);
  assert.ok(list[0]!.mtime instanceof Date);
  await store.remove(da);
  assert.equal(await store.has(da), false);
  await store.remove(da); // absent: fine
  // A stale lock does not stop remove; the partial goes too.
  await store.remove(digest);
  assert.deepEqual(files(store), [`${hex}.lock`]);
});

test('remove refuses while a live process holds the lock', async () => {
  const store = newStore();
  mkdirSync(join(store.root, 'sha256'), { recursive: true });
  writeFileSync(join(store.root, 'sha256', `${hex}.lock`), `${process.pid} ${hostname()}\n`);
  await assert.rejects(store.remove(digest), (e) => isRootforgeError(e, 'CACHE_LOCKED'));
});

test('a stale lock (dead pid, or not touched for too long) is taken over', async () => {
  const store = newStore();
  mkdirSync(join(store.root, 'sha256'), { recursive: true });
  const lock = join(store.root, 'sha256', `${hex}.lock`);
  const dead = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => dead.once('exit', resolve));
  writeFileSync(lock, `${dead.pid} ${hostname()}\n`);
  assert.equal((await store.fetch(digest, data.length, source(data))).fetched, true);
  assert.deepEqual(files(store), [hex]);

  const store2 = newStore({ lockStaleMs: 60_000 });
  mkdirSync(join(store2.root, 'sha256'), { recursive: true });
  const lock2 = join(store2.root, 'sha256', `${hex}.lock`);
  // A live pid on another host: only its age can tell. Two minutes old is stale.
  writeFileSync(lock2, `1 some-other-host\n`);
  const old = new Date(Date.now() - 120_000);
  utimesSync(lock2, old, old);
  assert.equal((await store2.fetch(digest, data.length, source(data))).fetched, true);
  assert.deepEqual(files(store2), [hex]);
});

test('a waiter returns when the lock holder finishes, and gives up with CACHE_LOCKED', async () => {
  const store = newStore();
  mkdirSync(join(store.root, 'sha256'), { recursive: true });
  const lock = join(store.root, 'sha256', `${hex}.lock`);
  // Our own pid: alive, so the lock is respected.
  writeFileSync(lock, `${process.pid} ${hostname()}\n`);
  const src = source(data);
  const waiting = store.fetch(digest, data.length, src);
  await sleep(200);
  // The "holder" completes: blob appears, lock goes.
  writeFileSync(store.path(digest), data);
  rmSync(lock);
  assert.deepEqual(await waiting, { path: store.path(digest), fetched: false });
  assert.deepEqual(src.offsets, []);

  // The holder went away without the blob: the waiter fetches it itself.
  const store2 = newStore();
  mkdirSync(join(store2.root, 'sha256'), { recursive: true });
  const lock2 = join(store2.root, 'sha256', `${hex}.lock`);
  writeFileSync(lock2, `${process.pid} ${hostname()}\n`);
  const waiting2 = store2.fetch(digest, data.length, source(data));
  await sleep(100);
  rmSync(lock2);
  assert.equal((await waiting2).fetched, true);

  const store3 = newStore({ lockWaitMs: 300 });
  mkdirSync(join(store3.root, 'sha256'), { recursive: true });
  writeFileSync(join(store3.root, 'sha256', `${hex}.lock`), `${process.pid} ${hostname()}\n`);
  const t0 = Date.now();
  await assert.rejects(store3.fetch(digest, data.length, source(data)), (e) => isRootforgeError(e, 'CACHE_LOCKED') && e.message.includes(String(process.pid)));
  assert.ok(Date.now() - t0 < 3000);
});

test('the lock holder touches its lock so waiters do not judge it stale', async () => {
  const store = newStore({ lockHeartbeatMs: 20 });
  const lock = join(store.root, 'sha256', `${hex}.lock`);
  const mtimes = new Set<number>();
  const slow: BlobOpener = async (offset) => ({
    offset,
    body: (async function* () {
      for (let i = offset; i < data.length; i += 50_000) {
        await sleep(30);
        mtimes.add(statSync(lock).mtimeMs);
        yield data.subarray(i, i + 50_000);
      }
    })(),
  });
  await store.fetch(digest, data.length, slow);
  assert.ok(mtimes.size >= 2, `lock mtime changed ${mtimes.size} times`);
  assert.equal(existsSync(lock), false);
});

test('a bad digest or size is refused before anything is written', async () => {
  const store = newStore();
  await assert.rejects(store.fetch('sha256:abc', 1, source(data)), (e) => isRootforgeError(e, 'OCI_BAD_MANIFEST'));
  await assert.rejects(store.fetch(digest, -1, source(data)), (e) => isRootforgeError(e, 'OCI_BAD_MANIFEST'));
  assert.deepEqual(files(store), []);
});
