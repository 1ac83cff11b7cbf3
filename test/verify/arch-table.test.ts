/** The one architecture table (src/verify/arch.ts) and the modules that translate names through it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ARCHITECTURES, archByAnyName, archByMachine, ociArchName, vmArch } from '../../src/verify/arch.js';
import { normalizeArch, targetArch } from '../../src/provision/arch.js';
import { hostPlatform, parsePlatform } from '../../src/oci/manifest.js';
import { kernelArchOf } from '../../src/kernel/kernel-ref.js';
import { parseKernelArch } from '../../src/kernel/kernel-lock.js';
import { machineProfile } from '../../src/vm/machine.js';
import { apkArch } from '../../src/sources/alpine/spec.js';
import { RootforgeError } from '../../src/errors.js';

test('every row is unique by OCI name and by (machine, class, byte order)', () => {
  assert.equal(new Set(ARCHITECTURES.map((a) => a.arch)).size, ARCHITECTURES.length);
  assert.equal(new Set(ARCHITECTURES.map((a) => `${a.machine}/${a.elfClass}/${a.data}`)).size, ARCHITECTURES.length);
  assert.equal(new Set(ARCHITECTURES.map((a) => a.debian)).size, ARCHITECTURES.length);
});

test('names of every tool lead to the same row', () => {
  const cases: [string, string][] = [
    ['amd64', 'amd64'], ['x86_64', 'amd64'], ['x64', 'amd64'],
    ['arm64', 'arm64'], ['aarch64', 'arm64'],
    ['386', '386'], ['i386', '386'], ['x86', '386'], ['ia32', '386'],
    ['armhf', 'arm'], ['armv7', 'arm'], ['ppc64el', 'ppc64le'], ['mips64el', 'mips64le'], ['loongarch64', 'loong64'],
  ];
  for (const [name, oci] of cases) {
    assert.equal(archByAnyName(name)?.arch, oci, name);
    assert.equal(ociArchName(name), oci, name);
    assert.equal(normalizeArch(name), oci, name);
  }
  assert.equal(ociArchName('sparc64'), 'sparc64', 'unknown names pass through');
  assert.equal(targetArch({ platform: 'linux/aarch64' }), 'arm64');
  assert.equal(archByMachine(62)?.arch, 'amd64');
  assert.equal(archByMachine(183)?.arch, 'arm64');
  assert.equal(archByMachine(21)?.arch, 'ppc64le');
  assert.equal(archByMachine(9999), undefined);
});

test('VM architectures: kernel names, QEMU binaries and the errors for the rest', () => {
  assert.equal(vmArch('arm64')?.name, 'aarch64');
  assert.equal(vmArch('x86_64')?.arch, 'amd64');
  assert.equal(vmArch('riscv64'), undefined);
  assert.equal(vmArch(null), undefined);
  assert.equal(kernelArchOf('amd64'), 'x86_64');
  assert.equal(kernelArchOf('aarch64'), 'aarch64');
  assert.equal(kernelArchOf('s390x'), undefined);
  assert.equal(parseKernelArch('x64'), 'x86_64');
  assert.equal(parseKernelArch('arm64'), 'aarch64');
  assert.throws(() => parseKernelArch('riscv64'), (e: unknown) => e instanceof RootforgeError && e.code === 'OPTION_INVALID');
  assert.equal(machineProfile('x86_64')?.qemu, 'qemu-system-x86_64');
  assert.equal(machineProfile('arm64')?.qemu, 'qemu-system-aarch64');
  assert.equal(machineProfile('riscv64'), undefined);
});

test('distribution names: apk architectures, and the host platform images are picked for', () => {
  assert.deepEqual(['amd64', 'arm64', '386', 'arm', 'ppc64le'].map(apkArch), ['x86_64', 'aarch64', 'x86', 'armv7', 'ppc64le']);
  const host = hostPlatform();
  assert.equal(host.os, 'linux');
  assert.equal(host.architecture, archByAnyName(process.arch)?.arch ?? process.arch);
  assert.deepEqual(parsePlatform(`linux/${host.architecture}`).architecture, host.architecture);
});
