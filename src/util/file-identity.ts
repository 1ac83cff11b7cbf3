/**
 * A file's identity as make would want it, but stricter: device, inode, size, mtime and ctime
 * (ns). The ctime changes on every write, chmod, chown, link or rename and cannot be set back by
 * a user, so a file whose identity is unchanged since it was recorded still holds the bytes it
 * held then. Same size alone proves nothing. Numbers are decimal strings: JSON has no bigint.
 */
import { lstat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fail } from '../errors.js';

export interface FileIdentity {
  /** Absolute path the file was written to. */
  path: string;
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

/** `path`'s identity (not following a symlink), or null when it is missing or not a regular file. */
export async function fileIdentity(path: string): Promise<FileIdentity | null> {
  let st;
  try {
    st = await lstat(path, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    return fail('OUTPUT_FAILED', `check ${path}`, (e as NodeJS.ErrnoException).code ?? String(e), path, e);
  }
  if (!st.isFile()) return null;
  return { path: resolve(path), dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.path === b.path && a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** Outputs remembered per record (the oldest are forgotten: their next run does the work again). */
export const MAX_OUTPUTS = 16;

/**
 * The identity of `output` if it is still the inode `ino` that was just written there, else null
 * (another run replaced it since: its identity must never vouch for bytes we did not write).
 */
export async function writtenIdentity(output: string, ino: bigint): Promise<FileIdentity | null> {
  const id = await fileIdentity(output);
  return id !== null && id.ino === String(ino) ? id : null;
}

/** `recorded` with `id` as the newest entry for its path, at most MAX_OUTPUTS kept (newest last). */
export function withOutput(recorded: readonly FileIdentity[] | undefined, id: FileIdentity): FileIdentity[] {
  return [...(recorded ?? []).filter((o) => o.path !== id.path), id].slice(-MAX_OUTPUTS);
}

/** True when `output` is, right now, exactly one of the `recorded` files (make-style up to date). */
export async function isRecordedOutput(recorded: readonly FileIdentity[] | undefined, output: string): Promise<boolean> {
  if (!recorded?.length) return false;
  const now = await fileIdentity(output);
  return now !== null && recorded.some((o) => sameIdentity(o, now));
}
