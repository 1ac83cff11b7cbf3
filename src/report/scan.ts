/**
 * Walks a whole ext4 image with our reader (no mounting) and lists every entry with the space it
 * really takes: i_blocks (data, extent-tree and xattr blocks, as `du` counts), given to the first
 * name of a hard-linked inode only, so links are counted once. Children are stat'ed per directory
 * in one batch (statMany), and entries come in depth-first byte order of their names.
 */
import type { Ext4Image, FileKind, Stat } from '../ext4/reader.js';

/** i_blocks counts filesystem blocks, not 512-byte sectors, when an inode has this flag. */
const IFL_HUGE_FILE = 0x40000;

export interface ScanEntry {
  /** Byte string with a leading '/'; the root is '/'. */
  path: string;
  kind: FileKind;
  perm: number;
  uid: number;
  gid: number;
  /** Logical size in bytes (i_size). */
  size: number;
  /** Bytes of blocks allocated; 0 for the second and later names of a hard-linked inode. */
  bytes: number;
  ino: number;
  links: number;
  /** Symlinks: the target (byte string). */
  target?: string;
  major: number;
  minor: number;
}

export function allocatedBytes(st: Stat, blockSize: number): number {
  return st.flags & IFL_HUGE_FILE ? st.blocks512 * blockSize : st.blocks512 * 512;
}

export async function scanImage(img: Ext4Image): Promise<ScanEntry[]> {
  const out: ScanEntry[] = [];
  const seen = new Set<number>();
  const add = async (path: string, st: Stat): Promise<ScanEntry> => {
    const first = !seen.has(st.ino);
    seen.add(st.ino);
    const e: ScanEntry = {
      path,
      kind: st.kind,
      perm: st.perm,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      bytes: first ? allocatedBytes(st, img.blockSize) : 0,
      ino: st.ino,
      links: st.linksCount,
      major: st.major,
      minor: st.minor,
    };
    if (st.kind === 'symlink') e.target = await img.readlink(st);
    out.push(e);
    return e;
  };
  const root = await img.lookup('/');
  await add('/', root);
  const stack: [string, Stat][] = [['', root]];
  while (stack.length > 0) {
    const [dirPath, dir] = stack.pop()!;
    const listing = (await img.readdir(dir)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const stats = await img.statMany(listing.map((l) => l.ino));
    const subdirs: [string, Stat][] = [];
    for (let i = 0; i < listing.length; i++) {
      const p = `${dirPath}/${listing[i]!.name}`;
      await add(p, stats[i]!);
      if (stats[i]!.kind === 'dir') subdirs.push([p, stats[i]!]);
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
  return out;
}

/**
 * Where a path names an entry once symlinked parent directories are followed (dpkg lists /bin/ls
 * where a merged-/usr image has /usr/bin/ls). The last component is not followed.
 */
export function canonicalPath(path: string, byPath: Map<string, ScanEntry>): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  let cur: string[] = [];
  for (let i = 0, hops = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '..') {
      cur.pop();
      continue;
    }
    const p = '/' + [...cur, part].join('/');
    const e = byPath.get(p);
    if (e?.kind === 'symlink' && i < parts.length - 1 && hops++ < 40) {
      const t = e.target!.split('/').filter((x) => x !== '' && x !== '.');
      if (e.target!.startsWith('/')) cur = [];
      parts.splice(i + 1, 0, ...t);
      continue;
    }
    cur.push(part);
  }
  return '/' + cur.join('/');
}
