/**
 * TreeNode: the compact object behind the `Inode` interface (types.ts).
 *
 * A tree may hold millions of entries, so the object every entry costs is kept to four fields
 * (24 + 4 × 8 = 56 bytes on a 64-bit V8 without pointer compression, against 144 for a plain
 * object with all fifteen `Inode` fields):
 *
 *   bits    links (16 bits) << 15 | kind (3 bits) << 12 | permission bits (12 bits): a small
 *           integer, stored unboxed
 *   stamp   owner, times, xattrs and device numbers: an immutable object shared by runs of
 *           entries that agree on all of them (a package's files, a layer's), replaced on change
 *   size    regular files: the logical size
 *   data    files: Content | null; directories: the children Map; symlinks: the target
 *
 * Callers read and write the `Inode` fields as before; the accessors are monomorphic (one class)
 * so V8 inlines them. A link count above 65534 (only ever an error at finish), or below 0, is kept
 * aside.
 */
import type { Content, Inode, NodeKind, Timestamp } from './types.js';

const KINDS: readonly NodeKind[] = ['file', 'dir', 'symlink', 'chardev', 'blockdev', 'fifo', 'socket'];
const K_FILE = 0;
const K_DIR = 1;
const K_SYMLINK = 2;
const KIND_SHIFT = 12;
const KIND_MASK = 7;
const MODE_MASK = 0o7777;
const LINKS_SHIFT = 15;
/** Links field value meaning "see bigLinks". */
const LINKS_BIG = 0xffff;
const LOW_MASK = (1 << LINKS_SHIFT) - 1;

/** Link counts too big for `bits` (a name added 65535 times), by node. */
const bigLinks = new WeakMap<TreeNode, number>();

/** Shared by every inode without xattrs (most of them): one map instead of tens of thousands. */
export const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

/** Everything but kind, mode, links, size and data. Never mutated (nodes share them). */
class Stamp {
  constructor(
    readonly uid: number,
    readonly gid: number,
    readonly mtime: Timestamp,
    /** The mtime object itself when equal to it. */
    readonly atime: Timestamp,
    readonly ctime: Timestamp,
    readonly xattrs: ReadonlyMap<string, Buffer>,
    readonly major: number,
    readonly minor: number,
  ) {}
}

export class TreeNode implements Inode {
  private bits: number;
  private stamp: Stamp;
  size = 0;
  private data: Content | Map<string, Inode> | string | null;

  constructor(kind: NodeKind, mode: number, uid: number, gid: number, mtime: Timestamp, atime?: Timestamp, ctime?: Timestamp, xattrs?: ReadonlyMap<string, Buffer>) {
    const k = kindIndex(kind);
    this.bits = (k << KIND_SHIFT) | (mode & MODE_MASK);
    this.stamp = shareStamp(uid, gid, mtime, atime ?? mtime, ctime ?? mtime, xattrs ?? NO_XATTRS, 0, 0);
    this.data = k === K_DIR ? new Map<string, Inode>() : k === K_SYMLINK ? '' : null;
  }

  get kind(): NodeKind {
    return KINDS[(this.bits >> KIND_SHIFT) & KIND_MASK]!;
  }

  get mode(): number {
    return this.bits & MODE_MASK;
  }
  set mode(v: number) {
    this.bits = (this.bits & ~MODE_MASK) | (v & MODE_MASK);
  }

  get links(): number {
    const l = this.bits >>> LINKS_SHIFT;
    return l === LINKS_BIG ? bigLinks.get(this)! : l;
  }
  set links(v: number) {
    if (!Number.isSafeInteger(v)) throw new Error(`internal: bad link count ${v}`);
    const big = v < 0 || v >= LINKS_BIG;
    if (big) bigLinks.set(this, v);
    else if (this.bits >>> LINKS_SHIFT === LINKS_BIG) bigLinks.delete(this);
    this.bits = (this.bits & LOW_MASK) | ((big ? LINKS_BIG : v) << LINKS_SHIFT);
  }

  get uid(): number {
    return this.stamp.uid;
  }
  set uid(v: number) {
    const s = this.stamp;
    this.stamp = shareStamp(v, s.gid, s.mtime, s.atime, s.ctime, s.xattrs, s.major, s.minor);
  }

  get gid(): number {
    return this.stamp.gid;
  }
  set gid(v: number) {
    const s = this.stamp;
    this.stamp = shareStamp(s.uid, v, s.mtime, s.atime, s.ctime, s.xattrs, s.major, s.minor);
  }

  get mtime(): Timestamp {
    return this.stamp.mtime;
  }
  set mtime(t: Timestamp) {
    const s = this.stamp;
    this.stamp = shareStamp(s.uid, s.gid, t, s.atime, s.ctime, s.xattrs, s.major, s.minor);
  }

  get atime(): Timestamp {
    return this.stamp.atime;
  }
  set atime(t: Timestamp) {
    const s = this.stamp;
    this.stamp = shareStamp(s.uid, s.gid, s.mtime, t, s.ctime, s.xattrs, s.major, s.minor);
  }

  get ctime(): Timestamp {
    return this.stamp.ctime;
  }
  set ctime(t: Timestamp) {
    const s = this.stamp;
    this.stamp = shareStamp(s.uid, s.gid, s.mtime, s.atime, t, s.xattrs, s.major, s.minor);
  }

  get xattrs(): ReadonlyMap<string, Buffer> {
    return this.stamp.xattrs;
  }
  set xattrs(m: ReadonlyMap<string, Buffer>) {
    const s = this.stamp;
    this.stamp = shareStamp(s.uid, s.gid, s.mtime, s.atime, s.ctime, m, s.major, s.minor);
  }

  get major(): number {
    return this.stamp.major;
  }
  set major(v: number) {
    const s = this.stamp;
    this.stamp = shareStamp(s.uid, s.gid, s.mtime, s.atime, s.ctime, s.xattrs, v, s.minor);
  }

  get minor(): number {
    return this.stamp.minor;
  }
  set minor(v: number) {
    const s = this.stamp;
    this.stamp = shareStamp(s.uid, s.gid, s.mtime, s.atime, s.ctime, s.xattrs, s.major, v);
  }

  get content(): Content | null {
    return ((this.bits >> KIND_SHIFT) & KIND_MASK) === K_FILE ? (this.data as Content | null) : null;
  }
  set content(c: Content | null) {
    if (((this.bits >> KIND_SHIFT) & KIND_MASK) !== K_FILE) {
      if (c === null) return;
      throw new Error(`internal: content set on a ${this.kind}`);
    }
    this.data = c;
  }

  get target(): string {
    return ((this.bits >> KIND_SHIFT) & KIND_MASK) === K_SYMLINK ? (this.data as string) : '';
  }
  set target(t: string) {
    if (((this.bits >> KIND_SHIFT) & KIND_MASK) !== K_SYMLINK) {
      if (t === '') return;
      throw new Error(`internal: target set on a ${this.kind}`);
    }
    this.data = t;
  }

  get children(): Map<string, Inode> | null {
    return ((this.bits >> KIND_SHIFT) & KIND_MASK) === K_DIR ? (this.data as Map<string, Inode>) : null;
  }
  set children(m: Map<string, Inode> | null) {
    if (((this.bits >> KIND_SHIFT) & KIND_MASK) !== K_DIR) {
      if (m === null) return;
      throw new Error(`internal: children set on a ${this.kind}`);
    }
    if (m === null) throw new Error('internal: a directory needs a children map');
    this.data = m;
  }

  /** Sets the attributes an archive entry carries, all at once (absent times: the mtime). */
  setAttrs(mode: number, uid: number, gid: number, mtime: Timestamp, atime: Timestamp | undefined, ctime: Timestamp | undefined, xattrs: ReadonlyMap<string, Buffer> | undefined): void {
    this.mode = mode;
    const s = this.stamp;
    this.stamp = shareStamp(uid, gid, mtime, atime ?? mtime, ctime ?? mtime, xattrs ?? NO_XATTRS, s.major, s.minor);
  }

  /** Sets device numbers. */
  setDevice(major: number, minor: number): void {
    const s = this.stamp;
    this.stamp = shareStamp(s.uid, s.gid, s.mtime, s.atime, s.ctime, s.xattrs, major, minor);
  }
}

function kindIndex(kind: NodeKind): number {
  switch (kind) {
    case 'file':
      return K_FILE;
    case 'dir':
      return K_DIR;
    case 'symlink':
      return K_SYMLINK;
    case 'chardev':
      return 3;
    case 'blockdev':
      return 4;
    case 'fifo':
      return 5;
    case 'socket':
      return 6;
  }
  throw new Error(`internal: unknown node kind ${String(kind)}`);
}

function sameTime(a: Timestamp, b: Timestamp): boolean {
  return a === b || (a.sec === b.sec && a.nsec === b.nsec);
}

/**
 * Recent stamps, for sharing: archives list a package's or a layer's entries together, with the
 * same owner and times, so a small window finds most matches.
 */
const recentStamps: Stamp[] = [];
function shareStamp(uid: number, gid: number, mtime: Timestamp, atime: Timestamp, ctime: Timestamp, xattrs: ReadonlyMap<string, Buffer>, major: number, minor: number): Stamp {
  if (xattrs.size === 0) xattrs = NO_XATTRS;
  for (let i = recentStamps.length - 1; i >= 0; i--) {
    const s = recentStamps[i]!;
    if (s.uid === uid && s.gid === gid && s.xattrs === xattrs && s.major === major && s.minor === minor && sameTime(s.mtime, mtime) && sameTime(s.atime, atime) && sameTime(s.ctime, ctime)) {
      return s;
    }
  }
  if (recentStamps.length >= 8) recentStamps.shift();
  const m = shareTime(mtime);
  const own = new Stamp(uid, gid, m, sameTime(atime, m) ? m : shareTime(atime), sameTime(ctime, m) ? m : shareTime(ctime), xattrs, major, minor);
  recentStamps.push(own);
  return own;
}

const recentTimes: Timestamp[] = [];
function shareTime(t: Timestamp): Timestamp {
  for (const r of recentTimes) if (r.sec === t.sec && r.nsec === t.nsec) return r;
  if (recentTimes.length >= 4) recentTimes.shift();
  const own = { sec: t.sec, nsec: t.nsec };
  recentTimes.push(own);
  return own;
}
