/**
 * What the tar reader produces. Names and link targets are *byte strings*: one JS char per byte
 * (latin1), so names that are not UTF-8 (cp866, koi8-r, euc-jp archives) survive unchanged into
 * the image. Use `util/bytes.ts` to convert for display.
 */

/** A point in time: whole seconds since the epoch (may be negative) and nanoseconds 0..999999999. */
export interface Timestamp {
  sec: number;
  nsec: number;
}

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';

/** One data segment of a sparse file: `length` bytes at `offset` of the logical file. */
export interface SparseSegment {
  offset: number;
  length: number;
}

export interface TarHeader {
  /** Raw member name as a byte string, after PAX/GNU long-name overrides; not normalized. */
  path: string;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (mask 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Logical size of a regular file in bytes (for a sparse file: its full apparent size). 0 otherwise. */
  size: number;
  mtime: Timestamp;
  atime: Timestamp | undefined;
  ctime: Timestamp | undefined;
  /** Symlink target or hard-link target (byte string); '' for other types. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /**
   * Extended attributes, name (byte string, e.g. 'user.x', 'security.capability') → raw value.
   * POSIX ACLs appear as 'system.posix_acl_access' / 'system.posix_acl_default' in the kernel's
   * VFS xattr encoding (version 2, 8-byte entries), whichever way the archive stored them.
   */
  xattrs: Map<string, Buffer>;
  /**
   * Per-file checksums some writers add as PAX records: apk-tools' `APK-TOOLS.checksum.SHA1`
   * (hex) appears as 'SHA1' → hex text. Undefined when the entry has none.
   */
  checksums?: Map<string, string> | undefined;
  /**
   * For sparse files: the data segments, in order, none empty (an empty list: all hole). The body
   * is their concatenation.
   */
  sparse: SparseSegment[] | undefined;
  /**
   * Number of body bytes delivered through `data` (== size unless sparse). Always 0 for types
   * other than 'file': bytes some writers store after those are skipped by the reader.
   */
  bodySize: number;
  /** Offset of the first body byte in the decompressed archive stream. */
  offset: number;
  /**
   * Offset of the entry's first header block (its PAX / GNU long-name headers included): the
   * entry's raw bytes are [headerOffset, offset + stored body + padding).
   */
  headerOffset: number;
}

/** Receives a parse as it happens. Every callback is synchronous. */
export interface TarHandler {
  /** A new entry; its body (bodySize bytes) follows through `data`, then `entryEnd`. */
  entry(header: TarHeader): void;
  /** Body bytes of the current entry, in order. `chunk` may be a view of the reader's input:
   *  it is only valid until the call returns; copy what you keep. */
  data(chunk: Buffer): void;
  /** The current entry's body is complete. */
  entryEnd(): void;
}

/** Stable codes of non-fatal oddities the reader reports (and then works around). */
export type TarWarningCode =
  /** EOF at a block boundary without the two zero blocks, or inside the final padding. */
  | 'TAR_NO_END_MARKER'
  /** Unknown typeflag: read as a regular file, as POSIX says. */
  | 'TAR_UNKNOWN_TYPE'
  /** Volume label ('V'), multi-volume continuation ('M') or old GNU rename script ('N'): skipped. */
  | 'TAR_SKIPPED_ENTRY'
  /** A size on a directory, symlink, device or fifo header: no body is read for those. */
  | 'TAR_SIZE_IGNORED'
  /** An entry whose name is empty (reported as path ''; the tree layer decides). */
  | 'TAR_EMPTY_PATH'
  /** PAX keyword we do not use (reported once per keyword). */
  | 'TAR_PAX_IGNORED'
  /** Malformed PAX record: the rest of that header is ignored (libarchive does the same). */
  | 'TAR_PAX_MALFORMED'
  /** PAX value we could not parse (uid, time...): the header field is used instead. */
  | 'TAR_PAX_BAD_VALUE'
  /** NFSv4 ACL (SCHILY.acl.ace, Solaris type 3): ext4 cannot store it; dropped. */
  | 'TAR_ACL_NFS4'
  /** POSIX ACL text we could not convert (malformed, or a name with no id): dropped. */
  | 'TAR_ACL_DROPPED'
  /** Sparse file whose stored data is longer than its map: the extra bytes are skipped. */
  | 'TAR_SPARSE_EXCESS'
  /** Non-zero bytes after the end-of-archive marker (only checked with `checkTrailing`). */
  | 'TAR_TRAILING_DATA';

export interface TarWarning {
  code: TarWarningCode;
  message: string;
}

export interface TarParserOptions {
  /** Non-fatal oddities (unknown PAX keys ignored, NFS4 ACLs dropped, ...). Default: ignored. */
  onWarning?: (w: TarWarning) => void;
  /**
   * Maps a user or group *name* found in a text ACL (GNU tar writes names, e.g. "user:bin:r--")
   * to a numeric id, e.g. from the image's own /etc/passwd. Names with a numeric id beside them
   * (star/libarchive ":ID" field) need no resolver. Default: none; such an ACL is dropped with a
   * TAR_ACL_DROPPED warning unless the archive also carries the binary
   * SCHILY.xattr.system.posix_acl_* value, which is then used as is.
   */
  aclNameToId?: (kind: 'user' | 'group', name: string) => number | undefined;
  /**
   * Read the input after the end-of-archive marker and report non-zero bytes there with a
   * TAR_TRAILING_DATA warning (once). Default false: that input is ignored unread, as GNU tar and
   * libarchive do. apk-tools reads its streams to the end and refuses data there.
   */
  checkTrailing?: boolean;
}
