/**
 * The Debian source's pure parts: mmdebstrap's argv, the hook's records, lock files, the deb822
 * file for extra repositories (armor checked against gpg's), apt proxy settings, error
 * classification, and the spec keys. The real mmdebstrap runs in debian-build.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isRootforgeError } from '../../src/errors.js';
import { checkLock, lockDifferences, lockedIncludes, lockInputs, makeLock, type LockFile } from '../../src/sources/debian/lock.js';
import { armor, DEB_CACHE_IN, DEB_CACHE_OUT, extraSourcesText, mmdebstrapArgs, mmdebstrapError, PACKAGES_HOOK } from '../../src/sources/debian/mmdebstrap.js';
import { debianSuite, resolveDebianOptions } from '../../src/sources/debian/options.js';
import { checkForeignArch, parseAptProxy } from '../../src/sources/debian/host.js';
import { mainRelease, parseHookOutput, parseReleases, releaseDate } from '../../src/sources/debian/records.js';
import { resolveSpec } from '../../src/spec/load.js';
import { skipOrFail } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'rf-debian-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const NOPROXY = { http: undefined, https: undefined };

test('from: debian:SUITE and the package keys resolve with their defaults', () => {
  assert.equal(debianSuite('debian'), 'stable');
  assert.equal(debianSuite('debian:trixie'), 'trixie');
  assert.equal(debianSuite('tar:x'), undefined);
  assert.throws(() => debianSuite('debian:Trixie!'), (e) => isRootforgeError(e, 'SPEC_INVALID'));
  const s = resolveSpec({ from: 'debian:bookworm', packages: ['git', 'git', 'curl'], repositories: [{ uri: 'https://deb.nodesource.com/node_20.x/', key: 'ns.asc' }] }, '/specs', 'dev');
  assert.equal(s.from, 'debian:bookworm', 'not made a path');
  assert.deepEqual(s.debian?.packages, ['git', 'curl']);
  assert.equal(s.debian?.variant, 'minbase');
  assert.deepEqual(s.debian?.components, ['main']);
  assert.equal(s.debian?.mirror, 'http://deb.debian.org/debian');
  assert.deepEqual(s.debian?.repositories, [{ uri: 'https://deb.nodesource.com/node_20.x', suite: 'bookworm', components: ['main'], key: '/specs/ns.asc' }]);
  assert.equal(s.lockPath, '/specs/dev.lock.json');
  assert.equal(s.lockExplicit, false);
  assert.equal(resolveSpec({ from: 'debian', lock: 'pins/x.json' }, '/s', 'a').lockPath, '/s/pins/x.json');
  // package keys on a base that has no packages, and bad values, name the key
  assert.throws(() => resolveSpec({ from: 'tar:x.tar', variant: 'minbase' }, '/', 'x'), /spec\.variant needs a package-set base/);
  assert.throws(() => resolveSpec({ from: 'tar:x.tar', packages: ['git'], repositories: [{ uri: 'https://deb.example.org/debian' }] }, '/', 'x'), /spec\.repositories of an Alpine package set are URLs or directories/);
  assert.throws(() => resolveSpec({ from: 'debian:trixie', variant: 'tiny' }, '/', 'x'), /spec\.variant must be one of/);
  assert.throws(() => resolveSpec({ from: 'debian:trixie', packages: ['Bad Name'] }, '/', 'x'), /spec\.packages\[0\] must be a Debian package/);
  assert.throws(() => resolveSpec({ from: 'debian:trixie', mirror: 'ftp://x' }, '/', 'x'), /spec\.mirror has the wrong form/);
  assert.throws(() => resolveSpec({ from: 'debian:trixie', repositories: [{ key: 'k' }] }, '/', 'x'), /spec\.repositories\[0\]\.uri is required/);
});

test('mmdebstrap argv: mode, variant, no recommends, proxy, strip as dpkg excludes, the hook, the pipe', () => {
  const o = resolveDebianOptions('debian:trixie', { packages: ['git', 'curl'], components: ['main', 'contrib'] }, '/')!;
  const args = mmdebstrapArgs(o, { mode: 'unshare', format: 'tar', architecture: 'arm64', strip: ['docs', 'caches'], proxy: { http: 'http://proxy:3128', https: undefined } });
  assert.deepEqual(args.slice(0, 5), ['--mode=unshare', '--format=tar', '--variant=minbase', '--architectures=arm64', '--components=main,contrib']);
  assert.ok(args.includes('--aptopt=APT::Install-Recommends "false"'));
  assert.ok(args.includes('--aptopt=Acquire::http::Proxy "http://proxy:3128"'));
  assert.ok(args.includes('--dpkgopt=path-exclude=/usr/share/doc/*'));
  assert.ok(!args.some((a) => a.includes('/usr/share/man')), 'man pages are kept unless stripped');
  assert.ok(args.includes('--include=git,curl'));
  assert.ok(args.includes(`--customize-hook=${PACKAGES_HOOK}`));
  assert.deepEqual(args.slice(-3), ['trixie', '-', 'http://deb.debian.org/debian'], 'the tar goes to stdout');
  const locked = mmdebstrapArgs({ ...o, recommends: true }, { mode: 'root', format: 'null', architecture: 'amd64', strip: [], proxy: NOPROXY, lockedIncludes: ['a=1', 'b=2'], extraSources: '/t/x.sources' });
  assert.ok(locked.includes('--variant=custom') && locked.includes('--include=a=1,b=2') && locked.includes('--format=null'));
  assert.ok(!locked.some((a) => a.includes('Install-Recommends')));
  assert.deepEqual(locked.slice(-4), ['trixie', '/dev/null', 'http://deb.debian.org/debian', '/t/x.sources']);
  assert.ok(!locked.some((a) => a.includes('deb-cache')), 'no .deb cache unless asked');
  const cached = mmdebstrapArgs(o, { mode: 'root', format: 'tar', architecture: 'amd64', strip: [], proxy: NOPROXY, debCache: '/c/debs' });
  assert.ok(cached.includes('--skip=essential/unlink') && cached.includes(`--setup-hook=${DEB_CACHE_IN}`) && cached.includes(`--customize-hook=${DEB_CACHE_OUT}`));
});

test('the hook output: installed packages joined with their index stanzas; releases; dates', () => {
  const installed = 'bash\t5.2.37-2+b5\tamd64\tbash\ntzdata\t2025b-4\tall\t\n';
  const records = [
    'Package: tzdata\nVersion: 2025b-4\nArchitecture: all\nFilename: pool/main/t/tzdata/tzdata_2025b-4_all.deb\nSize: 260000\nSHA256: ' + 'b'.repeat(64) + '\n',
    'Package: bash\nVersion: 5.2.37-2+b5\nArchitecture: amd64\nFilename: pool/main/b/bash/bash_5.2.37-2+b5_amd64.deb\nSize: 1500000\nSHA256: ' + 'a'.repeat(64) + '\n',
    'Package: bash\nVersion: 5.2.15-2\nArchitecture: amd64\nSHA256: ' + 'c'.repeat(64) + '\n',
  ].join('\n');
  const pkgs = parseHookOutput(installed, records);
  assert.deepEqual(pkgs.map((p) => [p.name, p.version, p.sha256[0], p.source, p.size]), [['bash', '5.2.37-2+b5', 'a', 'bash', 1500000], ['tzdata', '2025b-4', 'b', 'tzdata', 260000]]);
  assert.throws(() => parseHookOutput('zsh\t5.9\tamd64\tzsh\n', records), (e) => isRootforgeError(e, 'DEBIAN_MMDEBSTRAP_FAILED') && /zsh=5\.9/.test((e as Error).message));
  const rel = parseReleases('File: deb.debian.org_debian_dists_trixie_InRelease\nOrigin: Debian\nSuite: stable\nCodename: trixie\nDate: Sat, 21 Nov 2026 09:15:44 UTC\n\nFile: x_dists_extra_InRelease\nCodename: extra\n');
  assert.equal(mainRelease(rel, 'trixie')?.codename, 'trixie');
  assert.equal(mainRelease(rel, 'stable')?.codename, 'trixie', '`debian` (stable) finds its codename');
  assert.equal(rel[0]!.date, Date.UTC(2026, 10, 21, 9, 15, 44) / 1000);
  assert.equal(releaseDate('Origin: Debian\nDate: Thu, 01 Jan 1970 00:01:40 UTC\n'), 100);
});

test('locks: made sorted, checked field by field, compared with what was installed', async () => {
  const o = resolveDebianOptions('debian:trixie', { packages: ['git'] }, '/')!;
  const inputs = await lockInputs(o, 'amd64');
  assert.match(inputs, /^sha256:[0-9a-f]{64}$/);
  assert.equal(await lockInputs({ ...o, mirror: 'http://127.0.0.1/debian' }, 'amd64'), inputs, 'the mirror does not stale a lock');
  assert.notEqual(await lockInputs({ ...o, packages: ['git', 'vim'] }, 'amd64'), inputs);
  assert.notEqual(await lockInputs(o, 'arm64'), inputs);
  const pkg = (name: string, version: string, architecture = 'amd64', sha = 'a') => ({ name, version, architecture, source: name, sha256: sha.repeat(64), size: 1, filename: `pool/${name}.deb` });
  const lock = makeLock(o, 'amd64', inputs, 'trixie', 1700000000, [pkg('bash', '5.2'), pkg('tzdata', '2025b', 'all'), pkg('libc6', '2.41', 'i386')]);
  assert.deepEqual(Object.keys(lock), ['version', 'source', 'packages']);
  const again = checkLock(JSON.parse(JSON.stringify(lock)), 'x');
  assert.deepEqual(again, lock);
  assert.deepEqual(lockedIncludes(lock), ['bash=5.2', 'tzdata=2025b', 'libc6:i386=2.41']);
  assert.deepEqual(lockDifferences(lock, [pkg('bash', '5.2'), pkg('tzdata', '2025b', 'all'), pkg('libc6', '2.41', 'i386')]), []);
  const diffs = lockDifferences(lock, [pkg('bash', '5.3'), pkg('tzdata', '2025b', 'all', 'f'), pkg('zsh', '5.9')]);
  assert.equal(diffs.length, 4, diffs.join('\n'));
  assert.match(diffs.join('\n'), /bash:amd64 is 5\.3, the lock has 5\.2/);
  assert.match(diffs.join('\n'), /tzdata:all=2025b has SHA-256 ffff/);
  assert.match(diffs.join('\n'), /zsh:amd64 5\.9 is not in the lock/);
  assert.match(diffs.join('\n'), /libc6:i386=2\.41 was not installed/);
  const bad = (mutate: (l: LockFile & Record<string, unknown>) => void, re: RegExp) => {
    const l = JSON.parse(JSON.stringify(lock)) as LockFile & Record<string, unknown>;
    mutate(l);
    assert.throws(() => checkLock(l, 'x.lock.json'), (e) => isRootforgeError(e, 'LOCK_INVALID') && re.test((e as Error).message));
  };
  bad((l) => ((l as { version: number }).version = 2), /version must be 1/);
  bad((l) => (l.packages[0]!.sha256 = 'abc'), /packages\[0\]\.sha256 must be 64 lowercase hex/);
  bad((l) => (l.packages[1]!.name = ''), /packages\[1\]\.name must be a non-empty string/);
  bad((l) => (l.packages = []), /packages must be a non-empty list/);
  bad((l) => ((l.source as { date: unknown }).date = 'yesterday'), /source\.date must be a whole number/);
});

test('mmdebstrap failures become typed errors naming what the mirror lacks', () => {
  const locked = mmdebstrapError(["E: Version '2.36-9' for 'libc6' was not found", "E: Version '1.0' for 'zsh' was not found", 'E: mmdebstrap failed'], 1, null, { lockedIncludes: ['x'] });
  assert.equal(locked.code, 'LOCK_UNAVAILABLE');
  assert.match(locked.message, /no longer has 2 of them.*libc6=2\.36-9, zsh=1\.0/);
  const unknown = mmdebstrapError(['E: Unable to locate package no-such-pkg'], 1, null, {});
  assert.equal(unknown.code, 'DEBIAN_MMDEBSTRAP_FAILED');
  assert.match(unknown.message, /the mirror has no no-such-pkg/);
  const other = mmdebstrapError(['I: downloading', 'E: apt-get update failed'], 1, null, {});
  assert.match(other.message, /^Cannot build the Debian base: mmdebstrap exited with 1 \(E: apt-get update failed\)/);
});

test("the host's apt proxy is read from apt-config", () => {
  assert.deepEqual(parseAptProxy('Acquire::http::Proxy "http://cache:3142";\nAcquire::https::Proxy "DIRECT";\n'), { http: 'http://cache:3142', https: undefined });
  assert.deepEqual(parseAptProxy('APT::Architecture "amd64";\n'), NOPROXY);
});

test('extra repositories: one deb822 file, keys inline in Signed-By (armor equal to gpg --enarmor)', async (t) => {
  const bin = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff));
  const keyPath = join(work, 'repo.gpg');
  writeFileSync(keyPath, bin);
  const ours = armor(bin);
  const gpg = spawnSync('gpg', ['--batch', '--no-options', '--homedir', work, '--enarmor'], { input: bin, encoding: 'utf8' });
  if (gpg.status !== 0) skipOrFail(t, `gpg --enarmor failed or is missing (apt-get install gnupg): ${gpg.stderr}`);
  else {
    // gpg's armor headers differ ("ARMORED FILE", Comment:); the base64 body and the CRC-24 must not
    const body = (s: string) => s.split('\n').filter((l) => /^[A-Za-z0-9+/=]+$/.test(l)).join('');
    assert.equal(body(ours), body(gpg.stdout));
  }
  const o = resolveDebianOptions('debian:bookworm', { repositories: [{ uri: 'https://deb.nodesource.com/node_20.x', suite: 'nodistro', key: keyPath }, { uri: 'http://127.0.0.1/extra' }] }, '/')!;
  const text = await extraSourcesText(o);
  const [first, second] = text.split('\n\n');
  assert.match(first!, /^Types: deb\nURIs: https:\/\/deb\.nodesource\.com\/node_20\.x\nSuites: nodistro\nComponents: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n \.\n /);
  assert.ok(first!.split('\n').slice(5).every((l) => l.startsWith(' ')), 'continuation lines are indented');
  assert.equal(second, 'Types: deb\nURIs: http://127.0.0.1/extra\nSuites: bookworm\nComponents: main\n');
  await assert.rejects(extraSourcesText({ ...o, repositories: [{ ...o.repositories[0]!, key: join(work, 'missing.asc') }] }), (e) => isRootforgeError(e, 'SOURCE_NOT_FOUND'));
});

test('not root and no user namespaces for this user: DEBIAN_NO_MODE names the fix (run as nobody)', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to switch to nobody');
  const setpriv = spawnSync('setpriv', ['--version']);
  if (setpriv.status !== 0) return skipOrFail(t, 'setpriv (util-linux) is missing');
  // nobody must be able to read the modules: the checkout may sit under a private directory
  // (a 0700 mktemp dir), so the compiled sources run from a world-readable copy
  const copy = mkdtempSync(join(tmpdir(), 'rf-nobody-'));
  chmodSync(copy, 0o755);
  cpSync(new URL('../../src/', import.meta.url).pathname, join(copy, 'src'), { recursive: true });
  writeFileSync(join(copy, 'package.json'), '{"type":"module"}\n');
  t.after(() => rmSync(copy, { recursive: true, force: true }));
  const mod = pathToFileURL(join(copy, 'src/sources/debian/host.js')).href;
  const script = `import(${JSON.stringify(mod)}).then((m) => { try { console.log(m.chooseMode()); } catch (e) { console.log(e.code + ' ' + e.message); } })`;
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8', cwd: '/' });
  assert.equal(r.status, 0, r.stderr);
  // nobody has no subordinate id range here (and may lack more): the message says what to do
  assert.match(r.stdout, /^DEBIAN_NO_MODE Cannot run mmdebstrap: not root, and user namespaces are not usable: .*(subuid|newuidmap|sysctl)/);
  assert.match(r.stdout, /Run as root, or fix the above for unshare mode/);
});

test('a foreign architecture needs qemu-user with binfmt_misc: checked before anything downloads', () => {
  assert.doesNotThrow(() => checkForeignArch('amd64', 'amd64'));
  assert.throws(() => checkForeignArch('m68k', 'amd64'), (e) => isRootforgeError(e, 'DEBIAN_FOREIGN_ARCH') && /no qemu-user emulator/.test((e as Error).message));
  const entry = '/proc/sys/fs/binfmt_misc/qemu-aarch64';
  const enabled = existsSync(entry) && /^enabled/m.test(readFileSync(entry, 'utf8'));
  if (enabled) assert.doesNotThrow(() => checkForeignArch('arm64', 'amd64'));
  else assert.throws(() => checkForeignArch('arm64', 'amd64'), (e) => isRootforgeError(e, 'DEBIAN_FOREIGN_ARCH') && /(binfmt_misc|qemu-user-static)/.test((e as Error).message));
});
