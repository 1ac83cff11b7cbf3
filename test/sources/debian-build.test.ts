/**
 * The Debian source with the real mmdebstrap against the Debian mirror (examples/debian-minimal.yaml,
 * trixie minbase + ca-certificates): `rootforge lock` resolves every package with its SHA-256;
 * two builds from that lock install exactly it and are byte-identical; a stale lock and a lock
 * naming a version the mirror lacks fail with typed errors and leave no image.
 * Needs root or unprivileged user namespaces, and the mirror; CI has both.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../../src/build-image.js';
import { isRootforgeError } from '../../src/errors.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { checkLock, type LockFile } from '../../src/sources/debian/lock.js';
import { chooseMode } from '../../src/sources/debian/host.js';
import { loadSpec } from '../../src/spec/load.js';
import { bootImage, checkBoot } from '../../src/vm/boot.js';
import { kernelRef } from '../../src/kernel/kernel-ref.js';
import { cacheDir, skipOrFail } from '../helpers/fixtures.js';
import { debianCloudKernel } from '../helpers/kernel.js';

const work = mkdtempSync(join(tmpdir(), 'rf-debian-build-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const EXAMPLES = new URL('../../../examples/', import.meta.url).pathname;
const BIN = new URL('../../../bin/rootforge', import.meta.url).pathname;
let why = '';

before(() => {
  if (spawnSync('mmdebstrap', ['--version']).status !== 0) why = 'mmdebstrap is not installed (apt-get install mmdebstrap)';
  else {
    try {
      chooseMode();
    } catch (e) {
      why = (e as Error).message;
    }
  }
});

const XDG = join(work, 'xdg'); // this test's own .deb cache: <XDG>/rootforge/debs
process.env['XDG_CACHE_HOME'] = XDG; // for the in-process builds too

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, XDG_CACHE_HOME: XDG } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('lock, then two builds from the lock: exactly the locked packages, byte-identical images', { timeout: 2_400_000 }, async (t) => {
  if (why) return skipOrFail(t, why);
  const lockPath = join(work, 'minimal.lock.json');
  const lockRun = cli(['lock', join(EXAMPLES, 'debian-minimal.yaml'), '-o', lockPath]);
  assert.equal(lockRun.code, 0, lockRun.stderr);
  assert.match(lockRun.stderr, /downloading packages with apt/, 'progress shows mmdebstrap phases');
  const lock = checkLock(JSON.parse(readFileSync(lockPath, 'utf8')), lockPath);
  assert.equal(lock.source.type, 'debian');
  assert.equal(lock.source.suite, 'trixie');
  assert.equal(lock.source.codename, 'trixie');
  assert.ok(lock.source.date > 1_700_000_000, 'the Release date');
  const names = lock.packages.map((p) => p.name);
  for (const p of ['ca-certificates', 'apt', 'dpkg', 'libc6', 'bash']) assert.ok(names.includes(p), `${p} locked`);
  assert.deepEqual(names, [...names].sort(), 'sorted by name');
  assert.ok(lock.packages.every((p) => /^[0-9a-f]{64}$/.test(p.sha256) && p.filename?.startsWith('pool/')));
  // the lock run kept every .deb it used; the builds below take them from there
  const debs = new Set(readdirSync(join(XDG, 'rootforge', 'debs')));
  for (const p of lock.packages) {
    const file = `${p.name}_${p.version.replace(':', '%3a')}_${p.architecture}.deb`; // apt's name in archives/
    assert.ok(debs.has(file), `${file} is cached`);
  }

  const spec = await loadSpec(join(EXAMPLES, 'debian-minimal.yaml'));
  spec.lockPath = lockPath;
  spec.lockExplicit = true;
  const a = await buildImage({ ...spec, output: join(work, 'a.ext4') });
  const b = await buildImage({ ...spec, output: join(work, 'b.ext4') });
  assert.equal(a.debian?.lock, lockPath);
  assert.equal(a.debian?.epoch, lock.source.date, 'SOURCE_DATE_EPOCH defaults to the lock date');
  assert.deepEqual(a.debian?.packages.map((p) => `${p.name}=${p.version}`), lock.packages.map((p) => `${p.name}=${p.version}`));
  assert.ok(readFileSync(a.output).equals(readFileSync(b.output)), 'two builds of one lock are byte-identical');
  assert.ok(a.sizeBytes <= 200 * 2 ** 20, `debian-minimal ≤ 200 MB (${a.sizeBytes})`);
  const fsck = spawnSync('e2fsck', ['-fn', a.output], { encoding: 'utf8' });
  assert.equal(fsck.status, 0, fsck.stdout);
  const img = await Ext4Image.open(a.output);
  const find = async (p: string) => {
    try {
      return await img.resolve(p);
    } catch (e) {
      if (isRootforgeError(e, 'EXT4_NOT_FOUND')) return null;
      throw e;
    }
  };
  try {
    const status = (await img.readData((await img.resolve('/var/lib/dpkg/status'))!)).toString();
    assert.match(status, /^Package: ca-certificates$/m);
    assert.equal(await find('/usr/share/doc/bash/copyright'), null, 'docs are stripped (dpkg never unpacked them)');
    const lists = await find('/var/lib/apt/lists');
    assert.ok(lists === null || (await img.readdir(lists)).filter((e) => !['.', '..', 'partial', 'lock', 'auxfiles'].includes(e.name)).length === 0, 'no apt lists');
    const resolv = await img.resolve('/etc/resolv.conf');
    assert.doesNotMatch((await img.readData(resolv)).toString(), new RegExp(readFileSync('/etc/resolv.conf', 'utf8').split('\n').find((l) => l.startsWith('nameserver'))?.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') ?? '^$^'), "not the host's resolv.conf");
  } finally {
    await img.close();
  }

  // it boots: the agent as PID 1 on Debian, a command through Debian's sh, a file round trip
  if (process.arch === 'x64' && spawnSync('qemu-system-x86_64', ['--version']).status === 0) {
    const deb = await debianCloudKernel();
    if ('skip' in deb) skipOrFail(t, deb.skip);
    else {
      const kernel = await kernelRef(deb.path, { cacheDir: join(cacheDir(), 'kernel-cache') });
      const vm = await bootImage(a.output, kernel, { bootTimeoutMs: 300_000 });
      const report = await checkBoot(vm, ['. /etc/os-release && test "$VERSION_CODENAME" = trixie', 'test -s /etc/ssl/certs/ca-certificates.crt'], '/bin/sh');
      assert.ok(report.ok, JSON.stringify(report.checks) + (report.consoleTail ?? ''));
    }
  }

  // a stale lock: the spec asks for another package set
  const stale = await loadSpec(join(EXAMPLES, 'debian-minimal.yaml'));
  stale.lockPath = lockPath;
  stale.debian!.packages = ['ca-certificates', 'jq'];
  await assert.rejects(buildImage({ ...stale, output: join(work, 'stale.ext4') }), (e) => isRootforgeError(e, 'LOCK_STALE') && /run rootforge lock/.test((e as Error).message));
  assert.ok(!existsSync(join(work, 'stale.ext4')));

  // a lock naming a version the mirror does not have
  const gone: LockFile = JSON.parse(readFileSync(lockPath, 'utf8')) as LockFile;
  const victim = gone.packages.find((p) => p.name === 'ca-certificates')!;
  victim.version = '1:0.0-rootforge-test';
  const gonePath = join(work, 'gone.lock.json');
  writeFileSync(gonePath, JSON.stringify(gone));
  await assert.rejects(
    buildImage({ ...spec, lockPath: gonePath, output: join(work, 'gone.ext4') }),
    (e) => isRootforgeError(e, 'LOCK_UNAVAILABLE') && /ca-certificates=1:0\.0-rootforge-test/.test((e as Error).message),
  );
  assert.deepEqual(readdirSync(work).filter((f) => f.includes('gone.ext4')), [], 'no image, no temp file');
});
