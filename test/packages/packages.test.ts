/**
 * Package databases: dpkg's and apk's read from real bases (a Debian minbase from mmdebstrap,
 * the Alpine minirootfs) and compared with the real tools — dpkg-query --admindir on the
 * extracted database, apk itself run in a chroot; /etc/rootforge/packages.json written by build;
 * inspect's package count and list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildImage } from '../../src/build-image.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { parseApkInstalled } from '../../src/packages/apk.js';
import { parseDpkgStatus } from '../../src/packages/dpkg.js';
import { PACKAGES_JSON, type PackagesManifest } from '../../src/packages/manifest.js';
import { imageFs, readPackageDb } from '../../src/packages/read.js';
import { resolveSpec } from '../../src/spec/load.js';
import { rootforge } from '../helpers/cli.js';
import { assertFsckClean, run } from '../helpers/image.js';
import { ALPINE_X86, debianMinbase, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'rf-pkgs-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

async function build(from: string, name: string): Promise<string> {
  const spec = resolveSpec({ from, agent: 'none', init: 'wrapper', readOnly: true }, work, name);
  spec.output = join(work, `${name}.ext4`);
  await buildImage(spec);
  assertFsckClean(spec.output);
  return spec.output;
}

async function readManifest(img: string): Promise<{ raw: Buffer; json: PackagesManifest }> {
  const image = await Ext4Image.open(img);
  try {
    const st = await image.resolve(PACKAGES_JSON);
    assert.equal(st.perm, 0o644);
    const raw = await image.readData(st);
    return { raw, json: JSON.parse(raw.toString('utf8')) as PackagesManifest };
  } finally {
    await image.close();
  }
}

test('dpkg status parsing: states, Source with a version', () => {
  const text = [
    'Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\nSource: asrc (0.9)\nInstalled-Size: 10\nDescription: x\n more\n',
    'Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2\n',
    'Package: b\nStatus: install ok unpacked\nArchitecture: all\nVersion: 3:2.1-1\n',
  ].join('\n');
  assert.deepEqual(parseDpkgStatus(text), [
    { name: 'a', version: '1.0', architecture: 'amd64', source: 'asrc', installedSize: 10240 },
    { name: 'b', version: '3:2.1-1', architecture: 'all', source: 'b', installedSize: 0 },
  ]);
});

test('distroless status.d: one stanza per file, .md5sums skipped, read through any PackageFs', async () => {
  const files: Record<string, string> = {
    'var/lib/dpkg/status.d/base': 'Package: base-files\nVersion: 12.4\nArchitecture: amd64\n',
    'var/lib/dpkg/status.d/libc6': 'Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nSource: glibc\n',
    'var/lib/dpkg/status.d/libc6.md5sums': 'd41d8cd98f00b204e9800998ecf8427e  lib/x\n',
  };
  const fs = {
    readFile: async (p: string) => (p in files ? Buffer.from(files[p]!) : null),
    list: async (p: string) => (p === 'var/lib/dpkg/status.d' ? Object.keys(files).map((f) => f.split('/').pop()!) : null),
  };
  const db = await readPackageDb(fs);
  assert.deepEqual(db, {
    manager: 'dpkg',
    packages: [
      { name: 'base-files', version: '12.4', architecture: 'amd64', source: 'base-files', installedSize: 0 },
      { name: 'libc6', version: '2.36-9', architecture: 'amd64', source: 'glibc', installedSize: 0 },
    ],
  });
  assert.equal(await readPackageDb({ readFile: async () => null, list: async () => null }), null, 'no database: null');
});

test('apk installed parsing: fields, origin, files under F: directories', () => {
  const db = Buffer.from('C:Q1x=\nP:musl\nV:1.2.5-r0\nA:x86_64\nI:651264\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1\n\nP:busybox-binsh\nV:1.36.1-r29\nA:x86_64\no:busybox\nF:bin\nR:sh\n\n');
  const p = parseApkInstalled(db, true);
  assert.deepEqual(p.map((x) => [x.name, x.version, x.architecture, x.source, x.installedSize]), [
    ['musl', '1.2.5-r0', 'x86_64', 'musl', 651264],
    ['busybox-binsh', '1.36.1-r29', 'x86_64', 'busybox', 0],
  ]);
  assert.deepEqual(p[0]!.files, ['/lib', '/lib/ld-musl-x86_64.so.1', '/lib/libc.musl-x86_64.so.1']);
});

test('Debian minbase: packages.json and inspect agree with dpkg-query on the same database', async (t) => {
  const deb = debianMinbase();
  if ('skip' in deb) return skipOrFail(t, deb.skip);
  if (spawnSync('which', ['dpkg-query']).status !== 0) return skipOrFail(t, 'dpkg-query is not installed');
  const root = join(work, 'deb-root');
  mkdirSync(root);
  run('tar', ['-xf', deb.path, '-C', root, './var/lib/dpkg']);
  const admin = join(root, 'var/lib/dpkg');
  const q = run('dpkg-query', ['-W', `--admindir=${admin}`, '-f', '${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\n']);
  const expected = q.stdout
    .toString()
    .split('\n')
    .filter((l) => l.startsWith('installed\t'))
    .map((l) => {
      const [, name, version, architecture, source] = l.split('\t');
      return { name: name!, version: version!, architecture: architecture!, source: source! };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  assert.ok(expected.length > 50, `minbase has many packages (${expected.length})`);

  const img = await build(`tar:${deb.path}`, 'deb');
  const { raw, json } = await readManifest(img);
  assert.equal(json.manager, 'dpkg');
  assert.deepEqual(json.packages, expected);

  // deterministic: a second build writes the same bytes
  const again = await readManifest(await build(`tar:${deb.path}`, 'deb2'));
  assert.ok(raw.equals(again.raw));

  // file lists follow dpkg's (/bin/ls in the list is /usr/bin/ls in a merged-/usr image: the list is what dpkg says)
  const image = await Ext4Image.open(img);
  try {
    const db = await readPackageDb(imageFs(image), { files: true });
    // coreutils has info/coreutils.list; libc6 (Multi-Arch: same) info/libc6:amd64.list
    for (const name of ['coreutils', 'libc6', 'bash']) {
      const pkg = db!.packages.find((p) => p.name === name)!;
      const listed = run('dpkg-query', ['-L', `--admindir=${admin}`, name]).stdout.toString().split('\n').filter((l) => l !== '' && l !== '/.');
      assert.ok(listed.length > 5, name);
      assert.deepEqual(pkg.files, listed, name);
    }
  } finally {
    await image.close();
  }

  const j = rootforge(['inspect', img, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const info = JSON.parse(j.stdout.toString());
  assert.equal(info.packages.manager, 'dpkg');
  assert.equal(info.packages.count, expected.length);
  assert.deepEqual(info.packages.list.map((p: { name: string }) => p.name), expected.map((p) => p.name));
  const libc = info.packages.list.find((p: { name: string }) => p.name === 'libc6');
  const size = run('dpkg-query', ['-W', `--admindir=${admin}`, '-f', '${Installed-Size}', 'libc6']).stdout.toString();
  assert.equal(libc.installedSize, Number(size) * 1024);
  const text = rootforge(['inspect', img]);
  assert.match(text.stdout.toString(), new RegExp(`Packages: +${expected.length} \\(dpkg\\)`));
  assert.match(text.stdout.toString(), /Biggest: +\S+ [\d.]+ MiB/);
});

test('Alpine minirootfs: packages.json agrees with apk itself (chroot), file lists too', async (t) => {
  if (!existsSync(ALPINE_X86)) return t.skip(NO_SHARED);
  const img = await build(`tar:${ALPINE_X86}`, 'alpine');
  const { json } = await readManifest(img);
  assert.equal(json.manager, 'apk');
  assert.ok(json.packages.some((p) => p.name === 'busybox' && p.source === 'busybox'));
  assert.ok(json.packages.some((p) => p.name === 'busybox-binsh' && p.source === 'busybox'), 'origin is the source package');
  assert.deepEqual(json.packages.map((p) => p.name), [...json.packages.map((p) => p.name)].sort());

  if (process.getuid?.() !== 0) return skipOrFail(t, 'running the real apk needs chroot (root; CI runs as root)');
  const root = join(work, 'alpine-root');
  mkdirSync(root);
  run('tar', ['-xzf', ALPINE_X86, '-C', root]);
  const apk = (args: string[]) => run('chroot', [root, '/sbin/apk', ...args]).stdout.toString().split('\n').filter((l) => l !== '');
  assert.deepEqual(json.packages.map((p) => `${p.name}-${p.version}`).sort(), apk(['info', '-v']).sort());
  assert.ok(json.packages.every((p) => p.architecture === 'x86_64'));

  const image = await Ext4Image.open(img);
  try {
    const db = await readPackageDb(imageFs(image), { files: true });
    for (const name of ['busybox', 'musl', 'apk-tools']) {
      const ours = db!.packages.find((p) => p.name === name)!.files!;
      const files: string[] = [];
      for (const f of ours) if ((await image.lookup(f)).kind !== 'dir') files.push(f.slice(1));
      const theirs = apk(['info', '-L', name]).filter((l) => !l.endsWith(' contains:'));
      assert.deepEqual(files.sort(), theirs.sort(), name);
    }
  } finally {
    await image.close();
  }
});
