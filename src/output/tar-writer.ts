/**
 * A POSIX pax tar writer (POSIX.1-2001 ustar blocks + `x` extended headers), streaming to a
 * sink, for writing an image's tree as a tar or an OCI/Docker layer.
 *
 *   [x header][pax records, padded]?  [ustar header][data, padded to 512]  …  [2 × 512 zeros]
 *
 * A pax header precedes an entry only when ustar cannot hold it: a path or link target that
 * does not fit, ids or a size too large for octal fields, sub-second mtimes, xattrs
 * (SCHILY.xattr.NAME, the form GNU tar, Go's archive/tar, containerd and umoci read). Names are
 * byte strings (one char per byte). Output depends only on the entries: the pax headers' own
 * name and times are fixed.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

export type TarType = 'file' | 'link' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';

export interface TarEntryHeader {
  /** Byte string, relative, no leading "/" ; directories without the trailing "/" (added here). */
  path: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: data bytes that follow. */
  size: number;
  mtime: { sec: number; nsec: number };
  /** Hard links: the earlier path; symlinks: the target. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: ReadonlyMap<string, Buffer>;
}

const TYPEFLAG: Record<TarType, string> = { file: '0', link: '1', symlink: '2', chardev: '3', blockdev: '4', dir: '5', fifo: '6' };
const BLOCK = 512;

/** Buffered sequential writer to a file handle that also hashes what it writes. */
export class HashingSink {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private buf = Buffer.alloc(1 << 20);
  private used = 0;

  constructor(private readonly fh: FileHandle, private position = 0) {}

  async write(data: Buffer): Promise<void> {
    this.hash.update(data);
    this.bytes += data.length;
    if (data.length >= this.buf.length) {
      await this.flush();
      await this.raw(data);
      return;
    }
    if (this.used + data.length > this.buf.length) await this.flush();
    data.copy(this.buf, this.used);
    this.used += data.length;
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    const out = this.buf.subarray(0, this.used);
    await this.raw(out);
    // The flushed buffer may still be referenced by the kernel write: use a fresh one.
    this.buf = Buffer.alloc(this.buf.length);
    this.used = 0;
  }

  digest(): string {
    return 'sha256:' + this.hash.digest('hex');
  }

  private async raw(data: Buffer): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.fh.write(data, off, data.length - off, this.position);
      off += bytesWritten;
      this.position += bytesWritten;
    }
  }
}

export class TarWriter {
  constructor(private readonly sink: { write(b: Buffer): Promise<void> }) {}

  /** Writes an entry's header(s); a regular file's data must follow through data(), then end(). */
  async header(e: TarEntryHeader): Promise<void> {
    const path = e.type === 'dir' && !e.path.endsWith('/') ? `${e.path}/` : e.path;
    const pax: [string, Buffer][] = [];
    const split = splitPath(path);
    if (split === null) pax.push(['path', Buffer.from(path, 'latin1')]);
    const linkname = e.linkname ?? '';
    if (linkname.length > 100) pax.push(['linkpath', Buffer.from(linkname, 'latin1')]);
    if (e.uid > 0o7777777) pax.push(['uid', Buffer.from(String(e.uid))]);
    if (e.gid > 0o7777777) pax.push(['gid', Buffer.from(String(e.gid))]);
    if (e.size > 0o77777777777) pax.push(['size', Buffer.from(String(e.size))]);
    if (e.mtime.nsec !== 0 || e.mtime.sec < 0 || e.mtime.sec > 0o77777777777) pax.push(['mtime', Buffer.from(formatTime(e.mtime))]);
    for (const name of [...(e.xattrs?.keys() ?? [])].sort()) pax.push([`SCHILY.xattr.${name}`, e.xattrs!.get(name)!]);
    if (pax.length > 0) {
      const body = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
      await this.sink.write(ustar({ name: 'PaxHeaders/entry', prefix: '', typeflag: 'x', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, linkname: '', devmajor: 0, devminor: 0 }));
      await this.sink.write(body);
      await this.pad(body.length);
    }
    const [prefix, name] = split ?? ['', path.slice(-100)];
    await this.sink.write(
      ustar({
        name,
        prefix,
        typeflag: TYPEFLAG[e.type],
        mode: e.mode & 0o7777,
        uid: e.uid > 0o7777777 ? 0 : e.uid,
        gid: e.gid > 0o7777777 ? 0 : e.gid,
        size: e.type === 'file' && e.size <= 0o77777777777 ? e.size : 0,
        mtime: Math.min(Math.max(e.mtime.sec, 0), 0o77777777777),
        linkname: linkname.slice(0, 100),
        devmajor: e.devmajor ?? 0,
        devminor: e.devminor ?? 0,
      }),
    );
  }

  async data(b: Buffer): Promise<void> {
    await this.sink.write(b);
  }

  /** Pads a file's data (of `size` bytes) to the block boundary. */
  async pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest !== 0) await this.sink.write(Buffer.alloc(BLOCK - rest));
  }

  /** The end-of-archive marker. */
  async finish(): Promise<void> {
    await this.sink.write(Buffer.alloc(2 * BLOCK));
  }
}

/** [prefix, name] when the path fits ustar's 155 + 100 bytes split at a '/', else null. */
function splitPath(path: string): [string, string] | null {
  if (path.length <= 100) return ['', path];
  if (path.length > 256) return null;
  // The last '/' that leaves ≤ 100 bytes of name and ≤ 155 of prefix (a trailing '/' of a dir stays in name).
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== '/' || i === path.length - 1) continue;
    if (path.length - i - 1 > 100) break;
    if (i <= 155 && path.length - i - 1 > 0) return [path.slice(0, i), path.slice(i + 1)];
  }
  return null;
}

function formatTime(t: { sec: number; nsec: number }): string {
  if (t.nsec === 0) return String(t.sec);
  // Negative times: sec is floored, nsec positive; pax wants the signed decimal value.
  if (t.sec < 0) {
    const total = -(t.sec * 1e9 + t.nsec);
    return `-${Math.floor(total / 1e9)}.${String(total % 1e9).padStart(9, '0')}`.replace(/0+$/, '');
  }
  return `${t.sec}.${String(t.nsec).padStart(9, '0')}`.replace(/0+$/, '');
}

/** "LEN key=value\n" where LEN counts the whole record, itself included. */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = 1 + Buffer.byteLength(key) + 1 + value.length + 1; // ' ' key '=' value '\n'
  let len = rest + 1;
  while (String(len).length + rest > len) len++;
  return Buffer.concat([Buffer.from(`${len} ${key}=`, 'utf8'), value, Buffer.from('\n')]);
}

interface Ustar {
  name: string;
  prefix: string;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}

// 0x000 100 name | 0x064 8 mode | 0x06c 8 uid | 0x074 8 gid | 0x07c 12 size | 0x088 12 mtime
// 0x094 8 chksum | 0x09c 1 typeflag | 0x09d 100 linkname | 0x101 6 magic | 0x107 2 version
// 0x109 32 uname | 0x129 32 gname | 0x149 8 devmajor | 0x151 8 devminor | 0x159 155 prefix
function ustar(h: Ustar): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0x000, 100, 'latin1');
  octal(b, 0x064, 8, h.mode);
  octal(b, 0x06c, 8, h.uid);
  octal(b, 0x074, 8, h.gid);
  octal(b, 0x07c, 12, h.size);
  octal(b, 0x088, 12, h.mtime);
  b.write(h.typeflag, 0x09c, 1, 'latin1');
  b.write(h.linkname, 0x09d, 100, 'latin1');
  b.write('ustar\u000000', 0x101, 8, 'latin1');
  if (h.typeflag === '3' || h.typeflag === '4') {
    octal(b, 0x149, 8, h.devmajor);
    octal(b, 0x151, 8, h.devminor);
  }
  b.write(h.prefix, 0x159, 155, 'latin1');
  b.fill(0x20, 0x094, 0x094 + 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 0x094, 8, 'latin1');
  return b;
}

function octal(b: Buffer, off: number, width: number, value: number): void {
  b.write(value.toString(8).padStart(width - 1, '0') + '\u0000', off, width, 'latin1');
}
