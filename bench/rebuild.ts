/**
 * Rebuild on a cache hit (issue 14: ≤ 200 ms): `rootforge convert docker://REF` again with the
 * same options, the image cache on and the output as the previous run left it. The registry is
 * still asked for the manifest (a moved tag must rebuild), the cache entry is found, and the
 * output, unchanged since the cache wrote it (device, inode, size, mtime, ctime), is left alone.
 *
 *   fill: one full convert into a fresh cache (untimed) → one untimed CLI rebuild → N timed
 *   rebuilds each of run-ours and the CLI (`rootforge convert … --json`), alternating, each must
 *   report upToDate → the output removed, one timed rebuild that copies the cached image
 *
 * Each run is a fresh process (run-ours.js): "wall" includes node's start; "convert()" is the
 * library call alone. The CLI's wall time is what a user (or make) waits for.
 *
 * Then the same for a spec: `rootforge build SPEC` with `from: docker://REF` plus the agent and
 * the wrapper init, built once (untimed), then N timed rebuilds that must each report cacheHit
 * (the output up to date: nothing built).
 */
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchFail } from './errors.js';
import { exec } from './exec.js';
import { runOurs } from './pipelines.js';
import { median, type CheckResult, type TargetCheck } from './report.js';

const CLI = new URL('../../bin/rootforge', import.meta.url).pathname;

/** The goal for convert() on an up-to-date hit, ms. */
export const REBUILD_GOAL_MS = 200;

export interface RebuildResult {
  runs: number;
  imageBytes: number;
  /** convert() of each up-to-date rebuild, ms. */
  convertMs: number[];
  /** Each up-to-date rebuild's process, start to exit, ms. */
  wallMs: number[];
  medianConvertMs: number;
  medianWallMs: number;
  /** The same rebuild with the output missing: the cached image copied (reflink first). */
  copy: { convertMs: number; wallMs: number; fsyncMs: number };
  /** `rootforge convert docker://REF -o OUT --json`, up to date: each run's wall time, ms. */
  cliWallMs: number[];
  medianCliWallMs: number;
  /** `rootforge build SPEC --json` of an unchanged spec (from: docker://REF + agent): each run's wall time, ms. */
  buildCliWallMs: number[];
  medianBuildCliWallMs: number;
  /** Runs that were not up-to-date hits (each is a failure of the check). */
  notUpToDate: number;
}

export async function benchRebuild(ref: string, runs: number, log: (m: string) => void): Promise<RebuildResult> {
  const dir = await mkdtemp(join(tmpdir(), 'rootforge-bench-rebuild-'));
  try {
    const out = join(dir, 'ours.img');
    const args = [`docker://${ref}`, out, join(dir, 'cache'), '--image-cache'];
    const fill = await runOurs(args);
    if (fill.rep.cacheHit !== false) benchFail('BENCH_BAD_OUTPUT', 'fill the image cache', 'the first run into a fresh cache was not a miss', JSON.stringify(fill.rep.cacheHit));
    log(`rebuild: cache filled in ${fill.seconds.toFixed(1)} s (untimed); ${runs} rebuilds`);
    // The CLI's options key the same cache entry as run-ours' (so its untimed first run finds the
    // output up to date too); the two alternate, before the copy below dirties 1.6 GB of page cache.
    const cliArgs = ['convert', `docker://${ref}`, '-o', out, '--cache-dir', join(dir, 'cache'), '--json', '--quiet'];
    const cli = async () => {
      const r = await exec(process.execPath, [CLI, ...cliArgs]);
      const j = JSON.parse(r.stdout) as { cacheHit?: boolean; upToDate?: boolean };
      return { ms: r.seconds * 1000, upToDate: j.cacheHit === true && j.upToDate === true };
    };
    let notUpToDate = (await cli()).upToDate ? 0 : 1;
    const convertMs: number[] = [];
    const wallMs: number[] = [];
    const cliWallMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await runOurs(args);
      if (r.rep.cacheHit !== true || r.rep.upToDate !== true) notUpToDate++;
      convertMs.push(r.rep.convertSeconds * 1000);
      wallMs.push(r.seconds * 1000);
      const c = await cli();
      if (!c.upToDate) notUpToDate++;
      cliWallMs.push(c.ms);
    }
    await unlink(out);
    const c = await runOurs(args);
    if (c.rep.upToDate !== false) notUpToDate++;
    // `rootforge build` of an unchanged spec
    const spec = join(dir, 'rebuild.yaml');
    await writeFile(spec, `from: docker://${ref}\nagent: builtin\ninit: wrapper\noutput: built.ext4\n`);
    const build = async () => {
      const r = await exec(process.execPath, [CLI, 'build', spec, '--cache-dir', join(dir, 'cache'), '--json', '--quiet']);
      return { ms: r.seconds * 1000, hit: (JSON.parse(r.stdout) as { cacheHit?: boolean }).cacheHit === true };
    };
    const first = await build();
    if (first.hit) notUpToDate++; // a fresh output cannot be up to date
    log(`rebuild: spec built in ${(first.ms / 1000).toFixed(1)} s (untimed); ${runs} rebuilds of the unchanged spec`);
    const buildCliWallMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const b = await build();
      if (!b.hit) notUpToDate++;
      buildCliWallMs.push(b.ms);
    }
    const result: RebuildResult = {
      runs,
      imageBytes: fill.rep.sizeBytes,
      convertMs,
      wallMs,
      medianConvertMs: median(convertMs),
      medianWallMs: median(wallMs),
      copy: { convertMs: c.rep.convertSeconds * 1000, wallMs: c.seconds * 1000, fsyncMs: c.rep.fsyncSeconds * 1000 },
      cliWallMs,
      medianCliWallMs: median(cliWallMs),
      buildCliWallMs,
      medianBuildCliWallMs: median(buildCliWallMs),
      notUpToDate,
    };
    log(`rebuild: median ${result.medianConvertMs.toFixed(0)} ms convert(), ${result.medianWallMs.toFixed(0)} ms wall, CLI ${result.medianCliWallMs.toFixed(0)} ms wall; copy when the output is missing ${result.copy.convertMs.toFixed(0)} ms`);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function rebuildTargets(r: RebuildResult): TargetCheck[] {
  const t = (what: string, v: number): TargetCheck => ({ what, target: `≤ ${REBUILD_GOAL_MS}`, value: Math.round(v), met: v <= REBUILD_GOAL_MS });
  return [
    t('rebuild on a cache hit, output up to date: median convert() ms', r.medianConvertMs),
    t('the same with the CLI: median wall ms (node start included)', r.medianCliWallMs),
    t('rootforge build of the unchanged spec: median wall ms', r.medianBuildCliWallMs),
  ];
}

export function rebuildCheck(r: RebuildResult): CheckResult {
  const detail =
    `${r.runs} rebuilds of a ${(r.imageBytes / 1e6).toFixed(0)} MB image: convert() median ${r.medianConvertMs.toFixed(0)} ms ` +
    `(${r.convertMs.map((x) => x.toFixed(0)).join(', ')}), process wall median ${r.medianWallMs.toFixed(0)} ms, ` +
    `CLI wall median ${r.medianCliWallMs.toFixed(0)} ms (${r.cliWallMs.map((x) => x.toFixed(0)).join(', ')}); ` +
    `with the output missing (copy): convert() ${r.copy.convertMs.toFixed(0)} ms + fsync ${r.copy.fsyncMs.toFixed(0)} ms; ` +
    `rootforge build of the unchanged spec: CLI wall median ${r.medianBuildCliWallMs.toFixed(0)} ms (${r.buildCliWallMs.map((x) => x.toFixed(0)).join(', ')})`;
  return { what: 'every rebuild on a cache hit left the up-to-date output alone (and a missing one was copied); every unchanged build was skipped', ok: r.notUpToDate === 0, detail };
}
