/**
 * Finds and reads the package database of a root filesystem: dpkg's first, then apk's.
 * `treeFs` reads an in-memory tree being built (file bodies from the image under construction),
 * `imageFs` a finished ext4 image through our reader.
 */
import { fail } from '../errors.js';
import type { Ext4Image, Stat } from '../ext4/reader.js';
import { ROOT_INO } from '../ext4/format.js';
import type { ContentSink } from '../tree/sink.js';
import type { FsTree } from '../tree/tree.js';
import type { Inode } from '../tree/types.js';
import { readApk } from './apk.js';
import { readDpkg } from './dpkg.js';
import type { PackageDb, PackageFs } from './types.js';

/** Databases bigger than this are refused rather than read into memory (a devbox's is ≈3 MB). */
const MAX_DB_FILE = 256 << 20;

export async function readPackageDb(fs: PackageFs, options: { files?: boolean } = {}): Promise<PackageDb | null> {
  const files = options.files ?? false;
  const dpkg = await readDpkg(fs, files);
  if (dpkg) return { manager: 'dpkg', packages: dpkg };
  const apk = await readApk(fs, files);
  if (apk) return { manager: 'apk', packages: apk };
  return null;
}

export function treeFs(tree: FsTree, writer: Pick<ContentSink, 'readContent'>): PackageFs {
  const find = (path: string): Inode | undefined => {
    const follow = tree.followParentLinks;
    tree.followParentLinks = true;
    try {
      let p = path;
      let node = tree.get(p);
      for (let hops = 0; node?.kind === 'symlink' && hops < 40; hops++) {
        p = node.target.startsWith('/') ? node.target : `${p.slice(0, p.lastIndexOf('/') + 1)}${node.target}`;
        node = tree.get(p);
      }
      return node;
    } finally {
      tree.followParentLinks = follow;
    }
  };
  return {
    async readFile(path) {
      const n = find(path);
      if (n?.kind !== 'file') return null;
      return writer.readContent(n.content, n.size, MAX_DB_FILE);
    },
    async list(path) {
      const n = find(path);
      return n?.kind === 'dir' ? [...n.children!.keys()].sort() : null;
    },
  };
}

export function imageFs(img: Ext4Image): PackageFs {
  // A database is hundreds of files in one directory (dpkg's info/): list each directory once.
  const dirs = new Map<number, Map<string, number>>();
  const entries = async (st: Stat) => {
    let m = dirs.get(st.ino);
    if (!m) {
      m = new Map((await img.readdir(st)).map((e) => [e.name, e.ino]));
      dirs.set(st.ino, m);
    }
    return m;
  };
  /** Like Ext4Image.resolve (symlinks followed, absolute ones inside the image), null when absent. */
  const find = async (path: string): Promise<Stat | null> => {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    const stack: Stat[] = [await img.stat(ROOT_INO)];
    for (let hops = 0; parts.length > 0; ) {
      const part = parts.shift()!;
      const dir = stack[stack.length - 1]!;
      if (part === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      if (dir.kind !== 'dir') return null;
      const ino = (await entries(dir)).get(part);
      if (ino === undefined) return null;
      const st = await img.stat(ino);
      if (st.kind === 'symlink') {
        if (++hops > 40) return null;
        const target = await img.readlink(st);
        if (target.startsWith('/')) stack.length = 1;
        parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
        continue;
      }
      stack.push(st);
    }
    return stack[stack.length - 1]!;
  };
  return {
    async readFile(path) {
      const st = await find(path);
      if (st?.kind !== 'file') return null;
      if (st.size > MAX_DB_FILE) fail('IO_FAILED', `read package database /${path}`, `larger than ${MAX_DB_FILE} bytes`, st.size);
      return img.readData(st);
    },
    async list(path) {
      const st = await find(path);
      if (st?.kind !== 'dir') return null;
      return [...(await entries(st)).keys()].sort();
    },
  };
}
