/**
 * Docker's Bearer token flow end to end: a real registry configured for `auth: token` trusting
 * a certificate made with openssl, and a token server of ours signing ES256 JWTs with an `x5c`
 * header. Anonymous pulls of a private repository are refused, credentials get a token, a
 * public repository is pulled anonymously, and the token is fetched once per pull.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDockerReference, pullImage, type PullOptions, type PullResult } from '../../src/oci/registry.js';
import { isRootforgeError } from '../../src/errors.js';
import { cleanups, layoutDigest, makeImage, pushImageAsync, registryToolsMissing, startRegistry, type RegistryServer } from '../helpers/registry.js';
import { startTokenServer, type TokenServer } from '../helpers/registry-token.js';

const skip = registryToolsMissing();
const work = mkdtempSync(join(tmpdir(), 'rf-token-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const layout = join(work, 'layout');
const servers = cleanups();
after(() => servers.run());
let registry: RegistryServer;
let tokens: TokenServer;
let cacheN = 0;

before(async () => {
  if (skip) return;
  makeImage(layout, 'v1', [{ 'etc/hello': 'hello\n' }, { 'etc/world': 'world\n' }]);
  tokens = await startTokenServer(servers, { users: { alice: 'wonderland' }, anonymous: { 'public/app': ['pull'] } });
  registry = await startRegistry(servers, { auth: { token: tokens.auth } });
  // skopeo does the same token dance to push (asking for pull,push).
  await pushImageAsync(layout, 'v1', `${registry.host}/private/app:v1`, { creds: 'alice:wonderland' });
  await pushImageAsync(layout, 'v1', `${registry.host}/public/app:v1`, { creds: 'alice:wonderland' });
});

function pull(ref: string, options: Partial<PullOptions> = {}): Promise<PullResult> {
  return pullImage(parseDockerReference(ref), { cacheDir: join(work, `cache${cacheN++}`), dockerConfigDir: join(work, 'no-config'), backoffMs: 10, ...options });
}

test('anonymous pull of a private repository: the token grants nothing, OCI_AUTH_FAILED', { skip }, async () => {
  const n = tokens.requests.length;
  await assert.rejects(pull(`${registry.host}/private/app:v1`), (e) => isRootforgeError(e, 'OCI_AUTH_FAILED') && e.message.includes(registry.host) && /no credentials/.test(e.message));
  const asked = tokens.requests.slice(n);
  assert.deepEqual(asked.map((r) => [r.user, r.status, r.service]), [[undefined, 200, tokens.auth.service]]);
  assert.ok(asked[0]!.scopes.includes('repository:private/app:pull'), asked[0]!.scopes.join(' '));
});

test('with credentials: one token for the whole pull, from the realm, for the pull scope', { skip }, async () => {
  const n = tokens.requests.length;
  const img = await pull(`${registry.host}/private/app:v1`, { creds: { username: 'alice', password: 'wonderland' } });
  assert.equal(img.manifestDigest, layoutDigest(layout, 'v1'));
  assert.deepEqual(img.fromCache, { blobsFetched: 3, blobsCached: 0 });
  for (const layer of img.layers) for await (const _ of await layer.open()); // drain: digest-checked
  assert.deepEqual(tokens.requests.slice(n).map((r) => [r.user, r.status, r.scopes.join(' ')]), [['alice', 200, 'repository:private/app:pull']]);
});

test('credentials from a Docker config work for tokens too; a wrong password is OCI_AUTH_FAILED', { skip }, async () => {
  const n = tokens.requests.length;
  await assert.rejects(pull(`${registry.host}/private/app:v1`, { creds: { username: 'alice', password: 'looking-glass' } }), (e) => {
    assert.ok(isRootforgeError(e, 'OCI_AUTH_FAILED'), String(e));
    assert.ok(/"alice" were rejected/.test(e.message) && !e.message.includes('looking-glass'), e.message);
    return true;
  });
  assert.deepEqual(tokens.requests.slice(n).map((r) => [r.user, r.status]), [['alice', 401]]);

  const dir = join(work, 'docker-config');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [`https://${registry.host}`]: { username: 'alice', password: 'wonderland' } } }));
  const img = await pull(`${registry.host}/private/app:v1`, { dockerConfigDir: dir });
  assert.equal(img.manifestDigest, layoutDigest(layout, 'v1'));
  assert.equal(tokens.requests.at(-1)!.user, 'alice');
});

test('a repository the token server opens to anonymous users is pulled without credentials', { skip }, async () => {
  const img = await pull(`${registry.host}/public/app:v1`);
  assert.equal(img.manifestDigest, layoutDigest(layout, 'v1'));
  assert.equal(tokens.requests.at(-1)!.user, undefined);
});
