/**
 * Content digests: parsing, and verifying a stream against one as it flows (the check fires
 * when the stream ends, before anything downstream can treat the content as complete).
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { fail } from '../errors.js';
import { openRegular } from './files.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function parseDigest(d: string, what = 'use digest'): { algorithm: 'sha256'; hex: string } {
  if (!DIGEST_RE.test(d)) {
    if (/^sha(384|512):/.test(d)) fail('OCI_BAD_MANIFEST', what, 'only sha256 digests are supported', d);
    fail('OCI_BAD_MANIFEST', what, 'not a sha256 digest', d);
  }
  return { algorithm: 'sha256', hex: d.slice(7) };
}

export function sha256Digest(data: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/**
 * Passes `source` through while hashing it; throws OCI_DIGEST_MISMATCH at the end when the
 * bytes do not hash to `digest` (or their count is not `size`, when given).
 */
export async function* verifyDigest(source: AsyncIterable<Buffer>, digest: string, size: number | undefined, what: string): AsyncGenerator<Buffer> {
  parseDigest(digest, what);
  const h = createHash('sha256');
  let n = 0;
  for await (const chunk of source) {
    h.update(chunk);
    n += chunk.length;
    if (size !== undefined && n > size) fail('OCI_DIGEST_MISMATCH', what, `more bytes than the descriptor's size ${size}`, digest);
    yield chunk;
  }
  if (size !== undefined && n !== size) fail('OCI_DIGEST_MISMATCH', what, `${n} bytes where the descriptor says ${size}`, digest);
  const got = 'sha256:' + h.digest('hex');
  if (got !== digest) fail('OCI_DIGEST_MISMATCH', what, `content hashes to ${got}`, digest);
}

/**
 * Reads a whole small file (manifest, config) and checks its digest (and its size, when known).
 * Only a regular file, not through a symlink, of at most `maxBytes` bytes is read.
 */
export async function readVerified(path: string, digest: string, what: string, maxBytes = 16 << 20, size?: number): Promise<Buffer> {
  parseDigest(digest, what);
  const { fh, size: actual } = await openRegular(path, what);
  try {
    if (actual > maxBytes) fail('OCI_BAD_MANIFEST', what, `larger than ${maxBytes} bytes`, path);
    if (size !== undefined && actual !== size) fail('OCI_DIGEST_MISMATCH', what, `${actual} bytes where the descriptor says ${size}`, digest);
  } catch (e) {
    await fh.close();
    throw e;
  }
  // The stream closes the handle when it ends or is destroyed.
  const chunks: Buffer[] = [];
  const stream = actual > 0 ? (fh.createReadStream({ highWaterMark: 1 << 20, start: 0, end: actual - 1 }) as AsyncIterable<Buffer>) : closing(fh);
  for await (const c of verifyDigest(stream, digest, size, what)) chunks.push(c);
  return Buffer.concat(chunks);
}

/** No bytes; closes `fh` (an empty file's handle, which a stream with end -1 would not read). */
async function* closing(fh: FileHandle): AsyncGenerator<Buffer> {
  await fh.close();
}
