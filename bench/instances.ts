/**
 * Instance benchmark (`npm run bench -- --instances`): 100 sandboxes of the devbox image.
 *
 *   ours   rootforge's createInstance: a sparse 10 GiB instance disk written by our writer, the
 *          base referenced by path and SHA-256 (hashed by the first instance, remembered after)
 *   seed   the seed's way, per sandbox: cp of the base, debugfs -w writing authorized_keys,
 *          resize2fs to the same 10 GiB. Run --runs times (each copy is the base's full size,
 *          so not 100 of them) and reported per sandbox.
 *
 * Reported: time per sandbox (median; ours also its first instance, which hashes the base) and
 * real disk use (allocated blocks) per sandbox. Goals from the issue: ≥ 100× faster per
 * sandbox and ≤ 1 % of the seed's disk use.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../src/convert.js';
import { createInstance } from '../src/instance/create.js';
import { exec, requireTool } from './exec.js';
import { median } from './report.js';

export const INSTANCE_GOALS = { speedup: 100, diskFraction: 0.01 } as const;
const SIZE = 10 * 2 ** 30;
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbYz0Yb8kq4Jt0Jx2i5bHq0rQmTqY1m0m8h3m4z0k1a bench@rootforge\n';

export interface InstancesBenchResult {
  input: string;
  baseBytes: number;
  count: number;
  sizeBytes: number;
  ours: { firstMs: number; medianMs: number; meanMs: number; totalMs: number; diskBytesPerInstance: number; diskBytesTotal: number };
  seed: { runs: number; medianMs: number; diskBytesPerSandbox: number };
  speedup: number;
  diskFraction: number;
  goals: { speedupMet: boolean; diskMet: boolean };
}

export async function benchInstances(tar: string, input: string, count: number, seedRuns: number, log: (s: string) => void): Promise<InstancesBenchResult> {
  const debugfs = requireTool('debugfs');
  const resize2fs = requireTool('resize2fs');
  const cp = requireTool('cp');
  const dir = await mkdtemp(join(tmpdir(), 'rf-bench-inst-'));
  try {
    const base = join(dir, `${input}.ext4`);
    log(`instances: building the ${input} base (read-only) from ${tar}`);
    await convert(`tar:${tar}`, base, { readOnly: true });
    const baseBytes = (await stat(base)).size;
    const hashCache = join(dir, 'cache');

    await mkdir(join(dir, 'ours'));
    const times: number[] = [];
    let disk = 0;
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const s = performance.now();
      const r = await createInstance(base, join(dir, 'ours', `sbx-${i}`), { sizeBytes: SIZE, sshKeys: [KEY], cacheDir: hashCache });
      times.push(performance.now() - s);
      disk += r.diskUsageBytes;
    }
    const totalMs = performance.now() - t0;
    const rest = times.slice(1);
    const ours = {
      firstMs: round(times[0]!),
      medianMs: round(median(rest.length > 0 ? rest : times)),
      meanMs: round(rest.reduce((a, b) => a + b, 0) / Math.max(1, rest.length)),
      totalMs: round(totalMs),
      diskBytesPerInstance: Math.round(disk / count),
      diskBytesTotal: disk,
    };
    log(`instances: ours ${count} × ${ours.medianMs} ms (first ${ours.firstMs} ms), ${(ours.diskBytesPerInstance / 2 ** 20).toFixed(2)} MiB each`);

    const keyFile = join(dir, 'key.pub');
    await writeFile(keyFile, KEY);
    const cmds = join(dir, 'debugfs.cmds');
    await writeFile(cmds, `mkdir /root/.ssh\nwrite ${keyFile} /root/.ssh/authorized_keys\n`);
    const seedTimes: number[] = [];
    let seedDisk = 0;
    for (let i = 0; i < seedRuns; i++) {
      const copy = join(dir, `seed-${i}.ext4`);
      const s = performance.now();
      await exec(cp, [base, copy]);
      await exec(debugfs, ['-w', '-f', cmds, copy]);
      await exec(resize2fs, ['-f', copy, `${SIZE / 2 ** 20}M`]);
      seedTimes.push(performance.now() - s);
      seedDisk = Number((await stat(copy)).blocks) * 512;
      await rm(copy);
    }
    const seed = { runs: seedRuns, medianMs: round(median(seedTimes)), diskBytesPerSandbox: seedDisk };
    log(`instances: seed ${seedRuns} × ${seed.medianMs} ms, ${(seed.diskBytesPerSandbox / 2 ** 20).toFixed(0)} MiB each`);
    const speedup = seed.medianMs / ours.medianMs;
    const diskFraction = ours.diskBytesPerInstance / seed.diskBytesPerSandbox;
    return {
      input,
      baseBytes,
      count,
      sizeBytes: SIZE,
      ours,
      seed,
      speedup: round(speedup),
      diskFraction: Math.round(diskFraction * 1e5) / 1e5,
      goals: { speedupMet: speedup >= INSTANCE_GOALS.speedup, diskMet: diskFraction <= INSTANCE_GOALS.diskFraction },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

export function formatInstances(r: InstancesBenchResult): string {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;
  return [
    `instances of ${r.input} (${mib(r.baseBytes)} base, ${r.sizeBytes / 2 ** 30} GiB disks)`,
    `  ours  ${r.count} instances: ${r.ours.medianMs} ms each (median; first ${r.ours.firstMs} ms incl. hashing the base), ${r.ours.totalMs} ms total, ${mib(r.ours.diskBytesPerInstance)} disk each, ${mib(r.ours.diskBytesTotal)} total`,
    `  seed  cp + debugfs + resize2fs, ${r.seed.runs} runs: ${r.seed.medianMs} ms each, ${mib(r.seed.diskBytesPerSandbox)} disk each`,
    `  ${r.speedup}× faster per sandbox (goal ≥ ${INSTANCE_GOALS.speedup}×: ${r.goals.speedupMet ? 'met' : 'MISSED'}); ${(r.diskFraction * 100).toFixed(3)} % of the disk use (goal ≤ ${INSTANCE_GOALS.diskFraction * 100} %: ${r.goals.diskMet ? 'met' : 'MISSED'})`,
  ].join('\n');
}

