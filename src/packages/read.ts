/**
 * Finds and reads the package database of a root filesystem: dpkg's first, then apk's.
 * `treeFs` reads an in-memory tree being built (file bodies from the image under construction),
 * `imageFs` a finished ext4 image through our reader.
 */
import { isRootforgeError } from '../errors.js';
import type { Ext4Image } from '../ext4/reader.js';
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
  const find = async (path: string) => {
    try {
      return await img.resolve(path);
    } catch (e) {
      if (isRootforgeError(e, 'EXT4_NOT_FOUND')) return null;
      throw e;
    }
  };
  return {
    async readFile(path) {
      const st = await find(path);
      if (st?.kind !== 'file') return null;
      if (st.size > MAX_DB_FILE) return null;
      return img.readData(st);
    },
    async list(path) {
      const st = await find(path);
      if (st?.kind !== 'dir') return null;
      return (await img.readdir(st)).map((e) => e.name).sort();
    },
  };
}
