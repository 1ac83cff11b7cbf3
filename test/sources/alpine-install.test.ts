/**
 * The apk installer on its own (no oracle needed): HTTP repositories, every check that must
 * stop a build (tampered index, package, control stream, data stream and single file, unknown
 * key, unsatisfiable world, conflicts), each a typed error with no image left behind; the
 * resolver's choices; determinism.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { buildIndex, buildPackage, featurePackages, FEATURE_WORLD, makeKey, writeRepo, type BuiltPkg, type PkgDef, type TestKey } from '../helpers/apk-repo.js';
import { rootforgeAdd } from '../helpers/apk-oracle.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';
import { isRootforgeError } from '../../src/errors.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { compareVersions, GREATER, LESS, EQUAL, parseDep, versionMatches } from '../../src/sources/alpine/version.js';

let work: string;
let key: TestKey;
let defs: PkgDef[];
let pkgs: BuiltPkg[];
let repo: string;
let keyFile: string;
let server: StaticServer;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'rf-apk-i-'));
  key = makeKey();
  defs = featurePackages();
  pkgs = defs.map((d) => buildPackage(d, key));
  repo = writeRepo(join(work, 'repo'), pkgs, key);
  keyFile = join(work, key.name);
  writeFileSync(keyFile, key.publicPem);
  server = await serveDir(repo);
});

after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

let n = 0;
/** Installs from a repository variant; returns the error (and checks no image was left). */
async function failing(repoDir: string, world = FEATURE_WORLD, keys = [keyFile]): Promise<{ code: string; message: string }> {
  const out = join(work, `fail-${++n}.ext4`);
  try {
    await rootforgeAdd(out, { repositories: [repoDir], packages: world, keys, firstBoot: false });
  } catch (e) {
    assert.ok(isRootforgeError(e), `not a RootforgeError: ${(e as Error).stack}`);
    assert.equal(existsSync(out), false, 'no image is left behind');
    assert.match(e.message, /^Cannot /);
    return { code: e.code, message: e.message };
  }
  assert.fail('the install succeeded');
}

/** A copy of the repository with one package rebuilt by `change`, index re-signed unless told. */
function variant(name: string, change: (pkgs: BuiltPkg[]) => BuiltPkg[], index?: (pkgs: BuiltPkg[]) => Buffer): string {
  const changed = change(pkgs.map((p) => ({ ...p })));
  return writeRepo(join(work, name), changed, key, 'x86_64', index?.(changed));
}

test('versions compare as apk compares them', () => {
  const cases: Array<[string, string, number]> = [
    ['1.0', '1.0', EQUAL], ['1.10', '1.9', GREATER], ['1.01', '1.1', LESS], ['1.0_rc1', '1.0', LESS], ['1.0_p1', '1.0', GREATER],
    ['1.0-r1', '1.0-r0', GREATER], ['1.0a', '1.0', GREATER], ['2.0_alpha', '2.0_beta', LESS], ['1.2.3', '1.2', GREATER], ['1.0_git20240101', '1.0', GREATER],
  ];
  for (const [a, b, want] of cases) assert.equal(compareVersions(a, b), want, `${a} vs ${b}`);
  assert.ok(versionMatches('1.2.3-r0', parseDep('x~1.2')!));
  assert.ok(!versionMatches('1.3.0-r0', parseDep('x~1.2')!));
  assert.ok(versionMatches('2.0', parseDep('x>=1.10')!) && !versionMatches('1.9', parseDep('x>=1.10')!));
  assert.ok(versionMatches('1.0', parseDep('x<1.0_p1')!) && !versionMatches('1.0', parseDep('x<1.0')!));
  assert.equal(parseDep('!foo')!.conflict, true);
});

test('installs over HTTP: prioritised provider, newest version, install_if, replaces, owners', async () => {
  const out = join(work, 'http.ext4');
  const res = await rootforgeAdd(out, { repositories: [server.url], packages: FEATURE_WORLD, keys: [keyFile] });
  const names = res.installed.map((p) => `${p.name}-${p.version}`);
  assert.deepEqual(names.slice(0, 1), ['base-files-1.0-r0'], 'dependencies first');
  assert.ok(names.indexOf('libfoo-2.1.0-r1') < names.indexOf('tool-1.10-r0'));
  assert.ok(names.includes('dash-lite-2.0-r0') && !names.some((x) => x.startsWith('mksh-lite')));
  assert.ok(names.includes('multi-1.10-r0') && names.includes('tool-doc-1.10-r0'));
  assert.ok(server.requests.includes('/x86_64/APKINDEX.tar.gz') && server.requests.includes('/x86_64/tool-1.10-r0.apk'));
  // queued for the first boot: tool's post-install, and the indexer trigger for /usr/share
  assert.deepEqual(res.pending, ['tool-1.10-r0.post-install', 'indexer-3-r0.trigger']);
});

test('pinned versions (a lock) are installed exactly; a pin the repository lacks fails', async () => {
  const multiOld = pkgs.find((p) => p.def.name === 'multi' && p.def.version === '1.2-r0')!;
  const first = await rootforgeAdd(join(work, 'unpinned.ext4'), { repositories: [repo], packages: FEATURE_WORLD, keys: [keyFile], firstBoot: false });
  const pins = new Map(first.installed.map((p) => [p.name, { version: p.version, checksum: p.checksum }]));
  pins.set('multi', { version: '1.2-r0', checksum: multiOld.identity });
  const pinned = await rootforgeAdd(join(work, 'pinned.ext4'), { repositories: [repo], packages: FEATURE_WORLD, keys: [keyFile], pins, firstBoot: false });
  assert.ok(pinned.installed.some((p) => p.name === 'multi' && p.version === '1.2-r0'));
  pins.set('multi', { version: '9.9-r0', checksum: multiOld.identity });
  await assert.rejects(rootforgeAdd(join(work, 'pinned-bad.ext4'), { repositories: [repo], packages: FEATURE_WORLD, keys: [keyFile], pins, firstBoot: false }), (e) => isRootforgeError(e, 'APK_LOCK_MISMATCH'));
});

test('same inputs, same image bytes', async () => {
  const a = join(work, 'det-a.ext4');
  const b = join(work, 'det-b.ext4');
  await rootforgeAdd(a, { repositories: [server.url], packages: FEATURE_WORLD, keys: [keyFile] }, 1700000000);
  await rootforgeAdd(b, { repositories: [server.url], packages: [...FEATURE_WORLD].reverse(), keys: [keyFile] }, 1700000000);
  assert.ok(readFileSync(a).equals(readFileSync(b)));
});

test('an unknown signing key: APK_UNTRUSTED', async () => {
  const other = makeKey('someone-else.rsa.pub');
  const f = join(work, other.name);
  writeFileSync(f, other.publicPem);
  const e = await failing(repo, FEATURE_WORLD, [f]);
  assert.equal(e.code, 'APK_UNTRUSTED');
  assert.match(e.message, /rootforge-test-0001\.rsa\.pub/);
});

test('a tampered index: APK_BAD_SIGNATURE (RSA, RSA256 and RSA512 signatures)', async () => {
  for (const sigType of ['RSA', 'RSA256', 'RSA512'] as const) {
    // a good index with this signature type installs
    const good = variant(`idx-good-${sigType}`, (p) => p, (p) => buildIndex(p, key, { sigType }));
    await rootforgeAdd(join(work, `idx-${sigType}.ext4`), { repositories: [good], packages: ['docs'], keys: [keyFile], firstBoot: false });
    const bad = variant(`idx-bad-${sigType}`, (p) => p, (p) =>
      buildIndex(p, key, {
        sigType,
        tamper: (gz) => {
          const text = gunzipSync(gz).toString('latin1').replace('P:docs', 'P:docz');
          return gzipSync(Buffer.from(text, 'latin1'));
        },
      }),
    );
    assert.equal((await failing(bad, ['docs'])).code, 'APK_BAD_SIGNATURE');
  }
});

test('a package whose control stream is not the one the index lists: APK_CHECKSUM_MISMATCH', async () => {
  const bad = variant('ctl', (ps) =>
    ps.map((p) => (p.def.name === 'docs' ? { ...buildPackage({ ...p.def, description: 'changed' }, key), identity: p.identity } : p)),
  (ps) => {
    // the index keeps the original identity of docs
    return buildIndex(ps, key);
  });
  const e = await failing(bad, ['docs']);
  assert.equal(e.code, 'APK_CHECKSUM_MISMATCH');
  assert.match(e.message, /control stream/);
});

test('a data stream that does not match datahash: APK_CHECKSUM_MISMATCH', async () => {
  const bad = variant('data', (ps) =>
    ps.map((p) => {
      if (p.def.name !== 'docs') return p;
      const other = buildPackage({ ...p.def, files: [...p.def.files.slice(0, -1), { path: 'usr/share/README', content: 'evil\n' }] }, key);
      // the original signed control (with the original datahash) + another data stream
      return { ...p, apk: Buffer.concat([p.apk.subarray(0, p.apk.length - p.dataGz.length), other.dataGz]) };
    }),
  );
  const e = await failing(bad, ['docs']);
  assert.equal(e.code, 'APK_CHECKSUM_MISMATCH');
  assert.match(e.message, /datahash/);
});

test('a file that does not match its APK-TOOLS.checksum.SHA1 (everything else re-signed): APK_CHECKSUM_MISMATCH', async () => {
  const bad = variant('file', (ps) =>
    ps.map((p) => (p.def.name !== 'docs' ? p : buildPackage({ ...p.def, files: [...p.def.files.slice(0, -1), { path: 'usr/share/README', content: 'evil\n', forceSha1: '0123456789abcdef0123456789abcdef01234567' }] }, key))),
  );
  const e = await failing(bad, ['docs']);
  assert.equal(e.code, 'APK_CHECKSUM_MISMATCH');
  assert.match(e.message, /usr\/share\/README/);
});

test('a bad package signature by a trusted key: APK_BAD_SIGNATURE', async () => {
  const bad = variant('sig', (ps) =>
    ps.map((p) => {
      if (p.def.name !== 'docs') return p;
      const apk = Buffer.from(p.apk);
      const sigLen = apk.length - p.controlGz.length - p.dataGz.length;
      const sig = gunzipSync(apk.subarray(0, sigLen));
      sig[600] = sig[600]! ^ 0xff; // a byte of the signature itself
      return { ...p, apk: Buffer.concat([gzipSync(sig), p.controlGz, p.dataGz]) };
    }),
  );
  assert.equal((await failing(bad, ['docs'])).code, 'APK_BAD_SIGNATURE');
});

test('a corrupt package (truncated): APK_BAD_PACKAGE or a checksum error', async () => {
  const bad = variant('cut', (ps) => ps.map((p) => (p.def.name === 'docs' ? { ...p, apk: p.apk.subarray(0, p.apk.length - 20) } : p)));
  const e = await failing(bad, ['docs']);
  assert.ok(['APK_BAD_PACKAGE', 'APK_CHECKSUM_MISMATCH'].includes(e.code), e.code);
});

test('unsatisfiable worlds and conflicts are typed errors naming the package', async () => {
  let e = await failing(repo, ['nosuchpkg']);
  assert.equal(e.code, 'APK_UNSATISFIABLE');
  assert.match(e.message, /nosuchpkg/);
  e = await failing(repo, ['multi>=2']);
  assert.equal(e.code, 'APK_UNSATISFIABLE');
  e = await failing(repo, ['tool', 'anti-tool']);
  assert.equal(e.code, 'APK_CONFLICT');
  e = await failing(repo, ['tool', 'clash']);
  assert.equal(e.code, 'APK_FILE_CONFLICT');
  assert.match(e.message, /usr\/bin\/tool/);
  e = await failing(repo, ['tool', '!dash-lite']);
  assert.equal(e.code, 'APK_CONFLICT');
});

test('busybox applet links are made at build time from /etc/busybox-paths.d; its script still waits for the first boot', async () => {
  const bb: PkgDef = {
    name: 'busybox',
    version: '1.36.1-r29',
    files: [
      { path: 'bin', type: 'dir' },
      { path: 'bin/busybox', content: 'ELF…', mode: 0o755 },
      { path: 'etc', type: 'dir' },
      { path: 'etc/busybox-paths.d', type: 'dir' },
      { path: 'etc/busybox-paths.d/busybox', content: 'bin/ls\nusr/bin/[[\nsbin/init\nbin/busybox\n' },
    ],
    scripts: { 'post-install': '#!/bin/busybox sh\n/bin/busybox --install -s\n' },
  };
  const dir = writeRepo(join(work, 'bb'), [buildPackage(bb, key)], key);
  const out = join(work, 'bb.ext4');
  const res = await rootforgeAdd(out, { repositories: [dir], packages: ['busybox'], keys: [keyFile] });
  assert.deepEqual(res.native, ['busybox: 3 applet links']);
  assert.deepEqual(res.pending, ['busybox-1.36.1-r29.post-install']);
  const image = await Ext4Image.open(out);
  try {
    for (const p of ['/bin/ls', '/usr/bin/[[', '/sbin/init']) assert.equal(await image.readlink(await image.lookup(p)), '/bin/busybox', p);
    assert.equal((await image.lookup('/bin/busybox')).kind, 'file', 'an existing path is left alone');
  } finally {
    await image.close();
  }
});

test('downloaded packages are cached by identity; a damaged cache entry is downloaded again', async () => {
  const cache = join(work, 'pkg-cache');
  const before = server.requests.filter((r) => r.endsWith('.apk')).length;
  await rootforgeAdd(join(work, 'c1.ext4'), { repositories: [server.url], packages: ['docs'], keys: [keyFile], cacheDir: cache });
  const mid = server.requests.filter((r) => r.endsWith('.apk')).length;
  assert.equal(mid - before, 1);
  await rootforgeAdd(join(work, 'c2.ext4'), { repositories: [server.url], packages: ['docs'], keys: [keyFile], cacheDir: cache });
  assert.equal(server.requests.filter((r) => r.endsWith('.apk')).length, mid, 'the second build downloads nothing');
  const docs = pkgs.find((p) => p.def.name === 'docs')!;
  const entry = join(cache, 'apk', `${docs.identity.replace(/\//g, '_').replace(/\+/g, '-')}.apk`);
  const other = pkgs.find((p) => p.def.name === 'multi')!;
  writeFileSync(entry, other.apk);
  await rootforgeAdd(join(work, 'c3.ext4'), { repositories: [server.url], packages: ['docs'], keys: [keyFile], cacheDir: cache });
  assert.equal(server.requests.filter((r) => r.endsWith('.apk')).length, mid + 1, 'downloaded again');
  assert.ok(readFileSync(entry).equals(docs.apk), 'and the cache entry repaired');
});
