/**
 * Instances booted for real (QEMU, TCG here) with Debian's cloud kernel, its initramfs carrying
 * overlayfs, and a real virtiofsd, in each init mode: the scratch example (agent as PID 1), the
 * Alpine example (wrapper init) and a Debian minbase + systemd image (mmdebstrap, cached).
 *
 * Per mode: hostname, authorized_keys, machine-id and session env (stored and per boot) seen by
 * an exec (and a login shell, and with systemd an ssh session logging in with the instance's key); a file written, the instance rebooted, the file read back; a second instance of the
 * same base does not see it; the base's SHA-256 unchanged. Shares (virtio-fs): a host file read
 * in the guest, a guest write visible on the host, a write to a :ro share refused. An instance
 * disk grown with `instance resize` is grown by the guest at the next boot.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../../src/build-image.js';
import { isRootforgeError } from '../../src/errors.js';
import { bootInstance, parseShare } from '../../src/instance/boot.js';
import { createInstance } from '../../src/instance/create.js';
import { resizeInstance } from '../../src/instance/manage.js';
import { loadSpec } from '../../src/spec/load.js';
import { kernelRef } from '../../src/kernel/kernel-ref.js';
import type { KernelRef, Vm } from '../../src/vm/types.js';
import { findVirtiofsd } from '../../src/vm/virtiofsd.js';
import { ALPINE_X86, cacheDir, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { debianCloudKernel, initBinary } from '../helpers/kernel.js';
import { kernelFromDeb } from '../../src/kernel/kernel-deb.js';

const work = mkdtempSync(join(tmpdir(), 'rf-instboot-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const EXAMPLES = new URL('../../../examples/', import.meta.url).pathname;
const kernelCache = join(cacheDir(), 'kernel-cache');
const hashCache = join(work, 'hash-cache');
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbYz0Yb8kq4Jt0Jx2i5bHq0rQmTqY1m0m8h3m4z0k1a inst@test';
let kernel: KernelRef | null = null;
let probe: string | null = null;
let why = '';

before(async () => {
  if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) {
    why = 'qemu-system-x86_64 is not installed (.ci/run installs qemu-system-x86)';
    return;
  }
  if (spawnSync('go', ['version']).status !== 0) {
    why = 'no Go toolchain for the probe program';
    return;
  }
  const deb = await debianCloudKernel();
  if ('skip' in deb) {
    why = deb.skip;
    return;
  }
  // An entry of its own, named after our initramfs /init: other checkouts running their tests
  // at the same time rebuild the shared deb-<release> entry with their own /init.
  const init = initBinary();
  if (!init.path) {
    why = init.why ?? 'no initramfs /init';
    return;
  }
  const name = `instances-${createHash('sha256').update(readFileSync(init.path)).digest('hex').slice(0, 12)}`;
  await kernelFromDeb(deb.path, { cacheDir: kernelCache, name, setDefault: false });
  kernel = await kernelRef(name, { cacheDir: kernelCache });
  // a static probe: prints the hostname and the env vars named on its command line
  const src = join(work, 'probe');
  mkdirSync(src);
  writeFileSync(join(src, 'go.mod'), 'module probe\n\ngo 1.19\n');
  writeFileSync(
    join(src, 'main.go'),
    [
      'package main',
      'import (\n\t"fmt"\n\t"os"\n\t"strings"\n\t"syscall"\n)',
      '// prints the hostname, then per argument: /PATH=filesystem bytes (statfs), or NAME=$NAME',
      'func main() {',
      '\th, _ := os.Hostname()',
      '\tfmt.Printf("hostname=%s\\n", h)',
      '\tfor _, k := range os.Args[1:] {',
      '\t\tif strings.HasPrefix(k, "/") {',
      '\t\t\tvar s syscall.Statfs_t',
      '\t\t\t_ = syscall.Statfs(k, &s)',
      '\t\t\tfmt.Printf("%s=%d\\n", k, uint64(s.Blocks)*uint64(s.Bsize))',
      '\t\t\tcontinue',
      '\t\t}',
      '\t\tfmt.Printf("%s=%s\\n", k, os.Getenv(k))',
      '\t}',
      '}',
    ].join('\n\n') + '\n',
  );
  const out = join(work, 'files', 'usr', 'local', 'bin');
  mkdirSync(out, { recursive: true });
  const b = spawnSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', join(out, 'probe'), '.'], { cwd: src, env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' }, encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`building the probe failed: ${b.stderr}`);
  probe = join(work, 'files');
});

function need(t: { skip: (m: string) => void }): KernelRef | null {
  if (!kernel || !probe) {
    skipOrFail(t, why || 'no kernel');
    return null;
  }
  return kernel;
}

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** Power-off can take long: systemd stops its units one by one, under emulation, on a busy host. */
let shutdownMs = 30_000;

async function withVm<T>(vm: Vm, fn: (vm: Vm) => Promise<T>): Promise<T> {
  try {
    return await fn(vm);
  } catch (e) {
    (e as Error).message += `\n--- console ---\n${vm.consoleTail(40)}`;
    throw e;
  } finally {
    const s = await vm.shutdown(shutdownMs);
    assert.ok(s.clean, 'the instance powered off cleanly');
  }
}

async function exec(vm: Vm, argv: string[]): Promise<string> {
  const r = await vm.agent.exec(argv, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr?.toString()}`);
  return r.stdout?.toString() ?? '';
}

/** The whole instance story on one base image. */
async function scenario(name: string, base: string, k: KernelRef, o: { memMiB: number; loginShell: boolean; ssh?: boolean }): Promise<void> {
  const boot = { bootTimeoutMs: 240_000, memMiB: o.memMiB, cacheDir: hashCache };
  const before = sha(base);
  const a = join(work, `${name}-a`);
  // with an sshd in the image: a real key pair, to log in over ssh inside the guest
  const keyFile = join(work, `${name}-id`);
  const ssh = o.ssh === true && spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'inst@ssh', '-f', keyFile]).status === 0;
  const keys = ssh ? [KEY, readFileSync(`${keyFile}.pub`, 'utf8').trim()] : [KEY];
  const rec = (await createInstance(base, a, { sizeBytes: 2 * 2 ** 30, sshKeys: keys, hostname: `${name}-a`, env: { STORED: 'from create', SECRET: "it's s3cret" }, cacheDir: hashCache })).record;
  const ws = join(work, `${name}-ws`);
  const ro = join(work, `${name}-ro`);
  mkdirSync(ws);
  mkdirSync(ro);
  writeFileSync(join(ws, 'in.txt'), 'from the host\n');
  writeFileSync(join(ro, 'skill.md'), 'read only\n');
  const shares = findVirtiofsd() ? [parseShare(`${ws}:/workspace`), parseShare(`${ro}:/skills:ro`)] : [];

  // first boot: config applied, a file written, shares
  await withVm(await bootInstance(a, k, { ...boot, shares, env: ['BOOTVAR=only this boot'] }), async (vm) => {
    assert.equal(await exec(vm, ['/usr/local/bin/probe', 'STORED', 'SECRET', 'BOOTVAR']), `hostname=${name}-a\nSTORED=from create\nSECRET=it's s3cret\nBOOTVAR=only this boot\n`);
    assert.equal((await vm.agent.readFile('/root/.ssh/authorized_keys')).toString(), `${keys.join('\n')}\n`);
    assert.equal((await vm.agent.readFile('/etc/machine-id')).toString(), `${rec.config.machineId}\n`);
    assert.equal((await vm.agent.readFile('/etc/hostname')).toString(), `${name}-a\n`);
    if (o.loginShell) {
      // login shells get the session env through /etc/profile.d
      assert.equal(await exec(vm, ['/bin/sh', '-l', '-c', 'printf %s "$SECRET|$BOOTVAR"']), "it's s3cret|only this boot");
    }
    if (ssh) {
      // authorized_keys lets the key in; `ssh host CMD` (no login shell) gets the session env
      await vm.agent.writeFile('/root/id', readFileSync(keyFile), { mode: 0o600 });
      const wait = 'for i in $(seq 1 120); do systemctl is-active --quiet ssh && break; sleep 1; done';
      const opts = '-i /root/id -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR';
      assert.equal(await exec(vm, ['/bin/sh', '-c', `${wait}; ssh ${opts} root@127.0.0.1 'printf %s "$SECRET|$BOOTVAR|$(hostname)"'`]), `it's s3cret|only this boot|${name}-a`);
    }
    const cmdline = (await vm.agent.readFile('/proc/cmdline')).toString();
    assert.doesNotMatch(cmdline, /s3cret|from create/, 'no env on the kernel command line');
    const mounts = (await vm.agent.readFile('/proc/mounts')).toString();
    assert.match(mounts, /^overlay \/ overlay rw/m);
    await vm.agent.writeFile('/var/persist.txt', Buffer.from(`written by ${name}-a\n`));
    if (shares.length > 0) {
      assert.equal((await vm.agent.readFile('/workspace/in.txt')).toString(), 'from the host\n');
      await vm.agent.writeFile('/workspace/out.txt', Buffer.from('from the guest\n'));
      assert.equal((await vm.agent.readFile('/skills/skill.md')).toString(), 'read only\n');
      await assert.rejects(vm.agent.writeFile('/skills/x.txt', Buffer.from('no')), (e: unknown) => isRootforgeError(e) && /read-only/.test(e.message));
    }
  });
  if (shares.length > 0) {
    assert.equal(readFileSync(join(ws, 'out.txt'), 'utf8'), 'from the guest\n');
    assert.equal(existsSync(join(ro, 'x.txt')), false);
  }

  // second boot of the same instance, its disk grown meanwhile: the file is still there
  await resizeInstance(a, 3 * 2 ** 30);
  await withVm(await bootInstance(a, k, boot), async (vm) => {
    assert.equal((await vm.agent.readFile('/var/persist.txt')).toString(), `written by ${name}-a\n`);
    assert.equal(await exec(vm, ['/usr/local/bin/probe', 'BOOTVAR', 'STORED']), `hostname=${name}-a\nBOOTVAR=\nSTORED=from create\n`, 'a boot-only env var is gone');
    // the root's size is the instance filesystem's: grown online from 2 GiB to about 3 GiB
    const size = Number(/^\/=(\d+)$/m.exec(await exec(vm, ['/usr/local/bin/probe', '/']))![1]);
    assert.ok(size > 2.8 * 2 ** 30 && size <= 3 * 2 ** 30, `the filesystem was grown at boot (${size} bytes)`);
  });

  // another instance of the same base does not see it
  const b = join(work, `${name}-b`);
  await createInstance(base, b, { sizeBytes: 64 * 2 ** 20, cacheDir: hashCache });
  await withVm(await bootInstance(b, k, boot), async (vm) => {
    await assert.rejects(vm.agent.readFile('/var/persist.txt'), (e: unknown) => isRootforgeError(e) && /no such file/.test(e.message));
    assert.equal(await exec(vm, ['/usr/local/bin/probe']), `hostname=${name}-b\n`);
  });
  assert.equal(sha(base), before, 'the base image is never written');
}

test('agent as PID 1 (scratch example): overlay root, config, persistence, isolation, shares', { timeout: 900_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  const spec = await loadSpec(join(EXAMPLES, 'scratch.yaml'));
  spec.output = join(work, 'scratch.ext4');
  spec.files = probe!;
  await buildImage(spec);
  await scenario('scratch', spec.output, k, { memMiB: 256, loginShell: false });
});

test('wrapper init (Alpine example, a writable base): the same', { timeout: 900_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  if (!existsSync(ALPINE_X86)) return skipOrFail(t, NO_SHARED);
  const spec = await loadSpec(join(EXAMPLES, 'alpine-agent.yaml'));
  spec.output = join(work, 'alpine.ext4');
  spec.files = probe!;
  await buildImage(spec);
  await scenario('alpine', spec.output, k, { memMiB: 256, loginShell: true });

  // the same through the CLI: rootforge boot DIR --env --share -- CMD
  const dir = join(work, 'alpine-cli');
  await createInstance(spec.output, dir, { sizeBytes: 64 * 2 ** 20, hostname: 'cli-box', env: { FROM_CREATE: 'one' }, cacheDir: hashCache });
  const ws = join(work, 'alpine-cli-ws');
  mkdirSync(ws);
  writeFileSync(join(ws, 'in.txt'), 'shared\n');
  const shareArgs = findVirtiofsd() ? ['--share', `${ws}:/workspace`] : [];
  const r = spawnSync(
    process.execPath,
    [new URL('../../../bin/rootforge', import.meta.url).pathname, 'boot', dir, '--kernel', k.name, '--cache-dir', kernelCache, '--timeout', '240', '--env', 'FROM_BOOT=two', ...shareArgs, '--', 'sh', '-c', 'echo "$FROM_CREATE $FROM_BOOT $(hostname)"; cat /workspace/in.txt 2>/dev/null || true'],
    { input: '', encoding: 'utf8', env: { ...process.env, XDG_CACHE_HOME: join(work, 'xdg') } },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `one two cli-box\n${shareArgs.length > 0 ? 'shared\n' : ''}`);
});

/** Debian bookworm minbase + systemd from mmdebstrap, cached beside the other test fixtures. */
function systemdTar(): { path: string } | { skip: string } {
  const path = join(cacheDir(), 'minbase-systemd.tar');
  if (existsSync(path)) return { path };
  if (spawnSync('which', ['mmdebstrap']).status !== 0) return { skip: 'mmdebstrap is not installed (apt-get install mmdebstrap)' };
  const tmp = `${path}.${process.pid}.tmp`;
  const r = spawnSync('mmdebstrap', ['--variant=minbase', '--include=systemd,systemd-sysv,openssh-server', '--format=tar', '--quiet', 'bookworm', tmp, 'http://deb.debian.org/debian'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) return { skip: `mmdebstrap failed: ${r.stderr?.toString().slice(-500)}` };
  renameSync(tmp, path);
  return { path };
}

test('systemd (Debian minbase + systemd, read-only base): the same', { timeout: 1_200_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  const tar = systemdTar();
  if ('skip' in tar) return skipOrFail(t, tar.skip);
  const specPath = join(work, 'systemd.yaml');
  writeFileSync(specPath, `from: tar:${tar.path}\nagent: builtin\ninit: systemd\nhostname: debian-sandbox\nreadOnly: true\nstrip: [docs, man]\n`);
  const spec = await loadSpec(specPath);
  spec.output = join(work, 'systemd.ext4');
  spec.files = probe!;
  await buildImage(spec);
  shutdownMs = 180_000;
  try {
    await scenario('systemd', spec.output, k, { memMiB: 512, loginShell: true, ssh: true });
  } finally {
    shutdownMs = 30_000;
  }
});
