/**
 * The base image's SHA-256, remembered per (device, inode, size, mtime): hashing a 1.5 GB base
 * takes seconds, creating an instance must take milliseconds. The first instance of a base pays
 * for the hash; later ones (and every boot's "is the base unchanged?" check) reuse it while the
 * file's identity and mtime are the same. Entries live in the user's cache directory, written
 * with temp + rename; the base itself is only read.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { defaultCacheDir } from '../util/cache-dir.js';
import { writeAtomically } from '../util/atomic.js';

export interface BaseIdentity {
  sha256: string;
  sizeBytes: number;
  /** The hash came from the cache (the file was not read). */
  cached: boolean;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function baseIdentity(path: string, cacheDir = defaultCacheDir()): Promise<BaseIdentity> {
  const st = await stat(path, { bigint: true }).catch((e: NodeJS.ErrnoException) => fail('SOURCE_NOT_FOUND', `read base image ${path}`, e.code ?? String(e), path, e));
  if (!st.isFile()) fail('SOURCE_BAD_SPEC', `read base image ${path}`, 'not a regular file', path);
  const key = `${st.dev}-${st.ino}-${st.size}-${st.mtimeNs}`;
  const dir = join(cacheDir, 'base-sha256');
  const entry = join(dir, `${key}.json`);
  try {
    const doc = JSON.parse(await readFile(entry, 'utf8')) as { sha256?: unknown };
    if (typeof doc.sha256 === 'string' && /^[0-9a-f]{64}$/.test(doc.sha256)) return { sha256: doc.sha256, sizeBytes: Number(st.size), cached: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && !(e instanceof SyntaxError)) throw e;
  }
  const sha256 = await sha256File(path);
  const after = await stat(path, { bigint: true });
  if (after.mtimeNs !== st.mtimeNs || after.size !== st.size) fail('INSTANCE_BASE_CHANGED', `hash base image ${path}`, 'it changed while being read', path);
  await mkdir(dir, { recursive: true });
  await writeAtomically(entry, async (fh) => fh.writeFile(JSON.stringify({ path, sha256 }) + '\n'));
  return { sha256, sizeBytes: Number(st.size), cached: false };
}
