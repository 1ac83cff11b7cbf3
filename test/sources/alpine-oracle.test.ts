/**
 * rootforge's apk installer against real apk-tools 2.14.4 (the oracle): the same world from the
 * same signed local repository, into an empty root. Trees must be equal (content, mode, owner,
 * xattrs, links) and the installed databases equal in meaning.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPackage, featurePackages, FEATURE_WORLD, makeKey, writeRepo, type BuiltPkg, type TestKey } from '../helpers/apk-repo.js';
import { apkAdd, makeOracle, oracleAvailable, rootforgeAdd, type Oracle } from '../helpers/apk-oracle.js';
import { assertFsckClean, assertSameTree, fsManifest, readerManifest, type ManifestEntry } from '../helpers/image.js';
import { ALPINE_X86, skipOrFail } from '../helpers/fixtures.js';
import { parseInstalled, readScriptsTar } from '../../src/sources/alpine/db.js';
import { compareVersions, GREATER, LESS } from '../../src/sources/alpine/version.js';
import { spawnSync } from 'node:child_process';
import { Ext4Image } from '../../src/ext4/reader.js';

let work: string;
let key: TestKey;
let pkgs: BuiltPkg[];
let repo: string;
let oracle: Oracle | null = null;
const why = oracleAvailable();

before(() => {
  work = mkdtempSync(join(tmpdir(), 'rf-apk-'));
  key = makeKey();
  pkgs = featurePackages().map((d) => buildPackage(d, key));
  repo = writeRepo(join(work, 'repo'), pkgs, key);
  writeFileSync(join(work, key.name), key.publicPem);
  if (!why) oracle = makeOracle();
});

after(() => {
  oracle?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** Paths apk's database and bookkeeping live in: compared by meaning, not bytes. */
const DB_PATHS = ['lib/apk/db/installed', 'lib/apk/db/scripts.tar', 'lib/apk/db/triggers', 'lib/apk/db/lock', 'etc/apk/world', 'etc/apk/keys', 'etc/apk/repositories', 'etc/apk/arch'];

function strip(m: ManifestEntry[]): ManifestEntry[] {
  return m
    .filter((e) => {
      const p = Buffer.from(e.path, 'hex').toString('latin1');
      return p !== 'lost+found' && !DB_PATHS.some((d) => p === d || p.startsWith(d + '/'));
    })
    .map((e) => (Buffer.from(e.path, 'hex').toString('latin1').startsWith('dev/') || e.type === 'symlink' ? { ...e, mtime_ns: 'apk: the time it ran (ours: the package\'s)' } : e));
}

/** The installed db as a comparable structure: per package its fields and owned paths. */
function dbMeaning(text: string) {
  return parseInstalled(text)
    .map((p) => ({
      header: Object.fromEntries(p.header.map(([k, v]) => [k, k === 'D' || k === 'p' || k === 'i' || k === 'r' ? v.split(' ').sort().join(' ') : v])),
      dirs: p.dirs.map((d) => ({ name: d.name, acl: d.acl, files: d.files.map((f) => `${f.name} ${f.acl ?? '-'} ${f.csum ?? '-'}`).sort() })).sort((a, b) => (a.name < b.name ? -1 : 1)),
    }))
    .sort((a, b) => (a.header['P']! < b.header['P']! ? -1 : 1));
}

test('same tree and same installed database as apk-tools 2.14.4', async (t) => {
  if (why || !oracle) return skipOrFail(t, why!);
  const ref = apkAdd(oracle, repo, key, FEATURE_WORLD);
  assert.equal(ref.code, 0, ref.output);
  const img = join(work, 'ours.ext4');
  const res = await rootforgeAdd(img, { repositories: [repo], packages: FEATURE_WORLD, keys: [join(work, key.name)], firstBoot: false });
  assertFsckClean(img);
  const ours = await readerManifest(img);
  const theirs = fsManifest(ref.target);
  assertSameTree(strip(ours), strip(theirs), { ignoreDirMtime: true });
  const image = await Ext4Image.open(img);
  try {
    const read = async (p: string) => (await image.readData(await image.resolve(p))).toString();
    assert.deepEqual(dbMeaning(await read('/lib/apk/db/installed')), dbMeaning(readFileSync(join(ref.target, 'lib/apk/db/installed'), 'utf8')));
    assert.equal(await read('/etc/apk/world'), readFileSync(join(ref.target, 'etc/apk/world'), 'utf8'));
    assert.equal(await read('/lib/apk/db/triggers'), readFileSync(join(ref.target, 'lib/apk/db/triggers'), 'utf8'));
    assert.notEqual(await read('/lib/apk/db/triggers'), '', 'the trigger package is recorded');
    const scripts = (b: Buffer) => readScriptsTar(b).map((e) => `${e.name} ${e.mtime} ${e.body.toString('hex')}`).sort();
    const ourScripts = await image.readData(await image.resolve('/lib/apk/db/scripts.tar'));
    assert.deepEqual(scripts(ourScripts), scripts(readFileSync(join(ref.target, 'lib/apk/db/scripts.tar'))));
    assert.equal(scripts(ourScripts).length, 2);
  } finally {
    await image.close();
  }
  // what was chosen: the prioritised provider, the newest version, the install_if package
  const names = res.installed.map((p) => `${p.name}-${p.version}`);
  assert.ok(names.includes('dash-lite-2.0-r0') && !names.some((n) => n.startsWith('mksh-lite')), names.join(' '));
  assert.ok(names.includes('multi-1.10-r0') && names.includes('tool-doc-1.10-r0'), names.join(' '));
});

test('on top of the Alpine minirootfs: same tree and database as apk-tools adding to it', async (t) => {
  if (why || !oracle) return skipOrFail(t, why!);
  const onBase = [
    buildPackage(
      {
        name: 'hello',
        version: '1.0-r0',
        depends: ['busybox', 'so:libc.musl-x86_64.so.1'],
        files: [
          { path: 'etc', type: 'dir' },
          { path: 'etc/issue', content: 'hello issue\n' }, // the base has one no package owns: .apk-new
          { path: 'etc/hello.conf', content: 'x\n' },
          // the same bytes as the base's unowned file: no .apk-new, the package owns it now
          { path: 'etc/secfixes.d', type: 'dir' },
          { path: 'etc/secfixes.d/alpine', content: spawnSync('tar', ['-xzOf', ALPINE_X86, './etc/secfixes.d/alpine']).stdout },
          { path: 'usr', type: 'dir' },
          { path: 'usr/bin', type: 'dir' },
          { path: 'usr/bin/hello', content: 'hi\n', mode: 0o755, uname: 'nobody', gname: 'nogroup', uid: 1, gid: 1 },
        ],
        scripts: { 'post-install': '#!/bin/sh\ntrue\n' },
      },
      key,
    ),
  ];
  const baseRepo = writeRepo(join(work, 'base-repo'), onBase, key);
  const ref = apkAdd(oracle, baseRepo, key, ['hello'], [], ALPINE_X86);
  assert.equal(ref.code, 0, ref.output);
  const img = join(work, 'ours-base.ext4');
  await rootforgeAdd(img, { repositories: [baseRepo], packages: ['hello'], keys: [join(work, key.name)], firstBoot: false, baseTar: ALPINE_X86 });
  assertFsckClean(img);
  // apk rewrites directories it touches at run time; files keep their times
  assertSameTree(strip(await readerManifest(img)), strip(fsManifest(ref.target)), { ignoreDirMtime: true });
  const image = await Ext4Image.open(img);
  try {
    const read = async (p: string) => (await image.readData(await image.resolve(p))).toString();
    assert.deepEqual(dbMeaning(await read('/lib/apk/db/installed')), dbMeaning(readFileSync(join(ref.target, 'lib/apk/db/installed'), 'utf8')));
    assert.equal(await read('/etc/apk/world'), readFileSync(join(ref.target, 'etc/apk/world'), 'utf8'));
    assert.equal(await read('/etc/issue.apk-new'), 'hello issue\n');
    await assert.rejects(image.resolve('/etc/secfixes.d/alpine.apk-new'));
    assert.match(await read('/lib/apk/db/installed'), /F:etc\/secfixes.d\nR:alpine\n/);
  } finally {
    await image.close();
  }
});

test('other worlds choose what apk-tools chooses (explicit provider, pinned version, fuzzy, meta)', async (t) => {
  if (why || !oracle) return skipOrFail(t, why!);
  const worlds = [['tool', 'mksh-lite'], ['multi=1.2-r0'], ['multi~1.2'], ['meta'], ['libfoo', 'multi<1.10']];
  for (const world of worlds) {
    const ref = apkAdd(oracle, repo, key, world);
    assert.equal(ref.code, 0, ref.output);
    const img = join(work, `w-${world.join('_').replace(/[^a-z0-9_.-]/gi, '')}.ext4`);
    await rootforgeAdd(img, { repositories: [repo], packages: world, keys: [join(work, key.name)], firstBoot: false });
    assertSameTree(strip(await readerManifest(img)), strip(fsManifest(ref.target)), { ignoreDirMtime: true });
    const image = await Ext4Image.open(img);
    try {
      const ours = dbMeaning((await image.readData(await image.resolve('/lib/apk/db/installed'))).toString());
      assert.deepEqual(ours.map((p) => `${p.header['P']}-${p.header['V']}`), dbMeaning(readFileSync(join(ref.target, 'lib/apk/db/installed'), 'utf8')).map((p) => `${p.header['P']}-${p.header['V']}`), world.join(' '));
    } finally {
      await image.close();
    }
  }
});

test('version order is apk-tools\' own (apk version -t)', (t) => {
  if (why || !oracle) return skipOrFail(t, why!);
  const versions = ['1.0', '1.0-r1', '1.0_rc1', '1.0_p1', '1.0a', '1.01', '1.1', '1.10', '1.2.3', '1.2', '2.0_alpha', '2.0_beta2', '2.0_pre1', '2.0', '2.0_git20240101', '0.9.99', '10', '1.0.0', '1.0_cvs', '1.0-r10'];
  const sym = (r: number) => (r === LESS ? '<' : r === GREATER ? '>' : '=');
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < versions.length; i++) for (let j = i + 1; j < versions.length; j += 2) pairs.push([versions[i]!, versions[j]!]);
  for (const [a, b] of pairs) {
    const out: string = spawnSync('chroot', [oracle.root, '/sbin/apk', 'version', '-t', a, b], { encoding: 'utf8' }).stdout;
    assert.equal(sym(compareVersions(a, b)), out.trim(), `${a} vs ${b}`);
  }
});
