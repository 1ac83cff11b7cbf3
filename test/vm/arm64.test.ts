/**
 * arm64 without booting: the QEMU machine profile (virt, PL011 console, TCG for a foreign guest),
 * Firecracker's aarch64 boot args, the aarch64 kernel config checks, the private apt arguments,
 * images that record their architecture, picking a kernel by it, and the typed errors for an
 * image/kernel or base/platform mismatch (before any VM starts). Real arm64 boots are in
 * arm64-boot.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { convert } from '../../src/convert.js';
import { verifyImage } from '../../src/verify/verify.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../../src/build-image.js';
import { isRootforgeError } from '../../src/errors.js';
import { resolveSpec } from '../../src/spec/load.js';
import { targetArch } from '../../src/provision/arch.js';
import { debArchOfPackage, foreignAptArgs } from '../../src/kernel/apt-foreign.js';
import { bootImage, imageBootInfo } from '../../src/vm/boot.js';
import { firecrackerBootArgs } from '../../src/vm/firecracker.js';
import { checkKernelConfig } from '../../src/kernel/kernel-config.js';
import { KernelCache, fileInfo } from '../../src/kernel/kernel-cache.js';
import { resolveKernel } from '../../src/kernel/kernel.js';
import { chooseGuestAccel, machineProfile } from '../../src/vm/machine.js';
import { kernelCmdline, qemuArgv } from '../../src/vm/qemu.js';
import { kernelFromVmlinuz } from '../../src/kernel/kernel-deb.js';
import { isArm64Image } from '../../src/kernel/kernel-elf.js';
import { gzipSync } from 'node:zlib';
import type { KernelRef } from '../../src/vm/types.js';
import { goAvailable, REPO } from '../helpers/agent.js';
import { spawnSync } from 'node:child_process';
import { SHARED, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { rootforge } from '../helpers/cli.js';
import { existsSync } from 'node:fs';
import { alpineOciLayout } from '../helpers/oci-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'rf-arm64-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const ARM_KERNEL: KernelRef = { vmlinux: '/k/Image', initramfs: '/k/initramfs.cpio', name: 'deb-arm', arch: 'arm64' };
const X86_KERNEL: KernelRef = { vmlinux: '/k/vmlinux', initramfs: '/k/initramfs.cpio', name: 'deb-x86', arch: 'amd64' };
const ALPINE_X86 = join(SHARED, 'fixtures/alpine/alpine-minirootfs-3.20.3-x86_64.tar.gz');

let agentsBuilt: string | null | undefined;
/** The amd64 and arm64 agents (built now when Go is here): builds for both run on any host. */
function agentBinary(): { path: string | null; why?: string } {
  if (agentsBuilt === undefined) {
    if (goAvailable()) {
      const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'build-agent.mjs'), '--arch', 'amd64', '--arch', 'arm64', '--quiet'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`building the agents failed: ${r.stderr}`);
    }
    const both = ['amd64', 'arm64'].every((a) => existsSync(join(REPO, 'build', 'agent', `linux-${a}`, 'rootforge-agent')));
    agentsBuilt = both ? join(REPO, 'build', 'agent') : null;
  }
  if (agentsBuilt === null) return { path: null, why: 'no Go toolchain (apt-get install golang-go) and no build/agent binaries for amd64 and arm64' };
  return { path: agentsBuilt };
}

test('QEMU for an arm64 kernel: qemu-system-aarch64 -M virt, cortex-a72 under TCG, console ttyAMA0, no x86-only parameters', () => {
  const tcg = { accel: 'tcg' as const, reason: 'test' };
  const argv = qemuArgv({ image: '/img/root.ext4', kernel: ARM_KERNEL, init: '/sbin/init' }, tcg, '/s/agent.sock');
  assert.deepEqual(argv.slice(0, 4), ['-M', 'virt,accel=tcg', '-cpu', 'cortex-a72']);
  assert.equal(argv[argv.indexOf('-kernel') + 1], '/k/Image');
  assert.equal(argv[argv.indexOf('-initrd') + 1], '/k/initramfs.cpio');
  // the same virtio-mmio devices and agent channel as on x86
  assert.ok(argv.includes('virtio-blk-device,drive=root'));
  assert.ok(argv.includes('virtio-serial-device'));
  assert.ok(argv.includes('virtserialport,chardev=agent,name=org.rootforge.agent'));
  const cmdline = kernelCmdline({ image: '/i', kernel: ARM_KERNEL, init: '/sbin/init' }, tcg);
  assert.equal(cmdline, 'console=ttyAMA0 panic=-1 root=/dev/vda rootfstype=ext4 rw rootwait init=/sbin/init');
  assert.equal(machineProfile('aarch64')?.qemu, 'qemu-system-aarch64');
  assert.equal(machineProfile('arm64')?.qemuPackage, 'qemu-system-arm');
  assert.equal(qemuArgv({ image: '/i', kernel: ARM_KERNEL }, { accel: 'kvm', reason: 't' }, '/s')[3], 'host');
  // x86 keeps its machine and parameters
  const x86 = qemuArgv({ image: '/i', kernel: X86_KERNEL }, tcg, '/s');
  assert.deepEqual(x86.slice(0, 4), ['-M', 'microvm,accel=tcg', '-cpu', 'max']);
  assert.match(kernelCmdline({ image: '/i', kernel: X86_KERNEL }, tcg), /^console=ttyS0 reboot=t( tsc_early_khz=\d+)? panic=-1 /);
  assert.throws(
    () => qemuArgv({ image: '/i', kernel: { ...X86_KERNEL, arch: 'riscv64' } }, tcg, '/s'),
    (e: unknown) => isRootforgeError(e) && e.code === 'VM_ARCH_MISMATCH' && /riscv64/.test(e.message),
  );
});

test('vmlinuz → arm64 Image: gzip (Debian) and zstd payloads, or a plain Image; anything else is a typed error', async () => {
  // an arm64 Image header: "ARM\x64" at 0x38, then some body
  const image = Buffer.alloc(4096, 7);
  image.write('ARM\x64', 0x38, 'latin1');
  assert.ok(isArm64Image(image));
  assert.deepEqual(await kernelFromVmlinuz(gzipSync(image), 'test'), image);
  const z = spawnSync('zstd', ['-q', '-c'], { input: image });
  if (z.status === 0) assert.deepEqual(await kernelFromVmlinuz(z.stdout, 'test'), image);
  assert.deepEqual(await kernelFromVmlinuz(image, 'test'), image);
  await assert.rejects(kernelFromVmlinuz(gzipSync(Buffer.alloc(4096, 1)), 'test'), (e: unknown) => isRootforgeError(e) && e.code === 'KERNEL_BAD_IMAGE');
});

test('a guest of another architecture than the host runs under TCG; ROOTFORGE_ACCEL still wins', () => {
  assert.deepEqual(chooseGuestAccel('arm64', 'auto', {}, 'amd64'), { accel: 'tcg', reason: "arm64 guest on this amd64 host (KVM runs only the host's architecture)" });
  assert.equal(chooseGuestAccel('amd64', 'auto', {}, 'arm64').accel, 'tcg');
  assert.deepEqual(chooseGuestAccel('arm64', 'auto', { ROOTFORGE_ACCEL: 'kvm' }, 'amd64'), { accel: 'kvm', reason: 'ROOTFORGE_ACCEL' });
  assert.deepEqual(chooseGuestAccel('amd64', 'tcg', {}, 'amd64'), { accel: 'tcg', reason: 'requested' });
});

test("Firecracker on aarch64: keep_bootcon and the same console/root arguments; x86 unchanged", () => {
  assert.equal(firecrackerBootArgs({ image: '/i', kernel: ARM_KERNEL, init: '/sbin/init' }), 'keep_bootcon console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rootfstype=ext4 rw rootwait init=/sbin/init');
  assert.equal(firecrackerBootArgs({ image: '/i', kernel: X86_KERNEL }), 'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rootfstype=ext4 rw rootwait');
});

test('aarch64 kernel config: the PL011 console and PSCI are required, x86-only checks are left out', () => {
  const cfg = new Map([
    ['BLK_DEV_INITRD', 'y'], ['DEVTMPFS', 'y'], ['VIRTIO', 'm'], ['VIRTIO_MMIO', 'm'], ['VIRTIO_BLK', 'm'], ['EXT4_FS', 'y'],
    ['SERIAL_8250_CONSOLE', 'y'], ['SERIAL_OF_PLATFORM', 'y'],
  ]);
  const r = checkKernelConfig(cfg, 'aarch64');
  assert.deepEqual(r.missing, ['SERIAL_AMBA_PL011_CONSOLE', 'ARM_PSCI_FW']);
  const symbols = r.checks.map((c) => c.symbol);
  for (const x86only of ['PVH', 'ACPI', 'VIRTIO_MMIO_CMDLINE_DEVICES']) assert.ok(!symbols.includes(x86only), x86only);
  cfg.set('SERIAL_AMBA_PL011_CONSOLE', 'y').set('ARM_PSCI_FW', 'y');
  assert.deepEqual(checkKernelConfig(cfg, 'aarch64').missing, []);
  assert.deepEqual(checkKernelConfig(cfg, 'aarch64').modules, ['virtio', 'virtio_mmio', 'virtio_blk']);
  // on x86 the PL011 is not asked for
  assert.ok(!checkKernelConfig(cfg, 'x86_64').checks.some((c) => c.symbol === 'SERIAL_AMBA_PL011_CONSOLE'));
});

test('private apt for a foreign architecture: its own lists, status and cache, one architecture; package names say theirs', () => {
  const args = foreignAptArgs('/c/apt/arm64', 'arm64');
  const opts = args.filter((_, i) => args[i - 1] === '-o');
  for (const o of ['Dir::State::Lists=/c/apt/arm64/lists', 'Dir::State::status=/c/apt/arm64/status', 'Dir::Cache=/c/apt/arm64/cache', 'APT::Architecture=arm64', 'APT::Architectures=arm64']) {
    assert.ok(opts.includes(o), o);
  }
  assert.ok(!opts.some((o) => o.startsWith('Dir::Etc')), "the host's sources and keys are used as they are");
  assert.equal(debArchOfPackage('linux-image-cloud-arm64'), 'arm64');
  assert.equal(debArchOfPackage('linux-image-6.1.0-57-cloud-arm64'), 'arm64');
  assert.equal(debArchOfPackage('linux-image-amd64'), 'amd64');
  assert.equal(debArchOfPackage('linux-image-generic'), undefined);
});

test('targetArch: the platform of the spec (uname names accepted), else the host', () => {
  assert.equal(targetArch({ platform: 'linux/arm64' }), 'arm64');
  assert.equal(targetArch({ platform: 'linux/aarch64' }), 'arm64');
  assert.equal(targetArch({ platform: 'linux/arm64/v8' }), 'arm64');
  assert.equal(targetArch({ platform: 'amd64' }), 'amd64');
  assert.equal(targetArch({ platform: undefined }), process.arch === 'arm64' ? 'arm64' : 'amd64');
});

test('scratch for linux/arm64: the aarch64 agent, the architecture recorded; an amd64 kernel is refused before any VM starts', async (t) => {
  const agent = agentBinary();
  if (!agent.path) return skipOrFail(t, agent.why ?? 'no agent');
  const spec = resolveSpec({ from: 'scratch', platform: 'linux/aarch64', init: 'agent', journal: false }, work, 'scratch-arm64');
  const r = await buildImage(spec);
  assert.equal(r.arch, 'arm64');
  const info = await imageBootInfo(spec.output);
  assert.equal(info.arch, 'arm64');
  assert.equal(info.init, '/sbin/init');
  // the missing kernel files prove nothing was started: the check comes first
  await assert.rejects(
    bootImage(spec.output, X86_KERNEL, { bootTimeoutMs: 5000 }),
    (e: unknown) => isRootforgeError(e) && e.code === 'VM_ARCH_MISMATCH' && /the image is arm64 but kernel deb-x86 is amd64/.test(e.message) && /linux-image-cloud-arm64/.test(e.message),
  );
  assert.match(readFileSync(spec.output).toString('latin1'), /"architecture": "arm64"/);
  // verify takes the architecture from that record (scratch has no /bin to vote with)
  const v = await verifyImage(spec.output, { fsck: false });
  assert.equal(v.architecture.arch, 'arm64');
  assert.equal(v.architecture.source, 'agent.json');
  assert.ok(v.checks.find((c) => c.id === 'agent')?.ok, JSON.stringify(v.checks));
  const amd = resolveSpec({ from: 'scratch', platform: 'linux/amd64', init: 'agent', journal: false }, work, 'scratch-amd64');
  assert.equal((await buildImage(amd)).arch, 'amd64');
  assert.equal((await imageBootInfo(amd.output)).arch, 'amd64');
  await assert.rejects(
    bootImage(spec.output, ARM_KERNEL, { vmm: 'firecracker', bootTimeoutMs: 5000 }),
    (e: unknown) => process.arch === 'arm64' || (isRootforgeError(e) && e.code === 'VM_ARCH_MISMATCH' && /Firecracker runs only guests of the host's architecture/.test(e.message)),
  );
  // an image without the record (older builds, plain converts): the agent's ELF header says it
  const dir = join(work, 'bare');
  mkdirSync(join(dir, 'usr/sbin'), { recursive: true });
  copyFileSync(join(agent.path, 'linux-arm64', 'rootforge-agent'), join(dir, 'usr/sbin/rootforge-agent'));
  await convert(`dir:${dir}`, join(work, 'bare.ext4'), { owner: { uid: 0, gid: 0 } });
  const bare = await imageBootInfo(join(work, 'bare.ext4'));
  assert.equal(bare.hasAgent, false);
  assert.equal(bare.arch, 'arm64');
});

test('a tar base of another architecture than platform: is a typed error, and no image is left', async (t) => {
  if (!existsSync(ALPINE_X86)) return skipOrFail(t, NO_SHARED);
  const agent = agentBinary();
  if (!agent.path) return skipOrFail(t, agent.why ?? 'no agent');
  const spec = resolveSpec({ from: `tar:${ALPINE_X86}`, platform: 'linux/arm64' }, work, 'mismatch');
  await assert.rejects(buildImage(spec), (e: unknown) => isRootforgeError(e) && e.code === 'SOURCE_PLATFORM_MISMATCH' && /the base's programs are amd64/.test(e.message));
  assert.equal(existsSync(spec.output), false);
});

test('an OCI image for arm64: built with platform linux/arm64, the arm64 agent, verify clean for aarch64', { timeout: 120_000 }, async (t) => {
  const ALPINE_ARM64 = join(SHARED, 'fixtures/alpine/alpine-minirootfs-3.20.3-aarch64.tar.gz');
  if (!existsSync(ALPINE_ARM64)) return skipOrFail(t, NO_SHARED);
  if (process.getuid?.() !== 0 || spawnSync('umoci', ['--version']).status !== 0) return skipOrFail(t, 'making the OCI image needs root and umoci');
  const agent = agentBinary();
  if (!agent.path) return skipOrFail(t, agent.why ?? 'no agent');
  const layout = join(work, 'oci');
  const bundle = join(work, 'bundle');
  alpineOciLayout(layout, bundle, ALPINE_ARM64, ['--architecture', 'arm64', '--os', 'linux']);
  const spec = resolveSpec({ from: `oci:${layout}:alpine`, platform: 'linux/arm64', init: 'wrapper' }, work, 'oci-arm64');
  const r = await buildImage(spec);
  assert.equal(r.arch, 'arm64');
  assert.equal((await imageBootInfo(spec.output)).arch, 'arm64');
  const v = await verifyImage(spec.output);
  assert.equal(v.ok, true, JSON.stringify(v.checks.filter((c) => !c.ok)));
  assert.equal(v.architecture.arch, 'arm64');
  assert.equal(v.architecture.source, 'image.json');
});

test('build --platform linux/arm64 --emit-firecracker-config: an aarch64 config for the arm64 Image', async (t) => {
  const agent = agentBinary();
  if (!agent.path) return skipOrFail(t, agent.why ?? 'no agent');
  const kernelImage = join(work, 'Image');
  const image = Buffer.alloc(4096, 7);
  image.write('ARM\x64', 0x38, 'latin1');
  writeFileSync(kernelImage, image);
  const specPath = join(work, 'fc.yaml');
  writeFileSync(specPath, 'from: scratch\ninit: agent\njournal: false\n');
  const out = join(work, 'fc-arm64.ext4');
  const fc = join(work, 'vm.json');
  const r = rootforge(['build', specPath, '--platform', 'linux/arm64', '-o', out, '--emit-firecracker-config', fc, '--kernel', kernelImage, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(fc, 'utf8')) as { 'boot-source': { kernel_image_path: string; boot_args: string } };
  assert.equal(cfg['boot-source'].kernel_image_path, kernelImage);
  assert.match(cfg['boot-source'].boot_args, /^keep_bootcon console=ttyS0 reboot=k panic=1 pci=off root=\/dev\/vda /);
  // the same spec for amd64 with that kernel: refused, no config written
  const fc2 = join(work, 'vm2.json');
  const bad = rootforge(['build', specPath, '--platform', 'linux/amd64', '-o', join(work, 'fc-amd64.ext4'), '--emit-firecracker-config', fc2, '--kernel', kernelImage, '--quiet']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /the image is amd64 but kernel Image is arm64.*\[VM_ARCH_MISMATCH\]/);
  assert.equal(existsSync(fc2), false);
});

test('no --kernel: the default when it fits the image, else the cached kernel of the image architecture, else a clear error', async () => {
  const dir = join(work, 'kcache');
  const cache = new KernelCache(dir);
  const add = async (name: string, arch: 'x86_64' | 'aarch64') => {
    await cache.commit(name, async (d) => {
      const bytes = Buffer.from(`kernel ${name}`);
      writeFileSync(join(d, 'vmlinux'), bytes);
      return { schema: 1, name, version: name, arch, source: { kind: 'file', path: '/x', format: 'vmlinux' }, files: { vmlinux: fileInfo(bytes) }, pvh: false, modules: [], builtinModules: [], cmdline: [], createdBy: 'test' };
    });
  };
  await add('x86-a', 'x86_64');
  await cache.setDefault('x86-a');
  await assert.rejects(resolveKernel(undefined, { cacheDir: dir, arch: 'aarch64' }), (e: unknown) => isRootforgeError(e) && e.code === 'KERNEL_NOT_FOUND' && /the default, x86-a, is x86_64/.test(e.message) && /from-deb linux-image-cloud-arm64/.test(e.message));
  await add('deb-6.1.0-56-cloud-arm64', 'aarch64');
  await add('deb-6.1.0-57-cloud-arm64', 'aarch64');
  assert.equal((await resolveKernel(undefined, { cacheDir: dir, arch: 'aarch64' })).name, 'deb-6.1.0-57-cloud-arm64');
  assert.equal((await resolveKernel(undefined, { cacheDir: dir, arch: 'x86_64' })).name, 'x86-a');
  assert.equal((await resolveKernel(undefined, { cacheDir: dir })).name, 'x86-a');
});
