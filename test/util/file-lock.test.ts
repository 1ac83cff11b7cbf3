/**
 * The cross-process file lock (src/util/file-lock.ts) shared by the blob store and kernel
 * downloads: a second real process waits for the holder, a dead holder's lock is taken over, and
 * two concurrent kernel downloads of one file fetch it once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLock, HOST } from '../../src/util/file-lock.js';
import { downloadVerified } from '../../src/kernel/download.js';
import { isRootforgeError } from '../../src/errors.js';

function workdir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rf-lock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a lock held by another live process makes acquire wait, then CACHE_LOCKED naming the holder', async (t) => {
  const dir = workdir(t);
  const target = join(dir, 'thing');
  // a real other process holds it: its pid is alive, the host is ours
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  writeFileSync(`${target}.lock`, `${holder.pid} ${HOST}\n`);
  const lock = new FileLock(target, 'thing', { waitMs: 300, noun: 'file' });
  assert.equal(await lock.liveHolder(), `${holder.pid} ${HOST}`);
  await assert.rejects(lock.acquire(async () => false), (e: unknown) => isRootforgeError(e, 'CACHE_LOCKED') && (e as Error).message.includes(String(holder.pid)));
  // done() wins over waiting
  assert.equal(await lock.acquire(async () => true), 'done');
  assert.deepEqual(readdirSync(dir).sort(), ['thing.lock'], 'no private lock files left behind');
});

test("a dead process's lock is taken over; release removes it", async (t) => {
  const dir = workdir(t);
  const target = join(dir, 'thing');
  const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((resolve) => dead.on('exit', resolve));
  writeFileSync(`${target}.lock`, `${dead.pid} ${HOST}\n`);
  const lock = new FileLock(target, 'thing');
  assert.equal((await lock.state()).kind, 'stale');
  assert.equal(await lock.acquire(async () => false), 'locked');
  assert.equal(readFileSync(`${target}.lock`, 'utf8'), `${process.pid} ${HOST}\n`);
  const stop = lock.heartbeat();
  stop();
  await lock.release();
  assert.equal(existsSync(`${target}.lock`), false);
  assert.equal((await lock.state()).kind, 'gone');
});

test('two concurrent kernel downloads of one file: one transfer, both get the verified file', async (t) => {
  const body = Buffer.alloc(3 << 20, 7);
  const sha256 = createHash('sha256').update(body).digest('hex');
  let requests = 0;
  const server = createServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'content-length': String(body.length) });
    // slow enough that the second caller finds the lock taken
    setTimeout(() => res.end(body), 200);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}/vmlinux`);
  const dir = workdir(t);
  const dest = join(dir, 'vmlinux');
  const [a, b] = await Promise.all([downloadVerified({ url, dest, sha256 }), downloadVerified({ url, dest, sha256 })]);
  assert.equal(requests, 1);
  assert.deepEqual([a.fetched, b.fetched].sort(), [false, true]);
  assert.ok(readFileSync(dest).equals(body));
  assert.deepEqual(readdirSync(dir), ['vmlinux'], 'no .partial or .lock left');
});
