/**
 * The three ways from a tar to an ext4 image that the benchmark compares. Each run gets a fresh
 * empty directory and returns the image it made; the harness checks it (untimed) and deletes it.
 *
 *   ours  rootforge's convert() in a child process (isolated; its own peak RSS), incl. fsync
 *   A     the established unprivileged pipeline: one fakeroot session doing tar -x into a
 *         staging directory and mke2fs -d from it (overallocated), then e2fsck -fy, resize2fs -M
 *         and truncate
 *   B     the privileged one (root only): mke2fs an overallocated file, loop-mount it, tar -x
 *         into it, unmount, then the same shrink tail as A
 *   T     hcsshim's tar2ext4 (Go), the fastest tar → ext4 writer we know, when a binary is given
 *         ($ROOTFORGE_BENCH_TAR2EXT4 or `tar2ext4` on PATH; it is not packaged in Debian), plus an
 *         fsync of its image as ours has. Its images are known to fail e2fsck (bitmap padding),
 *         so the harness records e2fsck's verdict for it instead of failing the run.
 */
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanups } from './cleanup.js';
import { benchFail } from './errors.js';
import { exec, findTool, requireTool } from './exec.js';
import { overallocBytes, shrinkImage } from './image.js';
import type { OursReport } from './run-ours.js';
import type { TarStats } from './tarstats.js';

/** ours, A, B: tar inputs. ours, C, gunzip, zlib: the registry input (registry-pipelines.ts). */
export type PipelineId = 'ours' | 'A' | 'B' | 'T' | 'C' | 'gunzip' | 'zlib';

export interface RunContext {
  /** The input tar (registry input: the image reference, HOST/REPO:TAG). */
  input: string;
  stats: TarStats;
  /** A fresh, empty directory for this run; removed by the caller afterwards. */
  dir: string;
  /** Register undo steps (an unmount) that must happen even when the run fails. */
  cleanups: Cleanups;
}

export interface RunOutcome {
  /** Wall time of the whole pipeline, in seconds. */
  seconds: number;
  /** Wall time of each step, in seconds (they add up to about `seconds`). */
  steps: Record<string, number>;
  /** The finished image (none for the decompress-only baselines). */
  image?: string;
  /** Peak RSS in MiB, where measured (ours). */
  peakRssMiB?: number;
  details?: Record<string, unknown>;
}

export interface Pipeline {
  id: PipelineId;
  title: string;
  /** The image is expected to fail e2fsck -fn: record the verdict instead of failing the run. */
  fsckReportOnly?: boolean;
  /** Why this pipeline cannot run here, or undefined when it can. */
  skipReason(): string | undefined;
  run(ctx: RunContext): Promise<RunOutcome>;
}

const RUN_OURS = new URL('./run-ours.js', import.meta.url).pathname;
/** A real file in the source tree (tsc does not copy it): build/bench/ → bench/. */
const FAKEROOT_SCRIPT = new URL('../../bench/fakeroot-mkfs.sh', import.meta.url).pathname;
const MiB = 1 << 20;
const TAR_X = ['--xattrs', '--xattrs-include=*'];

const since = (t0: number): number => (performance.now() - t0) / 1000;

/** Runs run-ours.js (argv: SOURCE OUT [CACHE_DIR]) in a child; its wall time and its report. */
export async function runOurs(args: readonly string[]): Promise<{ seconds: number; rep: OursReport }> {
  const r = await exec(process.execPath, [RUN_OURS, ...args]);
  try {
    return { seconds: r.seconds, rep: JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as OursReport };
  } catch (e) {
    return benchFail('BENCH_BAD_OUTPUT', 'read the runner report', 'not JSON', r.stdout.slice(0, 500), e);
  }
}

export const ours: Pipeline = {
  id: 'ours',
  title: 'rootforge convert --size auto',
  skipReason: () => undefined,
  async run({ input, dir }) {
    const image = join(dir, 'ours.img');
    const { rep, ...r } = await runOurs([`tar:${input}`, image]);
    return {
      seconds: r.seconds,
      steps: {
        'convert()': rep.convertSeconds,
        fsync: rep.fsyncSeconds,
        'node start/exit': r.seconds - rep.convertSeconds - rep.fsyncSeconds,
      },
      image,
      peakRssMiB: rep.maxRssKiB / 1024,
      details: { files: rep.files, directories: rep.directories, warnings: rep.warnings, timingsMs: rep.timings },
    };
  },
};

export const pipelineA: Pipeline = {
  id: 'A',
  title: 'fakeroot tar -x + mke2fs -d, e2fsck + resize2fs -M',
  skipReason() {
    const missing = ['fakeroot', 'bash', 'tar', 'du', 'mke2fs', 'resize2fs'].filter((t) => findTool(t) === undefined);
    return missing.length > 0 ? `missing ${missing.join(', ')}` : undefined;
  },
  async run({ input, dir }) {
    const staging = join(dir, 'staging');
    const image = join(dir, 'a.img');
    await mkdir(staging);
    const t0 = performance.now();
    const fr = await exec(requireTool('fakeroot'), ['--', requireTool('bash'), FAKEROOT_SCRIPT, input, staging, image]);
    const m = /^(\d+) (\d+)$/m.exec(fr.stdout);
    if (!m) benchFail('BENCH_BAD_OUTPUT', 'read the fakeroot step report', 'expected "<du bytes> <MiB>"', fr.stdout.trim());
    const shrink = await shrinkImage(image);
    return {
      seconds: since(t0),
      steps: { 'fakeroot tar -x + mke2fs -d': fr.seconds, ...shrink.steps },
      image,
      details: { stagingDuBytes: Number(m[1]), overallocatedBytes: Number(m[2]) * MiB, fsckFixExit: shrink.fsckExit },
    };
  },
};

export const pipelineB: Pipeline = {
  id: 'B',
  title: 'mke2fs + loop mount + tar -x, e2fsck + resize2fs -M',
  skipReason() {
    if (process.getuid?.() !== 0) return 'needs root (loop mount); not running as root';
    const missing = ['mount', 'umount', 'tar', 'mke2fs', 'resize2fs'].filter((t) => findTool(t) === undefined);
    return missing.length > 0 ? `missing ${missing.join(', ')}` : undefined;
  },
  async run({ input, stats, dir, cleanups }) {
    const image = join(dir, 'b.img');
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    // No staging directory to `du`: the tar's own apparent size stands in for it.
    const size = overallocBytes(stats.apparentBytes);
    const steps: Record<string, number> = {};
    const t0 = performance.now();
    await writeFile(image, '');
    await truncate(image, size);
    await exec(requireTool('mke2fs'), ['-q', '-t', 'ext4', image, `${size / MiB}M`]);
    steps['truncate + mke2fs'] = since(t0);
    steps['mount'] = (await exec(requireTool('mount'), ['-o', 'loop', image, mnt])).seconds;
    const unmount = cleanups.push(`unmount ${mnt}`, async () => {
      await exec(requireTool('umount'), [mnt]);
    });
    steps['tar -x'] = (await exec(requireTool('tar'), ['-xpf', input, ...TAR_X, '--numeric-owner', '-C', mnt])).seconds;
    const t1 = performance.now();
    await unmount();
    steps['umount'] = since(t1);
    const shrink = await shrinkImage(image);
    Object.assign(steps, shrink.steps);
    return { seconds: since(t0), steps, image, details: { overallocatedBytes: size, fsckFixExit: shrink.fsckExit } };
  },
};

/** hcsshim's tar2ext4 binary: $ROOTFORGE_BENCH_TAR2EXT4, else `tar2ext4` on PATH. */
function tar2ext4Binary(): string | undefined {
  return process.env['ROOTFORGE_BENCH_TAR2EXT4'] || findTool('tar2ext4');
}

export const pipelineT: Pipeline = {
  id: 'T',
  title: "hcsshim tar2ext4 (Go) + fsync",
  fsckReportOnly: true,
  skipReason() {
    if (tar2ext4Binary() === undefined) return 'no tar2ext4 binary (set ROOTFORGE_BENCH_TAR2EXT4 or put tar2ext4 on PATH; build it from github.com/microsoft/hcsshim cmd/tar2ext4)';
    return findTool('sync') === undefined ? 'missing sync' : undefined;
  },
  async run({ input, dir }) {
    const image = join(dir, 't.img');
    const t0 = performance.now();
    const conv = await exec(tar2ext4Binary()!, ['-i', input, '-o', image]);
    // coreutils `sync FILE` fsyncs that file: the same durability as ours' fsync
    const sync = await exec(requireTool('sync'), [image]);
    return { seconds: since(t0), steps: { tar2ext4: conv.seconds, fsync: sync.seconds }, image };
  },
};

export const PIPELINES: readonly Pipeline[] = [ours, pipelineA, pipelineB, pipelineT];
