/**
 * cpio "newc" (SVR4, no CRC) archives: the format the Linux kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst). Written here so building an
 * initramfs needs no cpio binary, no shell pipeline and no root: device nodes are just headers.
 *
 *   entry   := header(110 bytes) name NUL pad4 data pad4
 *   header  := "070701" then 13 fields of 8 ASCII hex digits:
 *              0x06 ino      0x0e mode     0x16 uid      0x1e gid      0x26 nlink
 *              0x2e mtime    0x36 filesize 0x3e devmajor 0x46 devminor 0x4e rdevmajor
 *              0x56 rdevminor 0x5e namesize (with the NUL)  0x66 check (0 for newc)
 *   archive := entry* "TRAILER!!!" entry, padded to 512 bytes
 *
 * Deterministic by construction: entries sorted by path bytes (a parent sorts before its
 * children), missing parent directories added (root, 0755), inode numbers assigned 1, 2, … in
 * that order, one mtime for all, owners as given (default root). Hard links are not written (an
 * initramfs does not need them). Same entries ⇒ same bytes.
 */
import { fail } from '../errors.js';

export type CpioType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev';

export interface CpioEntry {
  /** Path inside the archive, without a leading '/' ("init", "lib/modules/…/virtio.ko"). */
  path: string;
  type: CpioType;
  /** Permission bits (0o7777 mask). */
  mode: number;
  /** Default 0. */
  uid?: number;
  /** Default 0. */
  gid?: number;
  /** File contents (files only). */
  data?: Uint8Array;
  /** Symlink target. */
  target?: string;
  /** Device numbers (chardev, blockdev). */
  major?: number;
  minor?: number;
}

export interface CpioWriteOptions {
  /** Seconds since the epoch stamped on every entry. Default 0. */
  mtime?: number;
}

const MAGIC = '070701';
const HEADER = 110;
const TRAILER = 'TRAILER!!!';
const TYPE_BITS: Record<CpioType, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, chardev: 0o020000, blockdev: 0o060000 };

/** Writes the archive to one buffer (an initramfs is a few MB). */
export function writeCpio(entries: readonly CpioEntry[], options: CpioWriteOptions = {}): Buffer {
  const mtime = options.mtime ?? 0;
  const all = withParents(entries);
  const parts: Buffer[] = [];
  let size = 0;
  const push = (b: Buffer): void => {
    parts.push(b);
    size += b.length;
  };
  let ino = 1;
  for (const e of all) {
    const body = bodyOf(e);
    push(header(e.path, { ino: ino++, mode: TYPE_BITS[e.type] | (e.mode & 0o7777), uid: e.uid ?? 0, gid: e.gid ?? 0, nlink: e.type === 'dir' ? 2 : 1, mtime, filesize: body.length, rmajor: e.major ?? 0, rminor: e.minor ?? 0 }));
    if (body.length > 0) {
      push(Buffer.from(body.buffer, body.byteOffset, body.length));
      push(Buffer.alloc(pad4(body.length)));
    }
  }
  push(header(TRAILER, { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, filesize: 0, rmajor: 0, rminor: 0 }));
  const tail = (512 - (size % 512)) % 512;
  if (tail > 0) push(Buffer.alloc(tail));
  return Buffer.concat(parts, size);
}

/** One entry as read back by readCpio: its header fields (the size is data's), name and data. */
export interface CpioRecord extends Omit<Fields, 'filesize'> {
  path: string;
  data: Buffer;
}

/** Reads a newc archive (up to its trailer); for tests and inspection. */
export function readCpio(buf: Buffer): CpioRecord[] {
  const out: CpioRecord[] = [];
  let pos = 0;
  for (;;) {
    if (buf.length - pos < HEADER) fail('KERNEL_BAD_IMAGE', 'read cpio archive', 'truncated header', `offset ${pos}`);
    if (buf.toString('latin1', pos, pos + 6) !== MAGIC) fail('KERNEL_BAD_IMAGE', 'read cpio archive', 'not a newc header', `offset ${pos}`);
    const f = (i: number): number => {
      const text = buf.toString('latin1', pos + 6 + i * 8, pos + 14 + i * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(text)) fail('KERNEL_BAD_IMAGE', 'read cpio archive', 'bad hex field', `offset ${pos + 6 + i * 8}`);
      return parseInt(text, 16);
    };
    const namesize = f(11);
    const filesize = f(6);
    const nameAt = pos + HEADER;
    const path = buf.toString('latin1', nameAt, nameAt + namesize - 1);
    const dataAt = nameAt + namesize + pad4(HEADER + namesize);
    if (dataAt + filesize > buf.length) fail('KERNEL_BAD_IMAGE', 'read cpio archive', 'truncated entry', path);
    if (path === TRAILER) return out;
    out.push({ path, ino: f(0), mode: f(1), uid: f(2), gid: f(3), nlink: f(4), mtime: f(5), rmajor: f(9), rminor: f(10), data: buf.subarray(dataAt, dataAt + filesize) });
    pos = dataAt + filesize + pad4(filesize);
  }
}

interface Fields {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  filesize: number;
  rmajor: number;
  rminor: number;
}

function header(name: string, f: Fields): Buffer {
  const nameBytes = Buffer.from(name, 'latin1');
  const namesize = nameBytes.length + 1;
  const fields = [f.ino, f.mode, f.uid, f.gid, f.nlink, f.mtime, f.filesize, 0, 0, f.rmajor, f.rminor, namesize, 0];
  let text = MAGIC;
  for (const v of fields) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) fail('OPTION_INVALID', 'write cpio entry', 'a field does not fit in 32 bits', `${name}: ${v}`);
    text += v.toString(16).toUpperCase().padStart(8, '0');
  }
  const b = Buffer.alloc(HEADER + namesize + pad4(HEADER + namesize));
  b.write(text, 0, 'latin1');
  nameBytes.copy(b, HEADER);
  return b;
}

function bodyOf(e: CpioEntry): Uint8Array {
  if (e.type === 'file') return e.data ?? new Uint8Array(0);
  if (e.type === 'symlink') {
    if (e.target === undefined || e.target === '') fail('OPTION_INVALID', 'write cpio entry', 'a symlink needs a target', e.path);
    return Buffer.from(e.target, 'latin1');
  }
  return new Uint8Array(0);
}

/** Validated, deduplicated, sorted entries with every missing parent directory added. */
function withParents(entries: readonly CpioEntry[]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) {
    const p = e.path;
    if (p === '' || p.startsWith('/') || p.endsWith('/') || p.split('/').some((c) => c === '' || c === '.' || c === '..')) {
      fail('OPTION_INVALID', 'write cpio entry', 'paths must be relative, without empty, "." or ".." components', p);
    }
    if (byPath.has(p)) fail('OPTION_INVALID', 'write cpio entry', 'the same path twice', p);
    byPath.set(p, e);
  }
  for (const p of [...byPath.keys()]) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const existing = byPath.get(dir);
      if (existing === undefined) byPath.set(dir, { path: dir, type: 'dir', mode: 0o755 });
      else if (existing.type !== 'dir') fail('OPTION_INVALID', 'write cpio entry', 'a parent is not a directory', dir);
    }
  }
  return [...byPath.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path, 'latin1'), Buffer.from(b.path, 'latin1')));
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}
