/**
 * PAX extended headers ('x' for the next entry, 'g' for all later ones). The body is a sequence
 * of length-prefixed records, `"%d %s=%s\n" % (len, key, value)`, where `len` counts the whole
 * record. Values are raw bytes and may hold NUL or newline (binary xattrs): only the length says
 * where a record ends, so we never split on '\n'.
 *
 * Records are parsed as they stream in, so a huge header costs no memory: only the values of keys
 * we use are kept (each at most MAX_VALUE bytes), everything else is skipped byte-for-byte. That is
 * how newer libarchive reads test_read_format_tar_pax_large_attr.tar (an 8 MB unknown attribute
 * it skips); bsdtar 3.6 instead refuses any extension header over 1 MiB.
 */
import { fail } from '../errors.js';
import { parseDecimal, parsePaxTime } from './numeric.js';
import type { Timestamp, TarWarningCode } from './types.js';

/** Largest value we keep for one record (path, xattr, ACL, sparse map...). */
export const MAX_VALUE = 1 << 20;
/** Largest total of kept values in one extended header. */
export const MAX_KEPT = 16 << 20;

/** GNU sparse keys (formats 0.0, 0.1 and 1.0); interpreted in sparse.ts. */
export interface GnuSparsePax {
  major?: number;
  minor?: number;
  name?: string;
  realsize?: number;
  /** 0.0's GNU.sparse.numblocks, or presence of offset/numbytes records. */
  v00?: boolean;
  /** Flat offset,length list from 0.1's GNU.sparse.map or 0.0's repeated offset/numbytes. */
  map?: number[];
  /** 0.0: an offset record waiting for its numbytes. */
  pendingOffset?: number;
}

/** What PAX records say about an entry. Strings are byte strings (latin1). */
export interface PaxAttrs {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: Timestamp;
  atime?: Timestamp;
  ctime?: Timestamp;
  devmajor?: number;
  devminor?: number;
  /** xattr name (byte string) → raw value, in record order. */
  xattrs?: Map<string, Buffer>;
  aclAccess?: string;
  aclDefault?: string;
  nfs4Acl?: boolean;
  gnuSparse?: GnuSparsePax;
  /** APK-TOOLS.checksum.<ALG> records (apk-tools' per-file hashes): ALG → value text. */
  checksums?: Map<string, string>;
}

/** Reports a warning; with `onceKey`, only the first warning with that code and key is reported. */
export type Warn = (code: TarWarningCode, message: string, onceKey?: string) => void;

const enum P {
  Len,
  Key,
  Value,
  Newline,
  /** After a malformed record or trailing NULs: the rest of the header is ignored. */
  Ignore,
}

/**
 * Incremental parser for one PAX header body. Feed it exactly the body bytes (not the padding),
 * then call finish(). Kept records are applied to `attrs` in order (order matters for GNU sparse
 * 0.0, which repeats keys).
 */
export class PaxReader {
  private state = P.Len;
  private len = 0;
  private lenDigits = 0;
  /** Bytes of the current record still unread (after the length field and its space). */
  private recLeft = 0;
  private key = Buffer.allocUnsafe(64);
  private keyLen = 0;
  private keyStr = '';
  private value: Buffer | undefined;
  private valueFill = 0;
  private valueLeft = 0;
  private kept = 0;
  /** Body bytes not yet seen, to reject a record length that runs past the header. */
  private bodyLeft: number;

  constructor(
    readonly attrs: PaxAttrs,
    bodySize: number,
    private readonly at: number,
    private readonly warn: Warn,
  ) {
    this.bodyLeft = bodySize;
  }

  write(buf: Buffer, start: number, end: number): void {
    let p = start;
    this.bodyLeft -= end - start;
    while (p < end) {
      switch (this.state) {
        case P.Len: {
          const c = buf[p]!;
          if (c >= 0x30 && c <= 0x39 && this.lenDigits < 18) {
            this.len = this.len * 10 + (c - 0x30);
            this.lenDigits++;
            p++;
          } else if (c === 0x20 && this.lenDigits > 0) {
            p++;
            this.recLeft = this.len - this.lenDigits - 1;
            // The record must fit in what is left of the body and hold at least "k=\n".
            if (this.recLeft < 3 || this.recLeft > this.bodyLeft + (end - p)) {
              this.malformed(`record length ${this.len}`);
            } else {
              this.state = P.Key;
              this.keyLen = 0;
            }
          } else if (c === 0 && this.lenDigits === 0) {
            // NUL padding after the last record: libarchive stops at the first NUL too.
            this.state = P.Ignore;
          } else {
            this.malformed('bad record length');
          }
          break;
        }
        case P.Key: {
          // Scan for '=' within this record; keys are short, a byte loop is fine here.
          const limit = Math.min(end, p + this.recLeft - 1);
          let q = p;
          while (q < limit && buf[q] !== 0x3d) q++;
          this.appendKey(buf, p, q);
          this.recLeft -= q - p;
          p = q;
          if (q < limit) {
            p++; // the '='
            this.recLeft--;
            this.startValue();
          } else if (this.recLeft <= 1) {
            this.malformed('record has no "="');
          }
          break;
        }
        case P.Value: {
          const take = Math.min(this.valueLeft, end - p);
          if (this.value !== undefined) buf.copy(this.value, this.valueFill, p, p + take);
          this.valueFill += take;
          this.valueLeft -= take;
          p += take;
          if (this.valueLeft === 0) this.state = P.Newline;
          break;
        }
        case P.Newline: {
          if (buf[p] !== 0x0a) {
            this.malformed(`record for ${this.keyStr} does not end in a newline`);
            break;
          }
          p++;
          if (this.value !== undefined) applyRecord(this.attrs, this.keyStr, this.value, this.at, this.warn);
          this.value = undefined;
          this.state = P.Len;
          this.len = 0;
          this.lenDigits = 0;
          break;
        }
        case P.Ignore:
          return;
      }
    }
  }

  /** End of the header body: a record cut short is malformed (warned, not fatal, like libarchive). */
  finish(): void {
    if (this.state === P.Len && this.lenDigits === 0) return;
    if (this.state === P.Ignore) return;
    this.malformed('header ends inside a record');
  }

  private appendKey(buf: Buffer, s: number, e: number): void {
    const n = e - s;
    if (n === 0) return;
    if (this.keyLen + n > this.key.length) {
      if (this.keyLen + n > MAX_VALUE) {
        fail('TAR_BAD_PAX', 'read tar', 'PAX key longer than 1 MiB', `header at offset ${this.at}`);
      }
      const bigger = Buffer.allocUnsafe(Math.max(this.key.length * 2, this.keyLen + n));
      this.key.copy(bigger, 0, 0, this.keyLen);
      this.key = bigger;
    }
    buf.copy(this.key, this.keyLen, s, e);
    this.keyLen += n;
  }

  private startValue(): void {
    this.keyStr = this.key.toString('latin1', 0, this.keyLen);
    if (this.keyLen === 0) {
      this.malformed('empty key');
      return;
    }
    this.valueLeft = this.recLeft - 1; // all but the final '\n'
    this.valueFill = 0;
    this.value = undefined;
    const kind = classifyKey(this.keyStr);
    if (kind === 'keep') {
      if (this.valueLeft > MAX_VALUE) {
        fail('TAR_BAD_PAX', 'read tar', `PAX value for ${this.keyStr} larger than 1 MiB`, `header at offset ${this.at}`);
      }
      this.kept += this.valueLeft;
      if (this.kept > MAX_KEPT) {
        fail('TAR_BAD_PAX', 'read tar', 'PAX header keeps more than 16 MiB of values', `header at offset ${this.at}`);
      }
      this.value = Buffer.allocUnsafe(this.valueLeft);
    } else if (kind === 'unknown') {
      this.warn('TAR_PAX_IGNORED', `Ignoring PAX keyword ${this.keyStr}`, this.keyStr);
    }
    this.state = this.valueLeft === 0 ? P.Newline : P.Value;
  }

  private malformed(reason: string): void {
    this.warn('TAR_PAX_MALFORMED', `Ignoring the rest of a malformed PAX header at offset ${this.at}: ${reason}`);
    this.value = undefined;
    this.state = P.Ignore;
  }
}

const APK_CHECKSUM = 'APK-TOOLS.checksum.';

/** Keys whose values we keep ('keep'), drop silently ('skip'), or drop with a one-time warning. */
function classifyKey(key: string): 'keep' | 'skip' | 'unknown' {
  if (KEPT.has(key) || key.startsWith('SCHILY.xattr.') || key.startsWith('LIBARCHIVE.xattr.')) return 'keep';
  if (key.startsWith('GNU.sparse.') || key.startsWith(APK_CHECKSUM)) return 'keep';
  if (SKIPPED.has(key) || key.startsWith('SCHILY.volhdr.')) return 'skip'; // star's volume header
  return 'unknown';
}

const KEPT = new Set([
  'path',
  'linkpath',
  'size',
  'uid',
  'gid',
  'uname',
  'gname',
  'mtime',
  'atime',
  'ctime',
  'SCHILY.devmajor',
  'SCHILY.devminor',
  'SCHILY.acl.access',
  'SCHILY.acl.default',
  'SCHILY.acl.ace',
  'RHT.security.selinux',
]);

/** Known keys with nothing to say about an ext4 image: no warning for these. */
const SKIPPED = new Set([
  'comment',
  'charset',
  'hdrcharset', // values are raw bytes either way: we never transcode names
  'SCHILY.dev',
  'SCHILY.ino',
  'SCHILY.nlink',
  'SCHILY.release',
  'SCHILY.archtype',
  'LIBARCHIVE.creationtime',
  'LIBARCHIVE.symlinktype',
  'SUN.holesdata', // Solaris sparse: the body holds every byte incl. the zero holes, so it reads as a plain file
]);

/** Applies one kept record to `attrs`. */
function applyRecord(attrs: PaxAttrs, key: string, value: Buffer, at: number, warn: Warn): void {
  switch (key) {
    case 'path':
      attrs.path = value.toString('latin1');
      return;
    case 'linkpath':
      attrs.linkpath = value.toString('latin1');
      return;
    case 'uname':
      attrs.uname = value.toString('latin1');
      return;
    case 'gname':
      attrs.gname = value.toString('latin1');
      return;
    case 'size': {
      const n = parseDecimal(value.toString('latin1'));
      // The size says where the next header is: without it we cannot go on.
      if (n === undefined) fail('TAR_BAD_PAX', 'read tar', 'invalid PAX size', `${printableValue(value)} at offset ${at}`);
      attrs.size = n;
      return;
    }
    case 'uid':
    case 'gid':
    case 'SCHILY.devmajor':
    case 'SCHILY.devminor': {
      const n = parseDecimal(value.toString('latin1'));
      if (n === undefined) {
        warn('TAR_PAX_BAD_VALUE', `Ignoring PAX ${key}=${printableValue(value)} at offset ${at}: not a decimal number`);
        return;
      }
      if (key === 'uid') attrs.uid = n;
      else if (key === 'gid') attrs.gid = n;
      else if (key === 'SCHILY.devmajor') attrs.devmajor = n;
      else attrs.devminor = n;
      return;
    }
    case 'mtime':
    case 'atime':
    case 'ctime': {
      const t = parsePaxTime(value.toString('latin1'));
      if (t === undefined) {
        warn('TAR_PAX_BAD_VALUE', `Ignoring PAX ${key}=${printableValue(value)} at offset ${at}: not a time`);
        return;
      }
      if (t.trailing) {
        warn('TAR_PAX_BAD_VALUE', `PAX ${key}=${printableValue(value)} at offset ${at} has trailing bytes; using the number before them`);
      }
      attrs[key] = t.time;
      return;
    }
    case 'SCHILY.acl.access':
      attrs.aclAccess = value.toString('latin1');
      return;
    case 'SCHILY.acl.default':
      attrs.aclDefault = value.toString('latin1');
      return;
    case 'SCHILY.acl.ace':
      attrs.nfs4Acl = true;
      return;
    case 'RHT.security.selinux':
      setXattr(attrs, 'security.selinux', value);
      return;
  }
  if (key.startsWith('SCHILY.xattr.')) {
    setXattr(attrs, key.slice('SCHILY.xattr.'.length), value);
  } else if (key.startsWith('LIBARCHIVE.xattr.')) {
    // libarchive's own form: name %-encoded, value base64 (usually unpadded).
    setXattr(attrs, urlDecode(key.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(value.toString('latin1'), 'base64'));
  } else if (key.startsWith(APK_CHECKSUM)) {
    (attrs.checksums ??= new Map()).set(key.slice(APK_CHECKSUM.length), value.toString('latin1'));
  } else if (key.startsWith('GNU.sparse.')) {
    applyGnuSparse((attrs.gnuSparse ??= {}), key, value.toString('latin1'), at, warn);
  }
}

function setXattr(attrs: PaxAttrs, name: string, value: Buffer): void {
  if (name.length === 0) return;
  (attrs.xattrs ??= new Map()).set(name, value);
}

function applyGnuSparse(s: GnuSparsePax, key: string, value: string, at: number, warn: Warn): void {
  const sub = key.slice('GNU.sparse.'.length);
  if (sub === 'name') {
    s.name = value;
    return;
  }
  if (sub === 'map') {
    s.map = parseSparseList(value, at);
    return;
  }
  const n = parseDecimal(value);
  if (n === undefined) fail('TAR_BAD_SPARSE', 'read tar', `invalid ${key}`, `${value} at offset ${at}`);
  switch (sub) {
    case 'major':
      s.major = n;
      return;
    case 'minor':
      s.minor = n;
      return;
    case 'size': // 0.0 and 0.1
    case 'realsize': // 1.0
      s.realsize = n;
      return;
    case 'numblocks':
      s.v00 = true;
      return;
    case 'offset':
      s.v00 = true;
      s.pendingOffset = n;
      return;
    case 'numbytes':
      if (s.pendingOffset === undefined) fail('TAR_BAD_SPARSE', 'read tar', 'GNU.sparse.numbytes without an offset', `offset ${at}`);
      (s.map ??= []).push(s.pendingOffset, n);
      s.pendingOffset = undefined;
      return;
  }
  warn('TAR_PAX_IGNORED', `Ignoring PAX keyword ${key}`, key);
}

/** "o,n,o,n,..." (GNU sparse 0.1 map). */
function parseSparseList(value: string, at: number): number[] {
  if (value.length === 0) return [];
  const parts = value.split(',');
  if (parts.length % 2 !== 0) fail('TAR_BAD_SPARSE', 'read tar', 'GNU.sparse.map has an odd number of values', `offset ${at}`);
  return parts.map((p) => {
    const n = parseDecimal(p);
    if (n === undefined) fail('TAR_BAD_SPARSE', 'read tar', 'invalid number in GNU.sparse.map', `${p} at offset ${at}`);
    return n;
  });
}

/** %XX decoding for LIBARCHIVE.xattr names; a '%' not followed by two hex digits stays as is. */
function urlDecode(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function printableValue(v: Buffer): string {
  const s = v.toString('latin1');
  return s.length > 64 ? `${s.slice(0, 64)}...` : s;
}

/**
 * Effective attributes: `local` ('x') over `global` ('g'); xattrs are merged name by name.
 * Either may be undefined.
 */
export function mergePax(global: PaxAttrs | undefined, local: PaxAttrs | undefined): PaxAttrs | undefined {
  if (global === undefined) return local;
  if (local === undefined) return global;
  const merged: PaxAttrs = { ...global, ...stripUndefined(local) };
  if (global.xattrs !== undefined && local.xattrs !== undefined) {
    merged.xattrs = new Map([...global.xattrs, ...local.xattrs]);
  }
  return merged;
}

/**
 * Folds a 'g' header into the global attributes. A global size or sparse map cannot describe
 * every later entry, so those are dropped with a warning (they only make sense per entry).
 */
export function addGlobal(global: PaxAttrs | undefined, g: PaxAttrs, warn: Warn): PaxAttrs {
  if (g.size !== undefined) {
    warn('TAR_PAX_IGNORED', 'Ignoring size in a global PAX header', 'g:size');
    delete g.size;
  }
  if (g.gnuSparse !== undefined) {
    warn('TAR_PAX_IGNORED', 'Ignoring GNU.sparse keys in a global PAX header', 'g:sparse');
    delete g.gnuSparse;
  }
  return mergePax(global, g) ?? g;
}

function stripUndefined(a: PaxAttrs): PaxAttrs {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a)) if (v !== undefined) out[k] = v;
  return out as PaxAttrs;
}
