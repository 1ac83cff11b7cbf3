/** Command-line options of `npm run bench` (node build/bench/main.js). */
import { parseArgs } from 'node:util';
import { benchFail } from './errors.js';
import type { PipelineId } from './pipelines.js';

export interface BenchOptions {
  /** Timed runs per input and pipeline. Default 3. */
  runs: number;
  /**
   * 'grouped' (default): each pipeline's runs back to back after one untimed warm-up run, so a
   * pipeline is measured in its own steady state. 'interleaved': rounds of every pipeline, the
   * order rotating each round. (Which one runs right after another's 2 GB image was deleted
   * matters a lot on these machines: page-cache refills after big deletions are slow.)
   */
  order: 'grouped' | 'interleaved';
  /** minbase only (CI smoke). Default false: minbase and devbox. */
  quick: boolean;
  /** Pipelines to measure. Default all (B is skipped unless root). */
  pipelines: PipelineId[];
  help: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]     (or: node build/bench/main.js [options])

Times rootforge against the established tar → ext4 pipelines, in one run, on Debian bookworm
tars made by mmdebstrap (cached; see below), and checks every image with e2fsck -fn.

  ours  rootforge convert tar:IN -o OUT --size auto (child process; peak RSS measured)
  A     fakeroot: tar -x into a staging dir + mke2fs -d, then e2fsck -fy, resize2fs -M, truncate
  B     as root: mke2fs + loop mount + tar -x + umount, then the same shrink (skipped if not root)

Options:
  --runs N              timed runs per input and pipeline; medians are reported (default 3)
  --quick               minbase only (CI smoke test)
  --pipelines LIST      comma-separated subset of ours,A,B (default: all)
  --order MODE          grouped (default): each pipeline's runs back to back after one untimed
                        warm-up run; interleaved: rounds of all pipelines, rotating the order
  -h, --help            this text

Inputs are looked up as minbase.tar / devbox.tar in $ROOTFORGE_BENCH_CACHE,
~/.cache/rootforge-bench and ~/.cache/rootforge-test; missing ones are built with mmdebstrap
into the first of those. Results go to bench/results/<input>-<time>.json and latest.json.
Exit status: 0 when every pipeline ran and every image passed e2fsck (targets missed or not),
1 when a pipeline or a check failed, 2 on a usage error.`;

const IDS: readonly PipelineId[] = ['ours', 'A', 'B'];

export function parseOptions(argv: string[]): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        runs: { type: 'string' },
        quick: { type: 'boolean' },
        pipelines: { type: 'string' },
        order: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    return benchFail('BENCH_USAGE', 'parse the options', (e as Error).message);
  }
  const runs = values.runs === undefined ? 3 : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) benchFail('BENCH_USAGE', 'use --runs', 'expected a whole number ≥ 1', values.runs);
  const pipelines = values.pipelines === undefined ? [...IDS] : values.pipelines.split(',').map((s) => s.trim());
  for (const p of pipelines) {
    if (!(IDS as readonly string[]).includes(p)) benchFail('BENCH_USAGE', 'use --pipelines', `unknown pipeline (known: ${IDS.join(', ')})`, p);
  }
  const order = values.order ?? 'grouped';
  if (order !== 'grouped' && order !== 'interleaved') benchFail('BENCH_USAGE', 'use --order', 'expected grouped or interleaved', order);
  return { runs, order, quick: values.quick ?? false, pipelines: pipelines as PipelineId[], help: values.help ?? false };
}
