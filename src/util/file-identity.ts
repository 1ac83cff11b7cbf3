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
