/**
 * Extended attributes: names split into (index, suffix), POSIX ACLs converted from the VFS xattr
 * encoding to ext4's own, and the in-inode / xattr-block encodings.
 *
 *   in-inode (after i_extra_isize)          xattr block
 *   +-------+---------+---+--------+        +--------+---------+---+--------+
 *   | magic | entries | 0 | values |        | header | entries | 0 | values |
 *   +-------+---------+---+--------+        +--------+---------+---+--------+
 *            value offsets count from the    value offsets count from the
 *            first entry                     start of the block
 *
 * Values sit at the end of the region, each padded to 4 bytes. Entries are sorted by
 * (name index, name length, name), the order the kernel keeps xattr blocks in.
 */
import { fail } from '../errors.js';
import { crc32c } from './crc32c.js';
import {
  ACL_GROUP,
  ACL_GROUP_OBJ,
  ACL_MASK,
  ACL_OTHER,
  ACL_USER,
  ACL_USER_OBJ,
  BLOCK_SIZE,
  EXT4_ACL_VERSION,
  INODE_SIZE,
  VFS_ACL_VERSION,
  XATTR_BLOCK_HEADER,
  XATTR_ENTRY_HEADER,
  XATTR_IBODY_START,
  XATTR_INDEX,
  XATTR_MAGIC,
  XATTR_PREFIXES,
  XE,
  XH,
  INO,
} from './format.js';

export interface XattrItem {
  index: number;
  /** Name suffix after the prefix (bytes). */
  name: Buffer;
  value: Buffer;
}

/** Space for in-inode xattrs: from the first entry to the end of the inode. */
export const IBODY_SPACE = INODE_SIZE - XATTR_IBODY_START;
const BLOCK_SPACE = BLOCK_SIZE - XATTR_BLOCK_HEADER;

/**
 * Converts a full name (byte string) and value to ext4's stored form. `mode` (the inode's
 * permission bits) is applied to an access ACL the way chmod(2) does, because that is the state
 * an extraction leaves: the owner, mask (or group) and other entries mirror the mode bits.
 */
export function toXattrItem(fullName: string, value: Buffer, mode?: number): XattrItem {
  for (const [prefix, index] of XATTR_PREFIXES) {
    if (!fullName.startsWith(prefix)) continue;
    const suffix = fullName.slice(prefix.length);
    if (index === XATTR_INDEX.posixAclAccess || index === XATTR_INDEX.posixAclDefault) {
      if (suffix !== '') continue;
      const acl = index === XATTR_INDEX.posixAclAccess && mode !== undefined ? aclChmod(value, mode, fullName) : value;
      return { index, name: Buffer.alloc(0), value: vfsAclToExt4(acl, fullName) };
    }
    if (suffix.length === 0) break;
    if (suffix.length > 255) fail('EXT4_XATTR_TOO_LARGE', 'store xattr', 'name longer than 255 bytes', fullName);
    return { index, name: Buffer.from(suffix, 'latin1'), value };
  }
  return fail('EXT4_XATTR_INVALID', 'store xattr', 'ext4 has no namespace for this name', fullName);
}

export function xattrFullName(index: number, name: Buffer): string {
  const suffix = name.toString('latin1');
  switch (index) {
    case XATTR_INDEX.user:
      return 'user.' + suffix;
    case XATTR_INDEX.posixAclAccess:
      return 'system.posix_acl_access';
    case XATTR_INDEX.posixAclDefault:
      return 'system.posix_acl_default';
    case XATTR_INDEX.trusted:
      return 'trusted.' + suffix;
    case XATTR_INDEX.security:
      return 'security.' + suffix;
    case XATTR_INDEX.system:
      return 'system.' + suffix;
    case XATTR_INDEX.richacl:
      return 'system.richacl';
    default:
      return `unknown${index}.` + suffix;
  }
}

/**
 * VFS ACL (le32 version 2, then {le16 tag, le16 perm, le32 id} × n) → ext4 ACL (le32 version 1,
 * then 4-byte {tag, perm} for USER_OBJ/GROUP_OBJ/MASK/OTHER and 8-byte {tag, perm, id} for
 * USER/GROUP). The kernel rejects the VFS form when it reads it back from disk.
 */
export function vfsAclToExt4(v: Buffer, name: string): Buffer {
  if (v.length < 4 || (v.length - 4) % 8 !== 0 || v.readUInt32LE(0) !== VFS_ACL_VERSION) {
    fail('EXT4_XATTR_INVALID', 'store ACL', 'value is not a POSIX ACL in the kernel xattr format', name);
  }
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt32LE(EXT4_ACL_VERSION, 0);
  parts.push(head);
  for (let off = 4; off < v.length; off += 8) {
    const tag = v.readUInt16LE(off);
    const perm = v.readUInt16LE(off + 2);
    const id = v.readUInt32LE(off + 4);
    if (tag === ACL_USER || tag === ACL_GROUP) {
      const e = Buffer.alloc(8);
      e.writeUInt16LE(tag, 0);
      e.writeUInt16LE(perm, 2);
      e.writeUInt32LE(id, 4);
      parts.push(e);
    } else if (tag === ACL_USER_OBJ || tag === ACL_GROUP_OBJ || tag === ACL_MASK || tag === ACL_OTHER) {
      const e = Buffer.alloc(4);
      e.writeUInt16LE(tag, 0);
      e.writeUInt16LE(perm, 2);
      parts.push(e);
    } else {
      fail('EXT4_XATTR_INVALID', 'store ACL', 'unknown ACL entry tag', `${name} tag ${tag}`);
    }
  }
  return Buffer.concat(parts);
}

/** The kernel's posix_acl_chmod on a VFS-encoded ACL: returns a copy with mode bits applied. */
export function aclChmod(v: Buffer, mode: number, name: string): Buffer {
  if (v.length < 4 || (v.length - 4) % 8 !== 0) fail('EXT4_XATTR_INVALID', 'store ACL', 'value is not a POSIX ACL in the kernel xattr format', name);
  const out = Buffer.from(v);
  let groupObj = -1;
  let mask = -1;
  for (let off = 4; off < out.length; off += 8) {
    const tag = out.readUInt16LE(off);
    if (tag === ACL_USER_OBJ) out.writeUInt16LE((mode >> 6) & 7, off + 2);
    else if (tag === ACL_OTHER) out.writeUInt16LE(mode & 7, off + 2);
    else if (tag === ACL_GROUP_OBJ) groupObj = off;
    else if (tag === ACL_MASK) mask = off;
  }
  const g = mask >= 0 ? mask : groupObj;
  if (g >= 0) out.writeUInt16LE((mode >> 3) & 7, g + 2);
  return out;
}

/** ext4 ACL → VFS ACL (for the reader). */
export function ext4AclToVfs(v: Buffer): Buffer {
  const out: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt32LE(VFS_ACL_VERSION, 0);
  out.push(head);
  let off = 4;
  while (off + 4 <= v.length) {
    const tag = v.readUInt16LE(off);
    const perm = v.readUInt16LE(off + 2);
    const e = Buffer.alloc(8);
    e.writeUInt16LE(tag, 0);
    e.writeUInt16LE(perm, 2);
    if (tag === ACL_USER || tag === ACL_GROUP) {
      e.writeUInt32LE(v.readUInt32LE(off + 4), 4);
      off += 8;
    } else {
      e.writeUInt32LE(0xffffffff, 4); // ACL_UNDEFINED_ID
      off += 4;
    }
    out.push(e);
  }
  return Buffer.concat(out);
}

export function compareItems(a: XattrItem, b: XattrItem): number {
  return a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name);
}

function entrySize(item: XattrItem): number {
  return (XATTR_ENTRY_HEADER + item.name.length + 3) & ~3;
}

function valueSize(item: XattrItem): number {
  return (item.value.length + 3) & ~3;
}

/** Bytes an item takes in a region (entry + padded value). */
export function itemSpace(item: XattrItem): number {
  return entrySize(item) + valueSize(item);
}

/**
 * Splits sorted items between the inode body and an xattr block: items go in-inode in order
 * while they fit (4 bytes kept for the end marker), the rest to the block.
 */
export function placeXattrs(items: XattrItem[]): { inInode: XattrItem[]; inBlock: XattrItem[] } {
  const inInode: XattrItem[] = [];
  const inBlock: XattrItem[] = [];
  let used = 4;
  for (const it of items) {
    const s = itemSpace(it);
    if (inBlock.length === 0 && used + s <= IBODY_SPACE) {
      inInode.push(it);
      used += s;
    } else {
      inBlock.push(it);
    }
  }
  let blockUsed = 4;
  for (const it of inBlock) blockUsed += itemSpace(it);
  if (blockUsed > BLOCK_SPACE) {
    fail('EXT4_XATTR_TOO_LARGE', 'store xattrs', 'they do not fit in the inode plus one block', `${blockUsed} bytes`);
  }
  return { inInode, inBlock };
}

/** The kernel's ext4_xattr_hash_entry (name bytes unsigned, then the padded value as le32 words). */
export function xattrEntryHash(item: XattrItem): number {
  let hash = 0;
  for (const c of item.name) hash = ((hash << 5) ^ (hash >>> 27) ^ c) >>> 0;
  const padded = valueSize(item);
  for (let off = 0; off < padded; off += 4) {
    let w = 0;
    for (let i = 0; i < 4; i++) {
      const byte = off + i < item.value.length ? item.value[off + i]! : 0;
      w |= byte << (8 * i);
    }
    hash = ((hash << 16) ^ (hash >>> 16) ^ (w >>> 0)) >>> 0;
  }
  return hash >>> 0;
}

/**
 * Writes entries and values into region [start, end) of `out`; value offsets are relative to
 * `base`. Returns the entry hashes (for the block hash).
 */
function writeRegion(items: XattrItem[], out: Buffer, start: number, end: number, base: number): number[] {
  let e = start;
  let v = end;
  const hashes: number[] = [];
  for (const it of items) {
    v -= valueSize(it);
    const hash = xattrEntryHash(it);
    hashes.push(hash);
    out.writeUInt8(it.name.length, e + XE.nameLen);
    out.writeUInt8(it.index, e + XE.nameIndex);
    out.writeUInt16LE(it.value.length === 0 ? 0 : v - base, e + XE.valueOffs);
    out.writeUInt32LE(0, e + XE.valueInum);
    out.writeUInt32LE(it.value.length, e + XE.valueSize);
    out.writeUInt32LE(hash, e + XE.hash);
    it.name.copy(out, e + XE.name);
    it.value.copy(out, v);
    e += entrySize(it);
  }
  out.writeUInt32LE(0, e); // end of entries
  return hashes;
}

/** Fills the in-inode xattr area of the inode at `off` (or clears it when there are none). */
export function encodeInodeXattrs(items: XattrItem[], out: Buffer, off: number): void {
  out.fill(0, off + INO.inlineXattr, off + INODE_SIZE);
  if (items.length === 0) return;
  out.writeUInt32LE(XATTR_MAGIC, off + INO.inlineXattr);
  writeRegion(items, out, off + XATTR_IBODY_START, off + INODE_SIZE, off + XATTR_IBODY_START);
}

/** Encodes an xattr block body (header without refcount/checksum, which `sealXattrBlock` sets). */
export function encodeXattrBlock(items: XattrItem[]): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  b.writeUInt32LE(XATTR_MAGIC, XH.magic);
  b.writeUInt32LE(1, XH.blocks);
  const hashes = writeRegion(items, b, XATTR_BLOCK_HEADER, BLOCK_SIZE, 0);
  let h = 0;
  for (const eh of hashes) {
    if (eh === 0) {
      h = 0;
      break;
    }
    h = ((h << 16) ^ (h >>> 16) ^ eh) >>> 0;
  }
  b.writeUInt32LE(h, XH.hash);
  return b;
}

/** Sets refcount and the checksum (crc32c(fs seed, le64 block number, block with h_checksum = 0)). */
export function sealXattrBlock(b: Buffer, refcount: number, blockNr: number, csumSeed: number): void {
  b.writeUInt32LE(refcount, XH.refcount);
  b.writeUInt32LE(0, XH.checksum);
  const nr = Buffer.alloc(8);
  nr.writeUInt32LE(blockNr % 2 ** 32, 0);
  nr.writeUInt32LE(Math.floor(blockNr / 2 ** 32), 4);
  b.writeUInt32LE(crc32c(crc32c(csumSeed, nr), b), XH.checksum);
}

/** Parses entries of a region for the reader. */
export function decodeXattrRegion(b: Buffer, start: number, end: number, base: number): XattrItem[] {
  const items: XattrItem[] = [];
  let e = start;
  while (e + 4 <= end && b.readUInt32LE(e) !== 0) {
    if (e + XATTR_ENTRY_HEADER > end) break;
    const nameLen = b.readUInt8(e + XE.nameLen);
    const index = b.readUInt8(e + XE.nameIndex);
    const offs = b.readUInt16LE(e + XE.valueOffs);
    const size = b.readUInt32LE(e + XE.valueSize);
    const name = Buffer.from(b.subarray(e + XE.name, e + XE.name + nameLen));
    const value = Buffer.from(b.subarray(base + offs, base + offs + size));
    items.push({ index, name, value });
    e += (XATTR_ENTRY_HEADER + nameLen + 3) & ~3;
  }
  return items;
}
