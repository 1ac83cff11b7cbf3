/**
 * pullImage against real registries (Debian's docker-registry, distribution 2.8) holding images
 * built with umoci and pushed with skopeo: anonymous pulls, htpasswd Basic auth (--creds and a
 * DOCKER_CONFIG directory), wrong and missing credentials, missing tags and repositories, a
 * multi-platform index, a tag that moves, by-digest pulls served from the cache, and TLS.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDockerReference, pullImage, type PullOptions, type PullResult } from '../../src/oci/registry.js';
import { BlobStore } from '../../src/oci/blobstore.js';
import { isRootforgeError } from '../../src/errors.js';
import { cleanups, freePort, layoutDigest, layoutManifest, makeCert, makeImage, makeIndex, pushImage, registryToolsMissing, startRegistry, type RegistryServer } from '../helpers/registry.js';

const skip = registryToolsMissing();
const work = mkdtempSync(join(tmpdir(), 'rf-registry-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const layout = join(work, 'layout');
const noDockerConfig = join(work, 'empty-docker-config');
let open: RegistryServer;
let basic: RegistryServer;
let tls: RegistryServer;
let cacheN = 0;
const newCache = () => join(work, `cache${cacheN++}`);
const servers = cleanups();
after(() => servers.run());

before(async () => {
  if (skip) return;
  mkdirSync(noDockerConfig);
  const big = randomBytes(256 << 10);
  makeImage(layout, 'v1', [{ 'etc/hello': 'hello\n', 'etc/os-release': 'ID=test\n' }, { 'usr/bin/big': big }, { 'etc/motd': 'v1\n' }], { cmd: ['/bin/sh'] });
  makeImage(layout, 'v2', [{ 'etc/motd': 'v2\n' }], { from: 'v1' });
  makeImage(layout, 'amd', [{ 'arch': 'amd64\n' }], { architecture: 'amd64' });
  makeImage(layout, 'arm', [{ 'arch': 'arm64\n' }], { architecture: 'arm64' });
  makeIndex(layout, 'multi', ['amd', 'arm']);

  const certs = join(work, 'certs');
  mkdirSync(certs);
  [open, basic, tls] = await Promise.all([
    startRegistry(servers),
    startRegistry(servers, { auth: { htpasswd: [{ user: 'user', password: 'pass' }] } }),
    startRegistry(servers, { tls: makeCert(certs, 'registry', { san: 'IP:127.0.0.1' }) }),
  ]);
  pushImage(layout, 'v1', `${open.host}/test/app:v1`);
  pushImage(layout, 'multi', `${open.host}/test/multi:latest`, { all: true });
  pushImage(layout, 'v1', `${basic.host}/private/app:v1`, { creds: 'user:pass' });
  pushImage(layout, 'v1', `${tls.host}/secure/app:v1`);
});

function pull(ref: string, options: Partial<PullOptions> = {}): Promise<PullResult> {
  return pullImage(parseDockerReference(ref), { cacheDir: newCache(), dockerConfigDir: noDockerConfig, backoffMs: 10, ...options });
}

async function drain(img: PullResult): Promise<number> {
  let n = 0;
  for (const layer of img.layers) for await (const chunk of await layer.open()) n += chunk.length;
  return n;
}

test('anonymous pull from an open registry: manifest, config and layers land in the cache', { skip }, async () => {
  const cacheDir = newCache();
  const progress: { done: number; total: number | undefined }[] = [];
  const img = await pull(`${open.host}/test/app:v1`, { cacheDir, onProgress: (p) => progress.push(p) });
  const m = layoutManifest(layout, 'v1');
  assert.equal(img.source, `docker://${open.host}/test/app:v1`);
  assert.equal(img.manifestDigest, layoutDigest(layout, 'v1'));
  assert.deepEqual(img.manifest.layers.map((l) => l.digest), m.layers.map((l) => l.digest));
  assert.equal(img.layers.length, 3);
  assert.deepEqual(img.config.config?.Cmd, ['/bin/sh']);
  assert.equal(img.config.rootfs?.diff_ids.length, 3);
  assert.deepEqual(img.fromCache, { blobsFetched: 4, blobsCached: 0 });
  // The layers read back through fileLayer: decompressed tars, digest-checked.
  assert.ok((await drain(img)) > 256 << 10);
  const store = new BlobStore(join(cacheDir, 'blobs'));
  const stored = (await store.list()).map((b) => b.digest).sort();
  assert.deepEqual(stored, [img.manifestDigest, m.config.digest, ...m.layers.map((l) => l.digest)].sort());
  assert.deepEqual(readdirSync(join(cacheDir, 'blobs', 'sha256')).filter((f) => !/^[a-f0-9]{64}$/.test(f)), []);
  const total = m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
  assert.deepEqual(progress.at(-1), { done: total, total });
  assert.ok(progress.every((p, i) => i === 0 || p.done >= progress[i - 1]!.done));

  const again = await pull(`${open.host}/test/app:v1`, { cacheDir });
  assert.deepEqual(again.fromCache, { blobsFetched: 0, blobsCached: 4 });
  assert.equal(again.manifestDigest, img.manifestDigest);
});

test('a by-digest pull whose blobs are cached needs no registry at all', { skip }, async () => {
  const cacheDir = newCache();
  const img = await pull(`${open.host}/test/app:v1`, { cacheDir });
  // Nothing listens on this port: every request would fail.
  const dead = `127.0.0.1:${await freePort()}`;
  const offline = await pull(`${dead}/test/app@${img.manifestDigest}`, { cacheDir });
  assert.equal(offline.manifestDigest, img.manifestDigest);
  assert.deepEqual(offline.fromCache, { blobsFetched: 0, blobsCached: 4 });
  await assert.rejects(pull(`${dead}/test/app:v1`, { cacheDir }), (e) => isRootforgeError(e, 'OCI_NETWORK'));
});

test('a missing tag or repository is OCI_NOT_FOUND with the registry error code', { skip }, async () => {
  await assert.rejects(pull(`${open.host}/test/app:nope`), (e) => isRootforgeError(e, 'OCI_NOT_FOUND') && /MANIFEST_UNKNOWN/.test(e.message) && e.message.includes('test/app:nope'));
  // distribution 2.8 answers MANIFEST_UNKNOWN here too; other registries say NAME_UNKNOWN.
  await assert.rejects(pull(`${open.host}/no/such/repo:v1`), (e) => isRootforgeError(e, 'OCI_NOT_FOUND') && e.message.includes('no/such/repo:v1'));
  await assert.rejects(pull(`${open.host}/test/app@sha256:${'0'.repeat(64)}`), (e) => isRootforgeError(e, 'OCI_NOT_FOUND'));
});

test('a multi-platform index: the requested platform is selected, a missing one is OCI_NO_PLATFORM', { skip }, async () => {
  const cacheDir = newCache();
  const arm = await pull(`${open.host}/test/multi`, { cacheDir, platform: { os: 'linux', architecture: 'arm64' } });
  assert.equal(arm.manifestDigest, layoutDigest(layout, 'arm'));
  assert.equal(arm.config.architecture, 'arm64');
  const amd = await pull(`${open.host}/test/multi:latest`, { cacheDir, platform: { os: 'linux', architecture: 'amd64' } });
  assert.equal(amd.manifestDigest, layoutDigest(layout, 'amd'));
  assert.equal(amd.config.architecture, 'amd64');
  // The index and both chosen manifests are cached by digest.
  const store = new BlobStore(join(cacheDir, 'blobs'));
  for (const d of [layoutDigest(layout, 'multi'), arm.manifestDigest, amd.manifestDigest]) assert.ok(await store.has(d), d);
  if (process.arch === 'x64' || process.arch === 'arm64') {
    const host = await pull(`${open.host}/test/multi`, { cacheDir });
    assert.equal(host.config.architecture, process.arch === 'x64' ? 'amd64' : 'arm64');
  }
  await assert.rejects(
    pull(`${open.host}/test/multi`, { cacheDir, platform: { os: 'linux', architecture: 's390x' } }),
    (e) => isRootforgeError(e, 'OCI_NO_PLATFORM') && e.message.includes('linux/amd64, linux/arm64') && e.message.includes('linux/s390x'),
  );
  // A single-platform image asked for another platform explicitly.
  await assert.rejects(pull(`${open.host}/test/app:v1`, { platform: { os: 'linux', architecture: 'riscv64' } }), (e) => isRootforgeError(e, 'OCI_NO_PLATFORM'));
});

test('a moved tag: new manifest digest, only the new blobs fetched, old blobs untouched', { skip }, async () => {
  const cacheDir = newCache();
  pushImage(layout, 'v1', `${open.host}/test/moving:latest`);
  const first = await pull(`${open.host}/test/moving`, { cacheDir });
  assert.equal(first.manifestDigest, layoutDigest(layout, 'v1'));
  const store = new BlobStore(join(cacheDir, 'blobs'));
  const before = new Map((await store.list()).map((b) => [b.digest, statSync(store.path(b.digest), { bigint: true })]));

  pushImage(layout, 'v2', `${open.host}/test/moving:latest`);
  const second = await pull(`${open.host}/test/moving`, { cacheDir });
  assert.equal(second.manifestDigest, layoutDigest(layout, 'v2'));
  assert.notEqual(second.manifestDigest, first.manifestDigest);
  assert.equal(second.layers.length, 4);
  // New config and the new top layer; the three v1 layers come from the cache.
  assert.deepEqual(second.fromCache, { blobsFetched: 2, blobsCached: 3 });
  for (const [digest, st] of before) {
    const now = statSync(store.path(digest), { bigint: true });
    assert.equal(now.ino, st.ino, digest);
    assert.equal(now.mtimeNs, st.mtimeNs, digest);
  }
  assert.equal((await store.list()).length, before.size + 3); // + manifest, config, layer
});

test('htpasswd Basic auth: --creds works; wrong or missing credentials are OCI_AUTH_FAILED', { skip }, async () => {
  const img = await pull(`${basic.host}/private/app:v1`, { creds: { username: 'user', password: 'pass' } });
  assert.equal(img.manifestDigest, layoutDigest(layout, 'v1'));
  await drain(img);
  await assert.rejects(pull(`${basic.host}/private/app:v1`, { creds: { username: 'user', password: 'hunter2-wrong' } }), (e) => {
    assert.ok(isRootforgeError(e, 'OCI_AUTH_FAILED'), String(e));
    assert.ok(e.message.includes(basic.host) && e.message.includes('"user"'), e.message);
    assert.ok(!e.message.includes('hunter2'), e.message);
    return true;
  });
  await assert.rejects(pull(`${basic.host}/private/app:v1`), (e) => isRootforgeError(e, 'OCI_AUTH_FAILED') && /no credentials/.test(e.message));
});

test('htpasswd Basic auth: credentials from DOCKER_CONFIG/config.json', { skip }, async () => {
  const dir = join(work, 'docker-config');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [basic.host]: { auth: Buffer.from('user:pass').toString('base64') } } }));
  const img = await pull(`${basic.host}/private/app:v1`, { dockerConfigDir: dir });
  assert.equal(img.manifestDigest, layoutDigest(layout, 'v1'));
  const saved = process.env['DOCKER_CONFIG'];
  process.env['DOCKER_CONFIG'] = dir;
  try {
    const viaEnv = await pullImage(parseDockerReference(`${basic.host}/private/app:v1`), { cacheDir: newCache() });
    assert.equal(viaEnv.manifestDigest, img.manifestDigest);
  } finally {
    if (saved === undefined) delete process.env['DOCKER_CONFIG'];
    else process.env['DOCKER_CONFIG'] = saved;
  }
});

test('a loopback registry serving HTTPS: verified by default, accepted with tlsVerify false', { skip }, async () => {
  await assert.rejects(pull(`${tls.host}/secure/app:v1`), (e) => isRootforgeError(e, 'OCI_NETWORK') && /--tls-verify=false/.test(e.message));
  const img = await pull(`${tls.host}/secure/app:v1`, { tlsVerify: false });
  assert.equal(img.manifestDigest, layoutDigest(layout, 'v1'));
  await drain(img);
});
