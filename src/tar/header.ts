/**
 * The 512-byte tar header block: decoding only (the reader never writes tar). One layout covers
 * v7, POSIX ustar and GNU ("oldgnu") headers; they differ in the magic and in what sits at
 * offset 345 (the ustar name prefix vs GNU atime/ctime/sparse fields).
 *
 *   off len  v7/ustar            GNU
 *     0 100  name
 *   100   8  mode (octal)
 *   108   8  uid
 *   116   8  gid
 *   124  12  size
 *   136  12  mtime
 *   148   8  chksum
 *   156   1  typeflag
 *   157 100  linkname
 *   257   6  magic "ustar\0"     "ustar "
 *   263   2  version "00"        " \0"
 *   265  32  uname
 *   297  32  gname
 *   329   8  devmajor
 *   337   8  devminor
 *   345 155  prefix              345 12 atime, 357 12 ctime, 369 12 offset, 381 4 longnames,
 *                                385 1 unused, 386 96 sparse[4], 482 1 isextended, 483 12 realsize
 */
import { fail } from '../errors.js';
import { readNumericField } from './numeric.js';

export const BLOCK = 512;

/** Typeflag bytes we act on (the header stores one ASCII byte). */
export const T = {
  AREG: 0x00, // '\0': pre-POSIX regular file
  REG: 0x30, // '0'
  LINK: 0x31, // '1'
  SYM: 0x32, // '2'
  CHR: 0x33, // '3'
  BLK: 0x34, // '4'
  DIR: 0x35, // '5'
  FIFO: 0x36, // '6'
  CONT: 0x37, // '7': contiguous file, a regular file everywhere that matters
  PAX_GLOBAL: 0x67, // 'g'
  PAX_LOCAL: 0x78, // 'x'
  SUN_PAX: 0x58, // 'X': Solaris' name for 'x'
  SOLARIS_ACL: 0x41, // 'A'
  GNU_DUMPDIR: 0x44, // 'D': directory followed by a listing (GNU incremental)
  GNU_LONGLINK: 0x4b, // 'K'
  GNU_LONGNAME: 0x4c, // 'L'
  GNU_MULTIVOL: 0x4d, // 'M'
  GNU_NAMES: 0x4e, // 'N': old GNU rename script
  GNU_SPARSE: 0x53, // 'S'
  GNU_VOLHDR: 0x56, // 'V'
} as const;

export type HeaderFormat = 'v7' | 'ustar' | 'gnu';

/** One header block as stored, numbers decoded, strings as byte strings (latin1). */
export interface RawHeader {
  format: HeaderFormat;
  /** name, with the ustar prefix joined in front ("prefix/name"). */
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** GNU only, undefined when the field is empty or zero (it normally is). */
  atime: number | undefined;
  ctime: number | undefined;
}

const ZERO_BLOCK = Buffer.alloc(BLOCK);

/** True when the 512 bytes at `off` are all zero: an end-of-archive block. */
export function isZeroBlock(buf: Buffer, off: number): boolean {
  return buf[off] === 0 && buf.compare(ZERO_BLOCK, 0, BLOCK, off, off + BLOCK) === 0;
}

/**
 * The header checksum: the sum of all 512 bytes with the chksum field counted as spaces. POSIX
 * says unsigned bytes; some old BSD/Solaris/HP-UX tars summed signed chars, so both are accepted
 * (as GNU tar, libarchive and Python do). The field itself must hold octal digits, NUL or space.
 */
export function checksumMatches(buf: Buffer, off: number): boolean {
  const end = off + 156;
  for (let i = off + 148; i < end; i++) {
    const c = buf[i]!;
    if (c !== 0x20 && c !== 0x00 && (c < 0x30 || c > 0x37)) return false;
  }
  let i = off + 148;
  while (i < end && buf[i] === 0x20) i++;
  let stored = 0;
  const first = i;
  for (; i < end && buf[i]! >= 0x30 && buf[i]! <= 0x37; i++) stored = stored * 8 + (buf[i]! - 0x30);
  if (i === first) return false;
  let unsigned = 8 * 0x20;
  for (let i = off; i < off + 148; i++) unsigned += buf[i]!;
  for (let i = off + 156; i < off + BLOCK; i++) unsigned += buf[i]!;
  if (unsigned === stored) return true;
  let signed = 8 * 0x20;
  for (let i = off; i < off + 148; i++) signed += (buf[i]! << 24) >> 24;
  for (let i = off + 156; i < off + BLOCK; i++) signed += (buf[i]! << 24) >> 24;
  return signed === stored;
}

/**
 * Decodes the header at `buf[off..off+512)`; the checksum must have been verified. `at` is the
 * block's offset in the archive, for error messages. Throws TAR_BAD_HEADER for numbers that do not
 * fit (beyond 2^53) and for negative sizes and ids.
 */
export function decodeHeader(buf: Buffer, off: number, at: number): RawHeader {
  const format = detectFormat(buf, off);
  let name = cString(buf, off, 100); // 0 100 name
  if (format === 'ustar' && buf[off + 345] !== 0) {
    name = `${cString(buf, off + 345, 155)}/${name}`; // 345 155 prefix
  }
  const typeflag = buf[off + 156]!; // 156 1 typeflag
  const isDevice = typeflag === T.CHR || typeflag === T.BLK;
  const hasDevFields = format !== 'v7' && isDevice;
  return {
    format,
    name,
    mode: number(buf, off + 100, 8, 'mode', at) & 0o7777, // 100 8 mode
    uid: unsigned(buf, off + 108, 8, 'uid', at), // 108 8 uid
    gid: unsigned(buf, off + 116, 8, 'gid', at), // 116 8 gid
    size: unsigned(buf, off + 124, 12, 'size', at), // 124 12 size
    mtime: number(buf, off + 136, 12, 'mtime', at), // 136 12 mtime
    typeflag,
    linkname: cString(buf, off + 157, 100), // 157 100 linkname
    uname: format === 'v7' ? '' : cString(buf, off + 265, 32), // 265 32 uname
    gname: format === 'v7' ? '' : cString(buf, off + 297, 32), // 297 32 gname
    devmajor: hasDevFields ? unsigned(buf, off + 329, 8, 'devmajor', at) : 0, // 329 8 devmajor
    devminor: hasDevFields ? unsigned(buf, off + 337, 8, 'devminor', at) : 0, // 337 8 devminor
    atime: format === 'gnu' ? gnuTime(buf, off + 345) : undefined, // 345 12 atime (GNU)
    ctime: format === 'gnu' ? gnuTime(buf, off + 357) : undefined, // 357 12 ctime (GNU)
  };
}

/** Only the size field, for extension headers whose other fields do not matter. */
export function decodeSize(buf: Buffer, off: number, at: number): number {
  return unsigned(buf, off + 124, 12, 'size', at);
}

function detectFormat(buf: Buffer, off: number): HeaderFormat {
  const m = off + 257; // 257 6 magic, 263 2 version
  if (buf[m] !== 0x75 || buf[m + 1] !== 0x73 || buf[m + 2] !== 0x74 || buf[m + 3] !== 0x61 || buf[m + 4] !== 0x72) {
    return 'v7';
  }
  // "ustar  \0" is GNU; anything else starting "ustar" is treated as POSIX (as libarchive does).
  if (buf[m + 5] === 0x20 && buf[m + 6] === 0x20 && buf[m + 7] === 0x00) return 'gnu';
  return 'ustar';
}

/** A NUL-terminated (or full-width) string field as a byte string. */
export function cString(buf: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end);
}

function number(buf: Buffer, off: number, len: number, field: string, at: number): number {
  const v = readNumericField(buf, off, len);
  if (v === 'overflow') fail('TAR_BAD_HEADER', 'read tar', `${field} does not fit in 53 bits`, `header at offset ${at}`);
  return v;
}

function unsigned(buf: Buffer, off: number, len: number, field: string, at: number): number {
  const v = number(buf, off, len, field, at);
  if (v < 0) fail('TAR_BAD_HEADER', 'read tar', `negative ${field} ${v}`, `header at offset ${at}`);
  return v;
}

/** GNU atime/ctime: only meaningful when present and positive (libarchive's rule). */
function gnuTime(buf: Buffer, off: number): number | undefined {
  if (buf[off] === 0) return undefined;
  const v = readNumericField(buf, off, 12);
  return v === 'overflow' || v <= 0 ? undefined : v;
}
