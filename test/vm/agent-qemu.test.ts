/**
 * The agent as PID 1 of a real microVM (QEMU TCG, Debian cloud kernel, Alpine initramfs),
 * reached over virtio-serial: boot to ready, exec, files, a timeout, and power-off ending QEMU.
 * Needs qemu-system-x86 and Debian's cloud kernel (the installed one, or the package the kernel
 * tests download); skipped without them unless ROOTFORGE_VM_TESTS=1 or CI=true (then it fails).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent-client/agent-client.js';
import { connectUnix } from '../../src/agent-client/agent-connect.js';
import { sharedFixture } from '../helpers/tar-collect.js';
import { agentBinary } from '../helpers/agent.js';
import { buildInitramfs, findKernel, startVm } from '../helpers/agent-vm.js';

const tarball = join(sharedFixture('alpine'), 'alpine-minirootfs-3.20.3-x86_64.tar.gz');
const bin = agentBinary();
const kernel = await findKernel();
const reason =
  bin.path === null ? bin.why! : typeof kernel === 'string' ? kernel : !existsSync(tarball) ? `no Alpine fixture at ${tarball}` : false;
if (reason && (process.env.ROOTFORGE_VM_TESTS === '1' || process.env.CI === 'true') && !/fixture/.test(reason)) throw new Error(`ROOTFORGE_VM_TESTS=1 but the VM test cannot run: ${reason}`);

test('PID 1 in a microVM over virtio-serial: ready, exec, files, power-off', { skip: reason, timeout: 180_000 }, async () => {
  if (typeof kernel === 'string' || bin.path === null) return;
  const dir = mkdtempSync(join(tmpdir(), 'rf-agentvm-'));
  const initrd = join(dir, 'initrd.cpio');
  buildInitramfs(dir, initrd, tarball, bin.path, kernel, { transports: ['virtio-serial'], hostname: 'vmtest', stopTimeoutMs: 1000 });
  const vm = startVm(kernel, initrd, join(dir, 'agent.sock'));
  let client: AgentClient | undefined;
  try {
    client = new AgentClient(await connectUnix(vm.sock, { timeoutMs: 30_000, retryMs: 50 }));
    // The port drops what arrives before the agent opens it: waitReady keeps sending hello.
    const info = await client.waitReady({ timeoutMs: 120_000, pollMs: 200 });
    assert.equal(info.pid1, true);
    assert.ok(info.uptimeMs > 0 && info.uptimeMs < 120_000, String(info.uptimeMs));

    const r = await client.exec(['/bin/sh', '-c', 'hostname; cat /sys/class/net/lo/flags; cut -d" " -f2,3 /proc/mounts'], { timeoutMs: 30_000 });
    const [host, flags, ...mounts] = r.stdout!.toString().trim().split('\n');
    assert.equal(host, 'vmtest');
    assert.equal(Number(flags) & 1, 1);
    for (const m of ['/proc proc', '/sys sysfs', '/dev devtmpfs', '/dev/pts devpts', '/dev/shm tmpfs', '/run tmpfs', '/tmp tmpfs']) assert.ok(mounts.includes(m), `${m} in ${mounts.join(', ')}`);

    await client.writeFile('/tmp/x/bin', Buffer.from([0, 1, 255]), { mkdirs: true, mode: 0o600 });
    const f = await client.readFileInfo('/tmp/x/bin');
    assert.deepEqual([f.data, f.mode], [Buffer.from([0, 1, 255]), 0o600]);
    const big = await client.exec(['head', '-c', '3000000', '/dev/zero'], { timeoutMs: 60_000 });
    assert.equal(big.stdout!.length, 3_000_000);
    const t = await client.exec(['sleep', '30'], { timeoutMs: 500 });
    assert.deepEqual([t.signal, t.timedOut], ['SIGKILL', true]);

    // The host detaches and attaches again: the agent ends that session and serves a new one
    // on the same port (the old session's running exec is killed).
    const orphan = client.startExec(['sleep', '30']);
    await orphan.started;
    const orphanDone = orphan.done.catch((e: unknown) => e);
    client.close();
    assert.equal(((await orphanDone) as { code?: string }).code, 'AGENT_DISCONNECTED');
    client = new AgentClient(await connectUnix(vm.sock, { timeoutMs: 10_000, retryMs: 50 }));
    await client.waitReady({ timeoutMs: 30_000, pollMs: 200 });
    // (a killed process can be a zombie for a moment before the agent reaps it)
    const again = await client.exec(['sh', '-c', 'echo again; for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -x sleep >/dev/null || break; sleep 0.2; done; pgrep -x sleep || true'], { timeoutMs: 30_000 });
    assert.equal(again.stdout!.toString(), 'again\n', 'the old session exec is gone');

    await client.shutdown({ timeoutMs: 10_000 });
    const code = await Promise.race([vm.exited, new Promise((res) => setTimeout(() => res('still running'), 30_000).unref())]);
    assert.equal(code, 0, vm.console());
    assert.match(vm.console(), /power off/);
  } finally {
    client?.close();
    if (vm.proc.exitCode === null && vm.proc.signalCode === null) {
      vm.proc.kill('SIGKILL');
      await vm.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
