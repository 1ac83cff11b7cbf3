/**
 * Planning, the first step of finishing an image: number the inodes, list each directory's
 * entries, and work out what metadata every inode needs (directory blocks, extent-tree blocks,
 * slow-symlink blocks, shared xattr blocks) before anything is placed.
 *
 * Memory is what this module is careful about: a tree may hold millions of entries, so nothing
 * here is per inode except one array slot (the node at its inode number). Directories keep their
 * child inode numbers and file types in flat typed arrays, in name order — the order numbering puts
 * each directory's children map in, so the names themselves need no second copy; the few inodes that need more (extent-tree
 * blocks, slow symlinks, xattrs) are listed sparsely. Directory entries as byte buffers and
 * htree leaves are rebuilt per directory when they are needed, never held for all of them.
 */
import { fail } from '../errors.js';
import type { Inode } from '../tree/types.js';
import { planDirectory, type DirEntry } from './dir.js';
import { extentTreeBlocks } from './extents.js';
import {
  EXTENTS_IN_INODE,
  FAST_SYMLINK_MAX,
  FIRST_INO,
  FT_BLKDEV,
  FT_CHRDEV,
  FT_DIR,
  FT_FIFO,
  FT_REG,
  FT_SOCK,
  FT_SYMLINK,
  LOST_FOUND_BLOCKS,
  LOST_FOUND_INO,
  MAX_LINKS,
  ROOT_INO,
} from './format.js';
import { compareItems, placeXattrs, toXattrItem, type XattrItem } from './xattr.js';

/** A directory's entries (in name order) and what it needs. */
export interface DirInfo {
  parentIno: number;
  links: number;
  inos: Uint32Array;
  types: Uint8Array;
  /** Blocks and whether it is hashed (set by planMetadata). */
  blocks: number;
  indexed: boolean;
}

/** An xattr block shared by every inode with the same out-of-inode xattrs (up to 1024 of them). */
export interface XattrBlockRef {
  key: string;
  items: XattrItem[];
  refs: number;
  block: number;
}

export interface InodeXattrs {
  inInode: XattrItem[];
  block: XattrBlockRef | null;
}

/** The numbered tree. */
export interface TreePlan {
  /** The node at each inode number (holes for reserved numbers without one). */
  nodes: (Inode | undefined)[];
  maxIno: number;
  /** Directory inode numbers, ascending. */
  dirInos: number[];
  dirs: Map<number, DirInfo>;
  /** Inodes whose extents may not fit in the inode (directories, files of > 4 runs), ascending. */
  treeCandidates: number[];
  /** Symlinks whose target needs a block, ascending. */
  slowSymlinks: number[];
  xattrs: Map<number, InodeXattrs>;
  /** Shared xattr blocks, in the order they are placed. */
  xattrBlocks: XattrBlockRef[];
  /** Blocks of directories, extent trees, slow symlinks and xattrs. */
  metaBlocks: number;
  files: number;
  directories: number;
}

/**
 * Numbers inodes: root 2, lost+found 11, then each directory's children in name order before
 * descending into its subdirectories (so a directory's entries sit close in the inode table).
 */
export function numberInodes(root: Inode, lostFound: Inode | null): TreePlan {
  // Sized once from a count of the names (an upper bound: hard links are counted for each
  // name), not grown by push, which would leave up to half of it again unused.
  const nodes: (Inode | undefined)[] = new Array<Inode | undefined>(FIRST_INO + 1 + countNames(root)).fill(undefined);
  let next = FIRST_INO + 1;
  // only inodes that can be reached twice need a lookup: hard-linked ones and lost+found
  const linked = new Map<Inode, number>();
  const dirs = new Map<number, DirInfo>();
  const newDir = (parentIno: number): DirInfo => ({ parentIno, links: 2, inos: new Uint32Array(0), types: new Uint8Array(0), blocks: 0, indexed: false });
  nodes[ROOT_INO] = root;
  dirs.set(ROOT_INO, newDir(ROOT_INO));
  if (lostFound) {
    nodes[LOST_FOUND_INO] = lostFound;
    linked.set(lostFound, LOST_FOUND_INO);
    dirs.set(LOST_FOUND_INO, newDir(ROOT_INO));
  }
  const stack: number[] = [ROOT_INO];
  while (stack.length > 0) {
    const ino = stack.pop()!;
    const dir = nodes[ino]!;
    const info = dirs.get(ino)!;
    const names = [...dir.children!.keys()].sort();
    const inos = new Uint32Array(names.length);
    const types = new Uint8Array(names.length);
    const subdirs: number[] = [];
    for (let i = 0; i < names.length; i++) {
      const child = dir.children!.get(names[i]!)!;
      let childIno = child.kind !== 'dir' && child.links === 1 ? undefined : linked.get(child);
      if (childIno === undefined) {
        childIno = next++;
        nodes[childIno] = child;
        if (child.kind !== 'dir' && child.links !== 1) linked.set(child, childIno);
      }
      inos[i] = childIno;
      types[i] = fileType(child);
      if (child.kind === 'dir') {
        let sub = dirs.get(childIno);
        if (!sub) dirs.set(childIno, (sub = newDir(ino)));
        sub.parentIno = ino;
        info.links++;
        subdirs.push(childIno);
      }
    }
    sortChildren(dir.children!, names);
    info.inos = inos;
    info.types = types;
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
  for (const info of dirs.values()) if (info.links > MAX_LINKS) info.links = 1;
  nodes.length = next;
  return {
    nodes,
    maxIno: Math.max(FIRST_INO, next - 1),
    dirInos: [...dirs.keys()].sort((a, b) => a - b),
    dirs,
    treeCandidates: [],
    slowSymlinks: [],
    xattrs: new Map(),
    xattrBlocks: [],
    metaBlocks: 0,
    files: 0,
    directories: 0,
  };
}

/** Names in the tree below `root` (a hard-linked inode counts once per name). */
function countNames(root: Inode): number {
  let n = 0;
  const stack: Inode[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    n += dir.children!.size;
    for (const child of dir.children!.values()) if (child.kind === 'dir') stack.push(child);
  }
  return n;
}

/** A DirEntry made by a constructor, not a literal (no allocation site to pretenure; see dir.ts Hashed). */
class Entry implements DirEntry {
  constructor(
    readonly name: Buffer,
    readonly ino: number,
    readonly fileType: number,
  ) {}
}

/**
 * Puts a children map in name order (`names`, sorted), so that iterating it later gives the
 * entries in the order their inode numbers were given. Map order is no part of the tree's
 * contract (types.ts: "unordered").
 */
function sortChildren(children: Map<string, Inode>, names: string[]): void {
  let i = 0;
  let inOrder = true;
  for (const k of children.keys()) {
    if (k !== names[i++]) {
      inOrder = false;
      break;
    }
  }
  if (inOrder) return;
  const nodes = names.map((k) => children.get(k)!);
  children.clear();
  for (let j = 0; j < names.length; j++) children.set(names[j]!, nodes[j]!);
}

/** A directory's names in inode-number order (numberInodes sorted its map), checked against its plan. */
export function dirNames(dir: Inode, info: DirInfo): IterableIterator<string> {
  if (dir.children!.size !== info.inos.length) throw new Error('internal: directory changed after numbering');
  return dir.children!.keys();
}

/** A directory's entries as the directory encoder takes them (built when needed, not kept). */
export function dirEntries(dir: Inode, info: DirInfo): DirEntry[] {
  const out: DirEntry[] = new Array(info.inos.length);
  let i = 0;
  for (const name of dirNames(dir, info)) {
    out[i] = new Entry(Buffer.from(name, 'latin1'), info.inos[i]!, info.types[i]!);
    i++;
  }
  return out;
}

/** How many blocks a directory takes, and whether it is hashed. */
export function dirShape(ino: number, dir: Inode, info: DirInfo, hashSeed: Buffer, entries = dirEntries(dir, info)): ReturnType<typeof planDirectory> {
  const plan = planDirectory(entries, hashSeed);
  if (ino === LOST_FOUND_INO && plan.blocks < LOST_FOUND_BLOCKS && !plan.indexed) return { ...plan, blocks: LOST_FOUND_BLOCKS };
  return plan;
}

/**
 * Plans each inode's metadata: directory layout (hashed with `hashSeed`), extent trees of placed
 * files, slow-symlink blocks, and xattrs split between the inode and shared blocks.
 */
export function planMetadata(plan: TreePlan, hashSeed: Buffer): void {
  const byKey = new Map<string, XattrBlockRef[]>();
  for (let ino = 1; ino <= plan.maxIno; ino++) {
    const n = plan.nodes[ino];
    if (!n) continue;
    if (n.kind === 'dir') {
      plan.directories++;
      const info = plan.dirs.get(ino)!;
      const shape = dirShape(ino, n, info, hashSeed);
      info.blocks = shape.blocks;
      info.indexed = shape.indexed;
      plan.metaBlocks += shape.blocks;
      plan.treeCandidates.push(ino);
    } else if (n.kind === 'file') {
      plan.files++;
      if (n.links > MAX_LINKS) fail('EXT4_NO_SPACE', 'link file', `more than ${MAX_LINKS} hard links`, n.links);
      if (n.content) {
        if (n.content.kind !== 'placed') throw new Error('internal: unplaced content at finish');
        plan.metaBlocks += extentTreeBlocks(n.content.runs.length);
        if (n.content.runs.length > EXTENTS_IN_INODE) plan.treeCandidates.push(ino);
      }
    } else if (n.kind === 'symlink' && n.target.length > FAST_SYMLINK_MAX) {
      plan.metaBlocks += 1;
      plan.slowSymlinks.push(ino);
    }
    if (n.xattrs.size > 0) {
      const items = [...n.xattrs].map(([k, v]) => toXattrItem(k, v, n.mode)).sort(compareItems);
      const { inInode, inBlock } = placeXattrs(items);
      let block: XattrBlockRef | null = null;
      if (inBlock.length > 0) {
        const key = xattrKey(inBlock);
        const list = byKey.get(key) ?? [];
        let ref = list.find((r) => r.refs < 1024);
        if (!ref) {
          ref = { key, items: inBlock, refs: 0, block: 0 };
          list.push(ref);
          byKey.set(key, list);
          plan.xattrBlocks.push(ref);
          plan.metaBlocks += 1;
        }
        ref.refs++;
        block = ref;
      }
      plan.xattrs.set(ino, { inInode, block });
    }
  }
}

export function fileType(n: Inode): number {
  switch (n.kind) {
    case 'file':
      return FT_REG;
    case 'dir':
      return FT_DIR;
    case 'symlink':
      return FT_SYMLINK;
    case 'chardev':
      return FT_CHRDEV;
    case 'blockdev':
      return FT_BLKDEV;
    case 'fifo':
      return FT_FIFO;
    case 'socket':
      return FT_SOCK;
  }
}

function xattrKey(items: XattrItem[]): string {
  return items.map((i) => `${i.index}:${i.name.toString('hex')}=${i.value.toString('hex')}`).join(';');
}
