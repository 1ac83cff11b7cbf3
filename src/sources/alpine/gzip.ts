/**
 * An .apk (and APKINDEX.tar.gz) is several gzip members back to back: signature, control, data.
 * apk-tools hashes and signs the *compressed* bytes of each member, so we need their exact
 * boundaries, which a plain gunzip hides. A member is: a 10-byte header (+ optional extra, name,
 * comment, header CRC), a raw deflate stream, and an 8-byte trailer (CRC-32, size mod 2^32).
 *
 *   [ gzip member 1 ][ gzip member 2 ][ gzip member 3 ... ]
 *     signature tar    control tar      data tar (may itself be several members)
 */
import { crc32, inflateRawSync } from 'node:zlib';
import { fail } from '../../errors.js';

const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

export interface GzipMember {
  /** Offsets into the buffer: [start, end) is the whole member, compressed. */
  start: number;
  end: number;
  /** The member's decompressed bytes. */
  data: Buffer;
}

/** Where the deflate data of the member at `start` begins (after its header). */
function headerEnd(buf: Buffer, start: number, what: string): number {
  if (buf.length - start < 18 || buf[start] !== 0x1f || buf[start + 1] !== 0x8b || buf[start + 2] !== 8) {
    fail('APK_BAD_PACKAGE', `read ${what}`, 'not a gzip stream', `offset ${start}`);
  }
  const flags = buf[start + 3]!;
  let p = start + 10;
  if (flags & FEXTRA) p += 2 + buf.readUInt16LE(p);
  if (flags & FNAME) p = buf.indexOf(0, p) + 1;
  if (flags & FCOMMENT) p = buf.indexOf(0, p) + 1;
  if (flags & FHCRC) p += 2;
  if (p <= start || p > buf.length) fail('APK_BAD_PACKAGE', `read ${what}`, 'truncated gzip header', `offset ${start}`);
  return p;
}

/** Decompresses the one gzip member starting at `start`, checking its CRC and size. */
export function readMember(buf: Buffer, start: number, what: string): GzipMember {
  const p = headerEnd(buf, start, what);
  let out: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    out = inflateRawSync(buf.subarray(p), { info: true }) as unknown as typeof out;
  } catch (e) {
    return fail('APK_BAD_PACKAGE', `read ${what}`, `corrupt gzip data: ${(e as Error).message}`, `offset ${start}`, e);
  }
  const trailer = p + out.engine.bytesWritten;
  if (trailer + 8 > buf.length) fail('APK_BAD_PACKAGE', `read ${what}`, 'truncated gzip stream', `offset ${start}`);
  const data = out.buffer;
  if (buf.readUInt32LE(trailer) !== crc32(data) || buf.readUInt32LE(trailer + 4) !== data.length % 2 ** 32) {
    fail('APK_BAD_PACKAGE', `read ${what}`, 'gzip CRC or size mismatch', `offset ${start}`);
  }
  return { start, end: trailer + 8, data };
}
