/**
 * CRC32C (Castagnoli), the checksum of ext4's metadata_csum and jbd2's csum v3.
 *
 * `crc32c(seed, data)` is the kernel's raw form: no inversion on entry or exit, so checksums
 * chain (`crc32c(crc32c(~0, a), b) === crc32c(~0, a ++ b)`). ext4 seeds with ~0 and stores the
 * raw result; the "standard" CRC32C of a buffer is `~crc32c(~0, data) >>> 0`.
 * Slicing-by-8 tables: metadata is tens of megabytes at most, so this is never the bottleneck.
 */

const POLY = 0x82f63b78;
const T = new Uint32Array(256 * 8);

for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[i] = c >>> 0;
}
for (let i = 0; i < 256; i++) {
  for (let t = 1; t < 8; t++) {
    const prev = T[(t - 1) * 256 + i]!;
    T[t * 256 + i] = ((prev >>> 8) ^ T[prev & 0xff]!) >>> 0;
  }
}

export function crc32c(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  let crc = seed >>> 0;
  let i = start;
  while (i + 8 <= end) {
    const lo = (crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    crc =
      T[7 * 256 + (lo & 0xff)]! ^
      T[6 * 256 + ((lo >>> 8) & 0xff)]! ^
      T[5 * 256 + ((lo >>> 16) & 0xff)]! ^
      T[4 * 256 + (lo >>> 24)]! ^
      T[3 * 256 + data[i + 4]!]! ^
      T[2 * 256 + data[i + 5]!]! ^
      T[1 * 256 + data[i + 6]!]! ^
      T[data[i + 7]!]!;
    i += 8;
  }
  while (i < end) {
    crc = (crc >>> 8) ^ T[(crc ^ data[i]!) & 0xff]!;
    i++;
  }
  return crc >>> 0;
}

/** crc32c over a little-endian u32 (inode numbers, group numbers). */
export function crc32cU32(seed: number, value: number): number {
  let crc = seed >>> 0;
  for (let i = 0; i < 4; i++) crc = (crc >>> 8) ^ T[(crc ^ (value >>> (8 * i))) & 0xff]!;
  return crc >>> 0;
}
