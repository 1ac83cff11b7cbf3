/**
 * Alpine through `rootforge build`: the spec contract (`from: scratch` + repositories + keys +
 * packages), `from: alpine:BRANCH` (the minirootfs from a mirror, pinned by SHA-256), profiles,
 * the base's installed packages kept, config files the base has kept with `.apk-new`, the lock;
 * and a real boot: first-boot scripts run once before the agent is ready, `apk info -v` lists the
 * world and `apk audit --system` reports nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildImage } from '../../src/build-image.js';
import { loadSpec } from '../../src/spec/load.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { isRootforgeError } from '../../src/errors.js';
import { bootImage } from '../../src/vm/boot.js';
import { verifyImage } from '../../src/verify/verify.js';
import { kernelRef } from '../../src/kernel/kernel-ref.js';
import type { KernelRef } from '../../src/vm/types.js';
import { buildPackage, featurePackages, makeKey, writeRepo, type PkgDef, type TestKey } from '../helpers/apk-repo.js';
import { serveDir, type StaticServer } from '../helpers/static-server.js';
import { ALPINE_X86, cacheDir, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { debianCloudKernel } from '../helpers/kernel.js';
import { assertFsckClean } from '../helpers/image.js';
import { rootforge } from '../helpers/cli.js';
import type { AlpineLock } from '../../src/sources/alpine/lock.js';

let work: string;
let key: TestKey;
let server: StaticServer;
let keyFile: string;
const haveFixture = existsSync(ALPINE_X86);

/** Packages that install on top of the Alpine 3.20 minirootfs (they use its musl and busybox). */
function onAlpine(): PkgDef[] {
  return [
    {
      name: 'hello',
      version: '1.0-r0',
      depends: ['busybox', 'so:libc.musl-x86_64.so.1'],
      files: [
        { path: 'etc', type: 'dir' },
        { path: 'etc/hello.conf', content: 'greeting=hi\n' },
        { path: 'etc/issue', content: 'hello issue\n' }, // the minirootfs has one no package owns
        { path: 'usr', type: 'dir' },
        { path: 'usr/bin', type: 'dir' },
        { path: 'usr/bin/hello', content: '#!/bin/sh\necho "hello from $(cat /etc/hello.conf)"\n', mode: 0o755 },
        { path: 'usr/bin/hello-cap', content: 'capable\n', mode: 0o755, xattrs: { 'security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex') } },
        { path: 'usr/bin/hello-suid', content: 'suid\n', mode: 0o4755 },
      ],
      scripts: { 'post-install': '#!/bin/sh\necho "hello $1" >> /var/lib/hello-installed\n' },
    },
    // not installed at build time: the guest's own apk adds it from a copy of the repository
    { name: 'later', version: '2.0-r0', depends: ['hello'], files: [{ path: 'usr', type: 'dir' }, { path: 'usr/bin', type: 'dir' }, { path: 'usr/bin/later', content: '#!/bin/sh\necho later\n', mode: 0o755 }] },
  ];
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'rf-apk-b-'));
  key = makeKey();
  keyFile = join(work, 'keys', key.name);
  mkdirSync(join(work, 'keys'));
  writeFileSync(keyFile, key.publicPem);
  const www = join(work, 'www');
  writeRepo(join(www, 'features'), featurePackages().map((d) => buildPackage(d, key)), key);
  writeRepo(join(www, 'onalpine'), onAlpine().map((d) => buildPackage(d, key)), key);
  if (haveFixture) {
    const rel = join(www, 'v3.20', 'releases', 'x86_64');
    mkdirSync(rel, { recursive: true });
    copyFileSync(ALPINE_X86, join(rel, 'alpine-minirootfs-3.20.3-x86_64.tar.gz'));
    const sha = createHash('sha256').update(readFileSync(ALPINE_X86)).digest('hex');
    writeFileSync(
      join(rel, 'latest-releases.yaml'),
      `---\n-\n  title: "Netboot"\n  flavor: alpine-netboot\n  file: x.tar.gz\n  sha256: ${'0'.repeat(64)}\n-\n  title: "Mini root filesystem"\n  flavor: alpine-minirootfs\n  version: 3.20.3\n  file: alpine-minirootfs-3.20.3-x86_64.tar.gz\n  sha256: ${sha}\n`,
    );
  }
  server = await serveDir(www);
  process.env['ROOTFORGE_ALPINE_MIRROR'] = server.url;
});

after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

async function read(img: string, path: string): Promise<string | null> {
  const image = await Ext4Image.open(img);
  try {
    const st = await image.resolve(path).catch(() => null);
    return st ? (await image.readData(st)).toString() : null;
  } finally {
    await image.close();
  }
}

test('the spec contract: from scratch + repositories + keys + packages', async () => {
  const dir = join(work, 'scratch');
  mkdirSync(dir);
  writeFileSync(join(dir, 'pkgs.txt'), '# a profile file\ntool\ndocs\n');
  writeFileSync(join(dir, 'rootforge.yaml'), `from: scratch\nrepositories: [${server.url}/features]\nkeys: [../keys/${key.name}]\nprofile: pkgs.txt\npackages: [newmotd]\n`);
  const spec = await loadSpec(join(dir, 'rootforge.yaml'));
  const warnings: string[] = [];
  const r = await buildImage(spec, { onWarning: (w) => warnings.push(w.code), image: { cacheDir: join(work, 'cache') } });
  assertFsckClean(r.output);
  assert.ok(r.alpine);
  assert.deepEqual(r.alpine.world, ['tool', 'docs', 'newmotd']);
  assert.equal(await read(r.output, '/usr/share/tool.txt'), 'tool doc\n', 'install_if');
  assert.equal(await read(r.output, '/etc/motd'), 'new motd\n', 'replaces');
  assert.equal(await read(r.output, '/etc/apk/world'), 'docs\nnewmotd\ntool\n');
  assert.equal(await read(r.output, '/etc/apk/repositories'), `${server.url}/features\n`);
  assert.equal(await read(r.output, `/etc/apk/keys/${key.name}`), key.publicPem, 'the key goes into the image so apk in the guest trusts the repository');
  assert.match((await read(r.output, '/lib/apk/db/installed'))!, /^P:tool$/m);
  assert.match((await read(r.output, '/var/lib/rootforge/first-boot/0001-tool-1.10-r0.post-install'))!, /tool installed|tool \$1/);
  assert.ok(warnings.includes('APK_SCRIPTS_NOT_RUN'), 'init: agent cannot run first-boot scripts: said so');
  // a broken world: a typed error and no image
  writeFileSync(join(dir, 'bad.yaml'), `from: scratch\nrepositories: [${server.url}/features]\nkeys: [../keys/${key.name}]\npackages: [tool, clash]\n`);
  const bad = await loadSpec(join(dir, 'bad.yaml'));
  await assert.rejects(buildImage(bad, { image: { cacheDir: join(work, 'cache') } }), (e) => isRootforgeError(e, 'APK_FILE_CONFLICT'));
  assert.equal(existsSync(bad.output), false);
});

test('spec keys are checked: a bad package atom and an unknown profile name the key', async () => {
  const dir = join(work, 'badspec');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.yaml'), 'packages: ["has space"]\n');
  await assert.rejects(loadSpec(join(dir, 'a.yaml')), /spec\.packages\[0\]/);
  writeFileSync(join(dir, 'b.yaml'), 'profile: nosuch\n');
  await assert.rejects(loadSpec(join(dir, 'b.yaml')), /spec\.profile/);
  writeFileSync(join(dir, 'c.yaml'), 'from: alpine:3.20\n');
  await assert.rejects(loadSpec(join(dir, 'c.yaml')), /alpine branch/i);
  const p = await loadSpec(join(dir, 'b.yaml').replace('b.yaml', 'a.yaml')).catch(() => null);
  assert.equal(p, null);
  writeFileSync(join(dir, 'd.yaml'), 'from: alpine:v3.23\nprofile: balanced\n');
  const d = await loadSpec(join(dir, 'd.yaml'));
  assert.ok(d.alpine!.packages.includes('apk-tools') && d.alpine!.packages.includes('python3'));
});

test('rootforge lock pins the packages; build installs exactly the lock, or fails when the repository moved on', async () => {
  const dir = join(work, 'locked');
  mkdirSync(dir);
  const repoDir = join(work, 'www', 'features');
  const specPath = join(dir, 'locked.yaml');
  writeFileSync(specPath, `repositories: [${repoDir}]\nkeys: [../keys/${key.name}]\npackages: [tool, docs, multi]\nagent: none\ninit: wrapper\n`);
  const r = rootforge(['lock', specPath]);
  assert.equal(r.code, 0, r.stderr);
  const lockPath = join(dir, 'locked.lock.json');
  const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as AlpineLock;
  assert.equal(lock.version, 1);
  assert.deepEqual(lock.source.world, ['tool', 'docs', 'multi']);
  const multi = lock.packages.find((p) => p.name === 'multi')!;
  assert.equal(multi.version, '1.10-r0');
  assert.match(multi.checksum, /^Q1[A-Za-z0-9+/]{27}=$/);
  // the lock wins over "newest": pin the older multi
  const old = buildPackage(featurePackages().find((d) => d.name === 'multi' && d.version === '1.2-r0')!, key);
  Object.assign(multi, { version: '1.2-r0', checksum: old.identity });
  writeFileSync(lockPath, JSON.stringify(lock));
  const spec = await loadSpec(specPath);
  const built = await buildImage(spec);
  assert.equal(await read(built.output, '/usr/share/multi'), '1.2\n');
  // a repository whose docs changed (same version, other bytes): the lock refuses it
  const moved = join(work, 'moved');
  writeRepo(moved, featurePackages().map((d) => buildPackage(d.name === 'docs' ? { ...d, description: 'rebuilt' } : d, key)), key);
  writeFileSync(specPath, readFileSync(specPath, 'utf8').replace(repoDir, moved));
  const spec2 = await loadSpec(specPath);
  spec2.output = join(dir, 'moved.ext4');
  await assert.rejects(buildImage(spec2), (e) => isRootforgeError(e, 'APK_LOCK_MISMATCH'));
  assert.equal(existsSync(spec2.output), false);
});

let kernel: KernelRef | null = null;
let noKernel = '';
async function needKernel(): Promise<KernelRef | null> {
  if (kernel || noKernel) return kernel;
  if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) {
    noKernel = 'qemu-system-x86_64 is not installed';
    return null;
  }
  const deb = await debianCloudKernel();
  if ('skip' in deb) {
    noKernel = deb.skip;
    return null;
  }
  kernel = await kernelRef(deb.path, { cacheDir: join(cacheDir(), 'kernel-cache') });
  return kernel;
}

test('from alpine:v3.20 (minirootfs from the mirror, SHA-256 checked) + packages; boots: scripts ran once, apk info -v, apk audit --system', { timeout: 600_000 }, async (t) => {
  if (!haveFixture) return skipOrFail(t, NO_SHARED);
  const dir = join(work, 'onalpine');
  mkdirSync(dir);
  // the same repository inside the image, for apk add in the guest (it has no network)
  cpSync(join(work, 'www', 'onalpine'), join(dir, 'files', 'srv', 'repo'), { recursive: true });
  writeFileSync(join(dir, 'box.yaml'), `from: alpine:v3.20\nrepositories: [${server.url}/onalpine]\nkeys: [../keys/${key.name}]\npackages: [hello]\nhostname: apkbox\nfiles: files\n`);
  const spec = await loadSpec(join(dir, 'box.yaml'));
  const r = await buildImage(spec, { image: { cacheDir: join(work, 'cache') } });
  assertFsckClean(r.output);
  assert.equal(r.alpine!.lock.source.minirootfs!.sha256, createHash('sha256').update(readFileSync(ALPINE_X86)).digest('hex'));
  assert.deepEqual(r.alpine!.installed.map((p) => p.name), ['hello'], 'the base packages stay as they are');
  assert.equal(await read(r.output, '/etc/apk/world'), 'alpine-baselayout\nalpine-keys\napk-tools\nbusybox\nhello\nlibc-utils\n');
  assert.equal(await read(r.output, '/etc/issue.apk-new'), 'hello issue\n', 'the base keeps its /etc/issue');
  assert.match((await read(r.output, '/etc/issue'))!, /Welcome to Alpine/);
  const report = await verifyImage(r.output);
  const fb = report.checks.find((c) => c.id === 'first-boot');
  assert.equal(fb?.ok, false, 'verify lists the scripts not run yet');
  assert.match(fb!.message, /hello-1\.0-r0\.post-install/);
  assert.equal(report.ok, true, 'a warning, not a failure');
  const installed = (await read(r.output, '/lib/apk/db/installed'))!;
  assert.match(installed, /^P:musl$/m);
  assert.match(installed, /^P:hello$/m);
  const k = await needKernel();
  if (!k) return skipOrFail(t, noKernel);
  const vm = await bootImage(r.output, k, { bootTimeoutMs: 240_000 });
  try {
    const sh = async (cmd: string) => {
      const x = await vm.agent.exec(['/bin/sh', '-c', cmd], { timeoutMs: 120_000 });
      return { code: x.code, out: x.stdout?.toString() ?? '', err: x.stderr?.toString() ?? '' };
    };
    const info = await sh('apk info -v');
    assert.equal(info.code, 0, info.err);
    assert.match(info.out, /^hello-1\.0-r0$/m);
    assert.match(info.out, /^busybox-1\.36\.1-r\d+$/m);
    const audit = await sh('apk audit --system');
    assert.deepEqual({ code: audit.code, out: audit.out }, { code: 0, out: '' }, audit.err);
    const ran = await sh('cat /var/lib/hello-installed; cat /var/lib/rootforge/first-boot.log; ls /var/lib/rootforge');
    // busybox's trigger watches /usr/bin, where hello put files: it fires once after the scripts
    assert.match(ran.out, /^hello 1\.0-r0\nhello-1\.0-r0\.post-install exit=0\nbusybox-1\.36\.1-r\d+\.trigger exit=0\nfirst-boot\.log\n$/, 'the scripts ran once, their queue is gone');
    const caps = await sh('hello; stat -c %a /usr/bin/hello-suid');
    assert.equal(caps.out, 'hello from greeting=hi\n4755\n');
    // apk add works on the database rootforge wrote (and trusts the key it installed)
    const add = await sh('apk add --no-network --repository /srv/repo later && later && apk info -e later hello && apk audit --system');
    assert.equal(add.code, 0, add.out + add.err);
    assert.match(add.out, /later\n(later\nhello|hello\nlater)\n$/);
  } finally {
    await vm.shutdown();
  }
});
