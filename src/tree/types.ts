/**
 * The in-memory filesystem model every source fills and the ext4 writer consumes.
 * Names are byte strings (util/bytes.ts). File content is a reference, never the bytes
 * themselves (except small generated files): data streamed from an archive is already placed in
 * the image being written, data from a directory is read when the image is written.
 */
import type { Timestamp } from '../tar/types.js';

export type { Timestamp };

export type NodeKind = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

/** A run of physical blocks holding logical blocks [logical, logical + length) of a file. */
export interface BlockRun {
  logical: number;
  physical: number;
  length: number;
}

export type Content =
  /**
   * Already written into the image under construction: these block runs (holes between them).
   * `crc` fingerprints the bytes (crc32 of the first and last 16 KiB) for the image UUID.
   */
  | { kind: 'placed'; runs: BlockRun[]; crc: number }
  /** A host file, read when the image is written. */
  | { kind: 'hostfile'; path: string }
  /** Small generated content held in memory (provisioning files). */
  | { kind: 'bytes'; data: Buffer }
  /** To be filled in by the source before the image is finished (e.g. read again from a layer). */
  | { kind: 'deferred' };

/**
 * One file, directory, link or device. Trees build these as `TreeNode`s (node.ts), which keep
 * the fields packed (a tree may hold millions); read and assign the fields as on a plain object.
 */
export interface Inode {
  readonly kind: NodeKind;
  /** Permission bits incl. setuid/setgid/sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  /**
   * xattr name (byte string, full name like 'user.foo') → value; POSIX ACLs in VFS encoding.
   * Read-only: inodes without xattrs share one empty map; replace the map to change it.
   */
  xattrs: ReadonlyMap<string, Buffer>;
  /** Regular files: logical size in bytes. */
  size: number;
  /** Regular files: where the bytes are; null for an empty file. */
  content: Content | null;
  /** Symlinks: the target (byte string). */
  target: string;
  /** Device nodes. */
  major: number;
  minor: number;
  /** Directories: children by name, unordered (the writer sorts). */
  children: Map<string, Inode> | null;
  /** Number of directory entries naming this inode (hard links); directories: 1. */
  links: number;
}
