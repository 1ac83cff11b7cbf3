/**
 * The seed's devbox, for real: examples/devbox.yaml built by mmdebstrap against the Debian
 * mirror into the image (the pipe path), booted under QEMU with systemd, and its toolchains
 * proven in one boot, in sequence: a file the first command writes to /tmp survives `sleep 5`,
 * the agent unit is active, a venv imports ssl and sqlite3, node ≥ 20, npm, cargo new + build +
 * run offline, g++ and clang compile and run, cmake, git init + commit, 100 MB written on the
 * `--size +512M` image. A second boot of the auto-sized image (< 2 GB) writes 8 MB.
 *
 * mmdebstrap's tar is kept in ~/.cache/rootforge-test (or $ROOTFORGE_TEST_CACHE) keyed by the
 * spec's package inputs (and the lock, if one is beside the spec), so later runs and CI reuse
 * it and only convert + boot. ROOTFORGE_DEVBOX_REBUILD=1 forces the mmdebstrap path.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildImage, type BuildResult } from '../../src/build-image.js';
import { lockInputs } from '../../src/sources/debian/lock.js';
import { hostDebianArch } from '../../src/sources/debian/host.js';
import { loadSpec, type ResolvedSpec } from '../../src/spec/load.js';
import { verifyImage } from '../../src/verify/verify.js';
import { bootImage } from '../../src/vm/boot.js';
import { kernelRef } from '../../src/kernel/kernel-ref.js';
import type { KernelRef, Vm } from '../../src/vm/types.js';
import { cacheDir, skipOrFail } from '../helpers/fixtures.js';
import { debianCloudKernel } from '../helpers/kernel.js';

const work = mkdtempSync(join(tmpdir(), 'rf-devbox-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const EXAMPLES = new URL('../../../examples/', import.meta.url).pathname;
let kernel: KernelRef | null = null;
let why = '';

before(async () => {
  if (process.arch !== 'x64') why = 'the devbox test builds and boots amd64';
  else if (spawnSync('mmdebstrap', ['--version']).status !== 0) why = 'mmdebstrap is not installed (apt-get install mmdebstrap)';
  else if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) why = 'qemu-system-x86_64 is not installed';
  if (why) return;
  const deb = await debianCloudKernel();
  if ('skip' in deb) {
    why = deb.skip;
    return;
  }
  kernel = await kernelRef(deb.path, { cacheDir: join(cacheDir(), 'kernel-cache') });
});

/** The cache key: what decides mmdebstrap's output (packages, strip) and the lock if present. */
async function tarKey(spec: ResolvedSpec): Promise<string> {
  const h = createHash('sha256');
  h.update(await lockInputs(spec.debian!, spec.debian!.architecture ?? hostDebianArch()));
  h.update(JSON.stringify(spec.strip));
  h.update(readFileSync(new URL('../../../assets/debian/packages-hook', import.meta.url)));
  if (existsSync(spec.lockPath)) h.update(readFileSync(spec.lockPath));
  return h.digest('hex').slice(0, 16);
}

interface Step {
  name: string;
  cmd: string;
  expect?: RegExp;
  timeoutMs?: number;
}

const GUEST_ENV = { HOME: '/root', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', CARGO_NET_OFFLINE: 'true' };

async function run(vm: Vm, step: Step, log: string[]): Promise<string> {
  const started = Date.now();
  const r = await vm.agent.exec(['/bin/sh', '-c', step.cmd], { timeoutMs: step.timeoutMs ?? 300_000, env: GUEST_ENV });
  const out = `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`.trim();
  note(log, `${step.name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(r.code, 0, `${step.name}: exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}\n${out.slice(-2000)}\n--- console ---\n${vm.consoleTail(30)}`);
  if (step.expect) assert.match(out, step.expect, `${step.name}: output`);
  return out;
}

/** Timings as they happen (stderr) and for the summary: a failure later still shows how far it got. */
function note(log: string[], line: string): void {
  log.push(line);
  process.stderr.write(`devbox: ${line}\n`);
}

test('devbox: mmdebstrap → image → systemd boot; every toolchain of the seed works in the VM', { timeout: 3_600_000 }, async (t) => {
  if (!kernel) return skipOrFail(t, why || 'no kernel');
  const timings: string[] = [];
  const t0 = Date.now();
  const spec = await loadSpec(join(EXAMPLES, 'devbox.yaml'));
  const tar = join(cacheDir(), `devbox-${await tarKey(spec)}.tar`);
  const big = join(work, 'devbox-512.ext4');
  let built: BuildResult;
  if (!existsSync(tar) || process.env['ROOTFORGE_DEVBOX_REBUILD'] === '1') {
    // the real path: mmdebstrap's tar through the pipe into the image (a copy is kept for later runs)
    built = await buildImage({ ...spec, output: big, size: '+512M' }, { debianTarCopy: tar });
    assert.ok(built.debian, 'the Debian source reports what it installed');
    const names = new Set(built.debian.packages.map((p) => p.name));
    for (const p of spec.debian!.packages) assert.ok(names.has(p), `${p} installed`);
    assert.ok(built.debian.packages.every((p) => /^[0-9a-f]{64}$/.test(p.sha256)), 'every package has its SHA-256');
    note(timings, `mmdebstrap + convert (pipe): ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } else {
    built = await buildImage({ ...spec, from: `tar:${tar}`, debian: undefined, output: big, size: '+512M' });
    note(timings, `convert from cached tar: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const t1 = Date.now();
  const auto = join(work, 'devbox-auto.ext4');
  const autoBuilt = await buildImage({ ...spec, from: `tar:${tar}`, debian: undefined, output: auto, size: 'auto' });
  note(timings, `auto-sized image from the tar: ${((Date.now() - t1) / 1000).toFixed(0)} s`);
  assert.ok(autoBuilt.sizeBytes < 2_000_000_000, `the devbox is under 2 GB (${autoBuilt.sizeBytes})`);
  assert.ok(statSync(big).size >= autoBuilt.sizeBytes + 512 * 2 ** 20, '+512M is bigger by the headroom');
  const fsck = spawnSync('e2fsck', ['-fn', auto], { encoding: 'utf8' });
  assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
  // static verify of a real distro image: init (systemd), the agent, every ELF's interpreter and
  // libraries resolve inside the image
  const tv = Date.now();
  const verified = await verifyImage(auto, {});
  note(timings, `verify: ${((Date.now() - tv) / 1000).toFixed(1)} s, ${verified.stats.programs} programs`);
  assert.deepEqual(
    verified.checks.filter((c) => !c.ok && c.severity === 'error').map((c) => `${c.id}: ${c.message}`),
    [],
    'the devbox verifies with no errors',
  );

  // one boot runs every check in sequence
  const tb = Date.now();
  const vm = await bootImage(big, kernel, { memMiB: 2048, bootTimeoutMs: 600_000 });
  note(timings, `boot to agent ready (systemd, TCG): ${((Date.now() - tb) / 1000).toFixed(1)} s`);
  try {
    const steps: Step[] = [
      // the very first command: its file must survive systemd's /tmp setup (defect 5b)
      { name: 'first command writes /tmp', cmd: 'echo first-$$ > /tmp/rootforge-first && cat /tmp/rootforge-first', expect: /^first-\d+$/ },
      { name: 'agent unit active', cmd: 'systemctl is-active rootforge-agent.service', expect: /^active$/ },
      { name: 'python venv + ssl + sqlite3', cmd: 'python3 -m venv /root/venv && /root/venv/bin/python -c "import ssl, sqlite3; print(ssl.OPENSSL_VERSION, sqlite3.sqlite_version)"', expect: /OpenSSL .* 3\.\d+/ },
      { name: 'node >= 20', cmd: 'node -e "const m = +process.versions.node.split(\'.\')[0]; console.log(process.version); process.exit(m >= 20 ? 0 : 1)"', expect: /^v(2\d|[3-9]\d)\./ },
      { name: 'npm', cmd: 'npm --version', expect: /^\d+\.\d+\.\d+/ },
      { name: 'cargo new + build + run (offline)', cmd: 'cd /root && cargo new --offline --quiet hello && cd hello && cargo build --offline --quiet && ./target/debug/hello', expect: /Hello, world!/, timeoutMs: 900_000 },
      { name: 'g++', cmd: 'printf "#include <iostream>\\nint main(){std::cout<<\\"gxx ok\\"<<std::endl;}\\n" > /root/a.cc && g++ -O0 -o /root/a /root/a.cc && /root/a', expect: /gxx ok/ },
      { name: 'clang', cmd: 'printf "#include <stdio.h>\\nint main(void){puts(\\"clang ok\\");return 0;}\\n" > /root/b.c && clang -o /root/b /root/b.c && /root/b', expect: /clang ok/ },
      { name: 'cmake', cmd: 'cmake --version', expect: /cmake version 3\./ },
      { name: 'git init + commit', cmd: 'mkdir -p /root/repo && cd /root/repo && git init -q && echo x > f && git add f && git -c user.name=t -c user.email=t@e commit -qm one && git log --oneline | wc -l', expect: /^1$/ },
      { name: 'other tools', cmd: 'for c in vim nano less tree htop jq rsync strace gdb zip unzip tar xz bash shellcheck ip ping curl wget ssh make pkg-config rustfmt cargo-clippy pip3; do command -v $c >/dev/null || { echo "missing $c"; exit 1; }; done; echo all-there', expect: /all-there/ },
      { name: '/tmp file still there after sleep 5', cmd: 'sleep 5; cat /tmp/rootforge-first', expect: /^first-\d+$/ },
      { name: '100 MB written (+512M image)', cmd: 'dd if=/dev/zero of=/var/tmp/big bs=1M count=100 conv=fsync status=none && sync && ls -l /var/tmp/big', expect: /104857600/ },
    ];
    for (const s of steps) await run(vm, s, timings);
    const down = await vm.shutdown(60_000);
    assert.ok(down.clean, 'the devbox powers off');
  } finally {
    await vm.kill();
  }

  // the auto-sized image: the promised headroom is writable (defect 5a)
  const ta = Date.now();
  const vm2 = await bootImage(auto, kernel, { memMiB: 1024, bootTimeoutMs: 600_000 });
  note(timings, `auto-sized boot: ${((Date.now() - ta) / 1000).toFixed(1)} s`);
  try {
    note(timings, `df /: ${await run(vm2, { name: 'df', cmd: 'df -B1 / | tail -1' }, timings)}`);
    await run(vm2, { name: '8 MB written (auto-sized image)', cmd: 'dd if=/dev/zero of=/var/tmp/eight bs=1M count=8 conv=fsync status=none && sync && ls -l /var/tmp/eight', expect: /8388608/ }, timings);
    await vm2.shutdown(60_000);
  } finally {
    await vm2.kill();
  }
  note(timings, `total: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  t.diagnostic(timings.join('\n'));
});
