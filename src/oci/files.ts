/**
 * Reading files of an image layout (or of our own cache) that someone else may have made:
 * only regular files, never through a symlink as the last component, never a device or a FIFO,
 * and never more bytes than expected. `open(2)` with O_NOFOLLOW refuses a symlink (ELOOP) and
 * O_NONBLOCK keeps a FIFO from blocking the open forever; fstat then says what the file is.
 * A layout whose index.json is a symlink to /dev/zero, or whose blob is a FIFO, fails at once
 * with OCI_BAD_LAYOUT instead of growing memory or hanging.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fail, type ErrorCode } from '../errors.js';

/** JSON documents of a layout (oci-layout, index.json) are read whole: at most this many bytes. */
export const MAX_JSON_BYTES = 8 << 20;

const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens `path` for reading if it is a regular file (not a symlink to one). ENOENT fails with
 * `missing` (code and reason) when given, else with `code`.
 */
export async function openRegular(
  path: string,
  what: string,
  code: ErrorCode = 'OCI_BAD_LAYOUT',
  missing?: { code: ErrorCode; reason: string },
): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, FLAGS);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT' && missing) return fail(missing.code, what, missing.reason, path, e);
    if (errno === 'ELOOP') return fail(code, what, 'a symbolic link where a regular file must be', path, e);
    return fail(code, what, errno ?? String(e), path, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) fail(code, what, `not a regular file (${kind(st)})`, path);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** A whole regular file of at most `maxBytes` (checked on its size before reading). */
export async function readRegular(path: string, maxBytes: number, what: string, code: ErrorCode = 'OCI_BAD_LAYOUT', missing?: { code: ErrorCode; reason: string }): Promise<Buffer> {
  const { fh, size } = await openRegular(path, what, code, missing);
  try {
    if (size > maxBytes) fail(code, what, `${size} bytes, more than the ${maxBytes} allowed for it`, path);
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await fh.read(buf, done, size - done, done);
      if (bytesRead === 0) fail(code, what, `the file shrank while being read (${done} of ${size} bytes)`, path);
      done += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

function kind(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}
