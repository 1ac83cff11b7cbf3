/**
 * The tar dialect inside .apk files and APKINDEX archives, read the way apk-tools reads it:
 * ustar headers, per-entry PAX headers ('x') of which only path, linkpath, SCHILY.xattr.* and
 * APK-TOOLS.checksum.* matter, GNU long names ('L'), global headers ignored. The first two
 * streams of a package end without the two zero blocks, so the end of input also ends the
 * archive. A push parser: feed chunks with write(), entries and bodies come out synchronously.
 */
import { fail } from '../../errors.js';

export type ApkEntryType = 'file' | 'hardlink' | 'symlink' | 'dir' | 'chardev' | 'blockdev' | 'fifo';

export interface ApkTarEntry {
  /** Byte string (latin1), as in the archive. */
  name: string;
  type: ApkEntryType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
  /** APK-TOOLS.checksum.SHA1 as raw bytes (null when absent). */
  sha1: Buffer | null;
}

export interface ApkTarHandler {
  entry(e: ApkTarEntry): void;
  data(chunk: Buffer): void;
  end(e: ApkTarEntry): void;
}

const TYPES: Record<string, ApkEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'chardev',
  '4': 'blockdev',
  '5': 'dir',
  '6': 'fifo',
};

export class ApkTarParser {
  private head = Buffer.alloc(512);
  private headFill = 0;
  /** Bytes of the current body still to deliver, then padding to skip. */
  private bodyLeft = 0;
  private padLeft = 0;
  private meta: { kind: 'x' | 'L' | 'skip'; buf: Buffer; fill: number } | null = null;
  private current: ApkTarEntry | null = null;
  private pax: Map<string, Buffer> | null = null;
  private longName: string | null = null;
  private zeros = 0;
  private done = false;
  private offset = 0;

  constructor(private readonly h: ApkTarHandler, private readonly what: string) {}

  write(chunk: Buffer): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, chunk.length - p);
        const part = chunk.subarray(p, p + n);
        if (this.meta) {
          part.copy(this.meta.buf, this.meta.fill);
          this.meta.fill += n;
        } else this.h.data(part);
        this.bodyLeft -= n;
        p += n;
        this.offset += n;
        if (this.bodyLeft === 0) this.finishBody();
        continue;
      }
      if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, chunk.length - p);
        this.padLeft -= n;
        p += n;
        this.offset += n;
        continue;
      }
      const n = Math.min(512 - this.headFill, chunk.length - p);
      chunk.copy(this.head, this.headFill, p, p + n);
      this.headFill += n;
      p += n;
      this.offset += n;
      if (this.headFill === 512) {
        this.headFill = 0;
        this.header();
      }
    }
  }

  /** The input ended: fine at an entry boundary (with or without end-of-archive blocks). */
  end(): void {
    if (this.headFill !== 0 || this.bodyLeft > 0 || this.padLeft > 0 || this.meta || this.pax || this.longName !== null) {
      fail('APK_BAD_PACKAGE', `read ${this.what}`, 'tar stream cut inside an entry', `offset ${this.offset}`);
    }
  }

  private header(): void {
    const b = this.head;
    if (this.done) {
      if (b.some((x) => x !== 0)) fail('APK_BAD_PACKAGE', `read ${this.what}`, 'data after the end of the tar archive', `offset ${this.offset}`);
      return;
    }
    if (b[0] === 0) {
      if (b.some((x) => x !== 0)) fail('APK_BAD_PACKAGE', `read ${this.what}`, 'bad tar header', `offset ${this.offset}`);
      if (++this.zeros === 2) this.done = true;
      return;
    }
    this.zeros = 0;
    if (b.toString('latin1', 257, 262) !== 'ustar') fail('APK_BAD_PACKAGE', `read ${this.what}`, 'not a ustar header', `offset ${this.offset - 512}`);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
    if (sum !== octal(b, 148, 8, this.what)) fail('APK_BAD_PACKAGE', `read ${this.what}`, 'tar header checksum mismatch', `offset ${this.offset - 512}`);
    const flag = String.fromCharCode(b[156]!);
    const size = octal(b, 124, 12, this.what);
    if (flag === 'x' || flag === 'L' || flag === 'g' || flag === 'K') {
      if (size > 1 << 24) fail('APK_BAD_PACKAGE', `read ${this.what}`, 'tar metadata entry too large', size);
      this.meta = { kind: flag === 'x' ? 'x' : flag === 'L' ? 'L' : 'skip', buf: Buffer.alloc(size), fill: 0 };
      this.startBody(size);
      return;
    }
    const type = TYPES[flag];
    if (!type) fail('APK_BAD_PACKAGE', `read ${this.what}`, 'unsupported tar entry type', flag);
    let name = cstr(b, 0, 100);
    const prefix = cstr(b, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
    let linkname = cstr(b, 157, 100);
    const xattrs = new Map<string, Buffer>();
    let sha1: Buffer | null = null;
    if (this.longName !== null) name = this.longName;
    if (this.pax) {
      for (const [k, v] of this.pax) {
        if (k === 'path') name = v.toString('latin1');
        else if (k === 'linkpath') linkname = v.toString('latin1');
        else if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
        else if (k === 'APK-TOOLS.checksum.SHA1') {
          const hex = v.toString('latin1');
          if (!/^[0-9a-f]{40}$/i.test(hex)) fail('APK_BAD_PACKAGE', `read ${this.what}`, 'bad APK-TOOLS.checksum.SHA1', hex);
          sha1 = Buffer.from(hex, 'hex');
        }
      }
    }
    this.pax = null;
    this.longName = null;
    const e: ApkTarEntry = {
      name,
      type,
      mode: octal(b, 100, 8, this.what) & 0o7777,
      uid: octal(b, 108, 8, this.what),
      gid: octal(b, 116, 8, this.what),
      uname: cstr(b, 265, 32),
      gname: cstr(b, 297, 32),
      size: type === 'file' ? size : 0,
      mtime: octal(b, 136, 12, this.what),
      linkname,
      devmajor: octal(b, 329, 8, this.what),
      devminor: octal(b, 337, 8, this.what),
      xattrs,
      sha1,
    };
    this.current = e;
    this.h.entry(e);
    // apk reads a body for any entry with a size; only regular files keep it
    this.startBody(size);
  }

  private startBody(size: number): void {
    this.bodyLeft = size;
    this.padLeft = (512 - (size % 512)) % 512;
    if (size === 0) this.finishBody();
  }

  private finishBody(): void {
    if (this.meta) {
      const m = this.meta;
      this.meta = null;
      if (m.kind === 'x') this.pax = parsePax(m.buf, this.what);
      else if (m.kind === 'L') this.longName = cstr(m.buf, 0, m.buf.length);
      return;
    }
    const e = this.current!;
    this.current = null;
    this.h.end(e);
  }
}

function cstr(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('latin1', off, end < 0 || end > off + len ? off + len : end);
}

function octal(b: Buffer, off: number, len: number, what: string): number {
  const s = cstr(b, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) fail('APK_BAD_PACKAGE', `read ${what}`, 'bad number in tar header', s);
  return parseInt(s, 8);
}

function parsePax(buf: Buffer, what: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let p = 0;
  while (p < buf.length) {
    const sp = buf.indexOf(0x20, p);
    const len = sp < 0 ? NaN : parseInt(buf.toString('latin1', p, sp), 10);
    if (!(len > 0) || p + len > buf.length || buf[p + len - 1] !== 0x0a) fail('APK_BAD_PACKAGE', `read ${what}`, 'malformed PAX record', `at ${p}`);
    const rec = buf.subarray(sp + 1, p + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) fail('APK_BAD_PACKAGE', `read ${what}`, 'malformed PAX record', `at ${p}`);
    out.set(rec.toString('latin1', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    p += len;
  }
  return out;
}

/** Reads a whole (small) tar into memory: control streams and indexes. */
export function readSmallTar(data: Buffer, what: string): Array<{ entry: ApkTarEntry; body: Buffer }> {
  const out: Array<{ entry: ApkTarEntry; body: Buffer }> = [];
  let parts: Buffer[] = [];
  const p = new ApkTarParser(
    {
      entry: () => {
        parts = [];
      },
      data: (c) => parts.push(Buffer.from(c)),
      end: (e) => out.push({ entry: e, body: Buffer.concat(parts) }),
    },
    what,
  );
  p.write(data);
  p.end();
  return out;
}
