/**
 * GNU sparse files. The archive stores only the data segments, back to back; a map says where
 * each goes in the logical file. GNU tar has written the map four ways over the years:
 *
 *   old GNU ('S' typeflag)  offset/numbytes pairs (12-byte numbers) in the header at 386, then in
 *                           512-byte extension blocks while `isextended` is set; realsize at 483
 *   PAX 0.0                 repeated GNU.sparse.offset / GNU.sparse.numbytes records
 *   PAX 0.1                 GNU.sparse.map=o,n,o,n,...
 *   PAX 1.0                 GNU.sparse.major=1, minor=0: the map is decimal text lines at the start
 *                           of the body ("count\n" then "offset\nlength\n" pairs), padded to 512
 *
 * All become SparseSegment[] (zero-length segments dropped; they only mark the file's end) and the
 * body delivered is the concatenation of the data. Solaris' SUN.holesdata is not handled here: its
 * body contains the holes as zeros, so it reads correctly as a plain file.
 */
import { fail } from '../errors.js';
import { readNumericField } from './numeric.js';
import type { SparseSegment } from './types.js';

/** Upper bound on segments in one map, so a corrupt count cannot exhaust memory. */
export const MAX_SEGMENTS = 1 << 20;

/**
 * Old GNU sparse entries: `count` pairs of 12-byte numbers at `buf[off..]`, appended to `out` as
 * flat offset,length values. An entry whose first byte is NUL ends the list (libarchive's rule).
 */
export function readOldSparse(buf: Buffer, off: number, count: number, out: number[], at: number): void {
  for (let i = 0; i < count; i++) {
    const e = off + i * 24; // +0 12 offset, +12 12 numbytes
    if (buf[e] === 0) return;
    const offset = readNumericField(buf, e, 12);
    const length = readNumericField(buf, e + 12, 12);
    if (offset === 'overflow' || length === 'overflow' || offset < 0 || length < 0) {
      fail('TAR_BAD_SPARSE', 'read tar', 'invalid old GNU sparse entry', `offset ${at}`);
    }
    if (out.length >= 2 * MAX_SEGMENTS) fail('TAR_BAD_SPARSE', 'read tar', 'too many sparse segments', `offset ${at}`);
    out.push(offset, length);
  }
}

/** GNU 'S' header: 386 96 sparse[4], 482 1 isextended, 483 12 realsize. */
export function readOldSparseHeader(buf: Buffer, off: number, out: number[], at: number): { extended: boolean; realsize: number } {
  readOldSparse(buf, off + 386, 4, out, at);
  const real = buf[off + 483] === 0 ? 0 : readNumericField(buf, off + 483, 12);
  if (real === 'overflow' || real < 0) fail('TAR_BAD_SPARSE', 'read tar', 'invalid GNU sparse realsize', `offset ${at}`);
  return { extended: buf[off + 482] !== 0, realsize: real };
}

/** GNU sparse extension block: 0 504 sparse[21], 504 1 isextended. Returns isextended. */
export function readOldSparseExtension(buf: Buffer, off: number, out: number[], at: number): boolean {
  readOldSparse(buf, off, 21, out, at);
  return buf[off + 504] !== 0;
}

/**
 * Turns a flat offset,length list into segments and checks it describes a file: in order, not
 * overlapping, inside `realsize` (when known; else the file ends at the last segment).
 */
export function buildSegments(flat: number[], realsize: number | undefined, at: number): { segments: SparseSegment[]; size: number; data: number } {
  const segments: SparseSegment[] = [];
  let end = 0;
  let data = 0;
  for (let i = 0; i < flat.length; i += 2) {
    const offset = flat[i]!;
    const length = flat[i + 1]!;
    if (offset < end) fail('TAR_BAD_SPARSE', 'read tar', 'sparse segments overlap or are out of order', `offset ${at}`);
    end = offset + length;
    if (end > Number.MAX_SAFE_INTEGER) fail('TAR_BAD_SPARSE', 'read tar', 'sparse segment beyond 2^53', `offset ${at}`);
    if (length === 0) continue;
    segments.push({ offset, length });
    data += length;
  }
  const size = realsize ?? end;
  if (end > size) fail('TAR_BAD_SPARSE', 'read tar', `sparse segment ends at ${end}, past the file size ${size}`, `offset ${at}`);
  return { segments, size, data };
}

/**
 * Incremental reader of a GNU sparse 1.0 map at the start of a body: decimal numbers, one per
 * line; lines starting with '#' are comments (written by some GNU tar versions). Lines are short,
 * so a small carry buffer suffices.
 */
export class SparseMapReader {
  /** Flat offset,length values read so far. */
  readonly flat: number[] = [];
  /** Bytes of the body consumed by the map (before its padding). */
  consumed = 0;
  private count = -1;
  private line = '';
  private comment = false;
  done = false;

  constructor(private readonly at: number) {}

  /** Consumes bytes up to the end of the map; returns how many it used. */
  write(buf: Buffer, start: number, end: number): number {
    let p = start;
    while (p < end && !this.done) {
      const c = buf[p++]!;
      this.consumed++;
      if (c !== 0x0a) {
        if (this.line.length === 0 && c === 0x23 /* '#' */) this.comment = true;
        if (this.line.length >= 100) fail('TAR_BAD_SPARSE', 'read tar', 'GNU sparse map line too long', `offset ${this.at}`);
        this.line += String.fromCharCode(c);
        continue;
      }
      const text = this.line;
      this.line = '';
      if (this.comment) {
        this.comment = false;
        continue;
      }
      this.number(text);
    }
    return p - start;
  }

  private number(text: string): void {
    if (!/^[0-9]{1,16}$/.test(text) || Number(text) > Number.MAX_SAFE_INTEGER) {
      fail('TAR_BAD_SPARSE', 'read tar', 'invalid number in GNU sparse map', `${JSON.stringify(text)} at offset ${this.at}`);
    }
    const n = Number(text);
    if (this.count < 0) {
      if (n > MAX_SEGMENTS) fail('TAR_BAD_SPARSE', 'read tar', 'too many sparse segments', `${n} at offset ${this.at}`);
      this.count = n;
    } else {
      this.flat.push(n);
    }
    if (this.flat.length === 2 * this.count) this.done = true;
  }
}
