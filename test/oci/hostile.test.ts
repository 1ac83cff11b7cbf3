/**
 * Issue 17's hostile inputs, each replayed as found: a registry redirecting to a host that asks
 * for credentials, a docker-archive with a negative or garbage PAX size, OCI layouts whose files
 * are symlinks to /dev/zero or FIFOs, gzip bombs (past --max-size, and onto a small filesystem
 * made for the test), a download killed mid-blob then `cache prune`, a poisoned partial, a
 * drip-feeding server under a short rate floor, a 1,001-layer manifest, and temp outputs of
 * killed runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { convert } from '../../src/convert.js';
import { isRootforgeError } from '../../src/errors.js';
import { BlobStore } from '../../src/oci/blobstore.js';
import { parseDockerReference, pullImage, RegistryClient } from '../../src/oci/registry.js';
import { defaultMinFree, removeDeadTempFiles } from '../../src/util/atomic.js';
import { BIN, rootforge } from '../helpers/cli.js';
import { skipOrFail } from '../helpers/fixtures.js';
import { fakeImage, gzipBomb, gzipLayer, serve, sha256, startFakeRegistry, writeLayout, type FakeImage } from '../helpers/fake-registry.js';
import { paxHeader, tarEntries } from '../helpers/tar-writer.js';

const work = mkdtempSync(join(tmpdir(), 'rf-hostile-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => join(work, `${name}-${n++}`);
const noConfig = join(work, 'no-docker-config');

const layer = gzipLayer(tarEntries([{ path: 'etc/hostname', content: 'hostile\n' }, { path: 'bin/tool', content: Buffer.alloc(300_000, 7) }]));
const image = fakeImage([layer]);
const pullOpts = (cacheDir: string) => ({ cacheDir, dockerConfigDir: noConfig, backoffMs: 5 });
const PULL_CHILD = new URL('../helpers/registry-pull-child.js', import.meta.url).pathname;

// 1. Credentials never go to a host the registry redirected to.
for (const what of ['blob', 'manifest'] as const) {
  test(`a ${what} redirected to a host answering 401: OCI_AUTH_FAILED, and no credentials or token reach it`, async (t) => {
    const evilTokens = await serve(t, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"stolen"}'));
    const storage = await serve(t, (_req, res) =>
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${evilTokens.host}/token",service="evil"` }).end(),
    );
    // The registry's own token server, on another port, grants "good" to user:secret.
    const tokens = await serve(t, (req, res) => {
      const ok = req.headers.authorization === 'Basic ' + Buffer.from('user:secret').toString('base64');
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? '{"token":"good","expires_in":300}' : '{}');
    });
    const registry = await startFakeRegistry(t, { 'app/x:v1': image }, (req, res) => {
      if (req.url === '/v2/') return false;
      if (req.headers.authorization !== 'Bearer good') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${tokens.host}/token",service="reg",scope="repository:app/x:pull"` }).end();
        return true;
      }
      const redirect = what === 'blob' ? req.url?.includes('/blobs/') && req.url.endsWith(layer.digest) : req.url?.includes('/manifests/');
      if (redirect) {
        res.writeHead(307, { location: `http://${storage.host}/storage${req.url}?sig=abc` }).end();
        return true;
      }
      return false;
    });
    await assert.rejects(
      pullImage(parseDockerReference(`${registry.host}/app/x:v1`), { ...pullOpts(fresh('cache')), creds: { username: 'user', password: 'secret' } }),
      (e) => isRootforgeError(e, 'OCI_AUTH_FAILED') && e.message.includes(storage.host) && !e.message.includes('secret'),
    );
    assert.ok(storage.requests.length > 0, 'the redirect was followed');
    assert.deepEqual(evilTokens.requests, [], 'the redirect target\'s token realm was never asked');
    for (const r of storage.requests) assert.equal(r.headers.authorization, undefined, 'no Authorization to the redirect target');
    assert.ok(tokens.requests.length > 0 && registry.requests.some((r) => r.headers.authorization === 'Bearer good'), 'the registry\'s own token flow was used');
  });
}

// 2. A docker-archive whose PAX size is negative or not a number: TAR_BAD_PAX, at once.
for (const size of ['-1024', 'abc', '99999999999999999999']) {
  test(`a docker-archive with PAX size=${size}: TAR_BAD_PAX, no spinning`, { timeout: 20_000 }, async () => {
    const archive = fresh('archive.tar');
    writeFileSync(
      archive,
      Buffer.concat([tarEntries([{ path: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' }], { end: false }), paxHeader([['size', size]], 'x'), tarEntries([{ path: 'index.json', content: '{}' }])]),
    );
    const out = fresh('out.img');
    await assert.rejects(convert(`docker-archive:${archive}`, out, { cache: false }), (e) => isRootforgeError(e, 'TAR_BAD_PAX') && e.message.includes(size.slice(0, 10)));
    assert.equal(existsSync(out), false);
  });
}

// 3. Layouts: only regular files, bounded reads, blobs read up to their size.
function layoutWith(mutate: (dir: string, layerPath: string) => void, img: FakeImage = image): string {
  const dir = fresh('layout');
  const [layerPath] = writeLayout(dir, img);
  mutate(dir, layerPath!);
  return dir;
}
const mkfifo = (p: string) => assert.equal(spawnSync('mkfifo', [p]).status, 0, 'mkfifo');

const layoutCases: [string, () => string, string][] = [
  ['index.json is a symlink to /dev/zero', () => layoutWith((d) => (unlinkSync(join(d, 'index.json')), symlinkSync('/dev/zero', join(d, 'index.json')))), 'symbolic link'],
  ['oci-layout is a FIFO', () => layoutWith((d) => (unlinkSync(join(d, 'oci-layout')), mkfifo(join(d, 'oci-layout')))), 'FIFO'],
  ['index.json is a FIFO', () => layoutWith((d) => (unlinkSync(join(d, 'index.json')), mkfifo(join(d, 'index.json')))), 'FIFO'],
  ['index.json is 9 MiB', () => layoutWith((d) => writeFileSync(join(d, 'index.json'), Buffer.alloc(9 << 20, 0x20))), 'allowed'],
  ['a layer blob is a FIFO', () => layoutWith((_d, l) => (unlinkSync(l), mkfifo(l))), 'FIFO'],
];
for (const [name, make, reason] of layoutCases) {
  test(`an OCI layout where ${name}: OCI_BAD_LAYOUT at once`, { timeout: 20_000 }, async () => {
    const out = fresh('out.img');
    await assert.rejects(convert(`oci:${make()}:v1`, out, { cache: false }), (e) => isRootforgeError(e, 'OCI_BAD_LAYOUT') && e.message.includes(reason));
    assert.equal(existsSync(out), false);
  });
}

test('a layer blob that is a symlink to /dev/zero with a 1 TiB descriptor: refused without reading it', { timeout: 20_000 }, async () => {
  const fake = '0'.repeat(64);
  const img = fakeImage([layer], { layerDescriptors: [{ digest: `sha256:${fake}`, size: 2 ** 40 }] });
  const dir = layoutWith((d) => symlinkSync('/dev/zero', join(d, 'blobs', 'sha256', fake)), img);
  await assert.rejects(convert(`oci:${dir}:v1`, fresh('out.img'), { cache: false }), (e) => isRootforgeError(e, 'OCI_BAD_LAYOUT') && e.message.includes('symbolic link'));
  // The same descriptor over a regular (small) file: its size gives it away before any hashing.
  const dir2 = layoutWith((d) => writeFileSync(join(d, 'blobs', 'sha256', fake), layer.bytes), img);
  await assert.rejects(convert(`oci:${dir2}:v1`, fresh('out.img'), { cache: false }), (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH') && e.message.includes(String(2 ** 40)));
});

// 4. Gzip bombs: never past --max-size, never filling the disk; killed runs' temp files go.
const BOMB_SIZE = 1 << 30; // 1 GiB of zeros in a ~1 MiB gzip layer

test('a gzip bomb (1 GiB of zeros in a small layer) past --max-size 32M: OUTPUT_TOO_LARGE saying how much it expanded, nothing left', { timeout: 120_000 }, async () => {
  const bomb = await gzipBomb(BOMB_SIZE);
  assert.ok(bomb.bytes.length < 2 << 20);
  const dir = layoutWith(() => undefined, fakeImage([bomb]));
  const outDir = fresh('out');
  mkdirSync(outDir);
  const out = join(outDir, 'bomb.img');
  const r = rootforge(['convert', `oci:${dir}:v1`, '-o', out, '--max-size', '32M', '--no-cache', '--quiet']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Cannot write .*bomb\.img: the image would grow to .* past the maximum of 32\.0 MiB \(--max-size\); the input \(.*KiB\) expanded to .* written so far/);
  assert.deepEqual(readdirSync(outDir), [], 'no image and no temporary file');
  // Within the limit the same options convert a small image.
  const small = rootforge(['convert', `oci:${layoutWith(() => undefined)}:v1`, '-o', out, '--max-size', '32M', '--no-cache', '--quiet', '--max-layers', '1']);
  assert.equal(small.code, 0, small.stderr);
  assert.deepEqual(readdirSync(outDir), ['bomb.img']);
});

test('a gzip bomb converted onto a small filesystem: OUTPUT_DISK_FULL before less than max(1 GiB, 5 %) is left free', { timeout: 180_000 }, async (t) => {
  if (process.getuid?.() !== 0) return skipOrFail(t, 'mounting a small tmpfs needs root');
  const mnt = fresh('small-fs');
  mkdirSync(mnt);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1100m', 'tmpfs', mnt]);
  if (mount.status !== 0) return skipOrFail(t, `cannot mount a tmpfs: ${mount.stderr.toString()}`);
  t.after(() => {
    const u = spawnSync('umount', [mnt]);
    assert.equal(u.status, 0, `umount ${mnt}: ${u.stderr.toString()}`);
  });
  const bomb = await gzipBomb(BOMB_SIZE);
  const dir = layoutWith(() => undefined, fakeImage([bomb]));
  const out = join(mnt, 'bomb.img');
  await assert.rejects(
    convert(`oci:${dir}:v1`, out, { cache: false }),
    (e) => isRootforgeError(e, 'OUTPUT_DISK_FULL') && /less than 1\.00 GiB free/.test(e.message) && /expanded to/.test(e.message),
  );
  assert.deepEqual(readdirSync(mnt), [], 'no image and no temporary file');
  const df = spawnSync('df', ['--output=used', '-B1', mnt]).stdout.toString().trim().split('\n').at(-1)!.trim();
  assert.ok(Number(df) < 1 << 20, `the filesystem is empty again (${df} bytes used)`);
});

test('temp outputs of dead processes beside the output are removed by the next run; a live one stays', async (t) => {
  const outDir = fresh('out');
  mkdirSync(outDir);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  const live = spawn('sleep', ['30']);
  t.after(() => void live.kill('SIGKILL'));
  const deadTmp = join(outDir, `.root.img.rootforge-${dead}-0.tmp`);
  const liveTmp = join(outDir, `.root.img.rootforge-${live.pid}-3.tmp`);
  const otherTmp = join(outDir, `.other.img.rootforge-${dead}-0.tmp`);
  for (const p of [deadTmp, liveTmp, otherTmp]) writeFileSync(p, 'half an image');
  const src = fresh('src');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'x');
  await convert(`dir:${src}`, join(outDir, 'root.img'));
  assert.deepEqual(readdirSync(outDir).sort(), [`.other.img.rootforge-${dead}-0.tmp`, `.root.img.rootforge-${live.pid}-3.tmp`, 'root.img'].sort());
  assert.deepEqual(await removeDeadTempFiles(join(outDir, 'other.img')), [otherTmp]);
});

// 5 and 6. Unfinished downloads are shown and pruned; a poisoned partial restarts once.
test('a download killed mid-blob: cache ls shows the partial (in progress, then left over), cache prune removes it and its lock', { timeout: 60_000 }, async (t) => {
  const big = gzipLayer(tarEntries([{ path: 'big', content: Buffer.from(Array.from({ length: 400_000 }, (_v, i) => (i * 7919) % 251)) }]));
  const img = fakeImage([big]);
  // Half the blob, then the connection stays open and silent.
  const registry = await startFakeRegistry(t, { 'app/big:v1': img }, (req, res) => {
    if (!req.url?.endsWith(big.digest)) return false;
    res.writeHead(200, { 'content-length': big.bytes.length });
    res.write(big.bytes.subarray(0, big.bytes.length >> 1));
    return true;
  });
  const cacheDir = fresh('cache');
  const child = spawn(process.execPath, [PULL_CHILD, JSON.stringify({ ref: `${registry.host}/app/big:v1`, cacheDir })], { stdio: 'ignore' });
  t.after(() => void child.kill('SIGKILL'));
  const store = new BlobStore(join(cacheDir, 'blobs'));
  const partial = store.partialPath(big.digest);
  for (let i = 0; i < 600 && !(existsSync(partial) && readFileSync(partial).length > 0); i++) await sleep(50);
  assert.ok(existsSync(partial), 'the child started the download');

  const during = JSON.parse(rootforge(['cache', 'ls', '--json', '--cache-dir', cacheDir]).stdout.toString()) as { unfinished: { kind: string; digest: string; live?: string }[] };
  assert.deepEqual(during.unfinished.map((u) => [u.kind, u.digest, u.live?.split(' ')[0]]), [
    ['lock', big.digest, String(child.pid)],
    ['partial', big.digest, String(child.pid)],
  ]);
  // A live download is not pruned.
  assert.equal(rootforge(['cache', 'prune', '--cache-dir', cacheDir]).code, 0);
  assert.ok(existsSync(partial));

  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  const ls = rootforge(['cache', 'ls', '--cache-dir', cacheDir]);
  assert.match(ls.stdout.toString(), /1 unfinished downloads \(.*\), 1 locks and temporary files/);
  assert.match(ls.stdout.toString(), /partial .* left over \(prune removes it\)/);
  const prune = rootforge(['cache', 'prune', '--cache-dir', cacheDir]);
  assert.equal(prune.code, 0, prune.stderr);
  assert.equal(existsSync(partial), false);
  assert.equal(existsSync(`${store.path(big.digest)}.lock`), false);
  const after = JSON.parse(rootforge(['cache', 'ls', '--json', '--cache-dir', cacheDir]).stdout.toString()) as { unfinished: unknown[] };
  assert.deepEqual(after.unfinished, []);
});

test('a poisoned partial is discarded and downloaded again from byte 0 in the same run; convert gives the clean image', { timeout: 60_000 }, async (t) => {
  const registry = await startFakeRegistry(t, { 'app/x:v1': image });
  const ref = `docker://${registry.host}/app/x:v1`;
  const clean = fresh('clean.img');
  await convert(ref, clean, { ...pullOpts(fresh('cache')), cache: false });

  const cacheDir = fresh('cache');
  const store = new BlobStore(join(cacheDir, 'blobs'));
  mkdirSync(join(cacheDir, 'blobs', 'sha256'), { recursive: true });
  const poisoned = Buffer.from(layer.bytes.subarray(0, layer.bytes.length >> 1));
  poisoned[100] ^= 0xff;
  writeFileSync(store.partialPath(layer.digest), poisoned);
  const out = fresh('out.img');
  await convert(ref, out, { ...pullOpts(cacheDir), cache: false });
  assert.ok(readFileSync(out).equals(readFileSync(clean)), 'the same bytes as without the poisoned partial');
  const gets = registry.requests.filter((r) => r.path.endsWith(layer.digest)).map((r) => r.headers.range ?? 'whole');
  assert.deepEqual(gets.slice(-2), [`bytes=${poisoned.length}-`, 'whole']);
  assert.equal(existsSync(store.partialPath(layer.digest)), false);
});

// 7. A drip-feeding server is abandoned under the rate floor.
test('a server dripping one byte per 100 ms: OCI_TRANSFER_TOO_SLOW under a 1 KiB/s floor over 1 s, partial kept', { timeout: 30_000 }, async (t) => {
  let stop = false;
  t.after(() => void (stop = true));
  const registry = await startFakeRegistry(t, { 'app/x:v1': image }, (req, res) => {
    if (!req.url?.endsWith(layer.digest)) return false;
    res.writeHead(200, { 'content-length': layer.bytes.length });
    void (async () => {
      for (let i = 0; i < 300 && !stop && !res.destroyed; i++) {
        res.write(layer.bytes.subarray(i, i + 1));
        await sleep(100);
      }
      res.destroy();
    })();
    return true;
  });
  const cacheDir = fresh('cache');
  const started = performance.now();
  await assert.rejects(
    pullImage(parseDockerReference(`${registry.host}/app/x:v1`), { ...pullOpts(cacheDir), minBytesPerSecond: 1024, rateWindowMs: 1000 }),
    (e) => isRootforgeError(e, 'OCI_TRANSFER_TOO_SLOW') && e.message.includes('1024 bytes/s'),
  );
  assert.ok(performance.now() - started < 10_000, 'abandoned within seconds, not minutes');
  assert.equal(registry.requests.filter((r) => r.path.endsWith(layer.digest)).length, 1, 'a too-slow transfer is not retried');
  assert.ok(readFileSync(new BlobStore(join(cacheDir, 'blobs')).partialPath(layer.digest)).length > 0, 'what arrived is kept for the next run');
});

// 8. A limit on layer count.
test('a 1,001-layer manifest: OCI_TOO_MANY_LAYERS before any layer is fetched; --max-layers raises the limit', { timeout: 120_000 }, async (t) => {
  const tiny = gzipLayer(tarEntries([{ path: 'a', content: 'a' }]));
  const many = fakeImage(Array.from({ length: 1001 }, () => tiny));
  const registry = await startFakeRegistry(t, { 'app/many:v1': many });
  const ref = `docker://${registry.host}/app/many:v1`;
  await assert.rejects(convert(ref, fresh('out.img'), { ...pullOpts(fresh('cache')), cache: false }), (e) => isRootforgeError(e, 'OCI_TOO_MANY_LAYERS') && e.message.includes('1001 layers'));
  assert.equal(registry.requests.filter((r) => r.path.includes('/blobs/')).length, 0, 'not even the config was fetched');
  // Layouts share the check.
  const dir = layoutWith(() => undefined, many);
  await assert.rejects(convert(`oci:${dir}:v1`, fresh('out.img'), { cache: false }), (e) => isRootforgeError(e, 'OCI_TOO_MANY_LAYERS'));
  // An explicit, higher limit converts it (one blob, fetched once).
  const out = fresh('out.img');
  const r = await convert(ref, out, { ...pullOpts(fresh('cache')), cache: false, maxLayers: 1001 });
  assert.ok(r.files >= 1);
  assert.equal(registry.requests.filter((q) => q.path.endsWith(tiny.digest)).length, 1);
  assert.equal(sha256(many.manifest), many.manifestDigest);
});

test('a silent server: retries stop at the retry budget, not after attempts × idle timeout', { timeout: 30_000 }, async (t) => {
  // Accepts connections and never answers.
  const silent = await serve(t, () => undefined);
  const client = new RegistryClient(silent.host, { timeoutMs: 200, attempts: 100, backoffMs: 50, retryBudgetMs: 1000, dockerConfigDir: noConfig });
  t.after(() => client.close());
  const started = performance.now();
  await assert.rejects(client.getManifest('app/x', 'v1'), (e) => isRootforgeError(e, 'OCI_NETWORK'));
  const ms = performance.now() - started;
  assert.ok(ms < 5000, `gave up after ${Math.round(ms)} ms (100 attempts would take over 20 s)`);
  assert.ok(silent.requests.length >= 2 && silent.requests.length < 20, `${silent.requests.length} attempts`);
});

test('limit flags are checked up front; the disk reserve is max(1 GiB, 5 %)', () => {
  const src = fresh('src');
  mkdirSync(src);
  for (const [flag, value, reason] of [
    ['--max-layers', '0', 'expected a whole number ≥ 1'],
    ['--max-size', '0', 'expected a size above 0'],
    ['--min-rate', 'fast', 'expected a number'],
  ] as const) {
    const out = fresh('out.img');
    const r = rootforge(['convert', `dir:${src}`, '-o', out, flag, value]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(reason), r.stderr);
    assert.equal(existsSync(out), false);
  }
  assert.equal(defaultMinFree(10 * 2 ** 30), 2 ** 30);
  assert.equal(defaultMinFree(100 * 2 ** 30), 5 * 2 ** 30);
});

test('a conversion killed with SIGKILL leaves its temp output; the next run to the same output removes it', { timeout: 120_000 }, async (t) => {
  const bomb = await gzipBomb(BOMB_SIZE);
  const dir = layoutWith(() => undefined, fakeImage([bomb]));
  const outDir = fresh('out');
  mkdirSync(outDir);
  const out = join(outDir, 'root.img');
  const child = spawn(process.execPath, [BIN, 'convert', `oci:${dir}:v1`, '-o', out, '--no-cache', '--quiet'], { stdio: 'ignore' });
  t.after(() => void child.kill('SIGKILL'));
  const tmp = join(outDir, `.root.img.rootforge-${child.pid}-0.tmp`);
  for (let i = 0; i < 1200 && !(existsSync(tmp) && statSync(tmp).size > 0); i++) await sleep(25);
  assert.ok(existsSync(tmp), 'the run was writing its temp output');
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  assert.deepEqual(readdirSync(outDir), [`.root.img.rootforge-${child.pid}-0.tmp`], 'SIGKILL left the temp output');
  const src = fresh('src');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'x');
  await convert(`dir:${src}`, out);
  assert.deepEqual(readdirSync(outDir), ['root.img']);
});

test('the image cache is not filled past the free-space reserve either: the copy is skipped with a warning', { timeout: 60_000 }, async (t) => {
  if (process.getuid?.() !== 0) return skipOrFail(t, 'mounting a small tmpfs needs root');
  const cacheDir = fresh('small-cache');
  mkdirSync(cacheDir);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1000m', 'tmpfs', cacheDir]);
  if (mount.status !== 0) return skipOrFail(t, `cannot mount a tmpfs: ${mount.stderr.toString()}`);
  t.after(() => {
    const u = spawnSync('umount', [cacheDir]);
    assert.equal(u.status, 0, `umount ${cacheDir}: ${u.stderr.toString()}`);
  });
  const out = fresh('out.img');
  const r = await convert(`oci:${layoutWith(() => undefined)}:v1`, out, { cacheDir });
  assert.equal(r.cacheHit, false);
  assert.deepEqual(r.warnings.map((w) => w.code), ['CACHE_SKIPPED']);
  assert.match(r.warnings[0]!.message, /would leave .* less than 1\.00 GiB free/);
  assert.deepEqual(readdirSync(join(cacheDir, 'images')), []);
  assert.ok(existsSync(out));
});

test('a registry declaring a 1 TiB layer: OUTPUT_DISK_FULL before any blob is downloaded', async (t) => {
  const huge = fakeImage([layer], { layerDescriptors: [{ digest: `sha256:${'1'.repeat(64)}`, size: 2 ** 40 }] });
  const registry = await startFakeRegistry(t, { 'app/huge:v1': huge });
  const cacheDir = fresh('cache');
  await assert.rejects(
    pullImage(parseDockerReference(`${registry.host}/app/huge:v1`), pullOpts(cacheDir)),
    (e) => isRootforgeError(e, 'OUTPUT_DISK_FULL') && e.message.includes('1024.00 GiB still to download'),
  );
  assert.equal(registry.requests.filter((r) => r.path.includes('/blobs/')).length, 0);
});
