/**
 * `npm run bench`: rootforge against the established tar → ext4 pipelines, measured in the same
 * run on the same warm inputs (disk speed on these machines swings 2–4×, so only numbers taken
 * side by side compare; medians and ratios are what to quote).
 *
 * For each input: read it once with our tar reader (stats + page-cache warm-up), then for each
 * pipeline one untimed warm-up run and N timed runs (or, with --order interleaved, N rounds of
 * all pipelines in rotating order). Every run gets a fresh temp dir; after the timed part its image is checked
 * with `e2fsck -fn` and the dir removed and `sync`ed, all untimed, so one run's cleanup never
 * lands in the next one's time. Progress goes to stderr, the report to stdout and
 * bench/results/.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { parseOptions, USAGE } from './args.js';
import { runAllOpenCleanups, withCleanups } from './cleanup.js';
import { BenchError, benchFail } from './errors.js';
import { exec, requireTool, stopRunningChildren } from './exec.js';
import { DEVBOX, MINBASE, ensureInput } from './fixtures.js';
import { fsckClean, imageSize } from './image.js';
import { machineInfo } from './machine.js';
import { PIPELINES, type Pipeline } from './pipelines.js';
import { formatInput, summarize, writeResults, type BenchReport, type InputResult, type PipelineResult, type RunRecord } from './report.js';
import { readTarStats, type TarStats } from './tarstats.js';

const RESULTS_DIR = new URL('../../bench/results/', import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;
let interrupted = false;

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
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
async function removeRunDir(dir: string): Promise<void> {
  const mounted = await mountsUnder(dir);
  // Never recurse into a mounted image: leave it for a human rather than delete through it.
  if (mounted.length > 0) benchFail('BENCH_CLEANUP_FAILED', `remove ${dir}`, 'still mounted', mounted.join(', '));
  // Unprivileged extractions keep modes like 0555 on directories, which rm cannot descend.
  if (!isRoot) await exec(requireTool('chmod'), ['-R', 'u+rwX', dir]);
  await rm(dir, { recursive: true, force: true });
  await exec(requireTool('sync'), []);
}

/** One timed run of `p`, then its untimed check; its temp dir is removed whatever happens. */
function timedRun(p: Pipeline, input: string, stats: TarStats): Promise<RunRecord> {
  return withCleanups(async (cleanups) => {
    if (interrupted) benchFail('BENCH_COMMAND_FAILED', `start a ${p.id} run`, 'interrupted');
    const dir = await mkdtemp(join(tmpdir(), `rootforge-bench-${p.id}-`));
    cleanups.push(`remove ${dir}`, () => removeRunDir(dir));
    const out = await p.run({ input, stats, dir, cleanups });
    await fsckClean(out.image);
    const size = await imageSize(out.image);
    return {
      seconds: out.seconds,
      steps: out.steps,
      imageBytes: size.bytes,
      imageDiskBytes: size.diskBytes,
      ...(out.peakRssMiB !== undefined ? { peakRssMiB: out.peakRssMiB } : {}),
      ...(out.details !== undefined ? { details: out.details } : {}),
    };
  });
}

async function benchInput(name: string, path: string, selected: readonly Pipeline[], runs: number, order: 'grouped' | 'interleaved'): Promise<InputResult> {
  log(`${name}: reading ${path} with our tar reader (stats; warms the page cache)`);
  const stats = await readTarStats(path);
  await exec(requireTool('sync'), []);
  const result: InputResult = { input: name, path, stats, pipelines: [], targets: [] };
  const active: [Pipeline, PipelineResult][] = [];
  for (const p of selected) {
    const skip = p.skipReason();
    const pr: PipelineResult = { id: p.id, title: p.title, status: skip ? 'skipped' : 'ok', runs: [], ...(skip ? { note: skip } : {}) };
    result.pipelines.push(pr);
    if (skip) log(`${name}: skipping ${p.id}: ${skip}`);
    else active.push([p, pr]);
  }
  const runOne = async (p: Pipeline, pr: PipelineResult, label: string, timed: boolean): Promise<void> => {
    if (pr.status !== 'ok') return;
    try {
      const rec = await timedRun(p, path, stats);
      if (timed) pr.runs.push(rec);
      const rss = rec.peakRssMiB === undefined ? '' : `, peak RSS ${rec.peakRssMiB.toFixed(0)} MiB`;
      log(`${name} ${p.id} ${label}: ${rec.seconds.toFixed(2)} s, image ${rec.imageBytes} bytes${rss}, e2fsck -fn clean`);
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
  summarize(result);
  return result;
}

async function main(argv: string[]): Promise<number> {
  const opts = parseOptions(argv);
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  requireTool('e2fsck'); // every image is checked with it: fail before any work
  const report: BenchReport = {
    startedAt: new Date().toISOString(),
    options: { runs: opts.runs, order: opts.order, quick: opts.quick, pipelines: opts.pipelines },
    machine: await machineInfo(),
    inputs: [],
  };
  const m = report.machine;
  log(`${m.cpus} × ${m.cpuModel}, node ${m.node}, Linux ${m.kernel}, load ${m.loadAverage.join(' ')}${m.root ? ', root' : ''}`);
  const selected = PIPELINES.filter((p) => opts.pipelines.includes(p.id));
  for (const spec of opts.quick ? [MINBASE] : [MINBASE, DEVBOX]) {
    const path = await ensureInput(spec, log);
    const result = await benchInput(spec.name, path, selected, opts.runs, opts.order);
    report.inputs.push(result);
    process.stdout.write(formatInput(result) + '\n\n');
    // Written after each input, so a later failure does not lose what was measured.
    const files = await writeResults(RESULTS_DIR, report);
    log(`wrote ${files.join(', ')}`);
  }
  const failed = report.inputs.flatMap((i) => i.pipelines).filter((p) => p.status === 'failed');
  return failed.length > 0 ? 1 : 0;
}

/** First signal: stop the children, unmount and remove what is in flight, exit 130. Second: exit now. */
function onSignal(sig: NodeJS.Signals): void {
  if (interrupted) process.exit(130);
  interrupted = true;
  log(`interrupted (${sig}): stopping children and cleaning up (again to quit at once)`);
  void (async () => {
    await stopRunningChildren();
    for (const f of await runAllOpenCleanups()) log(f.message);
    process.exit(130);
  })();
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (interrupted) return; // the signal handler reports and exits
    const usage = e instanceof BenchError && e.code === 'BENCH_USAGE';
    process.stderr.write(`bench: ${(e as Error).message}${usage ? `\n\n${USAGE}` : ''}\n`);
    if (!(e instanceof BenchError)) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
