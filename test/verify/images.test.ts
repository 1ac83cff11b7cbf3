/**
 * verify on real images: a good one made of host programs (clean), and broken variants of it,
 * each failing exactly the check it should, with a message naming the culprit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { verifyImage } from '../../src/verify/verify.js';
import { skipOrFail, NO_SHARED } from '../helpers/fixtures.js';
import { buildElf, EM_AARCH64 } from './elf-builder.js';
import { ALPINE_ARM64, buildImage, check, failed, fromTar, goodTree, hostLib, hostUsable, realDir, type Tree } from './helpers.js';

const SKIP = hostUsable();
const SBIN = SKIP ? '/usr/sbin' : realDir('/sbin');
const BIN = SKIP ? '/usr/bin' : realDir('/bin');

async function verifyTree(t: Parameters<typeof buildImage>[0], tree: Tree, name: string, options = {}) {
  const img = await buildImage(t, tree, name);
  return verifyImage(img, options);
}

/** Runs `fn` unless the host cannot provide the programs (then skip, or fail in CI). */
function hostTest(name: string, fn: (t: Parameters<typeof buildImage>[0] & { diagnostic: (m: string) => void }) => Promise<void>) {
  test(name, async (t) => {
    if (SKIP) return skipOrFail(t, SKIP);
    await fn(t);
  });
}

hostTest('a good image of host programs verifies clean', async (t) => {
  const r = await verifyTree(t, goodTree(), 'good');
  assert.deepEqual(failed(r), { errors: [], warnings: [] }, JSON.stringify(r.checks, null, 2));
  assert.equal(r.ok, true);
  assert.deepEqual(r.checks.map((c) => c.id), ['fsck', 'config', 'dirs', 'tmp-mode', 'init', 'agent', 'elf-deps', 'elf-arch']);
  assert.equal(r.architecture.arch, 'amd64');
  assert.equal(r.architecture.source, 'binaries');
  assert.match(check(r, 'init').message, /^\/sbin\/init -> .*dash: ELF x86_64 \(amd64\), dynamic/);
  assert.match(check(r, 'agent').message, /rootforge-agent: ELF x86_64 \(amd64\), static/);
  assert.match(check(r, 'config').message, /agent\.json \(init \/sbin\/init\)/);
  assert.ok(r.stats.programs >= 3, `programs: ${r.stats.programs}`);
  assert.ok(r.stats.libraries >= 3, `libraries: ${r.stats.libraries}`);
});

hostTest('a program whose interpreter is missing fails elf-deps only', async (t) => {
  const ls = readFileSync('/bin/ls');
  const at = ls.indexOf('/lib64/ld-linux-x86-64.so.2\0');
  assert.ok(at > 0, 'the interpreter path of /bin/ls');
  const broken = Buffer.from(ls);
  broken.fill(0, at, at + 28);
  broken.write('/lib/ld-gone.so.2', at, 'latin1'); // shorter, NUL-padded: still a valid PT_INTERP
  const tree = goodTree().file(`${BIN}/ls-broken`, broken, 0o755);
  const r = await verifyTree(t, tree, 'no-interp');
  assert.deepEqual(failed(r), { errors: ['elf-deps'], warnings: [] });
  const c = check(r, 'elf-deps');
  assert.match(c.message, /^\/.*bin\/ls-broken: program interpreter \/lib\/ld-gone\.so\.2: no such file or directory \(\/(usr\/)?lib\/ld-gone\.so\.2\)( \(via \/lib -> usr\/lib\))? \(\d+ programs, \d+ libraries reached\)$/);
  const problems = c.details!['problems'] as { file: string; kind: string; name: string }[];
  assert.deepEqual(problems.map((p) => [p.file, p.kind, p.name]), [[`${BIN}/ls-broken`, 'interpreter', '/lib/ld-gone.so.2']]);
});

hostTest('a missing DT_NEEDED library fails elf-deps only, naming the program', async (t) => {
  const lib = hostLib('/bin/ls', 'libselinux.so.1');
  const tree = goodTree();
  tree.remove(lib);
  const r = await verifyTree(t, tree, 'no-lib');
  assert.deepEqual(failed(r), { errors: ['elf-deps'], warnings: [] });
  const problems = check(r, 'elf-deps').details!['problems'] as { file: string; name: string; reason: string; searched: string[] }[];
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.file, `${BIN}/ls`);
  assert.equal(problems[0]!.name, 'libselinux.so.1');
  assert.equal(problems[0]!.reason, 'not found');
  assert.ok(problems[0]!.searched.includes('/lib/x86_64-linux-gnu'), problems[0]!.searched.join(':'));
  assert.match(check(r, 'elf-deps').message, /ls: library libselinux\.so\.1: not found/);
});

test('a library of the wrong architecture fails elf-deps only', async (t) => {
  if (SKIP) return skipOrFail(t, SKIP);
  if (!existsSync(ALPINE_ARM64)) return skipOrFail(t, NO_SHARED);
  const lib = hostLib('/bin/ls', 'libselinux.so.1');
  const arm = fromTar(ALPINE_ARM64, './lib/libz.so.1.3.1'); // a real aarch64 shared library
  const tree = goodTree().file(lib, arm, 0o644);
  const r = await verifyTree(t, tree, 'arch-lib');
  assert.deepEqual(failed(r), { errors: ['elf-deps'], warnings: [] });
  const problems = check(r, 'elf-deps').details!['problems'] as { file: string; name: string; reason: string }[];
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.name, 'libselinux.so.1');
  assert.match(problems[0]!.reason, /^not found for x86_64 \(amd64\); only another architecture: \/.*libselinux\.so\.1 is aarch64 \(arm64\)$/);
  assert.doesNotMatch(problems[0]!.reason, /,/, 'the same file reached through /lib and /usr/lib is named once');
});

hostTest('init pointing nowhere (a dangling symlink) fails init only', async (t) => {
  const tree = goodTree().symlink(`${SBIN}/init`, '/bin/nothing');
  const r = await verifyTree(t, tree, 'init-dangling');
  assert.deepEqual(failed(r), { errors: ['init'], warnings: [] });
  // e.g. "/sbin/init: no such file or directory (/usr/bin/nothing) (via /sbin -> usr/sbin, /usr/sbin/init -> /bin/nothing, /bin -> usr/bin)"
  assert.match(check(r, 'init').message, /^\/sbin\/init: no such file or directory \(\/(usr\/)?bin\/nothing\) \(via .*init -> \/bin\/nothing/);
});

hostTest('init that is not executable fails init only', async (t) => {
  const tree = goodTree().file(`${SBIN}/init`, readFileSync('/bin/sh'), 0o644);
  const r = await verifyTree(t, tree, 'init-noexec');
  assert.deepEqual(failed(r), { errors: ['init'], warnings: [] });
  assert.match(check(r, 'init').message, /^\/sbin\/init -> \/.*init is not executable \(mode 0644\)$/);
});

hostTest('init in a symlink loop fails init only', async (t) => {
  const tree = goodTree().symlink(`${SBIN}/init`, 'init-a').symlink(`${SBIN}/init-a`, `${SBIN}/init`);
  const r = await verifyTree(t, tree, 'init-loop');
  assert.deepEqual(failed(r), { errors: ['init'], warnings: [] });
  assert.match(check(r, 'init').message, /^\/sbin\/init: symbolic link loop \(.*init -> init-a, .*init-a -> .*init/);
});

hostTest('init as a #! script is checked through its interpreter', async (t) => {
  const ok = goodTree().file(`${SBIN}/init`, '#!/bin/sh -e\nexec /bin/ls\n', 0o755);
  const r1 = await verifyTree(t, ok, 'init-script');
  assert.deepEqual(failed(r1), { errors: [], warnings: [] });
  assert.match(check(r1, 'init').message, /#! script for \/bin\/sh -> .*dash: ELF x86_64/);
  const bad = goodTree().file(`${SBIN}/init`, '#!/bin/bash\necho hi\n', 0o755);
  const r2 = await verifyTree(t, bad, 'init-script-bad');
  assert.deepEqual(failed(r2), { errors: ['init'], warnings: [] });
  assert.match(check(r2, 'init').message, /is a #! script for \/bin\/bash: \/bin\/bash: no such file or directory/);
});

hostTest('a truncated ELF fails elf-deps as corrupt, without crashing', async (t) => {
  const tree = goodTree().file(`${BIN}/truncated`, readFileSync('/bin/ls').subarray(0, 1000), 0o755);
  const r = await verifyTree(t, tree, 'truncated');
  assert.deepEqual(failed(r), { errors: ['elf-deps'], warnings: [] });
  const problems = check(r, 'elf-deps').details!['problems'] as { file: string; kind: string; reason: string }[];
  assert.deepEqual(problems.map((p) => [p.file, p.kind]), [[`${BIN}/truncated`, 'elf']]);
  assert.match(problems[0]!.reason, /extends past the end of the file/);
});

test('an agent of the wrong architecture fails agent (and warns in elf-arch)', async (t) => {
  if (SKIP) return skipOrFail(t, SKIP);
  if (!existsSync(ALPINE_ARM64)) return skipOrFail(t, NO_SHARED);
  const tree = goodTree().file(`${SBIN}/rootforge-agent`, fromTar(ALPINE_ARM64, './bin/busybox'), 0o755);
  const r = await verifyTree(t, tree, 'agent-arm');
  assert.deepEqual(failed(r), { errors: ['agent'], warnings: ['elf-arch'] });
  assert.match(check(r, 'agent').message, /rootforge-agent is aarch64 \(arm64\), but the image is x86_64 \(amd64\) \(from the programs in \/bin and \/usr\/bin\)$/);
  assert.match(check(r, 'elf-arch').message, /^\/.*sbin\/rootforge-agent is aarch64 \(arm64\), not x86_64 \(amd64\) \(its dependencies are not checked\)$/);
});

hostTest('--arch arm64 makes the x86_64 programs foreign and the agent wrong', async (t) => {
  const r = await verifyTree(t, goodTree(), 'force-arch', { arch: 'arm64' });
  assert.equal(r.architecture.source, 'option');
  assert.deepEqual(failed(r), { errors: ['init', 'agent'], warnings: ['elf-arch'] });
  assert.match(check(r, 'init').message, /is x86_64 \(amd64\), but the image is aarch64 \(arm64\) \(from --arch\)/);
});

hostTest('image.json names the architecture', async (t) => {
  const tree = goodTree().file('/etc/rootforge/image.json', JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const r = await verifyTree(t, tree, 'image-json');
  assert.equal(r.architecture.source, 'image.json');
  assert.deepEqual(failed(r), { errors: [], warnings: [] });
});

hostTest('broken config files fail config', async (t) => {
  const tree = goodTree().file('/etc/rootforge/agent.json', '{"init": 42}').file('/etc/rootforge/image.json', '{not json');
  const r = await verifyTree(t, tree, 'bad-config');
  assert.deepEqual(failed(r), { errors: ['config'], warnings: [] });
  const msg = check(r, 'config').message;
  assert.match(msg, /Cannot use \/etc\/rootforge\/agent\.json: the init field is not a string \(42\)/);
  assert.match(msg, /Cannot parse \/etc\/rootforge\/image\.json: not valid JSON/);
});

hostTest('missing mount points fail dirs; a 0755 /tmp is a warning', async (t) => {
  const tree = goodTree().remove('/proc').remove('/run').dir('/tmp', 0o755);
  const r = await verifyTree(t, tree, 'dirs');
  assert.deepEqual(failed(r), { errors: ['dirs'], warnings: ['tmp-mode'] });
  assert.match(check(r, 'dirs').message, /^\/proc: no such file or directory \(\/proc\); \/run: no such file or directory \(\/run\)$/);
  assert.equal(check(r, 'tmp-mode').message, '/tmp is 0755, expected 1777 (world-writable, sticky)');
  assert.equal(r.ok, false);
});

hostTest('a library found only through ld.so.conf (include glob) or $ORIGIN', async (t) => {
  const pcre = hostLib('/bin/ls', 'libpcre2-8.so.0');
  const moved = () => goodTree().remove(pcre).file('/opt/pcre/libpcre2-8.so.0', readFileSync(pcre), 0o644);
  const r1 = await verifyTree(t, moved(), 'conf-missing');
  assert.deepEqual(failed(r1), { errors: ['elf-deps'], warnings: [] });
  assert.match(check(r1, 'elf-deps').message, /libselinux\.so\.1: library libpcre2-8\.so\.0: not found \(needed for \/.*bin\/ls\)/);
  const r2 = await verifyTree(t, moved().file('/etc/ld.so.conf.d/pcre.conf', '/opt/pcre\n'), 'conf-found');
  assert.deepEqual(failed(r2), { errors: [], warnings: [] });
  // A synthetic program with RUNPATH $ORIGIN/../lib and its library beside it.
  const app = buildElf({ interp: '/lib64/ld-linux-x86-64.so.2', needed: ['libapp.so.1', 'libc.so.6'], runpath: '$ORIGIN/../lib' });
  const lib = buildElf({ soname: 'libapp.so.1', needed: ['libc.so.6'] });
  const withApp = goodTree().file('/usr/libexec/app/bin/app', app, 0o755).file('/usr/libexec/app/lib/libapp.so.1', lib);
  const r3 = await verifyTree(t, withApp, 'origin');
  assert.deepEqual(failed(r3), { errors: [], warnings: [] });
  const noRunpath = buildElf({ interp: '/lib64/ld-linux-x86-64.so.2', needed: ['libapp.so.1'] });
  const r4 = await verifyTree(t, goodTree().file('/usr/libexec/app/bin/app', noRunpath, 0o755).file('/usr/libexec/app/lib/libapp.so.1', lib), 'no-origin');
  assert.match(check(r4, 'elf-deps').message, /^\/usr\/libexec\/app\/bin\/app: library libapp\.so\.1: not found \(/);
});

hostTest('a synthetic arm64 library next to the real one is skipped, as ld.so does', async (t) => {
  // An aarch64 libselinux.so.1 first in the search path (via ld.so.conf), the real one later.
  const arm = buildElf({ machine: EM_AARCH64, soname: 'libselinux.so.1' });
  const tree = goodTree().file('/opt/arm/libselinux.so.1', arm).file('/etc/ld.so.conf.d/00-arm.conf', '/opt/arm\n');
  const r = await verifyTree(t, tree, 'skip-arm');
  assert.deepEqual(failed(r), { errors: [], warnings: [] });
});

hostTest('a corrupted group descriptor fails fsck (e2fsck -fn) while the rest passes', async (t) => {
  const img = await buildImage(t, goodTree(), 'fsck');
  const { openSync, readSync, writeSync, closeSync } = await import('node:fs');
  const fd = openSync(img, 'r+');
  const b = Buffer.alloc(2);
  readSync(fd, b, 0, 2, 4096 + 0x0e); // group 0 descriptor: bg_free_inodes_count_lo
  b.writeUInt16LE((b.readUInt16LE(0) + 7) & 0xffff);
  writeSync(fd, b, 0, 2, 4096 + 0x0e);
  closeSync(fd);
  const r = await verifyImage(img);
  assert.deepEqual(failed(r), { errors: ['fsck'], warnings: [] });
  assert.match(check(r, 'fsck').message, /^e2fsck -fn exited [48]/);
  assert.match(String(check(r, 'fsck').details!['output']), /descriptor|free inodes count wrong/i);
});

hostTest('e2fsck missing is a warning, not a failure', async (t) => {
  const img = await buildImage(t, goodTree(), 'no-e2fsck');
  const r = await verifyImage(img, { e2fsck: '/nonexistent/e2fsck' });
  assert.deepEqual(failed(r), { errors: [], warnings: ['fsck'] });
  assert.equal(r.ok, true);
  assert.match(check(r, 'fsck').message, /^e2fsck not found/);
});

hostTest('a corrupt inode in a scanned directory: a read check fails, e2fsck still reports', async (t) => {
  const img = await buildImage(t, goodTree(), 'bad-inode');
  const { Ext4Image } = await import('../../src/ext4/reader.js');
  const im = await Ext4Image.open(img);
  const st = await im.resolve('/bin/ls');
  const g = Math.floor((st.ino - 1) / im.sb.inodesPerGroup);
  const at = im.groups[g]!.inodeTable * im.blockSize + ((st.ino - 1) % im.sb.inodesPerGroup) * im.sb.inodeSize;
  await im.close();
  const { openSync, writeSync, closeSync } = await import('node:fs');
  const fd = openSync(img, 'r+');
  writeSync(fd, Buffer.from([0xaa, 0x55]), 0, 2, at + 0x64); // i_generation: only the checksum notices
  closeSync(fd);
  const r = await verifyImage(img);
  assert.equal(r.ok, false);
  assert.deepEqual(failed(r).errors, ['fsck', 'read']);
  assert.match(check(r, 'read').message, /^the image cannot be read, checks after this point were not run: Cannot read inode: inode checksum mismatch \(\d+\)$/);
});
