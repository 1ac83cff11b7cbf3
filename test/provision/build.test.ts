/**
 * Provisioning through `rootforge build` and RootfsBuilder: every init mode's files, modes and
 * symlinks, /etc files kept or written, users merged, merged-/usr bases, the files overlay,
 * strip, determinism, and every image e2fsck-clean. (Booting them is test/vm's job.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../../src/build-image.js';
import { RootfsBuilder } from '../../src/rootfs-builder.js';
import { Ext4Image, type Stat } from '../../src/ext4/reader.js';
import { loadSpec, resolveSpec } from '../../src/spec/load.js';
import { tarEntries } from '../helpers/tar-writer.js';
import { assertFsckClean } from '../helpers/image.js';
import { rootforge } from '../helpers/cli.js';
import { ALPINE_X86, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'rf-prov-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const AGENT = join(work, 'fake-agent');
writeFileSync(AGENT, Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(4000, 1)]));
chmodSync(AGENT, 0o755);

async function open(img: string) {
  const image = await Ext4Image.open(img);
  const st = (p: string) => image.lookup(p);
  const text = async (p: string) => (await image.readData(await image.resolve(p))).toString();
  return { image, st, text, close: () => image.close() };
}

function mode(s: Stat): string {
  return s.perm.toString(8);
}

test('scratch + agent init: layout, /etc files, agent config; deterministic; e2fsck-clean', async () => {
  const spec = resolveSpec(
    { agent: AGENT, hostname: 'box', users: [{ name: 'dev', uid: 1000 }], env: { FOO: 'bar' }, mounts: [{ tag: 'ws', target: '/workspace' }], journal: false },
    work,
    'scratch',
  );
  const img = join(work, 'scratch.img');
  spec.output = img;
  const r = await buildImage(spec);
  assert.equal(r.init, '/sbin/init');
  assertFsckClean(img);
  const { st, text, image, close } = await open(img);
  const init = await st('sbin/init');
  assert.equal(init.kind, 'symlink');
  assert.equal(await image.readlink(init), '/usr/sbin/rootforge-agent');
  const agent = await st('usr/sbin/rootforge-agent');
  assert.equal(mode(agent), '755');
  assert.ok((await image.readData(agent)).equals(readFileSync(AGENT)));
  assert.equal(mode(await st('tmp')), '1777');
  assert.equal(mode(await st('var/tmp')), '1777');
  assert.equal(mode(await st('root')), '700');
  const ws = await st('workspace');
  assert.equal(ws.uid, 1000, 'the work directory belongs to the first user');
  assert.equal((await st('dev/console')).kind, 'chardev');
  assert.equal(await text('etc/hostname'), 'box\n');
  assert.match(await text('etc/hosts'), /127\.0\.1\.1\tbox/);
  assert.match(await text('etc/passwd'), /^root:x:0:0:root:\/root:\/bin\/sh$/m);
  assert.match(await text('etc/passwd'), /^dev:x:1000:1000:dev:\/home\/dev:\/bin\/sh$/m);
  assert.match(await text('etc/group'), /^dev:x:1000:$/m);
  assert.match(await text('etc/shadow'), /^dev:\*:/m);
  assert.equal(mode(await st('etc/shadow')), '600');
  assert.equal(await text('etc/resolv.conf'), 'nameserver 1.1.1.1\nnameserver 8.8.8.8\n');
  assert.match(await text('etc/nsswitch.conf'), /hosts: +files dns/);
  const cfg = JSON.parse(await text('etc/rootforge/agent.json')) as Record<string, unknown>;
  assert.equal(cfg['init'], '/sbin/init');
  assert.equal(cfg['vsockPort'], 1024);
  assert.deepEqual(cfg['env'], { FOO: 'bar' });
  assert.equal(cfg['user'], '1000:1000');
  assert.deepEqual(cfg['mounts'], [{ tag: 'ws', target: '/workspace', type: 'virtiofs', readOnly: false }]);
  assert.match(await text('etc/profile.d/rootforge-session-env.sh'), /\. \/etc\/rootforge\/session-env\.sh/);
  assert.match(await text('root/.ssh/rc'), /session-env\.sh/);
  assert.equal((await st('usr/sbin')).kind, 'dir');
  await close();
  // same spec ⇒ same bytes
  const again = join(work, 'scratch2.img');
  spec.output = again;
  await buildImage(spec);
  assert.ok(readFileSync(img).equals(readFileSync(again)));
  assert.ok(r.sizeBytes < 2 << 20, `a scratch image with a 4 KB agent is small (${r.sizeBytes})`);
});

test('wrapper, systemd and openrc modes over a merged-/usr base; base /etc kept, users merged', async () => {
  const base = join(work, 'base.tar');
  writeFileSync(
    base,
    tarEntries([
      { path: 'usr/', type: 'dir' },
      { path: 'usr/bin/', type: 'dir' },
      { path: 'usr/sbin/', type: 'dir' },
      { path: 'usr/lib/', type: 'dir' },
      { path: 'bin', type: 'symlink', linkname: 'usr/bin' },
      { path: 'sbin', type: 'symlink', linkname: 'usr/sbin' },
      { path: 'lib', type: 'symlink', linkname: 'usr/lib' },
      { path: 'usr/bin/sh', content: '#!fake shell\n', mode: 0o755 },
      { path: 'usr/sbin/init', type: 'symlink', linkname: '../lib/systemd/systemd' },
      { path: 'usr/lib/systemd/systemd', content: 'fake systemd', mode: 0o755 },
      { path: 'usr/sbin/openrc-run', content: 'fake openrc', mode: 0o755 },
      { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n' },
      { path: 'etc/group', content: 'root:x:0:\ndaemon:x:1:\nsudo:x:27:\n' },
      { path: 'etc/shadow', content: 'root:*:19000:0:99999:7:::\n', mode: 0o640, gid: 42 },
      { path: 'etc/hostname', content: 'debian\n' },
      { path: 'etc/resolv.conf', type: 'symlink', linkname: '../run/systemd/resolve/stub-resolv.conf' },
      { path: 'usr/share/doc/pkg/README', content: 'STRIPPED-DOC-CONTENT' },
      { path: 'usr/share/man/man1/x.1', content: 'STRIPPED-MAN-CONTENT' },
      { path: 'usr/share/keep/file', content: 'kept' },
    ]),
  );
  for (const init of ['wrapper', 'systemd', 'openrc'] as const) {
    const spec = resolveSpec(
      { from: `tar:${base}`, agent: AGENT, init, users: [{ name: 'dev', uid: 1000, groups: ['sudo'] }], strip: ['docs', 'man'] },
      work,
      init,
    );
    spec.output = join(work, `${init}.img`);
    const r = await buildImage(spec);
    assertFsckClean(spec.output);
    const bytes = readFileSync(spec.output);
    assert.equal(bytes.indexOf('STRIPPED-DOC-CONTENT'), -1, 'stripped docs are not written');
    assert.equal(bytes.indexOf('STRIPPED-MAN-CONTENT'), -1);
    const { st, text, image, close } = await open(spec.output);
    // merged /usr: the symlinks stay, provisioned files land below usr/
    assert.equal((await st('sbin')).kind, 'symlink');
    assert.equal((await st('bin')).kind, 'symlink');
    assert.equal(mode(await st('usr/sbin/rootforge-agent')), '755');
    assert.equal(await text('usr/share/keep/file'), 'kept');
    await assert.rejects(st('usr/share/doc/pkg/README'));
    // the base's accounts are kept, the user added, supplementary group joined
    const passwd = await text('etc/passwd');
    assert.match(passwd, /^root:x:0:0:root:\/root:\/bin\/bash$/m);
    assert.match(passwd, /^daemon:/m);
    assert.match(passwd, /^dev:x:1000:1000:/m);
    assert.match(await text('etc/group'), /^sudo:x:27:dev$/m);
    const shadow = await st('etc/shadow');
    assert.deepEqual([mode(shadow), shadow.gid], ['640', 42], "the base's shadow mode and group are kept");
    assert.equal(await text('etc/hostname'), 'debian\n', 'a default hostname does not overwrite the base');
    if (init === 'systemd') {
      assert.equal((await st('etc/resolv.conf')).kind, 'symlink', 'systemd keeps its resolver link');
      assert.match(await text('etc/systemd/system/rootforge-agent.service'), /Restart=always/);
      const wants = await st('etc/systemd/system/multi-user.target.wants/rootforge-agent.service');
      assert.equal(await image.readlink(wants), '/etc/systemd/system/rootforge-agent.service');
      assert.equal(r.init, '/sbin/init');
    } else {
      assert.equal((await st('etc/resolv.conf')).kind, 'file', 'no systemd: a real resolv.conf replaces the link');
    }
    if (init === 'wrapper') {
      assert.equal(r.init, '/sbin/rootforge-init');
      const w = await st('usr/sbin/rootforge-init');
      assert.equal(mode(w), '755');
      assert.match(await text('usr/sbin/rootforge-init'), /exec "\$real"/);
      assert.equal(await text('etc/rootforge/real-init'), '/sbin/init\n');
    }
    if (init === 'openrc') {
      assert.match(await text('etc/init.d/rootforge-agent'), /^#!\/sbin\/openrc-run/);
      assert.equal(mode(await st('etc/init.d/rootforge-agent')), '755');
      assert.equal(await image.readlink(await st('etc/runlevels/default/rootforge-agent')), '/etc/init.d/rootforge-agent');
    }
    await close();
  }
});

test('files overlay keeps modes; RootfsBuilder equals the same YAML spec; CLI build with env overrides', async () => {
  const files = join(work, 'files');
  mkdirSync(join(files, 'usr/local/bin'), { recursive: true });
  writeFileSync(join(files, 'usr/local/bin/hook'), '#!/bin/sh\necho hook\n');
  chmodSync(join(files, 'usr/local/bin/hook'), 0o750);
  mkdirSync(join(files, 'etc'), { recursive: true });
  writeFileSync(join(files, 'etc/motd'), 'welcome\n');
  const viaApi = join(work, 'api.img');
  await new RootfsBuilder(work).from('scratch').withAgent(AGENT).hostname('api').files('files').env({ A: '1' }).journal(false).build(viaApi);
  const yaml = join(work, 'same.yaml');
  writeFileSync(yaml, `agent: ${AGENT}\nhostname: api\nfiles: files\nenv: {A: "1"}\njournal: false\n`);
  const viaYaml = join(work, 'yaml.img');
  const spec = await loadSpec(yaml);
  spec.output = viaYaml;
  await buildImage(spec);
  assert.ok(readFileSync(viaApi).equals(readFileSync(viaYaml)), 'fluent API and YAML give the same image');
  const { st, text, close } = await open(viaApi);
  const hook = await st('usr/local/bin/hook');
  assert.deepEqual([mode(hook), hook.uid], ['750', 0]);
  assert.equal(await text('etc/motd'), 'welcome\n');
  await close();
  // CLI: IMAGE_NAME and IMAGE_SIZE override the spec, like the Bouvet Makefile
  const r = rootforge(['build', yaml, '-q', '--json'], { IMAGE_NAME: join(work, 'from-env'), IMAGE_SIZE: '32M' });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.toString()) as { output: string; sizeBytes: number };
  assert.equal(out.output, join(work, 'from-env.ext4'));
  assert.equal(out.sizeBytes, 32 << 20);
  assert.ok(existsSync(out.output));
  assertFsckClean(out.output);
  const bad = rootforge(['build', join(work, 'nope.yaml')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /SPEC_NOT_FOUND/);
});

test('the Alpine example (wrapper init over the real minirootfs) builds clean', async (t) => {
  if (!existsSync(ALPINE_X86)) return skipOrFail(t, NO_SHARED);
  const spec = await loadSpec(new URL('../../../examples/alpine-agent.yaml', import.meta.url).pathname);
  spec.agent = AGENT;
  spec.output = join(work, 'alpine.img');
  const r = await buildImage(spec);
  assertFsckClean(spec.output);
  assert.equal(r.arch, 'amd64', 'detected from /bin/busybox');
  const { st, text, close } = await open(spec.output);
  assert.equal(await text('etc/alpine-release'), '3.20.3\n');
  assert.equal(await text('etc/hostname'), 'alpine-sandbox\n', 'an explicit hostname overwrites the base');
  assert.match(await text('etc/passwd'), /^agent:x:1000:1000:/m);
  assert.equal((await st('sbin/rootforge-init')).kind, 'file');
  assert.equal(await text('etc/resolv.conf'), 'nameserver 1.1.1.1\nnameserver 9.9.9.9\n');
  await close();
});
