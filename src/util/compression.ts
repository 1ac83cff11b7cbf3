/**
 * The one table of compression magic numbers, used by the tar reader (src/tar/decompress.ts) and
 * by kernel material (src/kernel/kernel-decompress.ts: bzImage payloads, .deb members, modules).
 * Each caller decides which of these it can decompress and names the others in its error.
 *
 *   gzip       1f 8b (and 1f 9e, the old form the kernel's own table accepts)
 *   zstd       28 b5 2f fd, or a skippable frame 5? 2a 4d 18 before the first real frame
 *   xz         fd 37 7a 58 5a 00
 *   lzma       5d 00 00 (raw .lzma, "LZMA alone")
 *   bzip2      42 5a 68 ("BZh")
 *   lz4        02 21 4c 18 (legacy frame: what the kernel's LZ4 images use)
 *   lz4-frame  04 22 4d 18 (the lz4 tool's default frame)
 *   lzo        89 4c 5a 4f (lzop)
 *   compress   1f 9d (Unix .Z)
 *   lzip       4c 5a 49 50 ("LZIP")
 */

export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'lzma' | 'bzip2' | 'lz4' | 'lz4-frame' | 'lzo' | 'compress' | 'lzip';

/** Names for messages ("xz compression is not supported"). */
export const COMPRESSION_LABEL: Readonly<Record<Compression, string>> = {
  none: 'none',
  gzip: 'gzip',
  zstd: 'zstd',
  xz: 'xz',
  lzma: 'lzma',
  bzip2: 'bzip2',
  lz4: 'lz4 (legacy)',
  'lz4-frame': 'lz4',
  lzo: 'lzo',
  compress: 'Unix compress (.Z)',
  lzip: 'lzip',
};

/** Recognises a compressed stream by its first bytes (6 are enough); 'none' when no magic matches. */
export function detectCompression(b: Uint8Array): Compression {
  const at = (i: number): number => (i < b.length ? b[i]! : -1);
  const is = (...bytes: number[]): boolean => bytes.every((x, i) => at(i) === x);
  if (is(0x1f, 0x8b) || is(0x1f, 0x9e)) return 'gzip';
  if (is(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if ((at(0) & 0xf0) === 0x50 && at(0) >= 0 && is(at(0), 0x2a, 0x4d, 0x18)) return 'zstd';
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (is(0x42, 0x5a, 0x68)) return 'bzip2';
  if (is(0x02, 0x21, 0x4c, 0x18)) return 'lz4';
  if (is(0x04, 0x22, 0x4d, 0x18)) return 'lz4-frame';
  if (is(0x89, 0x4c, 0x5a, 0x4f)) return 'lzo';
  if (is(0x1f, 0x9d)) return 'compress';
  if (is(0x4c, 0x5a, 0x49, 0x50)) return 'lzip';
  if (is(0x5d, 0x00, 0x00)) return 'lzma';
  return 'none';
}
