/**
 * A synthetic tar of many empty files, generated as a stream (never held in memory or on disk):
 * DIRS directories each holding FILES empty files, ustar headers only. Used to measure memory per
 * tree entry: `node build/bench/many-files.js [DIRS] [FILES] | rootforge convert tar:- -o X`.
 * The default, 1,000 × 1,001 = 1,001,000 files, is the issue 14 yardstick.
 */
import { Writable } from 'node:stream';

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

if (import.meta.url === `file://${process.argv[1]}`) {
  const dirs = Number(process.argv[2] ?? 1000);
  const files = Number(process.argv[3] ?? 1001);
  await writeManyFiles(process.stdout, dirs, files);
}
