/**
 * Real boots under QEMU (TCG on these machines, KVM where it works) with Debian's cloud kernel
 * turned into vmlinux + initramfs by `kernel from-deb`: the scratch example (agent as PID 1),
 * the Alpine example (wrapper init), an OCI-based image, and broken images that must fail fast
 * with a useful message instead of hanging. One VM at a time (tests in a file run in order).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildImage } from '../../src/build-image.js';
import { convert } from '../../src/convert.js';
import { isRootforgeError } from '../../src/errors.js';
import { loadSpec } from '../../src/spec/load.js';
import { bootImage, checkBoot } from '../../src/vm/boot.js';
import { kernelRef } from '../../src/kernel/kernel-ref.js';
import type { KernelRef } from '../../src/vm/types.js';
import { tarEntries } from '../helpers/tar-writer.js';
import { ALPINE_X86, cacheDir, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { debianCloudKernel } from '../helpers/kernel.js';
import { rootforge } from '../helpers/cli.js';
import { alpineOciLayout } from '../helpers/oci-fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'rf-boot-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const EXAMPLES = new URL('../../../examples/', import.meta.url).pathname;
const kernelCache = join(cacheDir(), 'kernel-cache');
let kernel: KernelRef | null = null;
let why = '';

before(async () => {
  if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) {
    why = 'qemu-system-x86_64 is not installed (.ci/run installs qemu-system-x86)';
    return;
  }
  const deb = await debianCloudKernel();
  if ('skip' in deb) {
    why = deb.skip;
    return;
  }
  kernel = await kernelRef(deb.path, { cacheDir: kernelCache });
});

function need(t: { skip: (m: string) => void }): KernelRef | null {
  if (!kernel) {
    skipOrFail(t, why || 'no kernel');
    return null;
  }
  return kernel;
}

/** The CLI (tests pass --cache-dir: the kernel cache is not the user's). */
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [new URL('../../../bin/rootforge', import.meta.url).pathname, ...args], { input: '', maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test('scratch example: agent as PID 1 — ready, exec, file round trip, clean power-off', { timeout: 240_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  const spec = await loadSpec(join(EXAMPLES, 'scratch.yaml'));
  spec.output = join(work, 'scratch.img');
  await buildImage(spec);
  const vm = await bootImage(spec.output, k, { bootTimeoutMs: 120_000 });
  assert.ok(vm.timings.agentUptimeMs > 0);
  assert.ok(vm.timings.readyMs >= (vm.timings.kernelMs ?? 0));
  assert.equal(vm.timings.initGuestMs !== undefined, true, 'the hand-over to /sbin/init was seen on the console');
  const report = await checkBoot(vm, [], null);
  assert.deepEqual(
    report.checks.map((c) => [c.name, c.ok]),
    [
      ['agent-exec', true],
      ['file-round-trip', true],
      ['power-off', true],
    ],
    JSON.stringify(report.checks),
  );
  assert.match(report.checks[0]!.detail, /rootforge-agent 0\.1\.0/);
  const exit = await vm.exited;
  assert.equal(exit.code, 0, 'QEMU exits by itself after the guest powers off');
});

test('Alpine example: wrapper init; cat /etc/alpine-release; exit codes and stdout/stderr kept apart', { timeout: 300_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  if (!existsSync(ALPINE_X86)) return skipOrFail(t, NO_SHARED);
  const spec = await loadSpec(join(EXAMPLES, 'alpine-agent.yaml'));
  spec.output = join(work, 'alpine.img');
  await buildImage(spec);
  const r1 = cli(['boot', spec.output, '--kernel', k.name, '--cache-dir', kernelCache, '--', 'cat', '/etc/alpine-release']);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r1.stdout, '3.20.3\n');
  assert.match(r1.stderr, /agent ready +\d+ ms +\(guest uptime \d+ ms\)/);
  const r2 = cli(['boot', spec.output, '--kernel', k.name, '--cache-dir', kernelCache, '--', 'sh', '-c', 'echo to-stdout; echo to-stderr >&2; exit 7']);
  assert.equal(r2.code, 7, 'rootforge boot exits with the command\'s code');
  assert.equal(r2.stdout, 'to-stdout\n');
  assert.match(r2.stderr, /to-stderr/);
  assert.doesNotMatch(r2.stdout, /to-stderr/);
  const v = cli(['verify', spec.output, '--boot', '--kernel', k.name, '--cache-dir', kernelCache, '--expect', 'cat /etc/alpine-release', '--expect', 'test "$(hostname)" = alpine-sandbox', '--json']);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const doc = JSON.parse(v.stdout) as { ok: boolean; boot: { checks: { name: string; ok: boolean }[] } };
  assert.ok(doc.ok);
  assert.deepEqual(doc.boot.checks.map((c) => c.name), ['boot', 'agent-exec', 'expect: cat /etc/alpine-release', 'expect: test "$(hostname)" = alpine-sandbox', 'file-round-trip', 'power-off']);
});

test('an OCI-based image boots and sees its image config', { timeout: 300_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  if (!existsSync(ALPINE_X86)) return skipOrFail(t, NO_SHARED);
  if (process.getuid?.() !== 0 || spawnSync('umoci', ['--version']).status !== 0) return skipOrFail(t, 'making the OCI image needs root and umoci');
  const layout = join(work, 'oci');
  const bundle = join(work, 'bundle');
  alpineOciLayout(layout, bundle, ALPINE_X86, ['--config.env', 'GREETING=from-the-image', '--config.workingdir', '/srv']);
  const specPath = join(work, 'oci.yaml');
  writeFileSync(specPath, `from: oci:${layout}:alpine\nagent: builtin\ninit: wrapper\nhostname: oci-box\n`);
  const spec = await loadSpec(specPath);
  spec.output = join(work, 'oci.img');
  await buildImage(spec);
  const vm = await bootImage(spec.output, k, { bootTimeoutMs: 120_000 });
  try {
    const r = await vm.agent.exec(['/bin/sh', '-c', 'cat /etc/alpine-release; echo "$GREETING"; pwd'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr?.toString());
    assert.equal(r.stdout?.toString(), '3.20.3\nfrom-the-image\n/srv\n', 'Env and WorkingDir come from the image config');
    const json = JSON.parse((await vm.agent.readFile('/etc/rootforge/image.json')).toString()) as { source: string };
    assert.equal(json.source, `oci:${layout}:alpine`);
  } finally {
    await vm.shutdown();
  }
});

test('broken images fail fast with the reason and the console, never hang', { timeout: 400_000 }, async (t) => {
  const k = need(t);
  if (!k) return;
  const agentJson = (init: string) => JSON.stringify({ init });
  const cases: { name: string; entries: Parameters<typeof tarEntries>[0]; codes: string[]; console: RegExp; withinMs: number; timeoutMs?: number }[] = [
    {
      name: 'no init at all',
      entries: [{ path: 'etc/rootforge/agent.json', content: agentJson('/sbin/init') }],
      codes: ['VM_EXITED', 'VM_KERNEL_PANIC'],
      console: /init/i,
      withinMs: 60_000,
    },
  ];
  for (const c of cases) {
    const tar = join(work, `${c.name.replace(/\W+/g, '-')}.tar`);
    writeFileSync(tar, tarEntries(c.entries));
    const img = join(work, `${c.name.replace(/\W+/g, '-')}.img`);
    await convert(`tar:${tar}`, img, { readOnly: true });
    const started = Date.now();
    await assert.rejects(
      bootImage(img, k, { bootTimeoutMs: c.timeoutMs ?? 120_000 }),
      (e: unknown) => {
        assert.ok(isRootforgeError(e), String(e));
        assert.ok(c.codes.includes(e.code), `${c.name}: ${e.code}: ${e.message}`);
        assert.match(e.message, /last console lines/);
        assert.match(e.message, c.console);
        return true;
      },
    );
    assert.ok(Date.now() - started < c.withinMs, `${c.name} took ${Date.now() - started} ms`);
  }
  if (existsSync(ALPINE_X86)) {
    // an init that exits: Alpine's /bin/true as init (init: systemd, but there is no systemd,
    // so agent.json names the real init) → the kernel panics at once
    const exits = await loadSpec(join(EXAMPLES, 'alpine-agent.yaml'));
    exits.init = 'systemd';
    exits.realInit = '/bin/true';
    exits.output = join(work, 'init-exits.img');
    await buildImage(exits);
    const t0 = Date.now();
    await assert.rejects(bootImage(exits.output, k, { bootTimeoutMs: 120_000 }), (e: unknown) => {
      assert.ok(isRootforgeError(e) && (e.code === 'VM_KERNEL_PANIC' || e.code === 'VM_EXITED'), String(e));
      assert.match(e.message, /Attempted to kill init/);
      return true;
    });
    assert.ok(Date.now() - t0 < 60_000, `init exits: took ${Date.now() - t0} ms`);
    // an agent that never answers: Alpine with the wrapper but no agent binary → bounded timeout
    const spec = await loadSpec(join(EXAMPLES, 'alpine-agent.yaml'));
    spec.agent = 'none';
    spec.output = join(work, 'silent.img');
    await buildImage(spec);
    const started = Date.now();
    await assert.rejects(bootImage(spec.output, k, { bootTimeoutMs: 25_000 }), (e: unknown) => isRootforgeError(e) && e.code === 'VM_BOOT_TIMEOUT' && /did not answer within 25 s/.test(e.message));
    assert.ok(Date.now() - started < 45_000, 'the timeout is a hard limit');
  }
  // a corrupt image: typed error before or during boot, quickly
  const corrupt = join(work, 'corrupt.img');
  const good = readFileSync(join(work, `${cases[0]!.name.replace(/\W+/g, '-')}.img`));
  good.fill(0xa5, 4096, 4096 * 3); // descriptors and the first data blocks
  writeFileSync(corrupt, good);
  const started = Date.now();
  await assert.rejects(bootImage(corrupt, k, { bootTimeoutMs: 60_000 }), (e: unknown) => isRootforgeError(e));
  assert.ok(Date.now() - started < 60_000);
  // the CLI says why, exits non-zero
  const r = rootforge(['boot', join(work, 'no-init-at-all.img'), '--kernel', k.name, '--cache-dir', kernelCache, '--timeout', '60']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Cannot boot .*\[VM_(EXITED|KERNEL_PANIC)\]|last console lines/s);
});
