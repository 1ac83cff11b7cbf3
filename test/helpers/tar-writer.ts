/**
 * A small tar *writer* for tests, written from the format specs (POSIX ustar/pax, GNU tar's
 * documentation) independently of src/tar, so tests can build exact archives byte by byte:
 * ustar with prefix splitting, PAX records (binary-safe values, xattrs, nanosecond times),
 * GNU 'L'/'K' long names, base-256 numbers, v7 headers.
 *
 *   tarEntries([{ path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
 *               { path: 'bin/sh', type: 'symlink', linkname: 'busybox' }])   → Buffer
 *
 * Names given as strings are encoded as UTF-8; pass a Buffer for arbitrary bytes. (The reader
 * reports names as byte strings: compare with `utf8ToByteString(path)`.)
 */

export type WriterType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';
export type WriterFormat = 'ustar' | 'pax' | 'gnu' | 'v7';
export type Bytes = string | Buffer;

export interface Time {
  sec: number;
  nsec: number;
}

export interface WriterEntry {
  path: Bytes;
  /** Entry type, or a raw one-character typeflag (e.g. 'V', 'x'). Default 'file'. */
  type?: WriterType | string;
  /** Default 0o644 for files, 0o755 for directories, 0o777 for symlinks. */
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Seconds, or seconds + nanoseconds (nanoseconds and negative times need 'pax'). Default 0. */
  mtime?: Time | number;
  atime?: Time | number;
  ctime?: Time | number;
  content?: Bytes;
  /** Size written in the header; default the content length (set it to forge mismatches). */
  size?: number;
  linkname?: Bytes;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, written as SCHILY.xattr.NAME records (pax only). */
  xattrs?: Record<string, Bytes>;
  /** Extra PAX records for this entry, in order (pax only). */
  pax?: Array<[Bytes, Bytes]>;
  /** Overrides the archive's format for this entry. */
  format?: WriterFormat;
}

export interface WriterOptions {
  /** Default 'pax'. */
  format?: WriterFormat;
  /** Records of a global 'g' header written first. */
  globalPax?: Array<[Bytes, Bytes]>;
  /** Append the two zero blocks. Default true. */
  end?: boolean;
  /** Pad the archive to a multiple of this (GNU tar uses 10240). Default: no padding. */
  recordSize?: number;
}

const TYPEFLAGS: Record<WriterType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  dir: '5',
  fifo: '6',
};

export function tarEntries(entries: WriterEntry[], options: WriterOptions = {}): Buffer {
  const parts: Buffer[] = [];
  const archiveFormat = options.format ?? 'pax';
  if (options.globalPax !== undefined) parts.push(paxHeader(options.globalPax, 'g'));
  for (const e of entries) parts.push(entryBlocks(e, e.format ?? archiveFormat));
  if (options.end ?? true) parts.push(Buffer.alloc(1024));
  let out = Buffer.concat(parts);
  const record = options.recordSize ?? 0;
  if (record > 0 && out.length % record !== 0) out = Buffer.concat([out, Buffer.alloc(record - (out.length % record))]);
  return out;
}

/** The blocks of one entry: extension headers, header, body, padding. */
export function entryBlocks(e: WriterEntry, format: WriterFormat): Buffer {
  const path = bytes(e.path);
  const link = bytes(e.linkname ?? '');
  const content = bytes(e.content ?? '');
  const type = e.type ?? 'file';
  const typeflag = type in TYPEFLAGS ? TYPEFLAGS[type as WriterType] : type;
  const mode = e.mode ?? (type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644);
  const size = e.size ?? content.length;
  const mtime = time(e.mtime ?? 0);
  const parts: Buffer[] = [];
  const pax: Array<[Bytes, Bytes]> = [];
  const h: HeaderFields = {
    name: path,
    mode,
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    size,
    mtime: mtime.sec,
    typeflag,
    linkname: link,
    magic: format === 'gnu' ? 'gnu' : format === 'v7' ? 'v7' : 'ustar',
    uname: e.uname ?? '',
    gname: e.gname ?? '',
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
  };

  if (format === 'gnu') {
    if (e.xattrs !== undefined || e.pax !== undefined) throw new Error('tar-writer: gnu format has no xattrs/pax');
    if (path.length > 100) parts.push(gnuLong('L', path));
    if (link.length > 100) parts.push(gnuLong('K', link));
    h.name = path.subarray(0, 100);
    h.linkname = link.subarray(0, 100);
    h.numbers = 'base256';
    if (e.atime !== undefined) h.atime = time(e.atime).sec;
    if (e.ctime !== undefined) h.ctime = time(e.ctime).sec;
  } else if (format === 'pax') {
    const split = splitUstarName(path);
    if (split === undefined) {
      pax.push(['path', path]);
      h.name = path.subarray(0, 100);
    } else {
      h.name = split.name;
      h.prefix = split.prefix;
    }
    if (link.length > 100) {
      pax.push(['linkpath', link]);
      h.linkname = link.subarray(0, 100);
    }
    if (size > 0o77777777777) {
      pax.push(['size', String(size)]);
      h.size = 0;
    }
    for (const k of ['uid', 'gid'] as const) {
      if (h[k] > 0o7777777) {
        pax.push([k, String(h[k])]);
        h[k] = 0;
      }
    }
    if (mtime.nsec !== 0 || mtime.sec < 0 || mtime.sec > 0o77777777777) {
      pax.push(['mtime', formatPaxTime(mtime)]);
      h.mtime = Math.min(Math.max(mtime.sec, 0), 0o77777777777);
    }
    if (e.atime !== undefined) pax.push(['atime', formatPaxTime(time(e.atime))]);
    if (e.ctime !== undefined) pax.push(['ctime', formatPaxTime(time(e.ctime))]);
    for (const [name, value] of Object.entries(e.xattrs ?? {})) pax.push([`SCHILY.xattr.${name}`, value]);
    pax.push(...(e.pax ?? []));
    if (pax.length > 0) parts.push(paxHeader(pax, 'x', Buffer.concat([Buffer.from('PaxHeaders/'), h.name.subarray(0, 89)])));
  } else {
    if (e.xattrs !== undefined || e.pax !== undefined) throw new Error(`tar-writer: ${format} format has no xattrs/pax`);
    if (format === 'ustar') {
      const split = splitUstarName(path);
      if (split === undefined) throw new Error(`tar-writer: path too long for ustar: ${path.toString()}`);
      h.name = split.name;
      h.prefix = split.prefix;
    } else if (path.length > 100) {
      throw new Error('tar-writer: path too long for v7');
    }
    if (link.length > 100) throw new Error(`tar-writer: link too long for ${format}`);
  }
  parts.push(header(h));
  parts.push(pad512(content));
  return Buffer.concat(parts);
}

export interface HeaderFields {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** One character, e.g. '0'; or a byte value. */
  typeflag: string | number;
  linkname?: Buffer;
  magic: 'ustar' | 'gnu' | 'v7';
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  /** ustar only. */
  prefix?: Buffer;
  /** GNU only. */
  atime?: number;
  ctime?: number;
  /** How to write numbers too big for octal: throw (default) or GNU base-256. */
  numbers?: 'octal' | 'base256';
}

/**
 * One 512-byte header block with a correct checksum.
 *
 *   off len  field                off len  field
 *     0 100  name                 257   6  magic
 *   100   8  mode                 263   2  version
 *   108   8  uid                  265  32  uname
 *   116   8  gid                  297  32  gname
 *   124  12  size                 329   8  devmajor
 *   136  12  mtime                337   8  devminor
 *   148   8  chksum               345 155  prefix (ustar) / 345 12 atime, 357 12 ctime (GNU)
 *   156   1  typeflag
 *   157 100  linkname
 */
export function header(f: HeaderFields): Buffer {
  const b = Buffer.alloc(512);
  const num = (v: number, off: number, width: number): void => {
    numberField(v, width, f.numbers ?? 'octal').copy(b, off);
  };
  put(b, 0, 100, f.name);
  num(f.mode, 100, 8);
  num(f.uid, 108, 8);
  num(f.gid, 116, 8);
  num(f.size, 124, 12);
  num(f.mtime, 136, 12);
  b[156] = typeof f.typeflag === 'number' ? f.typeflag : f.typeflag.charCodeAt(0);
  put(b, 157, 100, f.linkname ?? Buffer.alloc(0));
  if (f.magic === 'ustar') {
    b.write('ustar\x0000', 257, 'latin1');
  } else if (f.magic === 'gnu') {
    b.write('ustar  \x00', 257, 'latin1');
  }
  if (f.magic !== 'v7') {
    put(b, 265, 32, Buffer.from(f.uname ?? '', 'utf8'));
    put(b, 297, 32, Buffer.from(f.gname ?? '', 'utf8'));
    num(f.devmajor ?? 0, 329, 8);
    num(f.devminor ?? 0, 337, 8);
  }
  if (f.magic === 'ustar' && f.prefix !== undefined) put(b, 345, 155, f.prefix);
  if (f.magic === 'gnu') {
    if (f.atime !== undefined) num(f.atime, 345, 12);
    if (f.ctime !== undefined) num(f.ctime, 357, 12);
  }
  setChecksum(b);
  return b;
}

/** Writes the checksum of a header block in place (GNU tar's "%06o\0 " form). */
export function setChecksum(b: Buffer, off = 0): void {
  b.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[off + i]!;
  Buffer.from(sum.toString(8).padStart(6, '0') + '\x00 ', 'latin1').copy(b, off + 148);
}

function put(b: Buffer, off: number, width: number, value: Buffer): void {
  if (value.length > width) throw new Error(`tar-writer: field too long (${value.length} > ${width})`);
  value.copy(b, off);
}

/** An octal field: width-1 digits and a NUL, as GNU tar writes. Throws when it does not fit. */
export function octalField(v: number, width: number): Buffer {
  const s = v.toString(8);
  if (v < 0 || s.length > width - 1) throw new Error(`tar-writer: ${v} does not fit in ${width}-byte octal`);
  return Buffer.from(s.padStart(width - 1, '0') + '\x00', 'latin1');
}

/** GNU base-256: 0x80 (or 0xff when negative) then the two's-complement value, big-endian. */
export function base256Field(v: number | bigint, width: number): Buffer {
  let x = BigInt(v);
  const b = Buffer.alloc(width);
  const negative = x < 0n;
  if (negative) x = (1n << BigInt(8 * width)) + x; // two's complement in the full width
  for (let i = width - 1; i >= 0; i--) {
    b[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  b[0] = negative ? b[0]! | 0x80 : 0x80 | b[0]!;
  return b;
}

function numberField(v: number, width: number, mode: 'octal' | 'base256'): Buffer {
  const fitsOctal = v >= 0 && v.toString(8).length <= width - 1;
  if (fitsOctal) return octalField(v, width);
  if (mode === 'base256') return base256Field(v, width);
  throw new Error(`tar-writer: ${v} does not fit in a ${width}-byte octal field`);
}

/** One PAX record "LEN KEY=VALUE\n" (LEN counts itself). */
export function paxRecord(key: Bytes, value: Bytes): Buffer {
  const body = Buffer.concat([bytes(key), Buffer.from('='), bytes(value), Buffer.from('\n')]);
  let len = body.length + 2;
  while (String(len).length + 1 + body.length !== len) len = String(len).length + 1 + body.length;
  return Buffer.concat([Buffer.from(`${len} `), body]);
}

/** A PAX extended header ('x') or global header ('g'): header block plus padded records. */
export function paxHeader(records: Array<[Bytes, Bytes]>, type: 'x' | 'g', name: Buffer = Buffer.from('PaxHeader')): Buffer {
  const body = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  return Buffer.concat([header({ name: name.subarray(0, 100), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: type, magic: 'ustar' }), pad512(body)]);
}

/** A GNU long name ('L') or long link ('K') entry: the name plus a NUL, as GNU tar writes it. */
export function gnuLong(type: 'L' | 'K', name: Buffer): Buffer {
  const body = Buffer.concat([name, Buffer.alloc(1)]);
  return Buffer.concat([header({ name: Buffer.from('././@LongLink'), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: type, magic: 'gnu' }), pad512(body)]);
}

export function pad512(b: Buffer): Buffer {
  const r = b.length % 512;
  return r === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - r)]);
}

/** PAX time text: "-1.5" is 1.5 s before the epoch, i.e. { sec: -2, nsec: 500000000 }. */
export function formatPaxTime(t: Time): string {
  if (t.nsec === 0) return String(t.sec);
  if (t.sec >= 0) return `${t.sec}.${String(t.nsec).padStart(9, '0')}`;
  const whole = -(t.sec + 1);
  return `-${whole}.${String(1_000_000_000 - t.nsec).padStart(9, '0')}`;
}

/** ustar name split: prefix (≤155) '/' name (≤100), or undefined when no split works. */
export function splitUstarName(path: Buffer): { prefix?: Buffer; name: Buffer } | undefined {
  if (path.length <= 100) return { name: path };
  for (let i = Math.min(path.length - 1, 155); i > 0; i--) {
    if (path[i] === 0x2f && path.length - i - 1 <= 100 && path.length - i - 1 > 0) {
      return { prefix: path.subarray(0, i), name: path.subarray(i + 1) };
    }
  }
  return undefined;
}

function bytes(v: Bytes): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

function time(t: Time | number): Time {
  return typeof t === 'number' ? { sec: t, nsec: 0 } : t;
}
