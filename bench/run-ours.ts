/**
 * Child-process runner for "ours": `node build/bench/run-ours.js SOURCE OUT [CACHE_DIR]` does
 * what `rootforge convert SOURCE -o OUT --size auto` does (SOURCE as convert() takes it:
 * `tar:PATH`, `docker://HOST/REPO:TAG`…), through the library's convert(), in a fresh process,
 * so each run is isolated and its peak RSS is its own. With CACHE_DIR (image sources), blobs go
 * there and the finished-image cache is off (`--cache-dir DIR --no-cache`): give a fresh empty
 * directory and every blob is downloaded; `--image-cache` after it keeps the finished-image cache on
 * in DIR (the rebuild-on-hit benchmark, rebuild.ts). Then it fsyncs the image (e2fsprogs fsyncs its output,
 * so the established pipelines' times include that) and prints one line of JSON for the harness
 * on stdout.
 */
import { open } from 'node:fs/promises';
import { convert } from '../src/convert.js';

export interface OursReport {
  /** convert() alone, in seconds. */
  convertSeconds: number;
  /** fsync of the finished image, in seconds. */
  fsyncSeconds: number;
  /** Peak resident set size of this process, in KiB (getrusage ru_maxrss). */
  maxRssKiB: number;
  sizeBytes: number;
  files: number;
  directories: number;
  warnings: string[];
  /** convert()'s own phase times, in ms (result.timings). */
  timings: Record<string, number>;
  /** Image sources with the image cache on: a hit, and whether the output was left as it was. */
  cacheHit?: boolean;
  upToDate?: boolean;
}

async function run(argv: string[]): Promise<void> {
  const imageCache = argv[3] === '--image-cache';
  const [source, output, cacheDir] = argv;
  if (source === undefined || output === undefined || argv.length > (imageCache ? 4 : 3)) {
    throw new Error('usage: run-ours.js SOURCE OUTPUT.img [CACHE_DIR [--image-cache]]');
  }
  const t0 = performance.now();
  const result = await convert(source, output, { size: { mode: 'auto' }, ...(cacheDir !== undefined ? { cacheDir, cache: imageCache } : {}) });
  const t1 = performance.now();
  const fh = await open(output, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  const t2 = performance.now();
  const report: OursReport = {
    convertSeconds: (t1 - t0) / 1000,
    fsyncSeconds: (t2 - t1) / 1000,
    maxRssKiB: process.resourceUsage().maxRSS,
    sizeBytes: result.sizeBytes,
    files: result.files,
    directories: result.directories,
    warnings: result.warnings.map((w) => `${w.code}: ${w.message}`),
    timings: result.timings,
    ...(result.cacheHit !== undefined ? { cacheHit: result.cacheHit } : {}),
    ...(result.upToDate !== undefined ? { upToDate: result.upToDate } : {}),
  };
  process.stdout.write(JSON.stringify(report) + '\n');
}

run(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`run-ours: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
