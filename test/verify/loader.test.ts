/**
 * The loaders' search rules, on images of synthetic ELFs (no host programs needed): run-path
 * token expansion, ld.so.conf includes, musl's .path file, RPATH inheritance versus RUNPATH,
 * glibc's reuse of already-loaded libraries by soname, musl's built-in libc names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandRunPath, flavorOfInterp, muslProvides } from '../../src/verify/loader.js';
import { verifyImage } from '../../src/verify/verify.js';
import type { ElfInfo } from '../../src/verify/elf.js';
import { buildElf, EM_386, EM_AARCH64 } from './elf-builder.js';
import { buildImage, check, Tree } from './helpers.js';

const x64 = { elfClass: 2, data: 1, machine: 62 } as ElfInfo;

test('run paths: $ORIGIN, ${ORIGIN}, $LIB, $PLATFORM, empty and relative items', () => {
  assert.deepEqual(expandRunPath('$ORIGIN/../lib:${ORIGIN}/x', '/opt/app/bin', x64), ['/opt/app/lib', '/opt/app/bin/x']);
  assert.deepEqual(expandRunPath('/usr/$LIB', '/', x64), ['/usr/lib64', '/usr/lib', '/usr/lib/x86_64-linux-gnu']);
  assert.deepEqual(expandRunPath('/p/${PLATFORM}', '/', { ...x64, machine: EM_AARCH64 }), ['/p/aarch64']);
  assert.deepEqual(expandRunPath('/usr/$LIB', '/', { ...x64, elfClass: 1, machine: EM_386 }), ['/usr/lib', '/usr/lib32', '/usr/lib/i386-linux-gnu']);
  assert.deepEqual(expandRunPath('::rel/dir:/a/./b/', '/', x64), ['/rel/dir', '/a/b']);
  assert.deepEqual(expandRunPath('$ORIGINAL/x', '/o', x64), ['/$ORIGINAL/x'], 'only whole tokens expand');
});

test('musl: flavour from the interpreter, built-in library names', () => {
  assert.deepEqual(flavorOfInterp('/lib/ld-musl-x86_64.so.1'), { libc: 'musl', arch: 'x86_64' });
  assert.deepEqual(flavorOfInterp('/lib64/ld-linux-x86-64.so.2'), { libc: 'glibc' });
  for (const n of ['libc.musl-x86_64.so.1', 'libc.so', 'libpthread.so.0', 'libm.so.6', 'libdl.so.2', 'librt.so.1']) assert.equal(muslProvides(n), true, n);
  for (const n of ['libcrypto.so.3', 'libz.so.1', 'libmagic.so.1', 'libdlfoo.so']) assert.equal(muslProvides(n), false, n);
});

const GLIBC_LD = '/lib64/ld-linux-x86-64.so.2';

/** Mount points, a synthetic glibc loader, a static init: everything but what a test adds is fine. */
function base(): Tree {
  const t = new Tree();
  for (const d of ['/proc', '/sys', '/dev', '/run', '/etc', '/usr/bin', '/sbin']) t.dir(d);
  t.dir('/tmp', 0o1777);
  t.file(GLIBC_LD, buildElf({ soname: 'ld-linux-x86-64.so.2' }), 0o755);
  t.file('/lib/x86_64-linux-gnu/libc.so.6', buildElf({ soname: 'libc.so.6', needed: ['ld-linux-x86-64.so.2'] }));
  t.file('/sbin/init', buildElf({ type: 2, static: true }), 0o755);
  return t;
}

const prog = (spec: Parameters<typeof buildElf>[0]) => buildElf({ interp: GLIBC_LD, ...spec });

async function problems(t: Parameters<typeof buildImage>[0], tree: Tree, name: string): Promise<string[]> {
  const r = await verifyImage(await buildImage(t, tree, name), { fsck: false });
  for (const id of ['dirs', 'init', 'config']) assert.equal(check(r, id).ok, true, `${id}: ${check(r, id).message}`);
  const c = check(r, 'elf-deps');
  return ((c.details?.['problems'] as { file: string; name: string; reason: string }[] | undefined) ?? []).map((p) => `${p.file} ${p.name}: ${p.reason}`);
}

test('glibc: libc.so.6 needs the interpreter by soname (already loaded) and a static init has no deps', async (t) => {
  assert.deepEqual(await problems(t, base().file('/usr/bin/p', prog({ needed: ['libc.so.6'] }), 0o755), 'glibc-basic'), []);
});

test('ld.so.conf: include with a relative glob, comments, DIR=TYPE', async (t) => {
  const tree = base()
    .file('/usr/bin/p', prog({ needed: ['libbar.so.1', 'libbaz.so.1'] }), 0o755)
    .file('/opt/bar/libbar.so.1', buildElf({}))
    .file('/opt/baz/libbaz.so.1', buildElf({}));
  assert.deepEqual(await problems(t, tree, 'conf-none'), ['/usr/bin/p libbar.so.1: not found', '/usr/bin/p libbaz.so.1: not found']);
  tree.file('/etc/ld.so.conf', '# comment\ninclude conf.d/*.conf\n/opt/baz=libc6 # old syntax\n');
  tree.file('/etc/conf.d/bar.conf', '/opt/bar/\n').file('/etc/conf.d/ignored.txt', '/nowhere\n');
  assert.deepEqual(await problems(t, tree, 'conf-include'), []);
  // What ldconfig would warn about is said, not dropped.
  tree.dir('/etc/conf.d/odd.conf');
  const r = await verifyImage(await buildImage(t, tree, 'conf-note'), { fsck: false });
  assert.match(check(r, 'elf-deps').message, /; ld\.so\.conf: not a regular file \(\/etc\/conf\.d\/odd\.conf\)$/);
  assert.equal(check(r, 'elf-deps').ok, true);
});

test('glibc: RPATH is inherited by libraries, RUNPATH is not', async (t) => {
  const libs = (tree: Tree) => tree.file('/opt/r/liba.so', buildElf({ needed: ['libb.so'] })).file('/opt/r/libb.so', buildElf({}));
  const rpath = libs(base().file('/usr/bin/p', prog({ needed: ['liba.so'], rpath: '/opt/r' }), 0o755));
  assert.deepEqual(await problems(t, rpath, 'rpath'), []);
  const runpath = libs(base().file('/usr/bin/p', prog({ needed: ['liba.so'], runpath: '/opt/r' }), 0o755));
  assert.deepEqual(await problems(t, runpath, 'runpath'), ['/opt/r/liba.so libb.so: not found']);
});

test('glibc: a library already loaded answers to its soname (systemd private libraries)', async (t) => {
  const tree = base()
    .file('/opt/sd/libcore.so', buildElf({ soname: 'libcore.so', needed: ['libshared.so'] }))
    .file('/opt/sd/libshared.so', buildElf({ soname: 'libshared.so' }))
    .file('/usr/bin/both', prog({ needed: ['libcore.so', 'libshared.so'], runpath: '/opt/sd' }), 0o755);
  assert.deepEqual(await problems(t, tree, 'soname-ok'), []);
  tree.file('/usr/bin/only-core', prog({ needed: ['libcore.so'], runpath: '/opt/sd' }), 0o755);
  assert.deepEqual(await problems(t, tree, 'soname-missing'), ['/opt/sd/libcore.so libshared.so: not found']);
});

test('musl: built-in libc names, the .path file, defaults', async (t) => {
  const musl = () =>
    base()
      .file('/lib/ld-musl-x86_64.so.1', buildElf({ soname: 'libc.musl-x86_64.so.1' }), 0o755)
      .file('/usr/bin/m', buildElf({ interp: '/lib/ld-musl-x86_64.so.1', needed: ['libfoo.so.1', 'libc.musl-x86_64.so.1'] }), 0o755)
      .file('/opt/foo/libfoo.so.1', buildElf({ needed: ['libc.musl-x86_64.so.1'] }));
  assert.deepEqual(await problems(t, musl(), 'musl-default'), ['/usr/bin/m libfoo.so.1: not found']);
  assert.deepEqual(await problems(t, musl().file('/etc/ld-musl-x86_64.path', '/lib\n/opt/foo:/usr/lib\n'), 'musl-path'), []);
  // ld.so.conf is glibc's: musl does not read it.
  assert.deepEqual(await problems(t, musl().file('/etc/ld.so.conf', '/opt/foo\n'), 'musl-conf'), ['/usr/bin/m libfoo.so.1: not found']);
});

test('32-bit programs find 32-bit libraries; a 64-bit one of the same name is skipped', async (t) => {
  const tree = base()
    .file('/lib/ld-linux.so.2', buildElf({ bits: 32, machine: EM_386 }), 0o755)
    .file('/usr/bin/p32', buildElf({ bits: 32, machine: EM_386, interp: '/lib/ld-linux.so.2', needed: ['libq.so'] }), 0o755)
    .file('/lib/x86_64-linux-gnu/libq.so', buildElf({}))
    .file('/lib/i386-linux-gnu/libq.so', buildElf({ bits: 32, machine: EM_386 }));
  const r = await verifyImage(await buildImage(t, tree, 'lib32'), { fsck: false, arch: 'amd64' });
  assert.equal(check(r, 'elf-arch').ok, false, 'the i386 program is foreign to an amd64 image');
  assert.match(check(r, 'elf-arch').message, /\/usr\/bin\/p32 is i386 \(386\)/);
  // Checked against its own architecture it resolves: the x86_64 libq.so is skipped.
  const r386 = await verifyImage(await buildImage(t, tree.remove('/sbin/init'), 'lib32b'), { fsck: false, arch: '386' });
  assert.equal(check(r386, 'elf-deps').ok, true, check(r386, 'elf-deps').message);
});
