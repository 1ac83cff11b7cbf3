/**
 * The shared resumable, verified download engine (src/util/download.ts), driven by in-memory
 * sources so every branch is reached on purpose: resume from a partial, a source that starts
 * over, a poisoned partial started over once, too many bytes, an offset nobody asked for, and a
 * source that keeps breaking off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadWithRetries, type RemoteBody, type ResumeOptions, type RetryOptions } from '../../src/util/download.js';
import { isRootforgeError, RootforgeError } from '../../src/errors.js';

const DATA = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 13) & 0xff));
const SHA = createHash('sha256').update(DATA).digest('hex');

async function* chunks(b: Buffer, size = 16384, breakAfter = Infinity): AsyncGenerator<Buffer> {
  let sent = 0;
  for (let off = 0; off < b.length; off += size) {
    if (sent >= breakAfter) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const c = b.subarray(off, off + size);
    sent += c.length;
    yield c;
  }
}

function setup(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'rf-dl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'file');
}

function opts(dest: string, open: (offset: number) => Promise<RemoteBody | 'complete'>, size: number | undefined = DATA.length): ResumeOptions {
  return {
    dest,
    sha256: SHA,
    size,
    open,
    codes: { io: 'CACHE_IO', mismatch: 'OCI_DIGEST_MISMATCH', transfer: 'OCI_NETWORK', protocol: 'OCI_REGISTRY_ERROR' },
    what: 'fetch test file',
    subject: 'file',
  };
}

const retry: RetryOptions = {
  backoffMs: 1,
  isTransfer: (e): e is RootforgeError => isRootforgeError(e, 'OCI_NETWORK'),
  giveUp: (e, attempt, kept) => new RootforgeError('OCI_NETWORK', `${e.message}; gave up after ${attempt} attempts, ${kept} kept`),
};

test('resumes from the partial: only the missing bytes are asked for and transferred', async (t) => {
  const dest = setup(t);
  writeFileSync(`${dest}.partial`, DATA.subarray(0, 70_000));
  const asked: number[] = [];
  const n = await downloadWithRetries(opts(dest, async (offset) => (asked.push(offset), { body: chunks(DATA.subarray(offset)), offset })), retry);
  assert.deepEqual(asked, [70_000]);
  assert.equal(n, DATA.length - 70_000);
  assert.ok(readFileSync(dest).equals(DATA));
  assert.equal(existsSync(`${dest}.partial`), false);
});

test('a source that ignores the offset starts the partial over; size unknown uses the total it gives', async (t) => {
  const dest = setup(t);
  writeFileSync(`${dest}.partial`, Buffer.alloc(5000, 0xee)); // garbage that would poison a resume
  await downloadWithRetries(opts(dest, async () => ({ body: chunks(DATA), offset: 0, total: DATA.length }), undefined), retry);
  assert.ok(readFileSync(dest).equals(DATA));
});

test('a poisoned partial is started over once with restartOnMismatch, and is a mismatch without', async (t) => {
  const dest = setup(t);
  const poisoned = Buffer.from(DATA.subarray(0, 50_000));
  poisoned[10] ^= 0xff;
  writeFileSync(`${dest}.partial`, poisoned);
  const source = async (offset: number) => ({ body: chunks(DATA.subarray(offset)), offset });
  await assert.rejects(downloadWithRetries(opts(dest, source), retry), (e: unknown) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH'));
  assert.equal(existsSync(`${dest}.partial`), false, 'the wrong bytes are not kept');
  writeFileSync(`${dest}.partial`, poisoned);
  await downloadWithRetries(opts(dest, source), { ...retry, restartOnMismatch: true });
  assert.ok(readFileSync(dest).equals(DATA));
});

test('more bytes than expected, or an offset not asked for, are typed errors with nothing at dest', async (t) => {
  const dest = setup(t);
  await assert.rejects(
    downloadWithRetries(opts(dest, async () => ({ body: chunks(Buffer.concat([DATA, Buffer.from('extra')])), offset: 0 })), retry),
    (e: unknown) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH') && /more bytes than/.test((e as Error).message),
  );
  writeFileSync(`${dest}.partial`, DATA.subarray(0, 1000));
  await assert.rejects(
    downloadWithRetries(opts(dest, async () => ({ body: chunks(DATA.subarray(500)), offset: 500 })), retry),
    (e: unknown) => isRootforgeError(e, 'OCI_REGISTRY_ERROR') && /asked for bytes from 1000, got bytes from 500/.test((e as Error).message),
  );
  assert.equal(existsSync(dest), false);
});

test('a source that breaks off is resumed piece by piece; one that never progresses gives up with the partial kept', async (t) => {
  const dest = setup(t);
  let calls = 0;
  await downloadWithRetries(opts(dest, async (offset) => (calls++, { body: chunks(DATA.subarray(offset), 16384, 40_000), offset })), { ...retry, maxAttempts: 20 });
  assert.ok(calls >= 4);
  assert.ok(readFileSync(dest).equals(DATA));

  const dest2 = `${dest}-2`;
  writeFileSync(`${dest2}.partial`, DATA.subarray(0, 1234));
  await assert.rejects(
    downloadWithRetries(opts(dest2, async (offset) => ({ body: chunks(DATA.subarray(offset), 16384, 0), offset })), { ...retry, attempts: 3 }),
    (e: unknown) => isRootforgeError(e, 'OCI_NETWORK') && /gave up after 3 attempts, 1234 kept/.test((e as Error).message),
  );
  assert.equal(readFileSync(`${dest2}.partial`).length, 1234);
});
