/**
 * The benchmark inputs: Debian bookworm root filesystems as tar archives, made by mmdebstrap
 * once and cached. The cache is looked up in $ROOTFORGE_BENCH_CACHE, ~/.cache/rootforge-bench
 * and ~/.cache/rootforge-test (where the test suite keeps the same tars), in that order; a
 * missing tar is built into the first of those directories (~2 minutes for devbox).
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { benchFail } from './errors.js';
import { exec, requireTool } from './exec.js';

export interface InputSpec {
  /** Short name, also the cache file name (NAME.tar) and the results file prefix. */
  name: string;
  /** Packages on top of the minbase variant. */
  include: string[];
}

const MIRROR = 'http://deb.debian.org/debian';
const SUITE = 'bookworm';

export const MINBASE: InputSpec = { name: 'minbase', include: [] };
/** ≈1.45 GB, ≈54k entries: a realistic development VM image. */
export const DEVBOX: InputSpec = {
  name: 'devbox',
  include: [
    'python3-dev', 'python3-pip', 'python3-venv', 'nodejs', 'npm', 'build-essential', 'clang', 'cmake',
    'git', 'rustc', 'cargo', 'systemd', 'gdb', 'strace', 'ca-certificates', 'curl',
  ],
};

/** Cache directories, in lookup order; the first is where missing tars are built. */
export function cacheDirs(): string[] {
  const env = process.env['ROOTFORGE_BENCH_CACHE'];
  const dirs = [join(homedir(), '.cache', 'rootforge-bench'), join(homedir(), '.cache', 'rootforge-test')];
  return env ? [env, ...dirs] : dirs;
}

async function isFile(path: string): Promise<boolean> {
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  return st?.isFile() === true;
}

/** Path of the input's tar: the first cached copy, else a freshly built one. */
export async function ensureInput(spec: InputSpec, log: (line: string) => void): Promise<string> {
  const dirs = cacheDirs();
  for (const dir of dirs) {
    const p = join(dir, `${spec.name}.tar`);
    if (await isFile(p)) return p;
  }
  const dir = dirs[0]!;
  const out = join(dir, `${spec.name}.tar`);
  log(`building ${out} with mmdebstrap (not found in ${dirs.join(', ')})`);
  await mkdir(dir, { recursive: true });
  const tmp = `${out}.tmp`;
  const args = ['--variant=minbase', '--format=tar', '--quiet'];
  if (spec.include.length > 0) args.push(`--include=${spec.include.join(',')}`);
  args.push(SUITE, tmp, MIRROR);
  try {
    const r = await exec(requireTool('mmdebstrap'), args);
    log(`built ${out} in ${r.seconds.toFixed(1)} s`);
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { force: true });
    benchFail('BENCH_FIXTURE_FAILED', `build the ${spec.name} tar`, (e as Error).message, undefined, e);
  }
  return out;
}
