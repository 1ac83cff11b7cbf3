/**
 * `kernel from-deb` end to end on Debian's real cloud kernel package:
 *  - kernel.json lists the initramfs modules, and their load order agrees with the modules.dep
 *    that depmod (kmod) writes for the same package extracted by dpkg-deb: every module after
 *    all of its dependencies, and exactly the wanted modules plus their dependency closure;
 *  - the config check reports the virtio/vsock pieces as modules, ext4/8250 console/PVH built in;
 *  - the initramfs holds our /init and the module bytes as shipped, in the listed order;
 *  - a second run reuses the entry, --force rebuilds byte-identical output, resolveKernel finds
 *    it as the default, by name and by .deb path; bad input is typed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelFromDeb } from '../../src/kernel/kernel-deb.js';
import { resolveKernel } from '../../src/kernel/kernel.js';
import { readCpio } from '../../src/kernel/cpio.js';
import { moduleNameOf, parseModulesDep } from '../../src/kernel/kernel-modules.js';
import { isRootforgeError } from '../../src/errors.js';
import { debianCloudKernel, initBinary, skipOrFail, which } from '../helpers/kernel.js';

test('from-deb on the Debian cloud kernel: modules in modules.dep order, config check, initramfs', { timeout: 600_000 }, async (t) => {
  const deb = await debianCloudKernel();
  if ('skip' in deb) return skipOrFail(t, deb.skip);
  const init = initBinary();
  if (init.path === null) return skipOrFail(t, init.why!);
  const dir = mkdtempSync(join(tmpdir(), 'rf-fromdeb-'));
  try {
    const cacheDir = join(dir, 'cache');
    const t0 = Date.now();
    const r = await kernelFromDeb(deb.path, { cacheDir });
    t.diagnostic(`from-deb ${Date.now() - t0} ms; initramfs ${r.entry.meta.files.initramfs!.size} bytes, ${r.entry.meta.modules.length} modules`);
    assert.equal(r.built, true);
    assert.equal(r.madeDefault, true);
    const meta = JSON.parse(readFileSync(join(r.entry.dir, 'kernel.json'), 'utf8'));
    const release: string = meta.version;
    assert.equal(meta.name, `deb-${release}`);
    assert.equal(meta.arch, 'x86_64');
    assert.equal(meta.pvh, true);
    assert.deepEqual([meta.source.kind, meta.source.package], ['deb', deb.package]);
    const order: string[] = meta.modules.map((m: { name: string }) => m.name);
    for (const m of ['virtio_mmio', 'virtio_pci', 'virtio_pci_modern_dev', 'virtio_blk', 'virtio_console', 'vsock', 'vmw_vsock_virtio_transport_common', 'vmw_vsock_virtio_transport', 'virtio', 'virtio_ring']) {
      assert.ok(order.includes(m), `${m} in ${order.join(' ')}`);
    }
    assert.ok(!order.includes('ext4'), 'ext4 is built into this kernel');

    // the config check: virtio pieces are modules, the rest built in, nothing required missing
    const state = new Map(meta.config.checks.map((c: { symbol: string; state: string }) => [c.symbol, c.state]));
    for (const s of ['VIRTIO', 'VIRTIO_MMIO', 'VIRTIO_PCI', 'VIRTIO_BLK', 'VIRTIO_CONSOLE', 'VSOCKETS', 'VIRTIO_VSOCKETS', 'VIRTIO_VSOCKETS_COMMON']) assert.equal(state.get(s), 'm', s);
    for (const s of ['EXT4_FS', 'SERIAL_8250_CONSOLE', 'DEVTMPFS', 'BLK_DEV_INITRD', 'PVH']) assert.equal(state.get(s), 'y', s);
    assert.deepEqual(meta.config.missing, []);

    // against depmod's modules.dep for the same package
    if (!which('dpkg-deb') || !which('depmod')) {
      skipOrFail(t, 'dpkg-deb and depmod (kmod) are needed for the modules.dep comparison (apt-get install kmod)');
      return;
    }
    const root = join(dir, 'root');
    assert.equal(spawnSync('dpkg-deb', ['-x', deb.path, root]).status, 0);
    const dm = spawnSync('depmod', ['-b', root, release], { encoding: 'utf8' });
    assert.equal(dm.status, 0, dm.stderr);
    const dep = parseModulesDep(readFileSync(join(root, 'lib/modules', release, 'modules.dep'), 'utf8'));
    const pos = new Map(order.map((n, i) => [n, i]));
    for (const [i, n] of order.entries()) {
      const d = dep.get(n);
      assert.ok(d, `${n} is in depmod's modules.dep`);
      for (const x of d.depends) assert.ok((pos.get(x) ?? Infinity) < i, `${x} is loaded before ${n}`);
      assert.equal(meta.modules[i].path, d.path);
    }
    // exactly the closure of the wanted modules (the config's =m modules) under modules.dep
    const wanted = meta.config.checks.filter((c: { state: string; module?: string }) => c.state === 'm' && c.module && dep.has(c.module)).map((c: { module: string }) => c.module);
    const closure = new Set<string>();
    const add = (n: string): void => {
      if (closure.has(n)) return;
      closure.add(n);
      for (const x of dep.get(n)?.depends ?? []) add(x);
    };
    wanted.forEach(add);
    assert.deepEqual([...closure].sort(), [...order].sort());

    // the initramfs: our /init, the module list in order, the modules' bytes as shipped
    const recs = readCpio(readFileSync(r.entry.initramfs!));
    const by = new Map(recs.map((x) => [x.path, x]));
    assert.deepEqual(by.get('init')!.data, readFileSync(init.path));
    assert.equal(by.get('init')!.mode, 0o100755);
    assert.deepEqual([by.get('dev/console')!.mode, by.get('dev/console')!.rmajor, by.get('dev/console')!.rminor], [0o020600, 5, 1]);
    const listed = by.get('etc/initrd-modules')!.data.toString().split('\n').filter((l) => l.startsWith('/'));
    assert.deepEqual(listed.map(moduleNameOf), order);
    for (const p of listed) assert.deepEqual(by.get(p.slice(1))!.data, readFileSync(join(root, p)), p);
    const cpio = spawnSync('cpio', ['-it', '--quiet'], { input: readFileSync(r.entry.initramfs!), encoding: 'utf8' });
    if (cpio.status === 0) assert.ok(cpio.stdout.split('\n').includes('init'));

    // idempotent, deterministic
    const again = await kernelFromDeb(deb.path, { cacheDir });
    assert.equal(again.built, false);
    const before = readFileSync(r.entry.initramfs!);
    const forced = await kernelFromDeb(deb.path, { cacheDir, force: true });
    assert.equal(forced.built, true);
    assert.ok(readFileSync(forced.entry.initramfs!).equals(before), 'same inputs, same initramfs bytes');

    // resolveKernel: the default, by name, by .deb path
    const k = await resolveKernel(undefined, { cacheDir });
    assert.deepEqual([k.name, k.version, k.arch, k.pvh], [meta.name, release, 'x86_64', true]);
    assert.equal(k.initramfs, r.entry.initramfs);
    assert.equal((await resolveKernel(meta.name, { cacheDir })).vmlinux, k.vmlinux);
    assert.equal((await resolveKernel(deb.path, { cacheDir })).vmlinux, k.vmlinux);

    // fewer modules on request; a module that is not there is a typed error
    const small = await kernelFromDeb(deb.path, { cacheDir, name: 'small', without: ['virtio_net', 'virtiofs', 'virtio_rng', 'virtio_pci'] });
    const smallOrder = small.entry.meta.modules.map((m) => m.name);
    for (const gone of ['virtio_net', 'failover', 'fuse', 'virtiofs', 'virtio_pci', 'virtio_pci_modern_dev']) assert.ok(!smallOrder.includes(gone), gone);
    assert.ok(small.entry.meta.files.initramfs!.size < r.entry.meta.files.initramfs!.size);
    assert.equal(small.madeDefault, false, 'the default stays');
    await assert.rejects(kernelFromDeb(deb.path, { cacheDir, name: 'x', modules: ['no_such_module'] }), (e: unknown) => isRootforgeError(e, 'KERNEL_MODULE_MISSING'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('from-deb and resolveKernel: bad input is typed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-fromdeb-bad-'));
  try {
    const cacheDir = join(dir, 'cache');
    const notDeb = join(dir, 'x.deb');
    writeFileSync(notDeb, 'this is not an ar archive');
    await assert.rejects(kernelFromDeb(notDeb, { cacheDir }), (e: unknown) => isRootforgeError(e, 'KERNEL_BAD_DEB'));
    await assert.rejects(kernelFromDeb('Not A Package!', { cacheDir }), (e: unknown) => isRootforgeError(e, 'KERNEL_NOT_FOUND'));
    await assert.rejects(resolveKernel(undefined, { cacheDir }), (e: unknown) => isRootforgeError(e, 'KERNEL_NOT_FOUND') && /kernel from-deb/.test((e as Error).message));
    await assert.rejects(resolveKernel('no-such-kernel', { cacheDir }), (e: unknown) => isRootforgeError(e, 'KERNEL_NOT_FOUND'));
    await assert.rejects(resolveKernel('./missing/vmlinux', { cacheDir }), (e: unknown) => isRootforgeError(e, 'KERNEL_NOT_FOUND'));
    await assert.rejects(resolveKernel(join(dir, 'x.deb'), { cacheDir }), (e: unknown) => isRootforgeError(e, 'KERNEL_BAD_IMAGE'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
