/**
 * FsTree: a directory tree with tar-like replace semantics.
 *
 * - A later entry at an existing path replaces it; replacing a directory with a non-directory
 *   drops the directory's subtree.
 * - A directory entry for an existing directory only updates its metadata (children are kept).
 * - Missing parents are created root-owned 0755 with the tree's default time.
 * - Hard links are several names for one Inode object; `links` counts them.
 * - Paths are normalized lexically: leading '/', './', '.' and empty components are dropped and
 *   '..' is resolved without ever leaving the root.
 * When a file's last name goes away its content is handed to `onRelease`, so blocks already
 * written to the image can be reused.
 */
import { fail, printable } from '../errors.js';
import { TreeNode } from './node.js';
import type { Content, Inode, NodeKind, Timestamp } from './types.js';

/** Linux limits: NAME_MAX, and PATH_MAX - 1 for a symlink target. */
const MAX_NAME = 255;
const MAX_TARGET = 4095;


export interface TreeOptions {
  /** Time for implied parents and the root when no entry sets them. Default: epoch 0. */
  defaultTime?: Timestamp;
  /** Called with the content of a file whose last name was removed. */
  onRelease?: (content: Content) => void;
  /** Told about attributes that had to be dropped. */
  onWarning?: (w: { code: string; message: string }) => void;
}

export interface NodeAttrs {
  mode: number;
  uid: number;
  gid: number;
  mtime: Timestamp;
  atime?: Timestamp | undefined;
  ctime?: Timestamp | undefined;
  xattrs?: ReadonlyMap<string, Buffer> | undefined;
}

export class FsTree {
  readonly root: Inode;
  /**
   * Follow symlinks met as parent directories (like writing into a mounted filesystem), instead
   * of replacing them with directories (tar semantics). Provisioning turns this on so writes to
   * /sbin/init land in /usr/sbin on merged-/usr bases.
   */
  followParentLinks = false;
  private readonly defaultTime: Timestamp;
  private readonly onRelease: ((content: Content) => void) | undefined;
  private readonly onWarning: ((w: { code: string; message: string }) => void) | undefined;

  constructor(options: TreeOptions = {}) {
    this.defaultTime = options.defaultTime ?? { sec: 0, nsec: 0 };
    this.onRelease = options.onRelease;
    this.onWarning = options.onWarning;
    this.root = this.implicitDir();
  }

  /** Splits a path into normalized components (byte strings). [] is the root. */
  static split(path: string): string[] {
    const out: string[] = [];
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        out.pop();
        continue;
      }
      out.push(part);
    }
    return out;
  }

  /** Looks a path up; the last component is never followed, parents only with followParentLinks. */
  get(path: string): Inode | undefined {
    let node: Inode = this.root;
    const stack: Inode[] = [];
    const parts = FsTree.split(path);
    for (let i = 0; i < parts.length; i++) {
      let next = node.children?.get(parts[i]!);
      if (next?.kind === 'symlink' && this.followParentLinks && i < parts.length - 1) {
        next = this.resolveLink(stack, node, next.target, 0) ?? undefined;
      }
      if (!next) return undefined;
      stack.push(node);
      node = next;
    }
    return node;
  }

  addDir(path: string, attrs: NodeAttrs): Inode {
    const parts = FsTree.split(path);
    if (parts.length === 0) {
      applyAttrs(this.root, attrs);
      return this.root;
    }
    const parent = this.parentDir(parts);
    const name = parts[parts.length - 1]!;
    const existing = parent.children!.get(name);
    if (existing && existing.kind === 'dir') {
      applyAttrs(existing, attrs);
      return existing;
    }
    const node = newInode('dir', attrs);
    this.put(parent, name, node);
    return node;
  }

  addFile(path: string, attrs: NodeAttrs, size: number, content: Content | null): Inode {
    const node = newInode('file', attrs);
    node.size = size;
    node.content = content;
    this.addLeaf(path, node);
    return node;
  }

  addSymlink(path: string, attrs: NodeAttrs, target: string): Inode {
    if (target.length > MAX_TARGET) fail('EXT4_SYMLINK_TOO_LONG', `add symlink ${path}`, `target longer than ${MAX_TARGET} bytes`, target.length);
    if (target.length === 0) fail('TREE_BAD_PATH', `add symlink ${path}`, 'empty symlink target', path);
    // Linux creates every symlink 0777 and cannot change it; an archive's mode for one is noise.
    const node = newInode('symlink', { ...attrs, mode: 0o777 });
    node.target = target;
    this.addLeaf(path, node);
    return node;
  }

  addSpecial(path: string, kind: 'chardev' | 'blockdev' | 'fifo' | 'socket', attrs: NodeAttrs, major = 0, minor = 0): Inode {
    const node = newInode(kind, attrs);
    (node as TreeNode).setDevice(major, minor);
    this.addLeaf(path, node);
    return node;
  }

  /** Makes `path` another name for the inode at `target` (a tar hard link). */
  link(path: string, target: string): Inode {
    const node = this.get(target);
    if (!node) fail('TAR_HARDLINK_TARGET', `link ${path}`, 'hard-link target does not exist', target);
    if (node.kind === 'dir') fail('TAR_HARDLINK_TARGET', `link ${path}`, 'hard-link target is a directory', target);
    const parts = FsTree.split(path);
    if (parts.length === 0) fail('TREE_BAD_PATH', `link ${path}`, 'the root cannot be a hard link', path);
    const parent = this.parentDir(parts);
    const name = parts[parts.length - 1]!;
    if (parent.children!.get(name) === node) return node; // linking a name to itself
    this.put(parent, name, node);
    return node;
  }

  /** Removes a name (and a directory's whole subtree). Returns false when nothing was there. */
  remove(path: string): boolean {
    const parts = FsTree.split(path);
    if (parts.length === 0) fail('TREE_BAD_PATH', 'remove /', 'the root cannot be removed', path);
    let dir: Inode = this.root;
    for (const name of parts.slice(0, -1)) {
      const next = dir.children?.get(name);
      if (!next || next.kind !== 'dir') return false;
      dir = next;
    }
    const name = parts[parts.length - 1]!;
    const old = dir.children!.get(name);
    if (!old) return false;
    dir.children!.delete(name);
    this.unlinked(old);
    return true;
  }

  private addLeaf(path: string, node: Inode): void {
    if (node.kind !== 'file') this.dropUserXattrs(path, node);
    const parts = FsTree.split(path);
    if (parts.length === 0) fail('TREE_BAD_PATH', `add ${path}`, 'only a directory can be the root', path);
    const parent = this.parentDir(parts);
    this.put(parent, parts[parts.length - 1]!, node);
  }

  /** Walks to the parent of `parts`, creating missing directories and replacing non-directories. */
  private parentDir(parts: string[]): Inode {
    let dir = this.root;
    const stack: Inode[] = [];
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i]!;
      let next = dir.children!.get(name);
      if (next?.kind === 'symlink' && this.followParentLinks) {
        const target = this.resolveLink(stack, dir, next.target, 0);
        if (target) next = target;
      }
      if (!next || next.kind !== 'dir') {
        next = this.implicitDir();
        this.put(dir, name, next);
      }
      stack.push(dir);
      dir = next;
    }
    return dir;
  }

  /** The directory a symlink in `dir` (reached through `stack`) points at, if it is one. */
  private resolveLink(stack: Inode[], dir: Inode, target: string, depth: number): Inode | null {
    if (depth > 40) return null;
    let path: Inode[] = target.startsWith('/') ? [] : [...stack, dir];
    let cur: Inode = target.startsWith('/') ? this.root : dir;
    for (const part of target.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        cur = path.pop() ?? this.root;
        continue;
      }
      let next = cur.children?.get(part);
      if (next?.kind === 'symlink') next = this.resolveLink(path, cur, next.target, depth + 1) ?? undefined;
      if (!next || next.kind !== 'dir') return null;
      path = [...path, cur];
      cur = next;
    }
    return cur;
  }

  private put(dir: Inode, name: string, node: Inode): void {
    if (name.length > MAX_NAME) fail('EXT4_NAME_TOO_LONG', 'add entry', `name longer than ${MAX_NAME} bytes`, name);
    const old = dir.children!.get(name);
    dir.children!.set(old ? name : ownName(name), node);
    node.links++;
    if (old) this.unlinked(old);
  }

  private unlinked(node: Inode): void {
    node.links--;
    if (node.links > 0) return;
    if (node.kind === 'dir') {
      for (const child of node.children!.values()) this.unlinked(child);
      node.children!.clear();
    } else if (node.content && this.onRelease) {
      this.onRelease(node.content);
    }
  }

  /**
   * The kernel allows user.* xattrs only on regular files and directories (others read as
   * absent), so an archive's user.* xattrs on a symlink or device could never be seen: drop them.
   */
  private dropUserXattrs(path: string, node: Inode): void {
    const names = [...node.xattrs.keys()].filter((k) => k.startsWith('user.'));
    if (names.length === 0) return;
    const kept = new Map(node.xattrs);
    for (const k of names) kept.delete(k);
    node.xattrs = kept;
    this.onWarning?.({ code: 'XATTR_DROPPED', message: `dropped ${names.join(', ')} from ${printable(path)}: user.* xattrs exist only on files and directories` });
  }

  private implicitDir(): Inode {
    return newInode('dir', { mode: 0o755, uid: 0, gid: 0, mtime: this.defaultTime });
  }
}

/**
 * A copy of a new entry's name that does not keep the whole path alive: V8 makes a component of
 * `path.split('/')` of 13 characters or more a slice of the path string, so a kept name would
 * retain its entry's full path (on a Debian tree about half the names, ≈ 40 bytes each).
 */
function ownName(name: string): string {
  return name.length < 13 ? name : Buffer.from(name, 'latin1').toString('latin1');
}

function newInode(kind: NodeKind, a: NodeAttrs): Inode {
  return new TreeNode(kind, a.mode, a.uid, a.gid, a.mtime, a.atime, a.ctime, a.xattrs);
}

/** Every node of an FsTree is a TreeNode (made by newInode). */
function applyAttrs(node: Inode, a: NodeAttrs): void {
  (node as TreeNode).setAttrs(a.mode, a.uid, a.gid, a.mtime, a.atime, a.ctime, a.xattrs);
}
