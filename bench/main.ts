/**
 * `npm run bench`: rootforge against the established tar → ext4 pipelines, measured in the same
 * run on the same warm inputs (disk speed on these machines swings 2–4×, so only numbers taken
 * side by side compare; medians and ratios are what to quote).
 *
 * For each tar input: read it once with our tar reader (stats + page-cache warm-up), then for
 * each pipeline one untimed warm-up run and N timed runs (or, with --order interleaved, N rounds
 * of all pipelines in rotating order); see runner.ts. Then the registry input (registry-bench.ts):
 * the devbox tar as a 4-layer image in a local registry, ours against skopeo + umoci + mke2fs -d
 * and the decompress-only floor. Progress goes to stderr, the report to stdout and
 * bench/results/.
 */
import { parseOptions, USAGE } from './args.js';
import { runAllOpenCleanups } from './cleanup.js';
import { BenchError } from './errors.js';
import { exec, requireTool, stopRunningChildren } from './exec.js';
import { DEVBOX, MINBASE, ensureInput } from './fixtures.js';
import { machineInfo } from './machine.js';
import { PIPELINES, type Pipeline } from './pipelines.js';
import { benchBoot, formatBoot } from './boot.js';
import { benchInstances, formatInstances } from './instances.js';
import { benchDistro, formatDistro } from './distro.js';
import { benchDistribution } from './distribution.js';
import { benchRegistry, REGISTRY_INPUT } from './registry-bench.js';
import { formatInput, summarize, writeResults, type BenchReport, type InputResult } from './report.js';
import { isInterrupted, log, markInterrupted, runPipelines } from './runner.js';
import { readTarStats } from './tarstats.js';

const RESULTS_DIR = new URL('../../bench/results/', import.meta.url).pathname;

async function benchInput(name: string, path: string, selected: readonly Pipeline[], runs: number, order: 'grouped' | 'interleaved'): Promise<InputResult> {
  log(`${name}: reading ${path} with our tar reader (stats; warms the page cache)`);
  const stats = await readTarStats(path);
  await exec(requireTool('sync'), []);
  const pipelines = await runPipelines(name, path, stats, selected, runs, order);
  const result: InputResult = { input: name, kind: 'tar', path, stats, pipelines, targets: [] };
  summarize(result);
  return result;
}

async function main(argv: string[]): Promise<number> {
  // Its own mode with its own options (bench/distribution.ts).
  if (argv.includes('--distribution')) return benchDistribution(argv);
  const opts = parseOptions(argv);
  if (opts.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  requireTool('e2fsck'); // every image is checked with it: fail before any work
  if (opts.distro) {
    const r = await benchDistro(opts.runs, RESULTS_DIR);
    process.stdout.write(formatDistro(r) + '\n');
    return 0;
  }
  const report: BenchReport = {
    startedAt: new Date().toISOString(),
    options: { runs: opts.runs, order: opts.order, quick: opts.quick, pipelines: opts.pipelines, skipRegistry: opts.skipRegistry, registryOnly: opts.registryOnly, skipBoot: opts.skipBoot, bootOnly: opts.bootOnly },
    machine: await machineInfo(),
    inputs: [],
  };
  const m = report.machine;
  log(`${m.cpus} × ${m.cpuModel}, node ${m.node}, Linux ${m.kernel}, load ${m.loadAverage.join(' ')}${m.root ? ', root' : ''}`);
  const done = async (result: InputResult): Promise<void> => {
    report.inputs.push(result);
    process.stdout.write(formatInput(result) + '\n\n');
    // Written after each input, so a later failure does not lose what was measured.
    const files = await writeResults(RESULTS_DIR, report);
    log(`wrote ${files.join(', ')}`);
  };
  if (opts.instances) {
    const spec = opts.quick ? MINBASE : DEVBOX;
    report.instances = await benchInstances(await ensureInput(spec, log), spec.name, 100, opts.runs, log);
    process.stdout.write(formatInstances(report.instances) + '\n\n');
    log(`wrote ${(await writeResults(RESULTS_DIR, report)).join(', ')}`);
    return 0;
  }
  const selected = PIPELINES.filter((p) => opts.pipelines.includes(p.id));
  const tarInputs = opts.registryOnly || opts.bootOnly ? [] : opts.quick ? [MINBASE] : [MINBASE, DEVBOX];
  if (selected.length === 0 && tarInputs.length > 0) log(`tar inputs: none of ${PIPELINES.map((p) => p.id).join(', ')} selected by --pipelines; skipped`);
  for (const spec of selected.length > 0 ? tarInputs : []) {
    const path = await ensureInput(spec, log);
    await done(await benchInput(spec.name, path, selected, opts.runs, opts.order));
  }
  if (!opts.quick && !opts.skipRegistry && !opts.bootOnly) {
    const registryIds = opts.pipelines.filter((id) => id === 'ours' || id === 'C' || id === 'gunzip' || id === 'zlib');
    if (registryIds.length === 0) {
      log(`${REGISTRY_INPUT}: none of ours, C, gunzip, zlib selected by --pipelines; skipped`);
    } else {
      const path = await ensureInput(DEVBOX, log);
      // The layers hold exactly the devbox tar's entries: its stats are the merged image's.
      const stats = report.inputs.find((i) => i.input === DEVBOX.name)?.stats ?? (await readTarStats(path));
      await done(await benchRegistry(path, stats, registryIds, opts.runs, opts.order));
    }
  }
  if (!opts.quick && !opts.skipBoot && !opts.registryOnly) {
    report.boot = await benchBoot(opts.runs, log);
    process.stdout.write(formatBoot(report.boot) + '\n\n');
    log(`wrote ${(await writeResults(RESULTS_DIR, report)).join(', ')}`);
  }
  const failed = report.inputs.flatMap((i) => i.pipelines).filter((p) => p.status === 'failed');
  const failedChecks = report.inputs.flatMap((i) => i.checks ?? []).filter((c) => !c.ok);
  return failed.length > 0 || failedChecks.length > 0 ? 1 : 0;
}

/** First signal: stop the children, unmount and remove what is in flight, exit 130. Second: exit now. */
function onSignal(sig: NodeJS.Signals): void {
  if (markInterrupted()) process.exit(130);
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
    if (isInterrupted()) return; // the signal handler reports and exits
    const usage = e instanceof BenchError && e.code === 'BENCH_USAGE';
    process.stderr.write(`bench: ${(e as Error).message}${usage ? `\n\n${USAGE}` : ''}\n`);
    if (!(e instanceof BenchError)) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
