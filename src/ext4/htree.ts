/**
 * Directory-name hashing for dir_index (htree) directories: the half-MD4 hash ext4 uses by
 * default, in its "unsigned char" variant (we set EXT2_FLAGS_UNSIGNED_HASH, so the kernel and
 * e2fsck use the same variant on every architecture).
 */

const K2 = 0o13240474631;
const K3 = 0o15666365641;

function rol(x: number, s: number): number {
  return ((x << s) | (x >>> (32 - s))) >>> 0;
}

function F(x: number, y: number, z: number): number {
  return (z ^ (x & (y ^ z))) >>> 0;
}
function G(x: number, y: number, z: number): number {
  return ((x & y) + ((x ^ y) & z)) >>> 0;
}
function H(x: number, y: number, z: number): number {
  return (x ^ y ^ z) >>> 0;
}

/** The kernel's half_md4_transform: 3 rounds of 8 steps over 8 input words. */
function halfMd4Transform(buf: Uint32Array, inp: Uint32Array): void {
  let a = buf[0]!;
  let b = buf[1]!;
  let c = buf[2]!;
  let d = buf[3]!;
  const r = (f: typeof F, w: number, x: number, y: number, z: number, k: number, s: number) => rol((w + f(x, y, z) + k) >>> 0, s);

  a = r(F, a, b, c, d, inp[0]!, 3);
  d = r(F, d, a, b, c, inp[1]!, 7);
  c = r(F, c, d, a, b, inp[2]!, 11);
  b = r(F, b, c, d, a, inp[3]!, 19);
  a = r(F, a, b, c, d, inp[4]!, 3);
  d = r(F, d, a, b, c, inp[5]!, 7);
  c = r(F, c, d, a, b, inp[6]!, 11);
  b = r(F, b, c, d, a, inp[7]!, 19);

  a = r(G, a, b, c, d, (inp[1]! + K2) >>> 0, 3);
  d = r(G, d, a, b, c, (inp[3]! + K2) >>> 0, 5);
  c = r(G, c, d, a, b, (inp[5]! + K2) >>> 0, 9);
  b = r(G, b, c, d, a, (inp[7]! + K2) >>> 0, 13);
  a = r(G, a, b, c, d, (inp[0]! + K2) >>> 0, 3);
  d = r(G, d, a, b, c, (inp[2]! + K2) >>> 0, 5);
  c = r(G, c, d, a, b, (inp[4]! + K2) >>> 0, 9);
  b = r(G, b, c, d, a, (inp[6]! + K2) >>> 0, 13);

  a = r(H, a, b, c, d, (inp[3]! + K3) >>> 0, 3);
  d = r(H, d, a, b, c, (inp[7]! + K3) >>> 0, 9);
  c = r(H, c, d, a, b, (inp[2]! + K3) >>> 0, 11);
  b = r(H, b, c, d, a, (inp[6]! + K3) >>> 0, 15);
  a = r(H, a, b, c, d, (inp[1]! + K3) >>> 0, 3);
  d = r(H, d, a, b, c, (inp[5]! + K3) >>> 0, 9);
  c = r(H, c, d, a, b, (inp[0]! + K3) >>> 0, 11);
  b = r(H, b, c, d, a, (inp[4]! + K3) >>> 0, 15);

  buf[0] = (buf[0]! + a) >>> 0;
  buf[1] = (buf[1]! + b) >>> 0;
  buf[2] = (buf[2]! + c) >>> 0;
  buf[3] = (buf[3]! + d) >>> 0;
}

/** The kernel's str2hashbuf: packs up to num*4 name bytes into `out`, padded with a length pattern. */
function str2hashbuf(msg: Uint8Array, start: number, len: number, out: Uint32Array, num: number, unsigned: boolean): void {
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  let val = pad;
  let n = num;
  let o = 0;
  const count = Math.min(len, num * 4);
  for (let i = 0; i < count; i++) {
    let c = msg[start + i]!;
    if (!unsigned && c >= 128) c -= 256; // signed char variant
    val = (c + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out[o++] = val;
      val = pad;
      n--;
    }
  }
  if (--n >= 0) out[o++] = val;
  while (--n >= 0) out[o++] = pad;
}

const DEFAULT_SEED = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
/** Scratch state, reused by every call (a directory of a million names hashes a million times). */
const HASH_BUF = new Uint32Array(4);
const HASH_IN = new Uint32Array(8);

/**
 * ext4 half-MD4 name hash. `seed` is the superblock's s_hash_seed (16 bytes; all zero means the
 * default). Returns the major hash with bit 0 cleared, as stored in htree index entries.
 */
export function halfMd4Hash(name: Uint8Array, seed: Uint8Array, unsigned = true): { hash: number; minor: number } {
  const hash = halfMd4Major(name, seed, unsigned);
  return { hash, minor: halfMd4LastMinor() };
}

/**
 * The major hash alone, without allocating; `halfMd4LastMinor()` then gives the minor hash. For
 * callers hashing every name of a directory: an object per name, made at one allocation site,
 * is what V8 may start allocating straight into the old generation (see plan.ts).
 */
export function halfMd4Major(name: Uint8Array, seed: Uint8Array, unsigned = true): number {
  const buf = HASH_BUF;
  let seeded = false;
  for (let i = 0; i < 4; i++) {
    const w = (seed[i * 4]! | (seed[i * 4 + 1]! << 8) | (seed[i * 4 + 2]! << 16) | (seed[i * 4 + 3]! << 24)) >>> 0;
    buf[i] = w;
    if (w !== 0) seeded = true;
  }
  if (!seeded) buf.set(DEFAULT_SEED);
  const inp = HASH_IN;
  let len = name.length;
  let p = 0;
  while (len > 0) {
    str2hashbuf(name, p, len, inp, 8, unsigned);
    halfMd4Transform(buf, inp);
    len -= 32;
    p += 32;
  }
  let hash = buf[1]! & ~1;
  hash >>>= 0;
  if (hash === 0xfffffffe) hash = 0xfffffffc; // (EXT4_HTREE_EOF_32BIT << 1) is reserved
  return hash;
}

/** The minor hash of the last `halfMd4Major` call. */
export function halfMd4LastMinor(): number {
  return HASH_BUF[2]!;
}
