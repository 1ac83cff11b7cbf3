/**
 * LZ4 "legacy" format decompressor: what `lz4 -l` writes and what the Linux kernel uses for
 * LZ4-compressed bzImage payloads and initramfs images (lib/decompress_unlz4.c). Debian's cloud
 * kernel is one of those, and Node has no LZ4, so the format is decoded here; it is small.
 *
 *   stream  := magic (u32 LE 0x184C2102) block*
 *   block   := size (u32 LE, compressed bytes) data[size]   each ≤ 8 MiB once decompressed,
 *                                                           independent of the others
 *   a magic where a size is expected starts a concatenated stream (skipped, as the kernel does)
 *
 * A block is the raw LZ4 block format (lz4/doc/lz4_Block_format.md), a list of sequences:
 *
 *   token (1 byte: literal length << 4 | match length - 4)
 *   [literal length extension: bytes of 255 then one < 255, added]  literals
 *   offset (u16 LE, 1..65535 back into the output)                   \ absent in the
 *   [match length extension, as above]                              / last sequence
 *
 * Every length and offset is bounds-checked; corrupt input is KERNEL_DECOMPRESS_FAILED, never an
 * out-of-range read or write.
 */
import { fail } from '../errors.js';

export const LZ4_LEGACY_MAGIC = 0x184c2102;
/** Uncompressed size of a full legacy block. */
export const LZ4_LEGACY_BLOCK = 8 << 20;
/** LZ4_compressBound(8 MiB): no valid block is larger. */
const MAX_COMPRESSED_BLOCK = LZ4_LEGACY_BLOCK + Math.floor(LZ4_LEGACY_BLOCK / 255) + 16;

export function isLz4Legacy(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x02 && buf[1] === 0x21 && buf[2] === 0x4c && buf[3] === 0x18;
}

export interface Lz4Options {
  /** The size of the output when known (the kernel appends it to its payload): one allocation, and a check. */
  expectedSize?: number;
}

/** Decompresses a whole legacy-format stream held in memory. */
export function decompressLz4Legacy(input: Uint8Array, options: Lz4Options = {}): Buffer {
  const what = 'decompress LZ4 (legacy format)';
  if (!isLz4Legacy(input)) fail('KERNEL_DECOMPRESS_FAILED', what, 'no LZ4 legacy magic 0x184C2102 at the start');
  const src = input;
  const known = options.expectedSize;
  // With the size known, blocks go straight into the final buffer; otherwise into 8 MiB pieces.
  let out = Buffer.allocUnsafe(known ?? LZ4_LEGACY_BLOCK);
  let outPos = 0;
  const pieces: Buffer[] = [];
  let total = 0;
  let pos = 4;
  while (pos < src.length) {
    if (src.length - pos < 4) fail('KERNEL_DECOMPRESS_FAILED', what, `${src.length - pos} stray bytes after the last block`, `offset ${pos}`);
    const size = readU32(src, pos);
    pos += 4;
    if (size === LZ4_LEGACY_MAGIC) continue;
    if (size === 0 || size > MAX_COMPRESSED_BLOCK) fail('KERNEL_DECOMPRESS_FAILED', what, `impossible block size ${size}`, `offset ${pos - 4}`);
    if (size > src.length - pos) fail('KERNEL_DECOMPRESS_FAILED', what, `block of ${size} bytes but only ${src.length - pos} left (truncated)`, `offset ${pos - 4}`);
    if (known === undefined && out.length - outPos < LZ4_LEGACY_BLOCK) {
      pieces.push(out.subarray(0, outPos));
      out = Buffer.allocUnsafe(LZ4_LEGACY_BLOCK);
      outPos = 0;
    }
    const limit = known === undefined ? out.length : Math.min(out.length, outPos + LZ4_LEGACY_BLOCK);
    const end = decodeLz4Block(src, pos, pos + size, out, outPos, limit);
    total += end - outPos;
    outPos = end;
    pos += size;
  }
  if (known !== undefined) {
    if (total !== known) fail('KERNEL_DECOMPRESS_FAILED', what, `got ${total} bytes where ${known} were expected`);
    return out;
  }
  pieces.push(out.subarray(0, outPos));
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, total);
}

/**
 * Decodes one raw LZ4 block src[srcPos, srcEnd) into dst from dstPos (matches may not reach
 * before dstPos: legacy blocks are independent). Returns the new end of the output.
 */
export function decodeLz4Block(src: Uint8Array, srcPos: number, srcEnd: number, dst: Uint8Array, dstPos: number, dstEnd: number): number {
  const what = 'decompress LZ4 block';
  const dstStart = dstPos;
  for (;;) {
    if (srcPos >= srcEnd) fail('KERNEL_DECOMPRESS_FAILED', what, 'block ends inside a sequence', `offset ${srcPos}`);
    const token = src[srcPos++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (srcPos >= srcEnd) fail('KERNEL_DECOMPRESS_FAILED', what, 'block ends inside a literal length', `offset ${srcPos}`);
        b = src[srcPos++]!;
        lit += b;
      } while (b === 255);
    }
    if (lit > srcEnd - srcPos) fail('KERNEL_DECOMPRESS_FAILED', what, `${lit} literals but ${srcEnd - srcPos} bytes left`, `offset ${srcPos}`);
    if (lit > dstEnd - dstPos) fail('KERNEL_DECOMPRESS_FAILED', what, 'output larger than a block', `offset ${srcPos}`);
    if (lit < 16) {
      for (let i = 0; i < lit; i++) dst[dstPos + i] = src[srcPos + i]!;
    } else {
      dst.set(src.subarray(srcPos, srcPos + lit), dstPos);
    }
    srcPos += lit;
    dstPos += lit;
    if (srcPos === srcEnd) return dstPos; // the last sequence has literals only
    if (srcEnd - srcPos < 2) fail('KERNEL_DECOMPRESS_FAILED', what, 'block ends inside a match offset', `offset ${srcPos}`);
    const offset = src[srcPos]! | (src[srcPos + 1]! << 8);
    srcPos += 2;
    if (offset === 0 || offset > dstPos - dstStart) fail('KERNEL_DECOMPRESS_FAILED', what, `match offset ${offset} points before the block`, `offset ${srcPos - 2}`);
    let len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        if (srcPos >= srcEnd) fail('KERNEL_DECOMPRESS_FAILED', what, 'block ends inside a match length', `offset ${srcPos}`);
        b = src[srcPos++]!;
        len += b;
      } while (b === 255);
    }
    len += 4;
    if (len > dstEnd - dstPos) fail('KERNEL_DECOMPRESS_FAILED', what, 'output larger than a block', `offset ${srcPos}`);
    let from = dstPos - offset;
    if (offset >= len) {
      if (len < 16) for (let i = 0; i < len; i++) dst[dstPos + i] = dst[from + i]!;
      else dst.copyWithin(dstPos, from, from + len);
      dstPos += len;
    } else {
      // overlapping copy (a run): byte by byte, which repeats the last `offset` bytes
      const stop = dstPos + len;
      while (dstPos < stop) dst[dstPos++] = dst[from++]!;
    }
  }
}

function readU32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}
