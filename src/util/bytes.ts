/**
 * Byte strings: names inside images are arbitrary bytes, not text. We carry them as JS strings
 * with one char (0..255) per byte, which keeps them usable as Map keys and sorts them in byte
 * order with plain `<`.
 */
import { isUtf8 } from 'node:buffer';

export function byteStringToBytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Converts a JS (unicode) string, e.g. from the command line, to a byte string of its UTF-8. */
export function utf8ToByteString(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/** For display: UTF-8 when the bytes are valid UTF-8, else the bytes as latin1. */
export function byteStringToDisplay(s: string): string {
  const b = Buffer.from(s, 'latin1');
  return isUtf8(b) ? b.toString('utf8') : s;
}
