/**
 * The registry client against small fake servers, for what a real registry will not do on
 * demand: redirects to another host (Authorization must not follow), Range ignored, 503s,
 * schema 1 and lying digests, refused connections; plus WWW-Authenticate parsing and the
 * Docker config credential lookup.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCredentials, parseChallenges, parseCreds } from '../../src/oci/auth.js';
import { BlobStore } from '../../src/oci/blobstore.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { isLoopback } from '../../src/util/http.js';
import { RegistryClient } from '../../src/oci/registry-client.js';
import { freePort } from '../helpers/registry.js';
import { isRootforgeError } from '../../src/errors.js';

const work = mkdtempSync(join(tmpdir(), 'rf-regclient-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function serve(t: { after(fn: () => Promise<void>): void }, handler: Handler): Promise<{ port: number; seen: http.IncomingHttpHeaders[]; paths: string[] }> {
  const seen: http.IncomingHttpHeaders[] = [];
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    paths.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, seen, paths };
}

const blob = randomBytes(100_000);
const blobDigest = sha256Digest(blob);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blobDigest, size: blob.length },
    layers: [],
  }),
);
const manifestDigest = sha256Digest(manifest);
const opts = { backoffMs: 5, dockerConfigDir: join(work, 'no-docker-config') };

test('WWW-Authenticate challenges are parsed with quoted, escaped and unquoted values', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="a \\"quoted\\" realm", charset="UTF-8"'), [{ scheme: 'basic', params: { realm: 'a "quoted" realm', charset: 'UTF-8' } }]);
  assert.deepEqual(parseChallenges(['Basic realm=x', 'Bearer realm=https://h/t, scope="a b"']), [
    { scheme: 'basic', params: { realm: 'x' } },
    { scheme: 'bearer', params: { realm: 'https://h/t', scope: 'a b' } },
  ]);
  assert.deepEqual(parseChallenges('Negotiate'), [{ scheme: 'negotiate', params: {} }]);
  assert.deepEqual(parseChallenges(undefined), []);
  assert.deepEqual(parseChallenges('  ,, '), []);
});

test('--creds USER:PASSWORD splits at the first colon', () => {
  assert.deepEqual(parseCreds('u:p:a:ss'), { username: 'u', password: 'p:a:ss' });
  assert.throws(() => parseCreds('nocolon'), (e) => isRootforgeError(e, 'OPTION_INVALID') && !e.message.includes('nocolon'));
  assert.throws(() => parseCreds(':pw'), (e) => isRootforgeError(e, 'OPTION_INVALID') && !e.message.includes('pw'));
});

test('credentials: --creds first, then config.json auths under the keys Docker uses', async () => {
  const dir = join(work, 'docker-config');
  mkdirSync(dir, { recursive: true });
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') },
        'reg.example.com:5000': { auth: b64('a:1') },
        'https://other.example.com': { username: 'b', password: '2' },
        'empty.example.com': { auth: '' },
      },
      credHelpers: { 'helped.example.com': 'ecr-login' },
    }),
  );
  assert.deepEqual(await findCredentials('docker.io', { dockerConfigDir: dir }), { creds: { username: 'hubuser', password: 'hub:pass' } });
  assert.deepEqual(await findCredentials('reg.example.com:5000', { dockerConfigDir: dir }), { creds: { username: 'a', password: '1' } });
  assert.deepEqual(await findCredentials('other.example.com', { dockerConfigDir: dir }), { creds: { username: 'b', password: '2' } });
  assert.deepEqual(await findCredentials('empty.example.com', { dockerConfigDir: dir }), {});
  assert.deepEqual(await findCredentials('helped.example.com', { dockerConfigDir: dir }), { helper: 'docker-credential-ecr-login' });
  assert.deepEqual(await findCredentials('reg.example.com:5000', { dockerConfigDir: dir, creds: { username: 'x', password: 'y' } }), { creds: { username: 'x', password: 'y' } });
  assert.deepEqual(await findCredentials('x.io', { dockerConfigDir: join(work, 'absent') }), {});
  const bad = join(work, 'bad-config');
  mkdirSync(bad);
  writeFileSync(join(bad, 'config.json'), '{not json');
  await assert.rejects(findCredentials('x.io', { dockerConfigDir: bad }), (e) => isRootforgeError(e, 'OCI_AUTH_FAILED') && /not valid JSON/.test(e.message));
  // DOCKER_CONFIG is the default directory.
  const saved = process.env['DOCKER_CONFIG'];
  process.env['DOCKER_CONFIG'] = dir;
  try {
    assert.deepEqual(await findCredentials('reg.example.com:5000', {}), { creds: { username: 'a', password: '1' } });
  } finally {
    if (saved === undefined) delete process.env['DOCKER_CONFIG'];
    else process.env['DOCKER_CONFIG'] = saved;
  }
});

test('loopback hosts are the only ones plain HTTP is used for', () => {
  for (const h of ['localhost', 'LOCALHOST', 'x.localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) assert.equal(isLoopback(h), true, h);
  for (const h of ['10.0.0.1', '128.0.0.1', 'example.com', 'localhost.example.com', '::2', '0.0.0.0']) assert.equal(isLoopback(h), false, h);
});

test('a blob redirected to another host is fetched there without the Authorization header', async (t) => {
  const storage = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
  });
  const basic = 'Basic ' + Buffer.from('user:secret').toString('base64');
  const registry = await serve(t, (req, res) => {
    if (req.headers.authorization !== basic) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"', 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    // "localhost" is another origin than "127.0.0.1", though the same machine.
    res.writeHead(307, { location: `http://localhost:${storage.port}/signed/blob?X-Signature=abc` }).end();
  });
  const client = new RegistryClient(`127.0.0.1:${registry.port}`, { ...opts, creds: { username: 'user', password: 'secret' } });
  t.after(() => client.close());
  const store = new BlobStore(join(work, 'redirect-store'));
  const r = await store.fetch(blobDigest, blob.length, (offset) => client.blobStream('repo', blobDigest, offset));
  assert.ok(readFileSync(r.path).equals(blob));
  assert.equal(storage.seen.length, 1);
  assert.equal(storage.seen[0]!.authorization, undefined);
  assert.equal(storage.paths[0], '/signed/blob?X-Signature=abc');
  assert.equal(registry.seen.at(-1)!.authorization, basic);
});

test('a redirect to a non-loopback plain-HTTP URL is refused', async (t) => {
  const registry = await serve(t, (_req, res) => {
    res.writeHead(302, { location: 'http://storage.example.invalid/blob' }).end();
  });
  const client = new RegistryClient(`127.0.0.1:${registry.port}`, opts);
  t.after(() => client.close());
  await assert.rejects(client.blobStream('repo', blobDigest), (e) => isRootforgeError(e, 'OCI_REGISTRY_ERROR') && /only used for loopback/.test(e.message));
});

test('Range: 206 gives the asked offset; a 200 says the body starts at 0', async (t) => {
  let honour = true;
  const registry = await serve(t, (req, res) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && honour) {
      const start = Number(m[1]);
      res.writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'content-length': String(blob.length - start) }).end(blob.subarray(start));
    } else {
      res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
    }
  });
  const client = new RegistryClient(`127.0.0.1:${registry.port}`, opts);
  t.after(() => client.close());
  const a = await client.blobStream('repo', blobDigest, 1000);
  assert.equal(a.offset, 1000);
  assert.equal(a.size, blob.length);
  for await (const _ of a.body); // drain
  assert.equal(registry.seen.at(-1)!.range, 'bytes=1000-');
  honour = false;
  const b = await client.blobStream('repo', blobDigest, 1000);
  assert.equal(b.offset, 0);
  for await (const _ of b.body); // drain
  const c = await client.blobStream('repo', blobDigest, 0);
  assert.equal(registry.seen.at(-1)!.range, undefined);
  for await (const _ of c.body); // drain
});

test('503s are retried (bounded); the last one is reported with the registry message', async (t) => {
  let failures = 2;
  const registry = await serve(t, (_req, res) => {
    if (failures-- > 0) {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': manifestDigest }).end(manifest);
  });
  const client = new RegistryClient(`127.0.0.1:${registry.port}`, opts);
  t.after(() => client.close());
  const m = await client.getManifest('repo', 'v1');
  assert.equal(m.digest, manifestDigest);
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.ok(m.bytes.equals(manifest));
  // ping + 3 manifest GETs
  assert.equal(registry.paths.filter((p) => p.includes('/manifests/')).length, 3);

  failures = 100;
  const before = registry.paths.length;
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_REGISTRY_ERROR') && /answered 503: UNAVAILABLE try later/.test(e.message));
  assert.equal(registry.paths.length - before, 3);
});

test('manifests: digest checks, schema 1 refused, 404 is OCI_NOT_FOUND with the registry code', async (t) => {
  let mode = 'lying-header';
  const registry = await serve(t, (_req, res) => {
    if (mode === 'lying-header') {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': 'sha256:' + '0'.repeat(64) }).end(manifest);
    } else if (mode === 'schema1') {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' }).end('{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}');
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":"x"}]}');
    }
  });
  const client = new RegistryClient(`127.0.0.1:${registry.port}`, opts);
  t.after(() => client.close());
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH') && /registry says sha256:0000/.test(e.message));
  await assert.rejects(client.getManifest('repo', 'sha256:' + '1'.repeat(64)), (e) => isRootforgeError(e, 'OCI_DIGEST_MISMATCH'));
  mode = 'schema1';
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_UNSUPPORTED_MEDIA_TYPE') && /schema 1/.test(e.message));
  mode = '404';
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_NOT_FOUND') && e.message.includes('MANIFEST_UNKNOWN manifest unknown') && e.message.includes(`127.0.0.1:${registry.port}/repo:v1`));
});

test('a 401 without a challenge, or with an unknown scheme, is OCI_AUTH_FAILED', async (t) => {
  let header: string | undefined;
  const registry = await serve(t, (_req, res) => {
    res.writeHead(401, header !== undefined ? { 'www-authenticate': header } : {}).end();
  });
  const client = new RegistryClient(`127.0.0.1:${registry.port}`, opts);
  t.after(() => client.close());
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_AUTH_FAILED') && /without a WWW-Authenticate/.test(e.message));
  header = 'Negotiate';
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_AUTH_FAILED') && /unsupported authentication scheme/.test(e.message));
  header = 'Basic realm="x"';
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_AUTH_FAILED') && /no credentials/.test(e.message));
});

test('nothing listening: OCI_NETWORK after bounded retries', async (t) => {
  const port = await freePort();
  const client = new RegistryClient(`127.0.0.1:${port}`, opts);
  t.after(() => client.close());
  const t0 = Date.now();
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_NETWORK') && /ECONNREFUSED/.test(e.message));
  assert.ok(Date.now() - t0 < 5000);
});

test('a server that stops answering times out as OCI_NETWORK', async (t) => {
  const registry = await serve(t, () => {
    // Never answers.
  });
  const client = new RegistryClient(`127.0.0.1:${registry.port}`, { ...opts, timeoutMs: 200, attempts: 2 });
  t.after(() => client.close());
  await assert.rejects(client.getManifest('repo', 'v1'), (e) => isRootforgeError(e, 'OCI_NETWORK') && /ETIMEDOUT/.test(e.message));
});
