/**
 * Test helpers around the tar reader: run a whole archive through TarParser in chosen chunkings
 * and collect headers, bodies and warnings; run the independent Python `tarfile` reference
 * (test/helpers/tar-dump.py); reconstruct sparse files; small process/file utilities.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TarParser } from '../../src/tar/parser.js';
import type { TarHeader, TarParserOptions, TarWarning } from '../../src/tar/types.js';

export interface Collected {
  header: TarHeader;
  body: Buffer;
  /** How many data() calls the body came in. */
  chunks: number;
}

export interface CollectResult {
  entries: Collected[];
  warnings: TarWarning[];
}

/** Splits `buf` into pieces: a fixed size, or sizes from a (seeded) generator. */
export type Chunking = number | 'one' | { random: number; max: number };

export function collect(buf: Buffer, chunking: Chunking = 'one', options: TarParserOptions = {}): CollectResult {
  const entries: Collected[] = [];
  const warnings: TarWarning[] = [];
  let current: Collected | undefined;
  let parts: Buffer[] = [];
  const parser = new TarParser(
    {
      entry(header) {
        if (current !== undefined) throw new Error('entry() before entryEnd()');
        current = { header, body: Buffer.alloc(0), chunks: 0 };
        parts = [];
      },
      data(chunk) {
        if (current === undefined) throw new Error('data() outside an entry');
        parts.push(Buffer.from(chunk)); // copy: the view is only valid during the call
        current.chunks++;
      },
      entryEnd() {
        if (current === undefined) throw new Error('entryEnd() outside an entry');
        current.body = Buffer.concat(parts);
        entries.push(current);
        current = undefined;
      },
    },
    {
      ...options,
      onWarning: (w) => {
        warnings.push(w);
        options.onWarning?.(w);
      },
    },
  );
  for (const piece of split(buf, chunking)) parser.write(piece);
  parser.end();
  if (current !== undefined) throw new Error('input ended inside an entry without an error');
  return { entries, warnings };
}

export function* split(buf: Buffer, chunking: Chunking): Generator<Buffer> {
  if (chunking === 'one') {
    yield buf;
    return;
  }
  if (typeof chunking === 'number') {
    for (let i = 0; i < buf.length; i += chunking) yield buf.subarray(i, i + chunking);
    return;
  }
  const rand = lcg(chunking.random);
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(rand() * chunking.max);
    yield buf.subarray(i, i + n);
    i += n;
  }
}

/** Tiny deterministic PRNG (numerical recipes LCG) so failures reproduce. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A summary comparable across chunkings: every header field plus body hash. */
export function fingerprint(r: CollectResult): unknown[] {
  return r.entries.map((e) => ({ ...e.header, xattrs: [...e.header.xattrs].map(([k, v]) => [k, v.toString('hex')]), body: sha256(e.body) }));
}

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The logical content of a sparse file: data segments placed at their offsets, zeros between. */
export function expandSparse(h: TarHeader, body: Buffer): Buffer {
  if (h.sparse === undefined) return body;
  const out = Buffer.alloc(h.size);
  let pos = 0;
  for (const s of h.sparse) {
    body.copy(out, s.offset, pos, pos + s.length);
    pos += s.length;
  }
  return out;
}

/** Hash of a sparse file's logical content without materialising it (for 100 MB+ files). */
export function sparseSha256(h: TarHeader, body: Buffer): string {
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(1 << 20);
  let at = 0;
  let pos = 0;
  const zero = (n: number): void => {
    while (n > 0) {
      const k = Math.min(n, zeros.length);
      hash.update(zeros.subarray(0, k));
      n -= k;
    }
  };
  for (const s of h.sparse ?? [{ offset: 0, length: body.length }]) {
    zero(s.offset - at);
    hash.update(body.subarray(pos, pos + s.length));
    pos += s.length;
    at = s.offset + s.length;
  }
  zero(h.size - at);
  return hash.digest('hex');
}

/** One member as the Python reference reports it (byte strings as hex). */
export interface PyMember {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  pax: Record<string, string>;
  sparse: Array<[number, number]> | null;
  offset_data: number;
  sha256: string | null;
}

/**
 * The repository root: the first directory above this module holding test/helpers/tar-dump.py
 * (build/test/helpers → the checkout), else the working directory (builds outside the tree).
 */
export const REPO_ROOT = ((): string => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'test/helpers/tar-dump.py'))) return dir;
  }
  return process.cwd();
})();

/** ../shared/fixtures/<sub> beside the checkout (may be absent: tests then skip). */
export function sharedFixture(sub: string): string {
  return join(REPO_ROOT, '..', 'shared', 'fixtures', sub);
}

const PY_DUMP = join(REPO_ROOT, 'test/helpers/tar-dump.py');

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name]).status === 0;
}

/** Runs CPython's tarfile over the archive; throws if it cannot read it. */
export function pythonDump(path: string): PyMember[] {
  if (!existsSync(PY_DUMP)) throw new Error(`missing ${PY_DUMP}`);
  const out = execFileSync('python3', [PY_DUMP, path], { maxBuffer: 1 << 30 });
  return JSON.parse(out.toString()) as PyMember[];
}

export function hexToByteString(hex: string): string {
  return Buffer.from(hex, 'hex').toString('latin1');
}

/** Runs a command (argv, no shell); returns stdout, throws with stderr on failure. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}): Buffer {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr?.toString()}`);
  return r.stdout;
}
