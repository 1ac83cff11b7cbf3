/**
 * arm64 end to end, for real: Debian's linux-image-cloud-arm64 fetched on this (amd64) host
 * through rootforge's private apt lists and turned into an Image + initramfs (arm64 virtio
 * modules, the arm64 build of our /init) by `kernel from-deb`, then booted under
 * qemu-system-aarch64 -M virt (TCG here): the scratch example built for linux/arm64 (agent as
 * PID 1) and the Alpine aarch64 minirootfs fixture with the wrapper init. The CLI picks the
 * arm64 kernel by the image's architecture even when the default kernel is amd64, and a failing
 * init ends the VM with the panic on the console, as on x86.
 * One VM at a time (tests in a file run in order); TCG on a shared machine is slow: generous
 * timeouts.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildImage } from '../../src/build-image.js';
import { isRootforgeError } from '../../src/errors.js';
import { loadSpec } from '../../src/spec/load.js';
import { aptDownloadForeign } from '../../src/kernel/apt-foreign.js';
import { bootImage, checkBoot } from '../../src/vm/boot.js';
import { dependsNames, readDebControl } from '../../src/kernel/deb.js';
import { initBinaryPath } from '../../src/kernel/initramfs.js';
import { isArm64Image } from '../../src/kernel/kernel-elf.js';
import { kernelFromDeb, type FromDebResult } from '../../src/kernel/kernel-deb.js';
import type { KernelRef } from '../../src/vm/types.js';
import { cacheDir, SHARED, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { debianCloudKernel, REPO } from '../helpers/kernel.js';
import { rootforge } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'rf-arm64-boot-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const EXAMPLES = new URL('../../../examples/', import.meta.url).pathname;
const ALPINE_ARM64 = join(SHARED, 'fixtures/alpine/alpine-minirootfs-3.20.3-aarch64.tar.gz');
/** A kernel cache of this file's own: an amd64 default plus the arm64 kernel. */
const kernelCache = join(cacheDir(), 'kernel-cache-arm64');
const BOOT_MS = 240_000;

let result: FromDebResult | null = null;
let kernel: KernelRef | null = null;
let why = '';

/** The real (non-meta) arm64 cloud kernel .deb, downloaded once through the private apt lists. */
async function arm64Deb(): Promise<string> {
  const dir = join(cacheDir(), 'debs-arm64');
  mkdirSync(dir, { recursive: true });
  const have = readdirSync(dir).filter((f) => /^linux-image-[0-9].*-cloud-arm64_.*_arm64\.deb$/.test(f)).sort();
  if (have.length > 0) return join(dir, have.pop()!);
  const tmp = mkdtempSync(join(dir, '.dl-'));
  try {
    const o = { cacheDir: kernelCache };
    const meta = await aptDownloadForeign('linux-image-cloud-arm64', 'arm64', tmp, o);
    const real = dependsNames((await readDebControl(meta))['Depends']).find((d) => d.startsWith('linux-image-'));
    if (real === undefined) throw new Error('linux-image-cloud-arm64 has no linux-image-* dependency');
    const deb = await aptDownloadForeign(real, 'arm64', tmp, o);
    const dest = join(dir, deb.split('/').pop()!);
    renameSync(deb, dest);
    return dest;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

before(async () => {
  if (spawnSync('qemu-system-aarch64', ['--version']).status !== 0) {
    why = 'qemu-system-aarch64 is not installed (.ci/run installs qemu-system-arm)';
    return;
  }
  if (spawnSync('go', ['version']).status === 0) {
    for (const script of ['build-initrd.mjs', 'build-agent.mjs']) {
      const r = spawnSync(process.execPath, [join(REPO, 'scripts', script), '--arch', 'arm64', '--arch', 'amd64', '--quiet'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${script} failed: ${r.stderr}`);
    }
  }
  if (!existsSync(initBinaryPath('aarch64'))) {
    why = 'no arm64 initramfs /init (needs Go: node scripts/build-initrd.mjs)';
    return;
  }
  if (spawnSync('apt-get', ['--version']).status !== 0) {
    why = 'apt-get is not available';
    return;
  }
  let deb: string;
  try {
    deb = await arm64Deb();
  } catch (e) {
    why = `cannot download linux-image-cloud-arm64 with apt-get: ${(e as Error).message}`;
    return;
  }
  // an amd64 default first (when it can be had), so the CLI has to pick by architecture
  const amd = await debianCloudKernel();
  if (!('skip' in amd)) await kernelFromDeb(amd.path, { cacheDir: kernelCache, setDefault: true });
  result = await kernelFromDeb(deb, { cacheDir: kernelCache, setDefault: false });
  const e = result.entry;
  kernel = { vmlinux: e.vmlinux, initramfs: e.initramfs!, name: e.name, arch: 'arm64' };
});

function need(t: { skip: (m: string) => void }): KernelRef | null {
  if (!kernel) {
    skipOrFail(t, why || 'no arm64 kernel');
    return null;
  }
  return kernel;
}

test('kernel from-deb for arm64: the Image, the arm64 virtio modules and /init, the config check', (t) => {
  if (!need(t)) return;
  const e = result!.entry;
  assert.equal(e.meta.arch, 'aarch64');
  assert.match(e.meta.version, /-cloud-arm64$/);
  assert.equal(result!.deb.package.endsWith('-cloud-arm64'), true);
  assert.ok(isArm64Image(readFileSync(e.vmlinux)), 'vmlinuz (gzip) was turned into the arm64 Image');
  const mods = e.meta.modules.map((m) => m.name);
  for (const m of ['virtio', 'virtio_ring', 'virtio_mmio', 'virtio_blk', 'virtio_console']) assert.ok(mods.includes(m), `${m} in the initramfs: ${mods.join(' ')}`);
  assert.ok(mods.indexOf('virtio_ring') < mods.indexOf('virtio_mmio'), 'dependencies load first');
  const state = new Map(e.meta.config!.checks.map((c) => [c.symbol, c.state]));
  assert.equal(state.get('SERIAL_AMBA_PL011_CONSOLE'), 'y');
  assert.equal(state.get('ARM_PSCI_FW'), 'y');
  assert.deepEqual(e.meta.config!.missing, []);
  // the initramfs holds the arm64 build of our /init
  const init = readFileSync(initBinaryPath('aarch64'));
  assert.equal(init.readUInt16LE(18), 183, 'build/initrd/linux-arm64/init is an aarch64 ELF');
  assert.ok(readFileSync(e.initramfs!).includes(init), 'the initramfs contains it');
  const ls = rootforge(['kernel', 'ls', '--cache-dir', kernelCache]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout.toString(), new RegExp(`${e.name} +\\S+ +aarch64 `));
});

test('scratch for arm64: the agent is PID 1 and answers, rootforge-agent --version runs, clean power-off', { timeout: BOOT_MS + 120_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  const spec = await loadSpec(join(EXAMPLES, 'scratch.yaml'));
  spec.platform = 'linux/arm64';
  spec.output = join(work, 'scratch-arm64.img');
  assert.equal((await buildImage(spec)).arch, 'arm64');
  const vm = await bootImage(spec.output, k, { bootTimeoutMs: BOOT_MS });
  try {
    if (process.arch === 'x64') assert.equal(vm.timings.accel, 'tcg');
    assert.ok(vm.timings.agentUptimeMs > 0);
    assert.equal((await vm.agent.waitReady({ timeoutMs: 30_000 })).pid1, true, 'the agent runs as PID 1');
    assert.match((await vm.agent.readFile('/proc/version')).toString(), /cloud-arm64/);
  } catch (e) {
    await vm.kill();
    throw e;
  }
  const report = await checkBoot(vm, [], null);
  assert.deepEqual(report.checks.map((c) => [c.name, c.ok]), [['agent-exec', true], ['file-round-trip', true], ['power-off', true]], JSON.stringify(report.checks) + (report.consoleTail ?? ''));
  assert.match(report.checks[0]!.detail, /rootforge-agent \d+\.\d+\.\d+/);
  assert.equal((await vm.exited).code, 0, 'QEMU exits by itself after the guest powers off');
});

test('Alpine aarch64 fixture, wrapper init: uname -m is aarch64, /etc/alpine-release reads; the CLI picks the arm64 kernel', { timeout: 2 * BOOT_MS + 120_000 }, async (t) => {
  if (!need(t)) return;
  if (!existsSync(ALPINE_ARM64)) return skipOrFail(t, NO_SHARED);
  const spec = await loadSpec(join(EXAMPLES, 'alpine-agent.yaml'));
  spec.from = `tar:${ALPINE_ARM64}`;
  spec.platform = 'linux/arm64';
  spec.output = join(work, 'alpine-arm64.img');
  await buildImage(spec);
  // no --kernel: the cache's default is amd64 when the amd64 kernel could be had; the image says arm64
  const r = rootforge(['boot', spec.output, '--cache-dir', kernelCache, '--timeout', String(BOOT_MS / 1000), '--', 'sh', '-c', 'uname -m; cat /etc/alpine-release']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), 'aarch64\n3.20.3\n');
  assert.match(r.stderr, new RegExp(`booted with qemu \\(\\w+: .*\\), kernel ${result!.entry.name}`));
  assert.match(r.stderr, /agent ready +\d+ ms +\(guest uptime \d+ ms\)/);
  // an explicit amd64 kernel is refused before any VM starts
  const def = rootforge(['kernel', 'default', '--cache-dir', kernelCache]).stdout.toString().trim();
  if (/amd64/.test(def)) {
    const bad = rootforge(['boot', spec.output, '--cache-dir', kernelCache, '--kernel', def.split(/\s+/)[0]!, '--', 'true']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /\[VM_ARCH_MISMATCH\]/);
  }
});

test('arm64 failures are reported as on x86: an init that exits ends the VM with the panic and the console', { timeout: BOOT_MS + 60_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  if (!existsSync(ALPINE_ARM64)) return skipOrFail(t, NO_SHARED);
  // Alpine's /bin/true as the init (init: systemd names the real init; there is no systemd)
  const spec = await loadSpec(join(EXAMPLES, 'alpine-agent.yaml'));
  spec.from = `tar:${ALPINE_ARM64}`;
  spec.platform = 'linux/arm64';
  spec.init = 'systemd';
  spec.realInit = '/bin/true';
  spec.output = join(work, 'init-exits-arm64.img');
  await buildImage(spec);
  const t0 = Date.now();
  await assert.rejects(bootImage(spec.output, k, { bootTimeoutMs: BOOT_MS }), (e: unknown) => {
    assert.ok(isRootforgeError(e) && (e.code === 'VM_KERNEL_PANIC' || e.code === 'VM_EXITED'), String(e));
    assert.match(e.message, /last console lines/);
    assert.match(e.message, /Attempted to kill init/);
    return true;
  });
  assert.ok(Date.now() - t0 < BOOT_MS, `took ${Date.now() - t0} ms: the failure ends the VM, no timeout was waited for`);
});
