/**
 * Output files appear whole or not at all: the image is written to a temporary file beside the
 * destination and renamed over it only on success. A failed or interrupted run removes its
 * temporary file and leaves whatever was at the destination untouched.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fail, RootforgeError } from '../errors.js';

const active = new Set<string>();
let counter = 0;

export async function writeAtomically<T>(dest: string, fn: (fh: FileHandle, tmpPath: string) => Promise<T>): Promise<T> {
  const tmp = join(dirname(dest), `.${basename(dest)}.rootforge-${process.pid}-${counter++}.tmp`);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx+', 0o644);
  } catch (e) {
    return fail('OUTPUT_FAILED', `create ${dest}`, (e as NodeJS.ErrnoException).code ?? String(e), dirname(dest), e);
  }
  active.add(tmp);
  try {
    const result = await fn(fh, tmp);
    await fh.close();
    await rename(tmp, dest);
    active.delete(tmp);
    return result;
  } catch (e) {
    const problems: unknown[] = [];
    await fh.close().catch((c: unknown) => problems.push(c));
    await unlink(tmp).catch((u: unknown) => problems.push(u));
    active.delete(tmp);
    if (problems.length > 0 && !(e instanceof RootforgeError)) {
      throw new AggregateError([e, ...problems], `Cannot write ${dest}: ${(e as Error).message}`);
    }
    throw e;
  }
}

/** Removes temporary outputs still being written (for signal handlers). Synchronous on purpose. */
export function removeActiveTempFiles(unlinkSync: (p: string) => void): void {
  for (const tmp of active) {
    try {
      unlinkSync(tmp);
    } catch (e) {
      process.stderr.write(`rootforge: could not remove ${tmp}: ${(e as Error).message}\n`);
    }
  }
  active.clear();
}
