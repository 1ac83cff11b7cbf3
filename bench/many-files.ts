/**
 * A synthetic tar of many empty files, generated as a stream (never held in memory or on disk):
 * DIRS directories each holding FILES empty files, ustar headers only. Used to measure memory per
 * tree entry: `node build/bench/many-files.js [DIRS] [FILES] | rootforge convert tar:- -o X`.
 * The default, 1,000 × 1,001 = 1,001,000 files, is the issue 14 yardstick.
 *
 * `node build/bench/many-files.js --measure [DIRS] [FILES]` runs run-ours.js (the library's
 * convert(), fsync, peak RSS from getrusage) on the stream and on a 1-file stream, and prints
 * the peak RSS of both and the memory per entry: (peak − one-file peak) ÷ entries.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { OursReport } from './run-ours.js';

function header(name: string, type: '0' | '5', mode: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'latin1');
  b.write(mode.toString(8).padStart(7, '0') + '\0', 100, 'latin1');
  b.write('0000000\0', 108, 'latin1'); // uid
  b.write('0000000\0', 116, 'latin1'); // gid
  b.write('00000000000\0', 124, 'latin1'); // size
  b.write('14707060000\0', 136, 'latin1'); // mtime 2023-11-14
  b.write(type, 156, 'latin1');
  b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

/** Writes the archive to `out`, honouring back-pressure. */
export async function writeManyFiles(out: Writable, dirs: number, files: number): Promise<void> {
  const batch: Buffer[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const ok = out.write(Buffer.concat(batch.splice(0)));
    if (!ok) await new Promise<void>((resolve) => out.once('drain', resolve));
  };
  for (let d = 0; d < dirs; d++) {
    const dir = `d${String(d).padStart(4, '0')}/`;
    batch.push(header(dir, '5', 0o755));
    for (let f = 0; f < files; f++) {
      batch.push(header(`${dir}f${String(f).padStart(6, '0')}`, '0', 0o644));
      if (batch.length >= 2048) await flush();
    }
  }
  batch.push(Buffer.alloc(1024));
  await flush();
}

/** Converts the stream in a child process (run-ours.js, `tar:-`); its report. */
async function convertStream(dirs: number, files: number, out: string): Promise<OursReport & { seconds: number }> {
  const runner = new URL('./run-ours.js', import.meta.url).pathname;
  const t0 = performance.now();
  const child = spawn(process.execPath, [runner, 'tar:-', out], { stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
  await writeManyFiles(child.stdin, dirs, files);
  child.stdin.end();
  const code = await exited;
  if (code !== 0) throw new Error(`run-ours.js exited ${code}`);
  return { ...(JSON.parse(stdout.trim().split('\n').pop()!) as OursReport), seconds: (performance.now() - t0) / 1000 };
}

async function measure(dirs: number, files: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-many-'));
  try {
    const one = await convertStream(1, 1, join(dir, 'one.img'));
    rmSync(join(dir, 'one.img'));
    const many = await convertStream(dirs, files, join(dir, 'many.img'));
    const entries = dirs * (files + 1);
    const perEntry = ((many.maxRssKiB - one.maxRssKiB) * 1024) / entries;
    process.stdout.write(
      `${entries} entries (${dirs} directories × ${files} empty files): ${many.seconds.toFixed(1)} s, peak RSS ${(many.maxRssKiB / 1024).toFixed(0)} MiB ` +
        `(one file: ${(one.maxRssKiB / 1024).toFixed(0)} MiB) → ${perEntry.toFixed(0)} bytes per entry (target ≤ 200)\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const measuring = args[0] === '--measure';
  if (measuring) args.shift();
  const dirs = Number(args[0] ?? 1000);
  const files = Number(args[1] ?? 1001);
  if (measuring) await measure(dirs, files);
  else await writeManyFiles(process.stdout, dirs, files);
}
