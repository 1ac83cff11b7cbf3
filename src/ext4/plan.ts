/**
 * Planning, the first step of finishing an image: number the inodes, list each directory's
 * entries, and work out what metadata every inode needs (directory blocks, extent-tree blocks,
 * slow-symlink blocks, shared xattr blocks) before anything is placed.
 */
import { fail } from '../errors.js';
import type { Inode } from '../tree/types.js';
import type { Run } from './alloc.js';
import type { Extent } from './codec.js';
import { planDirectory, type DirEntry, type DirPlan } from './dir.js';
import { extentTreeBlocks } from './extents.js';
import {
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

/** One inode on its way into the image. */
export interface Planned {
  node: Inode;
  ino: number;
  parentIno: number; // directories
  entries: DirEntry[]; // directories
  dirPlan: DirPlan | null;
  dirRuns: Run[];
  extents: Extent[]; // data extents (files, dirs and slow symlinks after allocation)
  treeBlocks: number[]; // extent tree blocks
  inodeXattrs: XattrItem[];
  xattrBlock: XattrBlockRef | null;
  symlinkBlock: number;
  links: number;
}

/** An xattr block shared by every inode with the same out-of-inode xattrs (up to 1024 of them). */
export interface XattrBlockRef {
  key: string;
  items: XattrItem[];
  refs: number;
  block: number;
}

/** What the inodes need besides their inode-table slots. */
export interface MetadataNeeds {
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
 * The result is sorted by inode number.
 */
export function numberInodes(root: Inode, lostFound: Inode | null): Planned[] {
  const seen = new Map<Inode, Planned>();
  const out: Planned[] = [];
  let next = FIRST_INO + 1;
  const make = (node: Inode, ino: number, parentIno: number): Planned => {
    const p: Planned = {
      node,
      ino,
      parentIno,
      entries: [],
      dirPlan: null,
      dirRuns: [],
      extents: [],
      treeBlocks: [],
      inodeXattrs: [],
      xattrBlock: null,
      symlinkBlock: 0,
      links: node.kind === 'dir' ? 2 : node.links,
    };
    seen.set(node, p);
    out.push(p);
    return p;
  };
  make(root, ROOT_INO, ROOT_INO);
  if (lostFound) make(lostFound, LOST_FOUND_INO, ROOT_INO);
  const stack: Planned[] = [seen.get(root)!];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const names = [...dir.node.children!.keys()].sort();
    const subdirs: Planned[] = [];
    for (const name of names) {
      const child = dir.node.children!.get(name)!;
      let p = seen.get(child);
      if (!p) p = make(child, next++, dir.ino);
      dir.entries.push({ name: Buffer.from(name, 'latin1'), ino: p.ino, fileType: fileType(child) });
      if (child.kind === 'dir') {
        p.parentIno = dir.ino;
        dir.links++;
        subdirs.push(p);
      }
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
  for (const p of out) if (p.node.kind === 'dir' && p.links > MAX_LINKS) p.links = 1;
  out.sort((a, b) => a.ino - b.ino);
  return out;
}

/**
 * Plans each inode's metadata: directory layout (hashed with `hashSeed`), data extents of placed
 * files, slow-symlink blocks, and xattrs split between the inode and shared blocks.
 */
export function planMetadata(planned: Planned[], hashSeed: Buffer): MetadataNeeds {
  const byKey = new Map<string, XattrBlockRef[]>();
  const xattrBlocks: XattrBlockRef[] = [];
  let metaBlocks = 0;
  let files = 0;
  let directories = 0;
  for (const p of planned) {
    const n = p.node;
    if (n.kind === 'dir') {
      directories++;
      p.dirPlan = planDirectory(p.entries, hashSeed);
      if (p.ino === LOST_FOUND_INO && p.dirPlan.blocks < LOST_FOUND_BLOCKS && !p.dirPlan.indexed) {
        p.dirPlan = { ...p.dirPlan, blocks: LOST_FOUND_BLOCKS };
      }
      metaBlocks += p.dirPlan.blocks;
    } else if (n.kind === 'file') {
      files++;
      if (p.links > MAX_LINKS) fail('EXT4_NO_SPACE', 'link file', `more than ${MAX_LINKS} hard links`, p.links);
      if (n.content) {
        if (n.content.kind !== 'placed') throw new Error('internal: unplaced content at finish');
        p.extents = n.content.runs.map((r) => ({ logical: r.logical, physical: r.physical, length: r.length }));
        metaBlocks += extentTreeBlocks(p.extents.length);
      }
    } else if (n.kind === 'symlink' && n.target.length > FAST_SYMLINK_MAX) {
      metaBlocks += 1;
    }
    if (n.xattrs.size > 0) {
      const items = [...n.xattrs].map(([k, v]) => toXattrItem(k, v, n.mode)).sort(compareItems);
      const { inInode, inBlock } = placeXattrs(items);
      p.inodeXattrs = inInode;
      if (inBlock.length > 0) {
        const key = xattrKey(inBlock);
        const list = byKey.get(key) ?? [];
        let ref = list.find((r) => r.refs < 1024);
        if (!ref) {
          ref = { key, items: inBlock, refs: 0, block: 0 };
          list.push(ref);
          byKey.set(key, list);
          xattrBlocks.push(ref);
          metaBlocks += 1;
        }
        ref.refs++;
        p.xattrBlock = ref;
      }
    }
  }
  return { xattrBlocks, metaBlocks, files, directories };
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
