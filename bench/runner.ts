/**
 * Running pipelines the way every benchmark input is measured: each run in a fresh temp dir;
 * after its timed part the image is checked with `e2fsck -fn` (and handed to an optional
 * inspection hook), then the dir is removed and `sync`ed, all untimed, so one run's cleanup
 * never lands in the next one's time. Grouped order: each pipeline's runs back to back after
 * one untimed warm-up; interleaved: rounds of all pipelines in rotating order.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { withCleanups, type Cleanups } from './cleanup.js';
import { benchFail } from './errors.js';
import { exec, requireTool } from './exec.js';
import { fsckClean, imageSize } from './image.js';
import type { Pipeline } from './pipelines.js';
import type { PipelineResult, RunRecord } from './report.js';
import type { TarStats } from './tarstats.js';

const isRoot = process.getuid?.() === 0;
let interrupted = false;

export function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** Set by the signal handler: no new run starts, a failing run is not recorded as a failure. */
export function markInterrupted(): boolean {
  const was = interrupted;
  interrupted = true;
  return was;
}

export function isInterrupted(): boolean {
  return interrupted;
}

/** Mount points at or below `dir` (from /proc/self/mountinfo, field 5; octal escapes undone). */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined)
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(dir + sep));
}

/** Removes a run's directory, then syncs so freeing it is not charged to the next run. */
export async function removeRunDir(dir: string): Promise<void> {
  const mounted = await mountsUnder(dir);
  // Never recurse into a mounted image: leave it for a human rather than delete through it.
  if (mounted.length > 0) benchFail('BENCH_CLEANUP_FAILED', `remove ${dir}`, 'still mounted', mounted.join(', '));
  // Unprivileged extractions keep modes like 0555 on directories, which rm cannot descend.
  if (!isRoot) await exec(requireTool('chmod'), ['-R', 'u+rwX', dir]);
  await rm(dir, { recursive: true, force: true });
  await exec(requireTool('sync'), []);
}

export interface RunHooks {
  /**
   * Called untimed after a run's image passed e2fsck, before its dir is removed (warm-up runs
   * too). Cleanups pushed on `cleanups` run before the removal. A throw fails the run.
   */
  afterRun?(p: Pipeline, image: string, info: { dir: string; cleanups: Cleanups }): Promise<void>;
}

/** One timed run of `p`, then its untimed check; its temp dir is removed whatever happens. */
function timedRun(p: Pipeline, input: string, stats: TarStats, hooks: RunHooks): Promise<RunRecord> {
  return withCleanups(async (cleanups) => {
    if (interrupted) benchFail('BENCH_COMMAND_FAILED', `start a ${p.id} run`, 'interrupted');
    const dir = await mkdtemp(join(tmpdir(), `rootforge-bench-${p.id}-`));
    cleanups.push(`remove ${dir}`, () => removeRunDir(dir));
    const out = await p.run({ input, stats, dir, cleanups });
    const rec: RunRecord = { seconds: out.seconds, steps: out.steps };
    if (out.image !== undefined) {
      if (p.fsckReportOnly) rec.fsckClean = await fsckClean(out.image).then(() => true, () => false);
      else await fsckClean(out.image);
      const size = await imageSize(out.image);
      rec.imageBytes = size.bytes;
      rec.imageDiskBytes = size.diskBytes;
      await hooks.afterRun?.(p, out.image, { dir, cleanups });
    }
    if (out.peakRssMiB !== undefined) rec.peakRssMiB = out.peakRssMiB;
    if (out.details !== undefined) rec.details = out.details;
    return rec;
  });
}

/**
 * Measures `selected` on one input. Skipped pipelines (skipReason) and failed ones are recorded
 * with a note; a failure does not stop the other pipelines.
 */
export async function runPipelines(
  name: string,
  input: string,
  stats: TarStats,
  selected: readonly Pipeline[],
  runs: number,
  order: 'grouped' | 'interleaved',
  hooks: RunHooks = {},
): Promise<PipelineResult[]> {
  const results: PipelineResult[] = [];
  const active: [Pipeline, PipelineResult][] = [];
  for (const p of selected) {
    const skip = p.skipReason();
    const pr: PipelineResult = { id: p.id, title: p.title, status: skip ? 'skipped' : 'ok', runs: [], ...(skip ? { note: skip } : {}) };
    results.push(pr);
    if (skip) log(`${name}: skipping ${p.id}: ${skip}`);
    else active.push([p, pr]);
  }
  const runOne = async (p: Pipeline, pr: PipelineResult, label: string, timed: boolean): Promise<void> => {
    if (pr.status !== 'ok') return;
    try {
      const rec = await timedRun(p, input, stats, hooks);
      if (timed) pr.runs.push(rec);
      const rss = rec.peakRssMiB === undefined ? '' : `, peak RSS ${rec.peakRssMiB.toFixed(0)} MiB`;
      const fsck = rec.fsckClean === false ? 'e2fsck -fn NOT clean' : 'e2fsck -fn clean';
      const image = rec.imageBytes === undefined ? '' : `, image ${rec.imageBytes} bytes${rss}, ${fsck}`;
      log(`${name} ${p.id} ${label}: ${rec.seconds.toFixed(2)} s${image}`);
    } catch (e) {
      if (interrupted) throw e;
      pr.status = 'failed';
      pr.note = `${label} failed: ${(e as Error).message}`;
      log(`${name} ${p.id} ${label} FAILED: ${(e as Error).message}`);
    }
  };
  if (order === 'grouped') {
    for (const [p, pr] of active) {
      await runOne(p, pr, 'warm-up (untimed)', false);
      for (let i = 1; i <= runs; i++) await runOne(p, pr, `run ${i}/${runs}`, true);
    }
  } else {
    for (let i = 1; i <= runs; i++) {
      for (let k = 0; k < active.length; k++) {
        const [p, pr] = active[(k + i - 1) % active.length]!;
        await runOne(p, pr, `run ${i}/${runs}`, true);
      }
    }
  }
  return results;
}
