/**
 * TreeNode: the compact object behind the `Inode` interface (types.ts).
 *
 * A tree may hold millions of entries, so the object every entry costs is kept to six fields
 * (24 + 6 × 8 = 72 bytes on a 64-bit V8 without pointer compression, against 144 for a plain
 * object with all fifteen `Inode` fields):
 *
 *   bits    kind (3 bits) << 12 | permission bits (12 bits)
 *   stamp   { uid, gid, mtime }, shared by runs of entries that agree on all three
 *   size    regular files: the logical size
 *   data    files: Content | null; directories: the children Map; symlinks: the target
 *   links   names for this inode
 *   rare    atime/ctime when they differ from mtime, xattrs when there are any, device numbers
 *
 * Callers read and write the `Inode` fields as before; the accessors are monomorphic (one class)
 * so V8 inlines them.
 */
import type { Content, Inode, NodeKind, Timestamp } from './types.js';

const KINDS: readonly NodeKind[] = ['file', 'dir', 'symlink', 'chardev', 'blockdev', 'fifo', 'socket'];
const K_FILE = 0;
const K_DIR = 1;
const K_SYMLINK = 2;
const KIND_SHIFT = 12;
const MODE_MASK = 0o7777;

/** Shared by every inode without xattrs (most of them): one map instead of tens of thousands. */
export const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

/** Owner and modification time; never mutated, replaced (so several nodes can share one). */
interface Stamp {
  readonly uid: number;
  readonly gid: number;
  readonly mtime: Timestamp;
}

/** What few entries have. */
class Rare {
  atime: Timestamp | null = null;
  ctime: Timestamp | null = null;
  xattrs: ReadonlyMap<string, Buffer> | null = null;
  major = 0;
  minor = 0;
}

export class TreeNode implements Inode {
  private bits: number;
  private stamp: Stamp;
  size = 0;
  private data: Content | Map<string, Inode> | string | null;
  links = 0;
  private rare: Rare | null = null;

  constructor(kind: NodeKind, mode: number, uid: number, gid: number, mtime: Timestamp, atime?: Timestamp, ctime?: Timestamp, xattrs?: ReadonlyMap<string, Buffer>) {
    const k = KINDS.indexOf(kind);
    if (k < 0) throw new Error(`internal: unknown node kind ${kind}`);
    this.bits = (k << KIND_SHIFT) | (mode & MODE_MASK);
    this.stamp = shareStamp(uid, gid, mtime);
    this.data = k === K_DIR ? new Map<string, Inode>() : k === K_SYMLINK ? '' : null;
    if (atime) this.atime = atime;
    if (ctime) this.ctime = ctime;
    if (xattrs) this.xattrs = xattrs;
  }

  get kind(): NodeKind {
    return KINDS[this.bits >> KIND_SHIFT]!;
  }

  get mode(): number {
    return this.bits & MODE_MASK;
  }
  set mode(v: number) {
    this.bits = (this.bits & ~MODE_MASK) | (v & MODE_MASK);
  }

  get uid(): number {
    return this.stamp.uid;
  }
  set uid(v: number) {
    this.stamp = shareStamp(v, this.stamp.gid, this.stamp.mtime);
  }

  get gid(): number {
    return this.stamp.gid;
  }
  set gid(v: number) {
    this.stamp = shareStamp(this.stamp.uid, v, this.stamp.mtime);
  }

  get mtime(): Timestamp {
    return this.stamp.mtime;
  }
  set mtime(t: Timestamp) {
    const atime = this.atime;
    const ctime = this.ctime;
    this.stamp = shareStamp(this.stamp.uid, this.stamp.gid, t);
    this.atime = atime;
    this.ctime = ctime;
  }

  get atime(): Timestamp {
    return this.rare?.atime ?? this.stamp.mtime;
  }
  set atime(t: Timestamp) {
    if (sameTime(t, this.stamp.mtime)) {
      if (this.rare) this.rare.atime = null;
    } else {
      this.ensureRare().atime = shareTime(t);
    }
  }

  get ctime(): Timestamp {
    return this.rare?.ctime ?? this.stamp.mtime;
  }
  set ctime(t: Timestamp) {
    if (sameTime(t, this.stamp.mtime)) {
      if (this.rare) this.rare.ctime = null;
    } else {
      this.ensureRare().ctime = shareTime(t);
    }
  }

  get xattrs(): ReadonlyMap<string, Buffer> {
    return this.rare?.xattrs ?? NO_XATTRS;
  }
  set xattrs(m: ReadonlyMap<string, Buffer>) {
    if (m.size === 0) {
      if (this.rare) this.rare.xattrs = null;
    } else {
      this.ensureRare().xattrs = m;
    }
  }

  get content(): Content | null {
    return this.bits >> KIND_SHIFT === K_FILE ? (this.data as Content | null) : null;
  }
  set content(c: Content | null) {
    if (this.bits >> KIND_SHIFT !== K_FILE) {
      if (c === null) return;
      throw new Error(`internal: content set on a ${this.kind}`);
    }
    this.data = c;
  }

  get target(): string {
    return this.bits >> KIND_SHIFT === K_SYMLINK ? (this.data as string) : '';
  }
  set target(t: string) {
    if (this.bits >> KIND_SHIFT !== K_SYMLINK) {
      if (t === '') return;
      throw new Error(`internal: target set on a ${this.kind}`);
    }
    this.data = t;
  }

  get children(): Map<string, Inode> | null {
    return this.bits >> KIND_SHIFT === K_DIR ? (this.data as Map<string, Inode>) : null;
  }
  set children(m: Map<string, Inode> | null) {
    if (this.bits >> KIND_SHIFT !== K_DIR) {
      if (m === null) return;
      throw new Error(`internal: children set on a ${this.kind}`);
    }
    if (m === null) throw new Error('internal: a directory needs a children map');
    this.data = m;
  }

  get major(): number {
    return this.rare?.major ?? 0;
  }
  set major(v: number) {
    if (v !== 0 || this.rare) this.ensureRare().major = v;
  }

  get minor(): number {
    return this.rare?.minor ?? 0;
  }
  set minor(v: number) {
    if (v !== 0 || this.rare) this.ensureRare().minor = v;
  }

  /** Sets the attributes an archive entry carries, all at once (absent times: the mtime). */
  setAttrs(mode: number, uid: number, gid: number, mtime: Timestamp, atime: Timestamp | undefined, ctime: Timestamp | undefined, xattrs: ReadonlyMap<string, Buffer> | undefined): void {
    this.mode = mode;
    this.stamp = shareStamp(uid, gid, mtime);
    if (this.rare) this.rare.atime = this.rare.ctime = null;
    if (atime) this.atime = atime;
    if (ctime) this.ctime = ctime;
    this.xattrs = xattrs ?? NO_XATTRS;
  }

  private ensureRare(): Rare {
    return (this.rare ??= new Rare());
  }
}

function sameTime(a: Timestamp, b: Timestamp): boolean {
  return a === b || (a.sec === b.sec && a.nsec === b.nsec);
}

/**
 * Archives give runs of entries the same owner and times (a package's files, a layer's): such
 * entries share one object instead of keeping one each. A small window of recent ones is enough.
 */
const recentStamps: Stamp[] = [];
function shareStamp(uid: number, gid: number, mtime: Timestamp): Stamp {
  for (const s of recentStamps) if (s.uid === uid && s.gid === gid && sameTime(s.mtime, mtime)) return s;
  if (recentStamps.length >= 8) recentStamps.shift();
  const own: Stamp = { uid, gid, mtime: shareTime(mtime) };
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
