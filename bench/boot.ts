/**
 * Boot benchmark: the scratch and Alpine examples booted N times each with the default kernel
 * (Debian's cloud kernel through `kernel from-deb` when the cache has none). Per boot: wall time
 * from VMM start to agent ready, and on the guest's own clock the time from the hand-over to the
 * image's init (our initramfs says when) to the agent's ready. Target: ready within 50 ms of
 * init starting.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../src/build.js';
import { loadSpec } from '../src/spec/load.js';
import { bootImage } from '../src/vm/boot.js';
import { kernelRef } from '../src/vm/kernel-ref.js';
import { median } from './report.js';

const REPO = new URL('../../', import.meta.url).pathname;
const ALPINE = join(REPO, '..', 'shared', 'fixtures', 'alpine', 'alpine-minirootfs-3.20.3-x86_64.tar.gz');

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
  sizeBytes: number;
  runs: BootRun[];
  median: { wallReadyMs: number; initToReadyMs: number | null; readyGuestMs: number };
  target: { name: string; value: number | null; limit: number; met: boolean | null };
}

export interface BootBenchResult {
  kernel: string;
  accel: string;
  images: BootImageResult[];
}

type Log = (s: string) => void;

export async function benchBoot(runs: number, log: Log): Promise<BootBenchResult> {
  let kernel;
  try {
    kernel = await kernelRef(undefined);
  } catch (e) {
    log(`boot: no default kernel (${(e as Error).message.split('\n')[0]}); making one from linux-image-cloud-amd64`);
    kernel = await kernelRef('linux-image-cloud-amd64');
  }
  const dir = mkdtempSync(join(tmpdir(), 'rf-bench-boot-'));
  const result: BootBenchResult = { kernel: kernel.name, accel: '', images: [] };
  try {
    const examples: [string, string][] = [['scratch', join(REPO, 'examples', 'scratch.yaml')]];
    if (existsSync(ALPINE)) examples.push(['alpine', join(REPO, 'examples', 'alpine-agent.yaml')]);
    else log(`boot: Alpine fixture missing (${ALPINE}); scratch only`);
    for (const [name, specPath] of examples) {
      const spec = await loadSpec(specPath);
      spec.output = join(dir, `${name}.ext4`);
      const built = await buildImage(spec);
      const image: BootImageResult = {
        image: name,
        sizeBytes: built.sizeBytes,
        runs: [],
        median: { wallReadyMs: 0, initToReadyMs: null, readyGuestMs: 0 },
        target: { name: 'agent ready after init starts (guest clock, ms)', value: null, limit: 50, met: null },
      };
      for (let i = 0; i <= runs; i++) {
        const vm = await bootImage(spec.output, kernel, { bootTimeoutMs: 120_000 });
        const t = vm.timings;
        result.accel = `${t.accel} (${t.accelReason})`;
        await vm.shutdown();
        const run: BootRun = {
          wallReadyMs: t.readyMs,
          kernelMs: t.kernelMs ?? null,
          initGuestMs: t.initGuestMs ?? null,
          readyGuestMs: t.agentUptimeMs,
          initToReadyMs: t.initGuestMs !== undefined ? t.agentUptimeMs - t.initGuestMs : null,
        };
        if (i === 0) {
          log(`boot ${name} warm-up (untimed): ready after ${Math.round(t.readyMs)} ms`);
          continue;
        }
        image.runs.push(run);
        log(`boot ${name} run ${i}/${runs}: ready after ${Math.round(run.wallReadyMs)} ms wall; guest: init ${run.initGuestMs?.toFixed(0)} ms → ready ${run.readyGuestMs.toFixed(0)} ms`);
      }
      const deltas = image.runs.map((r) => r.initToReadyMs).filter((x): x is number => x !== null);
      image.median = {
        wallReadyMs: median(image.runs.map((r) => r.wallReadyMs)),
        initToReadyMs: deltas.length ? median(deltas) : null,
        readyGuestMs: median(image.runs.map((r) => r.readyGuestMs)),
      };
      image.target.value = image.median.initToReadyMs;
      image.target.met = image.median.initToReadyMs === null ? null : image.median.initToReadyMs <= 50;
      result.images.push(image);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

export function formatBoot(r: BootBenchResult): string {
  const lines = [`boot: kernel ${r.kernel}, ${r.accel}`];
  lines.push('  image     size       wall→ready  guest: init→ready  guest: ready');
  for (const i of r.images) {
    const m = i.median;
    lines.push(
      `  ${i.image.padEnd(8)}  ${(i.sizeBytes / 2 ** 20).toFixed(1).padStart(5)} MiB  ${m.wallReadyMs.toFixed(0).padStart(7)} ms  ${String(m.initToReadyMs?.toFixed(0) ?? '?').padStart(12)} ms     ${m.readyGuestMs.toFixed(0).padStart(7)} ms`,
    );
  }
  for (const i of r.images) {
    const t = i.target;
    lines.push(`  target (${i.image}): ${t.name} ${t.value?.toFixed(0) ?? '?'} (≤ ${t.limit}) ${t.met === null ? 'UNKNOWN' : t.met ? 'MET' : 'MISSED'}`);
  }
  return lines.join('\n');
}
