/**
 * The agent as a real PID 1, without a VM: a new PID, mount, UTS, network and IPC namespace
 * whose init is the agent, chrooted into the Alpine minirootfs on a fresh tmpfs. This checks
 * for real what the Go tests check through a fake System: the API filesystems, the hostname,
 * lo up, orphan reaping, and the halt sequence ending in reboot(2) (in a PID namespace that
 * ends the namespace instead of the machine).
 *
 * The chroot's root is its own tmpfs on purpose: halt remounts "/" read-only, and on a chroot
 * directory that would remount the host's root filesystem.
 *
 * Needs root and unshare(1); skipped without them unless CI=true.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent-client/agent-client.js';
import { connectUnix } from '../../src/agent-client/agent-connect.js';
import { sharedFixture } from '../helpers/tar-collect.js';
import { agentBinary } from '../helpers/agent.js';

const tarball = join(sharedFixture('alpine'), process.arch === 'arm64' ? 'alpine-minirootfs-3.20.3-aarch64.tar.gz' : 'alpine-minirootfs-3.20.3-x86_64.tar.gz');
const bin = agentBinary();

function why(): string | false {
  if (bin.path === null) return bin.why!;
  if (process.getuid?.() !== 0) return 'needs root (mount, unshare)';
  if (spawnSync('unshare', ['--version']).status !== 0) return 'unshare(1) missing (util-linux)';
  if (!existsSync(tarball)) return `no Alpine fixture at ${tarball}`;
  return false;
}
const skip = why();
if (skip && process.env.CI === 'true' && process.getuid?.() === 0) throw new Error(`CI=true but the PID-1 test cannot run: ${skip}`);

// Positional parameters only: no path is interpolated into the script.
const SCRIPT = `set -e
root=$1 share=$2 tarball=$3 agent=$4
mount -t tmpfs -o size=128m,mode=0755 tmpfs "$root"
tar -xzf "$tarball" -C "$root"
mkdir -p "$root/host" "$root/etc/rootforge"
mount --bind "$share" "$root/host"
cp "$agent" "$root/sbin/rootforge-agent"
cp "$share/agent.json" "$root/etc/rootforge/agent.json"
exec unshare --pid --fork --uts --net --ipc chroot "$root" /sbin/rootforge-agent --listen unix:/host/agent.sock --verbose
`;

test('PID 1 in namespaces: mounts, hostname, lo, reaping, halt', { skip, timeout: 60_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'rf-pid1-'));
  const root = join(work, 'root');
  const share = join(work, 'share');
  mkdirSync(root);
  mkdirSync(share);
  writeFileSync(join(share, 'agent.json'), JSON.stringify({ hostname: 'pid1-test', stopTimeoutMs: 1000 }));
  const proc = spawn('unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', SCRIPT, 'sh', root, share, tarball, bin.path!], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  let client: AgentClient | undefined;
  try {
    client = new AgentClient(await connectUnix(join(share, 'agent.sock'), { timeoutMs: 15_000, retryMs: 50 }));
    const info = await client.waitReady({ timeoutMs: 10_000 });
    assert.equal(info.pid1, true, log);

    const sh = async (cmd: string) => {
      const r = await client!.exec(['/bin/sh', '-c', cmd], { timeoutMs: 10_000 });
      assert.equal(r.code, 0, `${cmd}: ${r.stderr!.toString()}`);
      return r.stdout!.toString();
    };
    assert.equal(await sh('hostname'), 'pid1-test\n');
    const mounts = (await sh('cat /proc/mounts'))
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f.length > 3);
    const at = (target: string) => mounts.find((f) => f[1] === target);
    for (const [target, type] of [['/proc', 'proc'], ['/sys', 'sysfs'], ['/dev', 'devtmpfs'], ['/dev/pts', 'devpts'], ['/dev/shm', 'tmpfs'], ['/run', 'tmpfs'], ['/tmp', 'tmpfs']]) {
      assert.equal(at(target!)?.[2], type, `${target} in\n${mounts.map((f) => f.join(' ')).join('\n')}`);
    }
    assert.match(at('/dev/pts')![3]!, /ptmxmode=0?666/);
    assert.equal(await sh('stat -c %a /tmp'), '1777\n');
    assert.equal(await sh('readlink /dev/fd'), '/proc/self/fd\n');
    assert.equal(Number(await sh('cat /sys/class/net/lo/flags')) & 1, 1, 'lo is up');

    // An orphan (its parent exits at once) is re-parented to PID 1 and must be reaped.
    await sh('(sleep 0.2 &); true');
    await new Promise((r) => setTimeout(r, 700));
    const zombies = (await sh('cat /proc/[0-9]*/stat 2>/dev/null || true'))
      .split('\n')
      .filter((l) => / Z /.test(l.slice(l.lastIndexOf(')'))));
    assert.deepEqual(zombies, []);

    // Halt: a running exec is stopped, the agent syncs, unmounts and calls reboot(2).
    const h = client.startExec(['sleep', '30']);
    await h.started;
    const t0 = Date.now();
    await client.shutdown({ timeoutMs: 5000 });
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 10_000).unref())]);
    assert.notEqual(code, 'still running', log);
    assert.ok(Date.now() - t0 < 8000);
    assert.match(log, /stopping all processes/);
    assert.match(log, /power off/);
  } finally {
    if (process.env.ROOTFORGE_AGENT_LOG) console.error(log);
    client?.close();
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(work, { recursive: true, force: true });
  }
});
