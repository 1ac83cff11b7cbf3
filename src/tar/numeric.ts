/**
 * Numbers as tar stores them. Header fields are octal text, or, when the high bit of the first
 * byte is set, GNU/star base-256: a big-endian two's-complement integer in the remaining bits
 * (0x80 introduces a positive value, 0xff a negative one). PAX records use decimal text, times
 * with an optional fraction. Everything is checked against 2^53 so a Number is always exact.
 */
import type { Timestamp } from './types.js';

/** Result of parsing a header number: the value, or why it could not be represented. */
export type FieldValue = number | 'overflow';

/**
 * Reads a numeric header field (octal or base-256). Octal parsing is lenient like libarchive and
 * GNU tar: leading spaces are skipped, digits are read until the first non-octal byte (usually the
 * NUL or space terminator), an empty field is 0.
 */
export function readNumericField(buf: Uint8Array, off: number, len: number): FieldValue {
  const first = buf[off]!;
  if (first & 0x80) return readBase256(buf, off, len);
  let i = off;
  const end = off + len;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
  let negative = false;
  if (i < end && buf[i] === 0x2d /* '-' */) {
    negative = true; // a few old writers print negative times in octal text
    i++;
  }
  let v = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 7) break;
    v = v * 8 + d;
  }
  if (v > Number.MAX_SAFE_INTEGER) return 'overflow';
  return negative ? -v : v;
}

/**
 * Base-256: bit 6 of the first byte is the sign (bit 7 is only the marker), the rest of the field
 * is the big-endian magnitude in two's complement. 12-byte fields can exceed 64 bits, so we use
 * BigInt here; the form is rare (huge sizes, ids or pre-1970 times), so cost does not matter.
 */
export function readBase256(buf: Uint8Array, off: number, len: number): FieldValue {
  const first = buf[off]!;
  let v = BigInt((first & 0x40) !== 0 ? first | 0x80 : first & 0x7f);
  for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(buf[off + i]!);
  v = BigInt.asIntN(len * 8, v);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) return 'overflow';
  return Number(v);
}

/**
 * Strict unsigned decimal as used by PAX records (size, uid, gid, devmajor, GNU.sparse.*).
 * Returns undefined for anything that is not 1+ ASCII digits, or that exceeds 2^53-1.
 */
export function parseDecimal(s: string): number | undefined {
  if (s.length === 0) return undefined;
  let significant = -1; // index of the first non-zero digit: leading zeros are allowed ("00004612")
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
    if (significant < 0 && c !== 0x30) significant = i;
  }
  if (significant < 0) return 0;
  if (s.length - significant > 16) return undefined;
  const v = Number(s.slice(significant));
  return v <= Number.MAX_SAFE_INTEGER ? v : undefined;
}

/** Outcome of parsing a PAX time: the timestamp, and whether bytes after the number were ignored. */
export interface PaxTime {
  time: Timestamp;
  trailing: boolean;
}

/**
 * PAX time: `[-]SECONDS[.FRACTION]`. Kept exact: the fraction is read as text and truncated to 9
 * digits (nanoseconds), never through a float. A negative value counts down from the epoch, so
 * "-1.5" is 1.5 s before it: sec = -2, nsec = 500000000. Like libarchive, bytes after the number
 * are ignored (reported through `trailing`); a value without any digit is rejected (undefined).
 */
export function parsePaxTime(s: string): PaxTime | undefined {
  let i = 0;
  let negative = false;
  if (s.charCodeAt(0) === 0x2d) {
    negative = true;
    i = 1;
  }
  const intStart = i;
  while (i < s.length && isDigit(s.charCodeAt(i))) i++;
  const intDigits = s.slice(intStart, i);
  let frac = '';
  if (s.charCodeAt(i) === 0x2e /* '.' */) {
    const fracStart = ++i;
    while (i < s.length && isDigit(s.charCodeAt(i))) i++;
    frac = s.slice(fracStart, i);
  }
  if (intDigits.length === 0 && frac.length === 0) return undefined;
  const whole = intDigits.length === 0 ? 0 : Number(intDigits);
  if (!Number.isSafeInteger(whole)) return undefined;
  const nsec = frac.length === 0 ? 0 : Number(frac.slice(0, 9).padEnd(9, '0'));
  let time: Timestamp;
  if (!negative) time = { sec: whole, nsec };
  else if (nsec === 0) time = { sec: whole === 0 ? 0 : -whole, nsec: 0 };
  else time = { sec: -whole - 1, nsec: 1_000_000_000 - nsec };
  return { time, trailing: i !== s.length };
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
