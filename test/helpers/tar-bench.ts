/**
 * Throughput of the tar reader (not a test): `node build/test/helpers/tar-bench.js FILE...`.
 * For each archive: parse-only from memory (TarParser over 4 MiB views of a buffer in RAM, best
 * of 5), the file path (openArchive + TarParser, decompression included), and readTar's
 * convenience API on top. MB/s are of decompressed tar bytes.
 */
import { readFileSync } from 'node:fs';
import { openArchive } from '../../src/tar/decompress.js';
import { TarParser } from '../../src/tar/parser.js';
import { readTar } from '../../src/tar/reader.js';

const CHUNK = 4 << 20;

function handler(stats: { entries: number; bytes: number }) {
  return {
    entry: () => void stats.entries++,
    data: (c: Buffer) => void (stats.bytes += c.length),
    entryEnd: () => {},
  };
}

async function best(runs: number, fn: () => Promise<{ entries: number; bytes: number; tarBytes: number }>): Promise<string> {
  let ms = Infinity;
  let last = { entries: 0, bytes: 0, tarBytes: 0 };
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    last = await fn();
    ms = Math.min(ms, performance.now() - t);
  }
  return `${ms.toFixed(0).padStart(6)} ms ${(last.tarBytes / 1e6 / (ms / 1e3)).toFixed(0).padStart(6)} MB/s  (${last.entries} entries, ${last.bytes} body bytes)`;
}

for (const path of process.argv.slice(2)) {
  console.log(path);
  const opened = await openArchive(path);
  if (opened.compression === 'none') {
    const buf = readFileSync(path);
    console.log(`  memory, TarParser  ${await best(5, async () => {
      const s = { entries: 0, bytes: 0 };
      const p = new TarParser(handler(s));
      for (let i = 0; i < buf.length; i += CHUNK) p.write(buf.subarray(i, i + CHUNK));
      p.end();
      return { ...s, tarBytes: buf.length };
    })}`);
  }
  for await (const _ of opened.stream); // warm the page cache
  console.log(`  file,   TarParser  ${await best(3, async () => {
    const s = { entries: 0, bytes: 0 };
    const p = new TarParser(handler(s));
    let tarBytes = 0;
    for await (const c of (await openArchive(path)).stream) {
      tarBytes += c.length;
      p.write(c);
    }
    p.end();
    return { ...s, tarBytes };
  })}`);
  console.log(`  file,   readTar    ${await best(3, async () => {
    const s = { entries: 0, bytes: 0, tarBytes: 0 };
    for await (const e of readTar((await openArchive(path)).stream)) {
      s.entries++;
      for await (const c of e.body) s.bytes += c.length;
      s.tarBytes = e.offset + e.bodySize;
    }
    return s;
  })}`);
}
