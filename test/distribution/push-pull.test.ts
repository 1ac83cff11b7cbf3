/**
 * push / pull of ext4 images as rootforge artifacts against a real docker-registry on 127.0.0.1
 * with htpasswd auth: round trip byte-identical in a fresh cache, v2 after v1 uploads only new
 * chunks (bytes counted by a proxy in front of the registry), an interrupted pull resumes from
 * the cache, a corrupted blob in the registry's storage fails typed with no output, pull by
 * digest, skopeo inspect --raw sees a valid OCI manifest, inspect shows the annotations
 * without fetching chunks, and `pull -o` of a container image converts it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { parseSize } from '../../src/util/size.js';
import { ARTIFACT_TYPE, PACK_MEDIA_TYPE, CHUNKMAP_MEDIA_TYPE, ANNOTATION } from '../../src/distribution/artifact.js';
import { pullArtifact } from '../../src/distribution/pull.js';
import { pushArtifact } from '../../src/distribution/push.js';
import { isRootforgeError } from '../../src/errors.js';
import { parseDockerReference } from '../../src/oci/reference.js';
import { spawn } from 'node:child_process';
import { BIN } from '../helpers/cli.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { halfTextBytes } from '../helpers/bytes.js';
import { skipOrFail } from '../helpers/fixtures.js';
import { cleanups, makeImage, pushImageAsync, registryToolsMissing, runAsync, startRegistry, type RegistryServer } from '../helpers/registry.js';
import { Ext4Image } from '../../src/ext4/reader.js';

const missing = ['docker-registry', 'skopeo', 'htpasswd'].find((tool) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0);
const work = mkdtempSync(join(tmpdir(), 'rf-distrib-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const servers = cleanups();
after(() => servers.run());
const creds = { username: 'user', password: 'pass' };
/** Small packs and frames, so the test images (a few MB) have many. */
const packBytes = 256 << 10;
const frameBytes = 128 << 10;
let reg: RegistryServer;
let proxy: CountingProxy;
let cacheN = 0;
const newCache = () => join(work, `cache${cacheN++}`);
const v1 = join(work, 'v1.ext4');
const v2 = join(work, 'v2.ext4');

/** Deterministic pseudo-random bytes (xorshift), half of each file text-like so chunks compress. */
const fileBytes = (seed: number, size: number): Buffer => halfTextBytes(seed, size, 1024);

function makeTree(dir: string, changed: number[]): void {
  mkdirSync(join(dir, 'usr/lib'), { recursive: true });
  mkdirSync(join(dir, 'etc'), { recursive: true });
  for (let i = 0; i < 40; i++) {
    const seed = changed.includes(i) ? 1000 + i : i;
    writeFileSync(join(dir, 'usr/lib', `lib${i}.so`), fileBytes(seed, 40_000 + ((i * 7919) % 200_000)));
  }
  writeFileSync(join(dir, 'etc/os-release'), 'ID=test\n');
}

/**
 * The CLI as a child process, without blocking this process: the registry's log pipe and the
 * proxy live here, and a blocked event loop would stall them (and the child with them).
 */
function rootforge(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

before(async () => {
  if (missing) return;
  reg = await startRegistry(servers, { auth: { htpasswd: [{ user: 'user', password: 'pass' }] } });
  proxy = await startCountingProxy(servers, reg.port);
  for (const [out, changed] of [[v1, []], [v2, [3, 17]]] as const) {
    const dir = join(work, `tree-${out === v1 ? 1 : 2}`);
    makeTree(dir, [...changed]);
    await convert(`dir:${dir}`, out, { owner: { uid: 0, gid: 0 }, size: parseSize('+4M') });
  }
});

const ref = (tag: string, host = proxy.host) => parseDockerReference(`${host}/team/devbox:${tag}`);

test('push then pull gives the same image, in a fresh cache; the manifest is a valid OCI artifact', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  proxy.reset();
  const pushed = await pushArtifact(v1, ref('v1'), { creds, packBytes, frameBytes });
  assert.equal(pushed.imageDigest, `sha256:${sha(v1)}`);
  assert.ok(pushed.zeroBytes >= 4 << 20, `the free space (≥ 4 MiB of zeros) is not stored (${pushed.zeroBytes})`);
  assert.equal(pushed.uploaded, pushed.blobs + 1, 'every pack and the chunk map uploaded on the first push');
  assert.equal(pushed.newChunks, pushed.chunks, 'nothing to reuse on the first push');
  assert.ok(pushed.blobs >= 8, `several packs (${pushed.blobs})`);
  assert.ok(proxy.received >= pushed.uploadedBytes, 'the registry received the blobs');
  assert.ok(proxy.received < statSync(v1).size, `compressed and without zeros: ${proxy.received} < ${statSync(v1).size}`);

  const out = join(work, 'pulled.ext4');
  const pulled = await pullArtifact(ref('v1'), out, { cacheDir: newCache(), creds });
  assert.equal(sha(out), sha(v1));
  assert.equal(pulled.packsFetched, pushed.blobs, 'a fresh cache: every pack downloaded');
  assert.equal(pulled.packsCached, 0);
  assert.equal(pulled.manifestDigest, pushed.manifestDigest);
  // Sparse where the image had zero runs.
  assert.ok(statSync(out).blocks * 512 < statSync(out).size, 'the pulled image is sparse');
  const check = spawnSync('e2fsck', ['-fn', out], { encoding: 'utf8' });
  if (check.error === undefined) assert.equal(check.status, 0, check.stdout + check.stderr);

  const raw = await runAsync('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', 'user:pass', `docker://${proxy.host}/team/devbox:v1`]);
  const m = JSON.parse(raw) as { schemaVersion: number; mediaType: string; artifactType: string; config: { mediaType: string }; layers: { mediaType: string }[]; annotations: Record<string, string> };
  assert.equal(m.schemaVersion, 2);
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(m.artifactType, ARTIFACT_TYPE);
  assert.equal(m.config.mediaType, CHUNKMAP_MEDIA_TYPE);
  assert.ok(m.layers.length >= 8 && m.layers.every((l) => l.mediaType === PACK_MEDIA_TYPE));
  assert.equal(m.annotations[ANNOTATION.size], String(statSync(v1).size));
  assert.equal(m.annotations[ANNOTATION.digest], `sha256:${sha(v1)}`);
  assert.match(m.annotations[ANNOTATION.uuid] ?? '', /^[0-9a-f-]{36}$/);
});

test('v2 after v1 uploads only the new chunks', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  proxy.reset();
  const first = await pushArtifact(v1, ref('v1'), { creds, packBytes, frameBytes });
  assert.equal(first.uploaded, 0, 'pushing the same image again uploads nothing');
  assert.equal(proxy.requests['PUT'], 1, 'only the manifest is PUT');
  const v1Bytes = first.blobBytes;
  proxy.reset();
  const second = await pushArtifact(v2, ref('v2'), { creds, packBytes, frameBytes });
  t.diagnostic(`v1 ${v1Bytes} bytes of blobs; v2 sent ${proxy.received} bytes (${second.newChunks} of ${second.chunks} chunks new, ${second.uploaded} blobs)`);
  assert.ok(second.newChunks < second.chunks / 4, `most chunks shared: ${second.newChunks} new of ${second.chunks}`);
  // 2 of 40 files changed (≈5 %): the goal is ≤ 20 % of v1's bytes.
  assert.ok(proxy.received <= 0.2 * v1Bytes, `v2 upload ${proxy.received} ≤ 20 % of v1 ${v1Bytes}`);
  const out = join(work, 'v2-pulled.ext4');
  await pullArtifact(ref('v2'), out, { cacheDir: newCache(), creds });
  assert.equal(sha(out), sha(v2));
});

test('pull by digest; chunks cached from another version are not downloaded again; inspect reads annotations only', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const pushed = await pushArtifact(v2, ref('v2'), { creds, packBytes, frameBytes });
  const cache = newCache();
  await pullArtifact(ref('v1'), join(work, 'a.ext4'), { cacheDir: cache, creds });
  proxy.reset();
  const out = join(work, 'by-digest.ext4');
  const byDigest = parseDockerReference(`${proxy.host}/team/devbox@${pushed.manifestDigest}`);
  const r = await pullArtifact(byDigest, out, { cacheDir: cache, creds });
  assert.equal(sha(out), sha(v2));
  assert.ok(r.packsCached > 0 && r.packsFetched < r.packs / 2, `v1's packs come from the cache: ${r.packsFetched} fetched, ${r.packsCached} cached`);
  assert.equal(proxy.blobGets.length, r.packsFetched + 1, "v2's new packs and its chunk map");

  proxy.reset();
  const cli = await rootforge(['inspect', `docker://${proxy.host}/team/devbox:v2`, '--creds', 'user:pass', '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const info = JSON.parse(cli.stdout) as { rootforge: boolean; manifestDigest: string; annotations: Record<string, string> };
  assert.equal(info.rootforge, true);
  assert.equal(info.manifestDigest, pushed.manifestDigest);
  assert.equal(info.annotations[ANNOTATION.digest], `sha256:${sha(v2)}`);
  assert.equal(proxy.blobGets.length, 0, 'inspect downloads no blob');
});

test('an interrupted pull resumes: the second run fetches only what the first did not', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  await pushArtifact(v1, ref('v1'), { creds, packBytes, frameBytes });
  const cache = newCache();
  const out = join(work, 'resumed.ext4');
  proxy.reset();
  const allowed = new Set<string>();
  proxy.dropBlobGet = (path) => {
    if (allowed.has(path)) return false;
    if (allowed.size < 4) {
      allowed.add(path);
      return false;
    }
    return true;
  };
  try {
    await assert.rejects(pullArtifact(ref('v1'), out, { cacheDir: cache, creds, backoffMs: 1, concurrency: 4 }), (e: unknown) => isRootforgeError(e, 'OCI_NETWORK'));
  } finally {
    proxy.dropBlobGet = () => false;
  }
  assert.equal(existsSync(out), false, 'no output after a failed pull');
  assert.deepEqual(readdirSync(work).filter((n) => n.includes('resumed.ext4')), [], 'no temporary file left');
  const firstRun = new Set(proxy.blobGets);
  assert.ok(firstRun.size >= 2, `some chunks arrived before the cut (${firstRun.size})`);
  proxy.reset();
  const r = await pullArtifact(ref('v1'), out, { cacheDir: cache, creds });
  assert.equal(sha(out), sha(v1));
  assert.ok(r.packsCached >= firstRun.size - 1, `resumed from the cache: ${r.packsCached} cached`);
  for (const p of proxy.blobGets) assert.ok(!firstRun.has(p), `not fetched twice: ${p}`);
});

test('a corrupted chunk in the registry storage fails the pull typed, leaving no output', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const pushed = await pushArtifact(v1, parseDockerReference(`${reg.host}/team/corrupt:v1`), { creds, packBytes, frameBytes });
  const raw = await runAsync('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', 'user:pass', `docker://${reg.host}/team/corrupt:v1`]);
  const layer = (JSON.parse(raw) as { layers: { digest: string }[] }).layers[3]!.digest;
  const data = reg.blobData(layer);
  const original = readFileSync(data);
  const bytes = Buffer.from(original);
  bytes[bytes.length >> 1] ^= 0xff;
  writeFileSync(data, bytes);
  // Blob storage is shared by every repository of the registry: put it back for the other tests.
  t.after(() => writeFileSync(data, original));
  const outDir = join(work, 'corrupt-out');
  mkdirSync(outDir);
  const out = join(outDir, 'x.ext4');
  const cli = await rootforge(['pull', `docker://${reg.host}/team/corrupt@${pushed.manifestDigest}`, '-o', out, '--creds', 'user:pass', '--cache-dir', newCache()]);
  assert.equal(cli.code, 1, cli.stderr);
  assert.match(cli.stderr, /OCI_DIGEST_MISMATCH/);
  assert.deepEqual(readdirSync(outDir), [], 'nothing written');
});

test('CLI: push --json, pull -o, wrong credentials fail typed', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const push = await rootforge(['push', v2, `docker://${reg.host}/cli/img:v2`, '--creds', 'user:pass', '--json']);
  assert.equal(push.code, 0, push.stderr);
  const r = JSON.parse(push.stdout) as { manifestDigest: string; imageDigest: string };
  assert.equal(r.imageDigest, `sha256:${sha(v2)}`);
  const out = join(work, 'cli.ext4');
  const pull = await rootforge(['pull', `docker://${reg.host}/cli/img:v2`, '-o', out, '--creds', 'user:pass', '--cache-dir', newCache()]);
  assert.equal(pull.code, 0, pull.stderr);
  assert.equal(sha(out), sha(v2));
  const bad = await rootforge(['push', v2, `docker://${reg.host}/cli/img:v3`, '--creds', 'user:wrong'], { DOCKER_CONFIG: join(work, 'none') });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /OCI_AUTH_FAILED/);
  const notDocker = await rootforge(['push', v2, `${reg.host}/cli/img:v3`]);
  assert.equal(notDocker.code, 1);
  assert.match(notDocker.stderr, /OPTION_INVALID/);
});

test('build --format docker-archive --push: one command builds, exports and pushes', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const dir = join(work, 'build');
  mkdirSync(dir);
  const agent = join(dir, 'fake-agent');
  writeFileSync(agent, Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(4000, 1)]), { mode: 0o755 });
  const spec = join(dir, 'rootforge.yaml');
  writeFileSync(spec, `from: scratch\nagent: ${agent}\ninit: agent\nhostname: box\njournal: false\noutput: box.ext4\n`);
  const archive = join(dir, 'box.tar');
  const r = await rootforge(['build', spec, '--format', `docker-archive:${archive}:box:v1`, '--push', `docker://${reg.host}/build/box:v1`, '--creds', 'user:pass', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { output: string; format: { layerDigest: string }; push: { manifestDigest: string; imageDigest: string; annotations: Record<string, string> } };
  assert.equal(out.push.imageDigest, `sha256:${sha(out.output)}`);
  assert.equal(out.push.annotations[ANNOTATION.specDigest], `sha256:${createHash('sha256').update(readFileSync(spec)).digest('hex')}`);
  const inspect = await runAsync('skopeo', ['inspect', `docker-archive:${archive}`]);
  assert.deepEqual((JSON.parse(inspect) as { Layers: string[] }).Layers, [out.format.layerDigest]);
  const unnamed = join(dir, 'unnamed.tar');
  const r2 = await rootforge(['build', spec, '-o', join(dir, 'My Box.ext4'), '--format', `docker-archive:${unnamed}`, '--quiet']);
  assert.equal(r2.code, 0, r2.stderr);
  const manifest = JSON.parse(await runAsync('tar', ['-xOf', unnamed, 'manifest.json'])) as { RepoTags: string[] }[];
  assert.deepEqual(manifest[0]!.RepoTags, ['my-box:latest'], 'named after the image file');
  // skopeo finds the image by that name too.
  await runAsync('skopeo', ['inspect', `docker-archive:${unnamed}:my-box:latest`]);
  const pulled = join(dir, 'pulled.ext4');
  const p = await rootforge(['pull', `docker://${reg.host}/build/box@${out.push.manifestDigest}`, '-o', pulled, '--creds', 'user:pass', '--cache-dir', newCache()]);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(sha(pulled), sha(out.output));
});

test('pull -o of a container image converts it, as convert does', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const why = registryToolsMissing();
  if (why) return skipOrFail(t, why);
  const layout = makeImage(join(work, 'layout'), 'v1', [{ 'etc/hello': 'hello from a layer\n' }], { cmd: ['/bin/sh'] });
  await pushImageAsync(layout, 'v1', `${reg.host}/images/app:v1`, { creds: 'user:pass' });
  const out = join(work, 'container.ext4');
  const r = await rootforge(['pull', `docker://${reg.host}/images/app:v1`, '-o', out, '--creds', 'user:pass', '--cache-dir', newCache(), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const img = await Ext4Image.open(out);
  try {
    assert.equal((await img.readData(await img.lookup('etc/hello'))).toString(), 'hello from a layer\n');
  } finally {
    await img.close();
  }
});

test('--mount-from: chunks another repository has are mounted, not uploaded', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  await pushArtifact(v1, parseDockerReference(`${proxy.host}/other/base:v1`), { creds, packBytes, frameBytes });
  proxy.reset();
  const r = await pushArtifact(v2, parseDockerReference(`${proxy.host}/other/derived:v2`), { creds, packBytes, frameBytes, mountFrom: ['other/base'] });
  assert.ok(r.mounted > 0, `packs mounted: ${r.mounted}`);
  assert.ok(r.newChunks < r.chunks / 4, `${r.newChunks} new chunks of ${r.chunks}`);
  assert.ok(proxy.received <= 0.2 * r.blobBytes, `uploaded ${proxy.received} of ${r.blobBytes}`);
  const out = join(work, 'derived.ext4');
  await pullArtifact(parseDockerReference(`${proxy.host}/other/derived:v2`), out, { cacheDir: newCache(), creds });
  assert.equal(sha(out), sha(v2));
});
