/**
 * The tar streams inside .apk files and APKINDEX archives, read with the project's tar parser
 * (src/tar) and held to what apk-tools accepts: entry types it knows (no sparse files, volume
 * labels or unknown types), well-formed PAX records, no data after the end-of-archive blocks.
 * The first two streams of a package end without those blocks, so the end of input also ends
 * the archive. Every damage is APK_BAD_PACKAGE (the tar error is kept as `cause`).
 *
 * Known differences from apk-tools' own reader, all on archives apk's tools never write: a v7
 * (non-ustar) header, a base-256 number, a GNU 'K' long link target, PAX uid/gid/mtime and global
 * PAX headers are honoured rather than refused or ignored, and a single zero block followed by
 * more entries ends the archive with an error instead of being skipped.
 */
import { fail, isRootforgeError } from '../../errors.js';
import { TarParser } from '../../tar/parser.js';
import type { TarHeader, TarWarning } from '../../tar/types.js';

/** A tar header as apk sees it: whole-second mtime, and its SHA-1 record decoded. */
export type ApkTarEntry = Pick<TarHeader, 'type' | 'mode' | 'uid' | 'gid' | 'uname' | 'gname' | 'size' | 'linkname' | 'devmajor' | 'devminor' | 'xattrs'> & {
  /** Byte string (latin1), as in the archive. */
  name: string;
  /** Whole seconds. */
  mtime: number;
  /** APK-TOOLS.checksum.SHA1 as raw bytes (null when absent). */
  sha1: Buffer | null;
};

export interface ApkTarHandler {
  entry(e: ApkTarEntry): void;
  data(chunk: Buffer): void;
  end(e: ApkTarEntry): void;
}

/** Warnings of the tar parser that apk-tools treats as a broken package. */
const REFUSED: ReadonlySet<TarWarning['code']> = new Set(['TAR_UNKNOWN_TYPE', 'TAR_SKIPPED_ENTRY', 'TAR_PAX_MALFORMED', 'TAR_TRAILING_DATA']);

export class ApkTarParser {
  private readonly parser: TarParser;
  private current: ApkTarEntry | null = null;

  constructor(h: ApkTarHandler, private readonly what: string) {
    this.parser = new TarParser(
      {
        entry: (th) => {
          const e = toApkEntry(th, what);
          this.current = e;
          h.entry(e);
        },
        data: (c) => h.data(c),
        entryEnd: () => {
          const e = this.current!;
          this.current = null;
          h.end(e);
        },
      },
      {
        checkTrailing: true,
        onWarning: (w) => {
          if (REFUSED.has(w.code)) fail('APK_BAD_PACKAGE', `read ${what}`, w.message, w.code);
        },
      },
    );
  }

  write(chunk: Buffer): void {
    this.guard(() => this.parser.write(chunk));
  }

  /** The input ended: fine at an entry boundary (with or without end-of-archive blocks). */
  end(): void {
    // apk reads each entry's padding too: input that stops inside it is cut, not complete
    if (!this.parser.finished && this.parser.position % 512 !== 0) fail('APK_BAD_PACKAGE', `read ${this.what}`, 'tar stream cut inside an entry', `offset ${this.parser.position}`);
    this.guard(() => this.parser.end());
  }

  /** Tar damage becomes APK_BAD_PACKAGE; the handler's own errors pass through unchanged. */
  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (isRootforgeError(e) && e.code.startsWith('TAR_')) fail('APK_BAD_PACKAGE', `read ${this.what}`, e.message.replace(/^Cannot read tar: /, ''), e.code, e);
      throw e;
    }
  }
}

function toApkEntry(h: TarHeader, what: string): ApkTarEntry {
  if (h.sparse !== undefined) fail('APK_BAD_PACKAGE', `read ${what}`, 'unsupported tar entry type (sparse file)', h.path);
  let sha1: Buffer | null = null;
  const hex = h.checksums?.get('SHA1');
  if (hex !== undefined) {
    if (!/^[0-9a-f]{40}$/i.test(hex)) fail('APK_BAD_PACKAGE', `read ${what}`, 'bad APK-TOOLS.checksum.SHA1', hex);
    sha1 = Buffer.from(hex, 'hex');
  }
  return {
    name: h.path,
    type: h.type,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname,
    gname: h.gname,
    size: h.size,
    mtime: h.mtime.sec,
    linkname: h.linkname,
    devmajor: h.devmajor,
    devminor: h.devminor,
    xattrs: h.xattrs,
    sha1,
  };
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
