/**
 * Pulling when things go wrong, against a real registry: a blob tampered with in the registry's
 * storage, connections cut mid-blob by a proxy (resumed with Range, or given up with a partial
 * kept for next time), a Range the server ignores, and two processes pulling the same image
 * into one cache at once.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openRegistryImage, parseDockerReference, pullImage, type PullOptions, type PullResult } from '../../src/oci/registry.js';
import { convert } from '../../src/convert.js';
import { BlobStore } from '../../src/oci/blobstore.js';
import { isRootforgeError } from '../../src/errors.js';
import { cleanups, layoutManifest, makeImage, pushImage, registryToolsMissing, startRegistry, type RegistryServer } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/registry-proxy.js';

const skip = registryToolsMissing();
const work = mkdtempSync(join(tmpdir(), 'rf-faults-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const layout = join(work, 'layout');
const servers = cleanups();
after(() => servers.run());
let registry: RegistryServer;
let proxy: FaultProxy;
/** The digest of the biggest layer (≈1 MiB compressed), the one faults are put on. */
let bigLayer: { digest: string; size: number };
let cacheN = 0;
const newCache = () => join(work, `cache${cacheN++}`);
const CHILD = new URL('../helpers/registry-pull-child.js', import.meta.url).pathname;

before(async () => {
  if (skip) return;
  // The middle layer: 2 MiB of zeros first (a few KiB compressed: the first MiB of tar comes out
  // of the decompressor as soon as the download starts), then 1 MiB that does not compress (the
  // slow part of the download). So "read while it downloads" does not depend on timing.
  makeImage(layout, 'v1', [{ 'etc/hello': 'hello\n' }, { 'usr/lib/a-zeros': Buffer.alloc(2 << 20), 'usr/lib/big': randomBytes(1 << 20) }, { 'etc/top': 'top\n' }]);
  // A separate image for tampering: blobs are shared across repositories in registry storage.
  makeImage(layout, 'victim', [{ 'etc/victim': randomBytes(4096) }]);
  registry = await startRegistry(servers);
  proxy = await startFaultProxy(servers, registry.port);
  pushImage(layout, 'v1', `${registry.host}/faults/app:v1`);
  pushImage(layout, 'victim', `${registry.host}/faults/victim:v1`);
  bigLayer = layoutManifest(layout, 'v1').layers.reduce((a, b) => (b.size > a.size ? b : a));
});

function pull(ref: string, options: Partial<PullOptions> = {}): Promise<PullResult> {
  return pullImage(parseDockerReference(ref), { cacheDir: newCache(), dockerConfigDir: join(work, 'no-config'), backoffMs: 10, ...options });
}

const blobPath = (digest: string) => `/v2/faults/app/blobs/${digest}`;
const storeFiles = (cacheDir: string) => (existsSync(join(cacheDir, 'blobs', 'sha256')) ? readdirSync(join(cacheDir, 'blobs', 'sha256')).sort() : []);

test('a blob tampered with in the registry: OCI_DIGEST_MISMATCH, no blob and no partial kept', { skip }, async () => {
  const layer = layoutManifest(layout, 'victim').layers[0]!;
  const data = registry.blobData(layer.digest);
  const original = readFileSync(data);
  writeFileSync(data, randomBytes(original.length)); // same size: only the hash can tell
  try {
    const cacheDir = newCache();
    await assert.rejects(pull(`${registry.host}/faults/victim:v1`, { cacheDir }), (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH') && e.message.includes(layer.digest));
    const left = storeFiles(cacheDir);
    assert.ok(!left.some((f) => f.startsWith(layer.digest.slice(7))), left.join(' '));
    assert.equal(await new BlobStore(join(cacheDir, 'blobs')).has(layer.digest), false);
  } finally {
    writeFileSync(data, original);
  }
});

test('convert from a registry whose layer was tampered with: OCI_DIGEST_MISMATCH, no image, no blob', { skip }, async () => {
  const layer = layoutManifest(layout, 'victim').layers[0]!;
  const data = registry.blobData(layer.digest);
  const original = readFileSync(data);
  writeFileSync(data, randomBytes(original.length));
  try {
    const cacheDir = newCache();
    const out = join(work, 'tampered.img');
    await assert.rejects(
      convert(`docker://${registry.host}/faults/victim:v1`, out, { cacheDir, dockerConfigDir: join(work, 'no-config') }),
      (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH') && e.message.includes(layer.digest),
    );
    assert.equal(existsSync(out), false, 'no output');
    assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('tampered')), [], 'no temp file left');
    assert.equal(await new BlobStore(join(cacheDir, 'blobs')).has(layer.digest), false);
  } finally {
    writeFileSync(data, original);
  }
});

test('layers download in the background, top first: the top layer is read while a lower one is still arriving', { skip }, async () => {
  // The 1 MiB middle layer is slowed down; one download at a time, so the order is visible.
  proxy.inject((path) => (path === blobPath(bigLayer.digest) ? { delayMs: 40 } : undefined));
  const open = (cacheDir: string) =>
    openRegistryImage(parseDockerReference(`${proxy.host}/faults/app:v1`), { cacheDir, dockerConfigDir: join(work, 'no-config'), backoffMs: 10, concurrency: 1 });
  try {
    const cacheDir = newCache();
    const store = new BlobStore(join(cacheDir, 'blobs'));
    const img = await open(cacheDir);
    const [bottom, middle, top] = img.layers;
    assert.equal(middle!.descriptor.digest, bigLayer.digest);
    let bytes = 0;
    for await (const chunk of await top!.open()) bytes += chunk.length;
    assert.ok(bytes > 0);
    assert.equal(await store.has(bigLayer.digest), false, 'the top layer was read before the middle one arrived');
    // The middle layer is read from its .partial while it downloads.
    const it = (await middle!.open())[Symbol.asyncIterator]();
    try {
      const first = await it.next();
      assert.ok(!first.done && first.value.length > 0);
      assert.equal(await store.has(bigLayer.digest), false, 'the middle layer is read while it downloads');
      for (let r = await it.next(); !r.done; r = await it.next()) bytes += r.value.length;
    } finally {
      await it.return?.(); // a failed assertion must not leave the stream (and its worker) open
    }
    assert.ok(img.waitedMs > 0, 'reading the middle layer waited for its bytes');
    for await (const chunk of await bottom!.open()) bytes += chunk.length;
    assert.deepEqual(await img.download(), { blobsFetched: 4, blobsCached: 0 });
    assert.equal(await store.has(bigLayer.digest), true);
    await img.close();

    // close() while the middle layer is in flight: it finishes, the bottom one never starts.
    const cache2 = newCache();
    const img2 = await open(cache2);
    for await (const chunk of await img2.layers[2]!.open()) bytes += chunk.length;
    const middlePartial = new BlobStore(join(cache2, 'blobs')).partialPath(bigLayer.digest);
    for (let i = 0; i < 500 && !existsSync(middlePartial); i++) await sleep(10); // the middle one has started
    await img2.close();
    const store2 = new BlobStore(join(cache2, 'blobs'));
    assert.equal(await store2.has(bigLayer.digest), true, 'the download in flight was finished');
    assert.equal(await store2.has(img2.layers[0]!.descriptor.digest), false, 'no download started after close()');
    await assert.rejects(img2.layers[0]!.open(), /closed/);
  } finally {
    proxy.inject();
  }
});

test('convert while a layer download is cut, then restarted by a server ignoring Range: the same image bytes', { skip }, async () => {
  const path = blobPath(bigLayer.digest);
  const ref = `docker://${proxy.host}/faults/app:v1`;
  const opts = (cacheDir: string) => ({ cacheDir, cache: false as const, dockerConfigDir: join(work, 'no-config') });
  const clean = join(work, 'clean.img');
  await convert(ref, clean, opts(newCache()));
  const faulty = join(work, 'restarted.img');
  proxy.inject((p, n) => (p === path ? (n === 0 ? { cutAfter: 300_000, delayMs: 5 } : { ignoreRange: true, delayMs: 5 }) : undefined));
  try {
    await convert(ref, faulty, opts(newCache()));
  } finally {
    proxy.inject();
  }
  assert.ok(readFileSync(faulty).equals(readFileSync(clean)), 'byte-identical to the image converted without faults');

  // A connection that keeps breaking: OCI_NETWORK from convert, and no image.
  proxy.inject((p) => (p === path ? { cutAfter: 100_000 } : undefined));
  const broken = join(work, 'broken.img');
  try {
    await assert.rejects(convert(ref, broken, opts(newCache())), (e) => isRootforgeError(e, 'OCI_NETWORK'));
  } finally {
    proxy.inject();
  }
  assert.equal(existsSync(broken), false);
});

test('a connection cut mid-blob once: the retry asks for the rest with Range and the pull succeeds', { skip }, async () => {
  const path = blobPath(bigLayer.digest);
  proxy.inject((p, n) => (p === path && n === 0 ? { cutAfter: 300_000 } : undefined));
  const start = proxy.requests.length;
  try {
    const img = await pull(`${proxy.host}/faults/app:v1`);
    for (const layer of img.layers) for await (const _ of await layer.open()); // drain: digest-checked
  } finally {
    proxy.inject();
  }
  const gets = proxy.requests.slice(start).filter((r) => r.path === path);
  assert.equal(gets.length, 2);
  assert.equal(gets[0]!.cut, true);
  const m = /^bytes=(\d+)-$/.exec(gets[1]!.range ?? '');
  assert.ok(m && Number(m[1]) > 0 && Number(m[1]) <= 300_000, `second GET range ${gets[1]!.range}`);
  assert.equal(gets[1]!.status, 206);
  assert.equal(gets[1]!.sent, bigLayer.size - Number(m[1]));
});

test('a proxy that keeps cutting: OCI_NETWORK, partial kept; the next pull resumes it', { skip }, async () => {
  const path = blobPath(bigLayer.digest);
  proxy.inject((p, n) => (p === path ? { cutAfter: n === 0 ? 200_000 : 0 } : undefined));
  const cacheDir = newCache();
  try {
    await assert.rejects(pull(`${proxy.host}/faults/app:v1`, { cacheDir }), (e) => isRootforgeError(e, 'OCI_NETWORK') && /kept for the next run/.test(e.message));
  } finally {
    proxy.inject();
  }
  const partial = join(cacheDir, 'blobs', 'sha256', `${bigLayer.digest.slice(7)}.partial`);
  const kept = statSync(partial).size;
  assert.ok(kept > 0 && kept <= 200_000, `partial ${kept}`);
  assert.ok(!storeFiles(cacheDir).some((f) => f.endsWith('.lock')), storeFiles(cacheDir).join(' '));

  const start = proxy.requests.length;
  const img = await pull(`${proxy.host}/faults/app:v1`, { cacheDir });
  const gets = proxy.requests.slice(start).filter((r) => r.path === path);
  assert.deepEqual(gets.map((r) => r.range), [`bytes=${kept}-`]);
  assert.equal(existsSync(partial), false);
  // The layer's bytes are the registry's: resumed prefix included.
  const stored = readFileSync(join(cacheDir, 'blobs', 'sha256', bigLayer.digest.slice(7)));
  assert.equal('sha256:' + createHash('sha256').update(stored).digest('hex'), bigLayer.digest);
  assert.equal(img.layers.length, 3);
});

test('a cut, then a Range ignored (200 with the whole blob): the download restarts and succeeds', { skip }, async () => {
  const path = blobPath(bigLayer.digest);
  proxy.inject((p, n) => (p !== path ? undefined : n === 0 ? { cutAfter: 100_000 } : { ignoreRange: true }));
  const start = proxy.requests.length;
  try {
    await pull(`${proxy.host}/faults/app:v1`);
  } finally {
    proxy.inject();
  }
  const gets = proxy.requests.slice(start).filter((r) => r.path === path);
  assert.equal(gets.length, 2);
  assert.ok(gets[1]!.range?.startsWith('bytes='));
  assert.equal(gets[1]!.status, 200);
  assert.equal(gets[1]!.sent, bigLayer.size);
});

test('a pull killed mid-blob leaves a partial and a stale lock; the next pull takes both over', { skip }, async () => {
  const cacheDir = newCache();
  const hex = bigLayer.digest.slice(7);
  const dir = join(cacheDir, 'blobs', 'sha256');
  proxy.inject((p) => (p === blobPath(bigLayer.digest) ? { delayMs: 40 } : undefined));
  try {
    const child = spawn(process.execPath, [CHILD, JSON.stringify({ ref: `${proxy.host}/faults/app:v1`, cacheDir })], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Bounded wait for the download to be under way, then the equivalent of a crash.
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !(existsSync(join(dir, `${hex}.partial`)) && statSync(join(dir, `${hex}.partial`)).size > 0)) await sleep(10);
    child.kill('SIGKILL');
    await exited;
  } finally {
    proxy.inject();
  }
  const kept = statSync(join(dir, `${hex}.partial`)).size;
  assert.ok(kept > 0 && kept < bigLayer.size, `partial ${kept}`);
  assert.ok(existsSync(join(dir, `${hex}.lock`)), 'the killed process left its lock');
  assert.equal(existsSync(join(dir, hex)), false);

  const start = proxy.requests.length;
  await pull(`${proxy.host}/faults/app:v1`, { cacheDir });
  const gets = proxy.requests.slice(start).filter((r) => r.path === blobPath(bigLayer.digest));
  assert.deepEqual(gets.map((r) => r.range), [`bytes=${kept}-`]);
  assert.deepEqual(storeFiles(cacheDir).filter((f) => !/^[a-f0-9]{64}$/.test(f)), []);
});

test('two processes pulling the same image into one cache: both succeed, each blob fetched once', { skip }, async () => {
  const cacheDir = newCache();
  // Slow blob bodies down so the two pulls overlap on the same blobs.
  proxy.inject(() => ({ delayMs: 5 }));
  const child = () =>
    new Promise<{ ok: boolean; manifestDigest?: string; fromCache?: { blobsFetched: number; blobsCached: number }; message?: string }>((resolve, reject) => {
      const p = spawn(process.execPath, [CHILD, JSON.stringify({ ref: `${proxy.host}/faults/app:v1`, cacheDir })], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      p.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
      p.once('error', reject);
      p.once('exit', () => {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(out));
        } catch (e) {
          reject(new Error(`child output ${out} ${err}`, { cause: e }));
        }
      });
    });
  let results;
  try {
    results = await Promise.all([child(), child()]);
  } finally {
    proxy.inject();
  }
  for (const r of results) assert.ok(r.ok, r.message);

  assert.equal(results[0]!.manifestDigest, results[1]!.manifestDigest);
  // 4 blobs (config + 3 layers): each downloaded by exactly one of the two.
  const fetched = results.reduce((n, r) => n + r.fromCache!.blobsFetched, 0);
  assert.equal(fetched, 4, JSON.stringify(results));
  for (const r of results) assert.equal(r.fromCache!.blobsFetched + r.fromCache!.blobsCached, 4);
  // A consistent store: complete blobs only, each hashing to its name.
  const files = storeFiles(cacheDir);
  assert.deepEqual(files.filter((f) => !/^[a-f0-9]{64}$/.test(f)), []);
  for (const f of files) {
    assert.equal(createHash('sha256').update(readFileSync(join(cacheDir, 'blobs', 'sha256', f))).digest('hex'), f);
  }
  assert.equal(files.length, 5); // + the manifest
});
