/**
 * The initramfs for real: Debian's cloud kernel (virtio as modules) through `kernel from-deb`,
 * booted with QEMU `-M microvm` under TCG (MACHINE-NOTES: this host's KVM cannot boot stock
 * kernels) on the scratch example image, whose /sbin/init is the rootforge agent. The console
 * must show: the kernel running /init, our init loading the modules and mounting /dev/vda, and
 * the agent starting as PID 1. A second boot with a missing root disk must fail fast: our init
 * says why and ends the VM (QEMU exits by itself, -no-reboot), no hang.
 *
 * One VM at a time, hard timeouts, the whole QEMU process group killed on every path.
 * Also runs the initrd's Go unit tests. Skips without qemu-system-x86_64, Go, the agent or the
 * Debian package, unless CI=true.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelFromDeb } from '../../src/kernel/kernel-deb.js';
import { agentBinary } from '../helpers/agent.js';
import { rootforge } from '../helpers/cli.js';
import { debianCloudKernel, initBinary, REPO, skipOrFail, which } from '../helpers/kernel.js';

const haveGo = spawnSync('go', ['version']).status === 0;

test('go vet and go test in initrd/', { skip: haveGo ? false : 'no Go toolchain', timeout: 300_000 }, () => {
  const env = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '' };
  const vet = spawnSync('go', ['vet', './...'], { cwd: join(REPO, 'initrd'), encoding: 'utf8', env });
  assert.equal(vet.status, 0, vet.stderr);
  const r = spawnSync('go', ['test', '-count=1', './...'], { cwd: join(REPO, 'initrd'), encoding: 'utf8', env });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  // both architectures compile (the syscall number is per-arch)
  const arm = spawnSync('go', ['vet', './...'], { cwd: join(REPO, 'initrd'), encoding: 'utf8', env: { ...env, GOARCH: 'arm64' } });
  assert.equal(arm.status, 0, arm.stderr);
});

interface Boot {
  log: string;
  /** QEMU exited by itself (rather than being killed at `until` or the timeout). */
  exited: boolean;
  ms: number;
}

/** Host TSC frequency for tsc_early_khz (MACHINE-NOTES: without it TCG boots hang half the time). */
function hostKhz(): number | undefined {
  const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

/** Boots, returns when `until` matches the console, QEMU exits, or `timeoutMs` passes. */
function boot(vmlinux: string, initrd: string, image: string, append: string, until: RegExp, timeoutMs: number): Promise<Boot> {
  const khz = hostKhz();
  const args = [
    '-M', 'microvm,accel=tcg', '-cpu', 'max', '-m', '256', '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot',
    '-kernel', vmlinux, '-initrd', initrd,
    '-append', `console=ttyS0 reboot=t panic=-1${khz ? ` tsc_early_khz=${khz}` : ''} ${append}`,
    '-drive', `id=root,file=${image},format=raw,if=none,snapshot=on`, '-device', 'virtio-blk-device,drive=root',
  ];
  const t0 = Date.now();
  // its own process group: everything QEMU started dies with it
  const child = spawn('qemu-system-x86_64', args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  return new Promise((resolve) => {
    let done = false;
    const finish = (exited: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
      resolve({ log, exited, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    const onData = (b: Buffer): void => {
      log += b.toString();
      if (until.test(log)) finish(false);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', () => finish(true));
  });
}

test('QEMU microvm (TCG): Debian cloud kernel + our initramfs boots the scratch image to the agent; a missing root fails fast', { timeout: 600_000 }, async (t) => {
  if (!which('qemu-system-x86_64')) return skipOrFail(t, 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)');
  const deb = await debianCloudKernel();
  if ('skip' in deb) return skipOrFail(t, deb.skip);
  const init = initBinary();
  if (init.path === null) return skipOrFail(t, init.why!);
  const agent = agentBinary();
  if (agent.path === null) return skipOrFail(t, agent.why!);

  const dir = mkdtempSync(join(tmpdir(), 'rf-initrd-boot-'));
  try {
    const image = join(dir, 'scratch.ext4');
    const b = rootforge(['build', join(REPO, 'examples', 'scratch.yaml'), '-o', image, '-q']);
    assert.equal(b.code, 0, b.stderr);
    const k = await kernelFromDeb(deb.path, { cacheDir: join(dir, 'cache') });
    const initrd = k.entry.initramfs!;

    const ok = await boot(k.entry.vmlinux, initrd, image, 'root=/dev/vda rw', /rootforge-agent: listening on/, 240_000);
    t.diagnostic(`boot to agent listening: ${ok.ms} ms wall`);
    const log = ok.log;
    const at = (re: RegExp): number => {
      const m = re.exec(log);
      assert.ok(m, `console shows ${re}\n--- console (last 3000 chars) ---\n${log.slice(-3000)}`);
      return m.index;
    };
    const runInit = at(/Run \/init as init process/);
    const modules = at(/rootforge-initrd: modules: (\d+) loaded, 0 already present, 0 failed/);
    const mounted = at(/rootforge-initrd: root \/dev\/vda \(ext4, rw\) mounted after \d+ ms; starting \/sbin\/init/);
    const agentUp = at(/rootforge-agent: version \S+ starting \(pid 1\)/);
    at(/rootforge-agent: listening on/);
    assert.ok(runInit < modules && modules < mounted && mounted < agentUp, 'in that order');
    assert.equal(Number(/modules: (\d+) loaded/.exec(log)![1]), k.entry.meta.modules.length);
    assert.doesNotMatch(log, /Kernel panic|FATAL/);
    const kt = /\[\s*([\d.]+)\] Run \/init/.exec(log)?.[1];
    const initMs = /mounted after (\d+) ms/.exec(log)?.[1];
    t.diagnostic(`kernel ran /init at ${kt} s; the initramfs took ${initMs} ms to mount the root and hand over`);

    // no such disk: a clear message and the VM ends by itself (reboot under -no-reboot)
    const bad = await boot(k.entry.vmlinux, initrd, image, 'root=/dev/vdb rootwait=2', /\$^/, 120_000);
    t.diagnostic(`missing root: QEMU exited by itself after ${bad.ms} ms`);
    assert.match(bad.log, /rootforge-initrd: FATAL: root device \/dev\/vdb did not appear within 2s/);
    assert.equal(bad.exited, true, `QEMU should exit by itself; console:\n${bad.log.slice(-2000)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
