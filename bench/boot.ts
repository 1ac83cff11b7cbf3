/**
 * Boot benchmark: the scratch and Alpine examples booted N times each with the default kernel
 * (Debian's cloud kernel through `kernel from-deb` when the cache has none), then the same two
 * built for linux/arm64 (the Alpine aarch64 minirootfs) under qemu-system-aarch64 -M virt with
 * Debian's arm64 cloud kernel (TCG on an x86_64 host: emulated, so many times slower). Per boot: wall time
 * from VMM start to agent ready, and on the guest's own clock the time from the hand-over to the
 * image's init (our initramfs says when) to the agent's ready. Target: ready within 50 ms of
 * init starting.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../src/build-image.js';
import { loadSpec } from '../src/spec/load.js';
import { bootImage } from '../src/vm/boot.js';
import { kernelRef } from '../src/kernel/kernel-ref.js';
import type { KernelRef } from '../src/vm/types.js';
import { median } from './report.js';

const REPO = new URL('../../', import.meta.url).pathname;
const ALPINE = join(REPO, '..', 'shared', 'fixtures', 'alpine', 'alpine-minirootfs-3.20.3-x86_64.tar.gz');
const ALPINE_ARM64 = join(REPO, '..', 'shared', 'fixtures', 'alpine', 'alpine-minirootfs-3.20.3-aarch64.tar.gz');

export interface BootRun {
  wallReadyMs: number;
  kernelMs: number | null;
  initGuestMs: number | null;
  readyGuestMs: number;
  /** readyGuestMs - initGuestMs: the agent's own start, on the guest clock. */
  initToReadyMs: number | null;
}

export interface BootImageResult {
  image: string;
  /** The image's architecture (amd64, arm64). */
  arch: string;
  sizeBytes: number;
  runs: BootRun[];
  median: { wallReadyMs: number; initToReadyMs: number | null; readyGuestMs: number };
  target: { name: string; value: number | null; limit: number; met: boolean | null };
}

export interface BootBenchResult {
  kernel: string;
  accel: string;
  /** The arm64 boots' kernel and accelerator (absent without qemu-system-aarch64). */
  arm64?: { kernel: string; accel: string };
  images: BootImageResult[];
}

type Log = (s: string) => void;

export async function benchBoot(runs: number, log: Log): Promise<BootBenchResult> {
  let kernel;
  try {
    kernel = await kernelRef(undefined, { arch: 'x86_64' });
  } catch (e) {
    log(`boot: no default kernel (${(e as Error).message.split('\n')[0]}); making one from linux-image-cloud-amd64`);
    kernel = await kernelRef('linux-image-cloud-amd64');
  }
  const dir = mkdtempSync(join(tmpdir(), 'rf-bench-boot-'));
  const result: BootBenchResult = { kernel: kernel.name, accel: '', images: [] };
  try {
    const examples: Example[] = [{ name: 'scratch', spec: join(REPO, 'examples', 'scratch.yaml') }];
    if (existsSync(ALPINE)) examples.push({ name: 'alpine', spec: join(REPO, 'examples', 'alpine-agent.yaml') });
    else log(`boot: Alpine fixture missing (${ALPINE}); scratch only`);
    for (const ex of examples) result.images.push(await benchImage(ex, kernel, dir, runs, log, (a) => (result.accel = a)));
    // arm64 guests: qemu-system-aarch64 -M virt (TCG on an x86_64 host), Debian's arm64 cloud kernel
    if (spawnSync('qemu-system-aarch64', ['--version']).status !== 0) {
      log('boot: qemu-system-aarch64 is not installed (qemu-system-arm); no arm64 boots');
      return result;
    }
    let arm;
    try {
      arm = await kernelRef(undefined, { arch: 'aarch64' });
    } catch (e) {
      log(`boot: no arm64 kernel in the cache (${(e as Error).message.split('\n')[0]}); making one from linux-image-cloud-arm64`);
      arm = await kernelRef('linux-image-cloud-arm64', { fromDeb: { setDefault: false } });
    }
    result.arm64 = { kernel: arm.name, accel: '' };
    const armExamples: Example[] = [{ name: 'scratch-arm64', spec: join(REPO, 'examples', 'scratch.yaml'), platform: 'linux/arm64' }];
    if (existsSync(ALPINE_ARM64)) armExamples.push({ name: 'alpine-arm64', spec: join(REPO, 'examples', 'alpine-agent.yaml'), platform: 'linux/arm64', from: `tar:${ALPINE_ARM64}` });
    for (const ex of armExamples) result.images.push(await benchImage(ex, arm, dir, runs, log, (a) => (result.arm64!.accel = a)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

interface Example {
  name: string;
  spec: string;
  /** Build for this platform (spec platform:), and from this base instead of the spec's. */
  platform?: string;
  from?: string;
}

async function benchImage(ex: Example, kernel: KernelRef, dir: string, runs: number, log: Log, setAccel: (a: string) => void): Promise<BootImageResult> {
  const spec = await loadSpec(ex.spec);
  if (ex.platform) spec.platform = ex.platform;
  if (ex.from) spec.from = ex.from;
  spec.output = join(dir, `${ex.name}.ext4`);
  const built = await buildImage(spec);
  const image: BootImageResult = {
    image: ex.name,
    arch: built.arch,
    sizeBytes: built.sizeBytes,
    runs: [],
    median: { wallReadyMs: 0, initToReadyMs: null, readyGuestMs: 0 },
    target: { name: 'agent ready after init starts (guest clock, ms)', value: null, limit: 50, met: null },
  };
  // an emulated arm64 guest is several times slower under TCG: a longer bound
  const bootTimeoutMs = kernel.arch === 'arm64' ? 300_000 : 120_000;
  for (let i = 0; i <= runs; i++) {
    const vm = await bootImage(spec.output, kernel, { bootTimeoutMs });
    const t = vm.timings;
    setAccel(`${t.accel} (${t.accelReason})`);
    await vm.shutdown();
    const run: BootRun = {
      wallReadyMs: t.readyMs,
      kernelMs: t.kernelMs ?? null,
      initGuestMs: t.initGuestMs ?? null,
      readyGuestMs: t.agentUptimeMs,
      initToReadyMs: t.initGuestMs !== undefined ? t.agentUptimeMs - t.initGuestMs : null,
    };
    if (i === 0) {
      log(`boot ${ex.name} warm-up (untimed): ready after ${Math.round(t.readyMs)} ms`);
      continue;
    }
    image.runs.push(run);
    log(`boot ${ex.name} run ${i}/${runs}: ready after ${Math.round(run.wallReadyMs)} ms wall; guest: init ${run.initGuestMs?.toFixed(0)} ms → ready ${run.readyGuestMs.toFixed(0)} ms`);
  }
  const deltas = image.runs.map((r) => r.initToReadyMs).filter((x): x is number => x !== null);
  image.median = {
    wallReadyMs: median(image.runs.map((r) => r.wallReadyMs)),
    initToReadyMs: deltas.length ? median(deltas) : null,
    readyGuestMs: median(image.runs.map((r) => r.readyGuestMs)),
  };
  image.target.value = image.median.initToReadyMs;
  image.target.met = image.median.initToReadyMs === null ? null : image.median.initToReadyMs <= 50;
  return image;
}

export function formatBoot(r: BootBenchResult): string {
  const lines = [`boot: kernel ${r.kernel}, ${r.accel}`];
  if (r.arm64) lines.push(`boot (arm64 images): kernel ${r.arm64.kernel}, ${r.arm64.accel}`);
  lines.push('  image          size       wall→ready  guest: init→ready  guest: ready');
  for (const i of r.images) {
    const m = i.median;
    lines.push(
      `  ${i.image.padEnd(13)}  ${(i.sizeBytes / 2 ** 20).toFixed(1).padStart(5)} MiB  ${m.wallReadyMs.toFixed(0).padStart(7)} ms  ${String(m.initToReadyMs?.toFixed(0) ?? '?').padStart(12)} ms     ${m.readyGuestMs.toFixed(0).padStart(7)} ms`,
    );
  }
  for (const i of r.images) {
    const t = i.target;
    lines.push(`  target (${i.image}): ${t.name} ${t.value?.toFixed(0) ?? '?'} (≤ ${t.limit}) ${t.met === null ? 'UNKNOWN' : t.met ? 'MET' : 'MISSED'}`);
  }
  return lines.join('\n');
}
