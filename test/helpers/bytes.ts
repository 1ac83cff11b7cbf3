/**
 * Deterministic test bytes (xorshift): runs of `half` pseudo-random bytes alternating with runs
 * of `half` lowercase letters, so they compress somewhat, as real files do.
 */
export function halfTextBytes(seed: number, size: number, half: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = i % (2 * half) < half ? x & 0xff : 0x61 + ((x >>> 8) % 26);
  }
  return b;
}
