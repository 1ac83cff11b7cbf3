/**
 * The Firecracker runner, without Firecracker (it cannot run on these machines): the VM config
 * it generates, `build --emit-firecracker-config`, and a whole start — CONNECT handshake, ready,
 * exec, shutdown — against a stand-in VMM that relays the vsock socket to a real agent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firecrackerConfig, startFirecracker } from '../../src/vm/firecracker.js';
import { isRootforgeError } from '../../src/errors.js';
import { agentBinary } from '../helpers/agent.js';
import { cacheDir, skipOrFail } from '../helpers/fixtures.js';
import { debianCloudKernel } from '../helpers/kernel.js';
import { rootforge } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'rf-fc-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const FAKE = new URL('../../../test/helpers/fake-firecracker.mjs', import.meta.url).pathname;

test('the generated VM config: kernel, initrd, boot args with init, root drive, vsock with CID ≥ 4', () => {
  const cfg = firecrackerConfig(
    { image: '/img/root.ext4', kernel: { vmlinux: '/k/vmlinux', initramfs: '/k/initramfs.cpio', name: 'k', arch: 'amd64' }, cpus: 2, memMiB: 512, init: '/sbin/rootforge-init', readOnlyRoot: true },
    '/run/vm/vsock.sock',
  );
  assert.deepEqual(cfg['boot-source'], {
    kernel_image_path: '/k/vmlinux',
    initrd_path: '/k/initramfs.cpio',
    boot_args: 'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rootfstype=ext4 ro rootwait init=/sbin/rootforge-init',
  });
  assert.deepEqual(cfg.drives, [{ drive_id: 'rootfs', path_on_host: '/img/root.ext4', is_root_device: true, is_read_only: true }]);
  assert.deepEqual(cfg['machine-config'], { vcpu_count: 2, mem_size_mib: 512 });
  assert.deepEqual(cfg.vsock, { guest_cid: 4, uds_path: '/run/vm/vsock.sock' });
});

test('start over the vsock relay: CONNECT handshake, ready, exec, shutdown ends the VMM', { timeout: 60_000 }, async (t) => {
  const agent = agentBinary();
  if (!agent.path) return skipOrFail(t, agent.why ?? 'no agent');
  chmodSync(FAKE, 0o755);
  const img = join(work, 'img');
  writeFileSync(img, 'not booted by the stand-in');
  const kernel = join(work, 'vmlinux');
  writeFileSync(kernel, 'not booted either');
  process.env['ROOTFORGE_TEST_AGENT'] = agent.path;
  const log = join(work, 'console.log');
  const vm = await startFirecracker({ image: img, kernel: { vmlinux: kernel, name: 't', arch: 'amd64' }, vmmBinary: FAKE, consoleLog: log, bootTimeoutMs: 20_000 }, { vsockPort: 1024 });
  assert.equal(vm.timings.vmm, 'firecracker');
  assert.ok(vm.timings.agentUptimeMs > 0);
  const r = await vm.agent.exec(['/bin/sh', '-c', 'echo relayed; exit 3']);
  assert.equal(r.code, 3);
  assert.equal(r.stdout?.toString(), 'relayed\n');
  const { clean } = await vm.shutdown(10_000);
  assert.ok(clean, 'the stand-in exits when the agent powers off');
  const text = readFileSync(log, 'utf8');
  assert.match(text, /"guest_cid":4/);
  assert.match(text, /the guest powered off/);
});

test('a missing firecracker binary is a typed error naming it', async () => {
  await assert.rejects(
    startFirecracker({ image: FAKE, kernel: { vmlinux: FAKE, name: 't', arch: 'amd64' }, vmmBinary: '/nonexistent/firecracker' }),
    (e: unknown) => isRootforgeError(e) && e.code === 'VM_VMM_MISSING' && /firecracker/.test(e.message),
  );
});

test('rootforge build --emit-firecracker-config writes a config that boots the image', { timeout: 180_000 }, async (t) => {
  const agent = agentBinary();
  if (!agent.path) return skipOrFail(t, agent.why ?? 'no agent');
  const deb = await debianCloudKernel();
  if ('skip' in deb) return skipOrFail(t, deb.skip);
  const spec = join(work, 'fc.yaml');
  writeFileSync(spec, `agent: ${agent.path}\ninit: agent\njournal: false\n`);
  const out = join(work, 'fc.ext4');
  const cfgPath = join(work, 'vm.json');
  const kernelCache = join(cacheDir(), 'kernel-cache');
  const r = rootforge(['build', spec, '-o', out, '-q', '--emit-firecracker-config', cfgPath, '--kernel', deb.path, '--cache-dir', kernelCache]);
  assert.equal(r.code, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as ReturnType<typeof firecrackerConfig>;
  assert.equal(cfg.drives[0]!.path_on_host, out);
  assert.match(cfg['boot-source'].kernel_image_path, /kernels\/.*\/vmlinux$/);
  assert.ok(existsSync(cfg['boot-source'].kernel_image_path));
  assert.ok(cfg['boot-source'].initrd_path && existsSync(cfg['boot-source'].initrd_path), 'the cloud kernel needs its initramfs');
  assert.match(cfg['boot-source'].boot_args, / init=\/sbin\/init( |$)/);
  assert.equal(cfg.vsock.uds_path, `${out}.vsock`);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false; // ESRCH: gone
  }
}

test('Ctrl-C while a Firecracker VM runs: the VMM is killed with the process (no orphan)', { timeout: 60_000 }, async (t) => {
  const agent = agentBinary();
  if (!agent.path) return skipOrFail(t, agent.why ?? 'no agent');
  chmodSync(FAKE, 0o755);
  const img = join(work, 'int-img');
  writeFileSync(img, 'x');
  const pidFile = join(work, 'fc.pid');
  const childJs = new URL('../helpers/fc-interrupt-child.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [childJs, FAKE, img, img], { env: { ...process.env, ROOTFORGE_TEST_AGENT: agent.path, ROOTFORGE_TEST_PIDFILE: pidFile }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(child.stdout!.setEncoding('utf8'), 'data')) as [string];
    assert.match(line, /ready/);
    const vmmPid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(alive(vmmPid), 'the stand-in VMM runs while the VM is up');
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 130);
    for (let i = 0; i < 50 && alive(vmmPid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!alive(vmmPid), `the VMM (pid ${vmmPid}) was killed when its parent exited on SIGINT`);
  } finally {
    child.kill('SIGKILL');
  }
});

test('a kernel panic while waiting for the agent fails fast as VM_KERNEL_PANIC, and the VMM is killed', { timeout: 60_000 }, async () => {
  chmodSync(FAKE, 0o755);
  const img = join(work, 'panic-img');
  writeFileSync(img, 'x');
  const pidFile = join(work, 'fc-panic.pid');
  process.env['ROOTFORGE_TEST_FC_MODE'] = 'panic';
  process.env['ROOTFORGE_TEST_PIDFILE'] = pidFile;
  const t0 = performance.now();
  try {
    await assert.rejects(
      startFirecracker({ image: img, kernel: { vmlinux: img, name: 't', arch: 'amd64' }, vmmBinary: FAKE, bootTimeoutMs: 30_000 }),
      (e: unknown) => isRootforgeError(e, 'VM_KERNEL_PANIC') && /Unable to mount root fs/.test((e as Error).message),
    );
  } finally {
    delete process.env['ROOTFORGE_TEST_FC_MODE'];
    delete process.env['ROOTFORGE_TEST_PIDFILE'];
  }
  assert.ok(performance.now() - t0 < 15_000, 'did not wait for the 30 s boot timeout');
  assert.ok(!alive(Number(readFileSync(pidFile, 'utf8'))), 'the VMM was killed');
});
