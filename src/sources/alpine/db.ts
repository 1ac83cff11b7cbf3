/**
 * apk's installed database, written as apk-tools 2 writes it so that `apk info`, `apk audit`
 * and `apk add` work in the guest:
 *
 *   lib/apk/db/installed    one record per package: the index header (C P V A S I T U L o m t c k
 *                           D p i), r: replaces, q: replaces priority, then per directory
 *                           F:dir [M:uid:gid:mode[:Q1xattrhash]] and per file
 *                           R:name [a:uid:gid:mode[:Q1xattrhash]] Z:Q1sha1; blank line between
 *   lib/apk/db/scripts.tar  NAME-VERSION.Q1IDENTITY.post-install … (ustar, 0755)
 *   lib/apk/db/triggers     Q1IDENTITY /dir/glob …
 *   etc/apk/world           one dependency per line, sorted
 *
 * M:/a: are left out for the defaults (directories root 0755, files root 0644, no xattrs).
 */
import { createHash } from 'node:crypto';
import { toPackage, type IndexPackage } from './apkindex.js';
import { readSmallTar } from './tar.js';
import { formatDep, parseDeps, type Dep } from './version.js';

export interface DbFile {
  name: string;
  /** `uid:gid:mode[:Q1…]` or null for the default. */
  acl: string | null;
  csum: string | null;
}

export interface DbDir {
  name: string;
  acl: string | null;
  files: DbFile[];
}

export interface DbPackage {
  pkg: IndexPackage;
  /** Header lines (everything before the first F:) in order, as written. */
  header: Array<[string, string]>;
  replaces: Dep[];
  replacesPriority: number;
  dirs: DbDir[];
}

const HEADER_ORDER = 'CPVASITULomtckDpi';

/** The record apk writes for a package it installed from `p`. */
export function newDbPackage(p: IndexPackage, replaces: Dep[], replacesPriority: number): DbPackage {
  const header: Array<[string, string]> = [];
  for (const k of HEADER_ORDER) {
    const v = p.fields.find((f) => f[0] === k)?.[1];
    if (v === undefined) continue;
    header.push([k, v]);
  }
  // apk writes these even when the index lacks them
  for (const [k, v] of [['T', p.description], ['U', p.url], ['L', p.license]] as const) {
    if (!header.some((h) => h[0] === k)) header.splice(HEADER_ORDER.indexOf(k), 0, [k, v]);
  }
  if (replaces.length) header.push(['r', replaces.map(formatDep).join(' ')]);
  if (replacesPriority) header.push(['q', String(replacesPriority)]);
  return { pkg: p, header, replaces, replacesPriority, dirs: [] };
}

export function parseInstalled(text: string): DbPackage[] {
  const out: DbPackage[] = [];
  for (const block of text.split(/\n\n+/)) {
    if (block.trim() === '') continue;
    const header: Array<[string, string]> = [];
    const dirs: DbDir[] = [];
    let dir: DbDir | null = null;
    let file: DbFile | null = null;
    for (const line of block.split('\n')) {
      if (line.length < 2 || line[1] !== ':') continue;
      const k = line[0]!;
      const v = line.slice(2);
      if (k === 'F') {
        dir = { name: v, acl: null, files: [] };
        dirs.push(dir);
        file = null;
      } else if (k === 'M' && dir) dir.acl = v;
      else if (k === 'R' && dir) {
        file = { name: v, acl: null, csum: null };
        dir.files.push(file);
      } else if (k === 'a' && file) file.acl = v;
      else if (k === 'Z' && file) file.csum = v;
      else if (!dir) header.push([k, v]);
    }
    const pkg = toPackage(header, 'lib/apk/db/installed', -1);
    out.push({
      pkg,
      header,
      replaces: parseDeps(header.find((h) => h[0] === 'r')?.[1]),
      replacesPriority: Number.parseInt(header.find((h) => h[0] === 'q')?.[1] ?? '0', 10) || 0,
      dirs,
    });
  }
  return out;
}

export function formatInstalled(pkgs: DbPackage[]): string {
  let s = '';
  for (const p of pkgs) {
    for (const [k, v] of p.header) s += `${k}:${v}\n`;
    for (const d of p.dirs) {
      s += `F:${d.name}\n`;
      if (d.acl !== null) s += `M:${d.acl}\n`;
      for (const f of d.files) {
        s += `R:${f.name}\n`;
        if (f.acl !== null) s += `a:${f.acl}\n`;
        if (f.csum !== null) s += `Z:${f.csum}\n`;
      }
    }
    s += '\n';
  }
  return s;
}

/** `uid:gid:mode` (+ `:Q1…` xattr hash), or null for apk's default of that kind. */
export function aclString(kind: 'dir' | 'file', uid: number, gid: number, mode: number, xattrs: ReadonlyMap<string, Buffer>): string | null {
  const hash = xattrHash(xattrs);
  const def = kind === 'dir' ? 0o755 : 0o644;
  if (uid === 0 && gid === 0 && mode === def && hash === null) return null;
  return `${uid}:${gid}:${mode.toString(8)}${hash ? `:${hash}` : ''}`;
}

/** apk's xattr checksum: SHA-1 over the xattrs sorted by name, each as be32 length + bytes. */
export function xattrHash(xattrs: ReadonlyMap<string, Buffer>): string | null {
  if (xattrs.size === 0) return null;
  const h = createHash('sha1');
  const len = Buffer.alloc(4);
  for (const name of [...xattrs.keys()].sort(byteOrder)) {
    const n = Buffer.from(name, 'latin1');
    const v = xattrs.get(name)!;
    len.writeUInt32BE(n.length);
    h.update(len).update(n);
    len.writeUInt32BE(v.length);
    h.update(len).update(v);
  }
  return 'Q1' + h.digest('base64');
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface ScriptEntry {
  name: string;
  body: Buffer;
  mtime: number;
}

export function readScriptsTar(buf: Buffer): ScriptEntry[] {
  return readSmallTar(buf, 'lib/apk/db/scripts.tar').map((e) => ({ name: e.entry.name, body: e.body, mtime: e.entry.mtime }));
}

/** scripts.tar as apk writes it: old-GNU-magic ustar headers, root 0755, then two zero blocks. */
export function writeScriptsTar(entries: ScriptEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const h = Buffer.alloc(512);
    h.write(e.name.slice(0, 99), 0, 'latin1');
    octal(h, 100, 8, 0o755, true);
    octal(h, 108, 8, 0, true);
    octal(h, 116, 8, 0, true);
    octal(h, 124, 12, e.body.length, false);
    octal(h, 136, 12, e.mtime, false);
    h[156] = 0x30;
    h.write('ustar  \0', 257, 'latin1');
    h.write('root', 265, 'latin1');
    h.write('root', 297, 'latin1');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    octal(h, 148, 7, sum, true);
    parts.push(h, e.body, Buffer.alloc((512 - (e.body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Octal digits right-aligned in the field, zero-padded, optionally NUL-terminated (apk's put_octal). */
function octal(b: Buffer, off: number, len: number, v: number, nul: boolean): void {
  const digits = len - (nul ? 1 : 0);
  b.write(v.toString(8).padStart(digits, '0').slice(-digits), off, 'latin1');
  if (nul) b[off + len - 1] = 0;
}

export function formatWorld(world: Dep[]): string {
  const sorted = [...world].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sorted.map((d) => formatDep(d) + '\n').join('');
}
