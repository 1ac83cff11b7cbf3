/**
 * Codecs for ext4's on-disk structs: one encode/decode pair per struct, over a Buffer, little
 * endian, field offsets from format.ts. Checksums are computed here too, since each is defined
 * over the encoded bytes of its struct.
 */
import { crc32c, crc32cU32 } from './crc32c.js';
import {
  DESC_SIZE,
  EE,
  EH,
  EI,
  EXTENT_MAGIC,
  EXT_ENTRY_SIZE,
  EXT_HEADER_SIZE,
  EXTRA_ISIZE,
  GD,
  GOOD_OLD_INODE_SIZE,
  INO,
  INODE_SIZE,
  I_BLOCK_SIZE,
  SB,
  SUPERBLOCK_SIZE,
} from './format.js';

// ---------------------------------------------------------------- helpers

function u64(buf: Buffer, off: number, loOff: number, hiOff: number, value: number): void {
  buf.writeUInt32LE(value % 2 ** 32, off + loOff);
  buf.writeUInt32LE(Math.floor(value / 2 ** 32), off + hiOff);
}

function r64(buf: Buffer, off: number, loOff: number, hiOff: number): number {
  return buf.readUInt32LE(off + loOff) + buf.readUInt32LE(off + hiOff) * 2 ** 32;
}

/** Splits unix seconds into ext4's 32-bit field + 2 epoch bits (valid -2^31 .. 2^34 - 2^31 - 1). */
export function encodeTime(sec: number, nsec: number): { lo: number; extra: number } {
  const lo = ((sec % 2 ** 32) + 2 ** 32) % 2 ** 32; // low 32 bits, two's complement
  const signedLo = lo >= 2 ** 31 ? lo - 2 ** 32 : lo;
  const epoch = ((sec - signedLo) / 2 ** 32) & 3;
  return { lo, extra: ((nsec << 2) | epoch) >>> 0 };
}

export function decodeTime(lo: number, extra: number): { sec: number; nsec: number } {
  const signedLo = lo >= 2 ** 31 ? lo - 2 ** 32 : lo;
  return { sec: signedLo + (extra & 3) * 2 ** 32, nsec: extra >>> 2 };
}

export const TIME_MIN = -(2 ** 31);
export const TIME_MAX = 2 ** 34 - 2 ** 31 - 1;

// ---------------------------------------------------------------- superblock

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  rBlocksCount: number;
  freeBlocksCount: number;
  freeInodesCount: number;
  firstDataBlock: number;
  logBlockSize: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  mtime: number;
  wtime: number;
  mntCount: number;
  maxMntCount: number;
  magic: number;
  state: number;
  errors: number;
  lastcheck: number;
  creatorOs: number;
  revLevel: number;
  firstIno: number;
  inodeSize: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  uuid: Buffer; // 16
  volumeName: Buffer; // 16
  journalInum: number;
  hashSeed: Buffer; // 16
  defHashVersion: number;
  jnlBackupType: number;
  descSize: number;
  defaultMountOpts: number;
  firstMetaBg: number;
  mkfsTime: number;
  jnlBlocks: number[]; // 17
  minExtraIsize: number;
  wantExtraIsize: number;
  flags: number;
  logGroupsPerFlex: number;
  checksumType: number;
  checksumSeed: number;
  checksum: number;
  /** s_block_group_nr: the group a backup copy sits in (0 for the primary). Default 0. */
  blockGroupNr?: number;
}

export function encodeSuperblock(sb: Superblock): Buffer {
  const b = Buffer.alloc(SUPERBLOCK_SIZE);
  b.writeUInt32LE(sb.inodesCount, SB.inodesCount);
  u64(b, 0, SB.blocksCountLo, SB.blocksCountHi, sb.blocksCount);
  u64(b, 0, SB.rBlocksCountLo, SB.rBlocksCountHi, sb.rBlocksCount);
  u64(b, 0, SB.freeBlocksCountLo, SB.freeBlocksCountHi, sb.freeBlocksCount);
  b.writeUInt32LE(sb.freeInodesCount, SB.freeInodesCount);
  b.writeUInt32LE(sb.firstDataBlock, SB.firstDataBlock);
  b.writeUInt32LE(sb.logBlockSize, SB.logBlockSize);
  b.writeUInt32LE(sb.logBlockSize, SB.logClusterSize);
  b.writeUInt32LE(sb.blocksPerGroup, SB.blocksPerGroup);
  b.writeUInt32LE(sb.blocksPerGroup, SB.clustersPerGroup);
  b.writeUInt32LE(sb.inodesPerGroup, SB.inodesPerGroup);
  writeTime32(b, SB.mtime, SB.mtimeHi, sb.mtime);
  writeTime32(b, SB.wtime, SB.wtimeHi, sb.wtime);
  b.writeUInt16LE(sb.mntCount, SB.mntCount);
  b.writeInt16LE(sb.maxMntCount, SB.maxMntCount);
  b.writeUInt16LE(sb.magic, SB.magic);
  b.writeUInt16LE(sb.state, SB.state);
  b.writeUInt16LE(sb.errors, SB.errors);
  writeTime32(b, SB.lastcheck, SB.lastcheckHi, sb.lastcheck);
  b.writeUInt32LE(sb.creatorOs, SB.creatorOs);
  b.writeUInt32LE(sb.revLevel, SB.revLevel);
  b.writeUInt32LE(sb.firstIno, SB.firstIno);
  b.writeUInt16LE(sb.inodeSize, SB.inodeSize);
  b.writeUInt16LE(sb.blockGroupNr ?? 0, SB.blockGroupNr);
  b.writeUInt32LE(sb.featureCompat, SB.featureCompat);
  b.writeUInt32LE(sb.featureIncompat, SB.featureIncompat);
  b.writeUInt32LE(sb.featureRoCompat, SB.featureRoCompat);
  sb.uuid.copy(b, SB.uuid, 0, 16);
  sb.volumeName.copy(b, SB.volumeName, 0, 16);
  b.writeUInt32LE(sb.journalInum, SB.journalInum);
  sb.hashSeed.copy(b, SB.hashSeed, 0, 16);
  b.writeUInt8(sb.defHashVersion, SB.defHashVersion);
  b.writeUInt8(sb.jnlBackupType, SB.jnlBackupType);
  b.writeUInt16LE(sb.descSize, SB.descSize);
  b.writeUInt32LE(sb.defaultMountOpts, SB.defaultMountOpts);
  b.writeUInt32LE(sb.firstMetaBg, SB.firstMetaBg);
  writeTime32(b, SB.mkfsTime, SB.mkfsTimeHi, sb.mkfsTime);
  for (let i = 0; i < 17; i++) b.writeUInt32LE(sb.jnlBlocks[i] ?? 0, SB.jnlBlocks + 4 * i);
  b.writeUInt16LE(sb.minExtraIsize, SB.minExtraIsize);
  b.writeUInt16LE(sb.wantExtraIsize, SB.wantExtraIsize);
  b.writeUInt32LE(sb.flags, SB.flags);
  b.writeUInt8(sb.logGroupsPerFlex, SB.logGroupsPerFlex);
  b.writeUInt8(sb.checksumType, SB.checksumType);
  b.writeUInt32LE(sb.checksumSeed, SB.checksumSeed);
  b.writeUInt32LE(crc32c(0xffffffff, b, 0, SB.checksum), SB.checksum);
  return b;
}

export function decodeSuperblock(b: Buffer): Superblock {
  const jnl: number[] = [];
  for (let i = 0; i < 17; i++) jnl.push(b.readUInt32LE(SB.jnlBlocks + 4 * i));
  return {
    inodesCount: b.readUInt32LE(SB.inodesCount),
    blocksCount: r64(b, 0, SB.blocksCountLo, SB.blocksCountHi),
    rBlocksCount: r64(b, 0, SB.rBlocksCountLo, SB.rBlocksCountHi),
    freeBlocksCount: r64(b, 0, SB.freeBlocksCountLo, SB.freeBlocksCountHi),
    freeInodesCount: b.readUInt32LE(SB.freeInodesCount),
    firstDataBlock: b.readUInt32LE(SB.firstDataBlock),
    logBlockSize: b.readUInt32LE(SB.logBlockSize),
    blocksPerGroup: b.readUInt32LE(SB.blocksPerGroup),
    inodesPerGroup: b.readUInt32LE(SB.inodesPerGroup),
    mtime: readTime32(b, SB.mtime, SB.mtimeHi),
    wtime: readTime32(b, SB.wtime, SB.wtimeHi),
    mntCount: b.readUInt16LE(SB.mntCount),
    maxMntCount: b.readInt16LE(SB.maxMntCount),
    magic: b.readUInt16LE(SB.magic),
    state: b.readUInt16LE(SB.state),
    errors: b.readUInt16LE(SB.errors),
    lastcheck: readTime32(b, SB.lastcheck, SB.lastcheckHi),
    creatorOs: b.readUInt32LE(SB.creatorOs),
    revLevel: b.readUInt32LE(SB.revLevel),
    firstIno: b.readUInt32LE(SB.firstIno),
    inodeSize: b.readUInt16LE(SB.inodeSize),
    blockGroupNr: b.readUInt16LE(SB.blockGroupNr),
    featureCompat: b.readUInt32LE(SB.featureCompat),
    featureIncompat: b.readUInt32LE(SB.featureIncompat),
    featureRoCompat: b.readUInt32LE(SB.featureRoCompat),
    uuid: Buffer.from(b.subarray(SB.uuid, SB.uuid + 16)),
    volumeName: Buffer.from(b.subarray(SB.volumeName, SB.volumeName + 16)),
    journalInum: b.readUInt32LE(SB.journalInum),
    hashSeed: Buffer.from(b.subarray(SB.hashSeed, SB.hashSeed + 16)),
    defHashVersion: b.readUInt8(SB.defHashVersion),
    jnlBackupType: b.readUInt8(SB.jnlBackupType),
    descSize: b.readUInt16LE(SB.descSize),
    defaultMountOpts: b.readUInt32LE(SB.defaultMountOpts),
    firstMetaBg: b.readUInt32LE(SB.firstMetaBg),
    mkfsTime: readTime32(b, SB.mkfsTime, SB.mkfsTimeHi),
    jnlBlocks: jnl,
    minExtraIsize: b.readUInt16LE(SB.minExtraIsize),
    wantExtraIsize: b.readUInt16LE(SB.wantExtraIsize),
    flags: b.readUInt32LE(SB.flags),
    logGroupsPerFlex: b.readUInt8(SB.logGroupsPerFlex),
    checksumType: b.readUInt8(SB.checksumType),
    checksumSeed: b.readUInt32LE(SB.checksumSeed),
    checksum: b.readUInt32LE(SB.checksum),
  };
}

export function superblockChecksumOk(b: Buffer): boolean {
  return crc32c(0xffffffff, b, 0, SB.checksum) === b.readUInt32LE(SB.checksum);
}

/** Superblock times: unsigned 32 bits + 8 high bits (unsigned, unlike inode times). */
function writeTime32(b: Buffer, lo: number, hi: number, t: number): void {
  const v = Math.max(0, t);
  b.writeUInt32LE(v % 2 ** 32, lo);
  b.writeUInt8(Math.floor(v / 2 ** 32) & 0xff, hi);
}

function readTime32(b: Buffer, lo: number, hi: number): number {
  return b.readUInt32LE(lo) + b.readUInt8(hi) * 2 ** 32;
}

// ---------------------------------------------------------------- group descriptor

export interface GroupDesc {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
  flags: number;
  itableUnused: number;
  blockBitmapCsum: number;
  inodeBitmapCsum: number;
}

export function encodeGroupDesc(gd: GroupDesc, group: number, csumSeed: number, out: Buffer, off: number): void {
  out.fill(0, off, off + DESC_SIZE);
  u64(out, off, GD.blockBitmapLo, GD.blockBitmapHi, gd.blockBitmap);
  u64(out, off, GD.inodeBitmapLo, GD.inodeBitmapHi, gd.inodeBitmap);
  u64(out, off, GD.inodeTableLo, GD.inodeTableHi, gd.inodeTable);
  out.writeUInt16LE(gd.freeBlocks & 0xffff, off + GD.freeBlocksCountLo);
  out.writeUInt16LE(gd.freeBlocks >>> 16, off + GD.freeBlocksCountHi);
  out.writeUInt16LE(gd.freeInodes & 0xffff, off + GD.freeInodesCountLo);
  out.writeUInt16LE(gd.freeInodes >>> 16, off + GD.freeInodesCountHi);
  out.writeUInt16LE(gd.usedDirs & 0xffff, off + GD.usedDirsCountLo);
  out.writeUInt16LE(gd.usedDirs >>> 16, off + GD.usedDirsCountHi);
  out.writeUInt16LE(gd.flags, off + GD.flags);
  out.writeUInt16LE(gd.itableUnused & 0xffff, off + GD.itableUnusedLo);
  out.writeUInt16LE(gd.itableUnused >>> 16, off + GD.itableUnusedHi);
  out.writeUInt16LE(gd.blockBitmapCsum & 0xffff, off + GD.blockBitmapCsumLo);
  out.writeUInt16LE(gd.blockBitmapCsum >>> 16, off + GD.blockBitmapCsumHi);
  out.writeUInt16LE(gd.inodeBitmapCsum & 0xffff, off + GD.inodeBitmapCsumLo);
  out.writeUInt16LE(gd.inodeBitmapCsum >>> 16, off + GD.inodeBitmapCsumHi);
  // bg_checksum: crc32c(seed, le32 group, descriptor with bg_checksum zeroed), low 16 bits
  const crc = crc32c(crc32cU32(csumSeed, group), out, off, off + DESC_SIZE);
  out.writeUInt16LE(crc & 0xffff, off + GD.checksum);
}

export function decodeGroupDesc(b: Buffer, off: number, descSize: number): GroupDesc {
  const big = descSize >= 64;
  const hi16 = (o: number) => (big ? b.readUInt16LE(off + o) : 0);
  return {
    blockBitmap: big ? r64(b, off, GD.blockBitmapLo, GD.blockBitmapHi) : b.readUInt32LE(off + GD.blockBitmapLo),
    inodeBitmap: big ? r64(b, off, GD.inodeBitmapLo, GD.inodeBitmapHi) : b.readUInt32LE(off + GD.inodeBitmapLo),
    inodeTable: big ? r64(b, off, GD.inodeTableLo, GD.inodeTableHi) : b.readUInt32LE(off + GD.inodeTableLo),
    freeBlocks: b.readUInt16LE(off + GD.freeBlocksCountLo) + hi16(GD.freeBlocksCountHi) * 65536,
    freeInodes: b.readUInt16LE(off + GD.freeInodesCountLo) + hi16(GD.freeInodesCountHi) * 65536,
    usedDirs: b.readUInt16LE(off + GD.usedDirsCountLo) + hi16(GD.usedDirsCountHi) * 65536,
    flags: b.readUInt16LE(off + GD.flags),
    itableUnused: b.readUInt16LE(off + GD.itableUnusedLo) + hi16(GD.itableUnusedHi) * 65536,
    blockBitmapCsum: b.readUInt16LE(off + GD.blockBitmapCsumLo) + hi16(GD.blockBitmapCsumHi) * 65536,
    inodeBitmapCsum: b.readUInt16LE(off + GD.inodeBitmapCsumLo) + hi16(GD.inodeBitmapCsumHi) * 65536,
  };
}

// ---------------------------------------------------------------- inode

export interface InodeFields {
  mode: number; // type | permission bits
  uid: number;
  gid: number;
  size: number;
  atime: { sec: number; nsec: number };
  ctime: { sec: number; nsec: number };
  mtime: { sec: number; nsec: number };
  crtime: { sec: number; nsec: number };
  linksCount: number;
  blocks512: number; // i_blocks in 512-byte sectors
  flags: number;
  iBlock: Buffer; // 60 bytes
  fileAcl: number; // xattr block number or 0
  generation: number;
}

/**
 * Encodes an inode into `out` at `off` (INODE_SIZE bytes). The in-inode xattr area
 * (INO.inlineXattr .. INODE_SIZE) must already be in `out`; the checksum covers it, so call
 * `sealInode` after both are in place.
 */
export function encodeInode(f: InodeFields, out: Buffer, off: number): void {
  out.fill(0, off, off + INO.inlineXattr);
  out.writeUInt16LE(f.mode & 0xffff, off + INO.mode);
  out.writeUInt16LE(f.uid & 0xffff, off + INO.uidLo);
  out.writeUInt16LE((f.uid >>> 16) & 0xffff, off + INO.uidHigh);
  out.writeUInt16LE(f.gid & 0xffff, off + INO.gidLo);
  out.writeUInt16LE((f.gid >>> 16) & 0xffff, off + INO.gidHigh);
  out.writeUInt32LE(f.size % 2 ** 32, off + INO.sizeLo);
  out.writeUInt32LE(Math.floor(f.size / 2 ** 32), off + INO.sizeHigh);
  writeInodeTime(out, off + INO.atime, off + INO.atimeExtra, f.atime);
  writeInodeTime(out, off + INO.ctime, off + INO.ctimeExtra, f.ctime);
  writeInodeTime(out, off + INO.mtime, off + INO.mtimeExtra, f.mtime);
  writeInodeTime(out, off + INO.crtime, off + INO.crtimeExtra, f.crtime);
  out.writeUInt16LE(f.linksCount, off + INO.linksCount);
  out.writeUInt32LE(f.blocks512 % 2 ** 32, off + INO.blocksLo);
  out.writeUInt16LE(Math.floor(f.blocks512 / 2 ** 32) & 0xffff, off + INO.blocksHigh);
  out.writeUInt32LE(f.flags >>> 0, off + INO.flags);
  f.iBlock.copy(out, off + INO.block, 0, I_BLOCK_SIZE);
  out.writeUInt32LE(f.generation >>> 0, off + INO.generation);
  out.writeUInt32LE(f.fileAcl % 2 ** 32, off + INO.fileAclLo);
  out.writeUInt16LE(Math.floor(f.fileAcl / 2 ** 32) & 0xffff, off + INO.fileAclHigh);
  out.writeUInt16LE(EXTRA_ISIZE, off + INO.extraIsize);
}

/** Computes and stores the inode checksum (metadata_csum) over all INODE_SIZE bytes. */
export function sealInode(out: Buffer, off: number, ino: number, csumSeed: number): void {
  out.writeUInt16LE(0, off + INO.checksumLo);
  out.writeUInt16LE(0, off + INO.checksumHi);
  const generation = out.readUInt32LE(off + INO.generation);
  const seed = crc32cU32(crc32cU32(csumSeed, ino), generation);
  const crc = crc32c(seed, out, off, off + INODE_SIZE);
  out.writeUInt16LE(crc & 0xffff, off + INO.checksumLo);
  out.writeUInt16LE(crc >>> 16, off + INO.checksumHi);
}

/** The per-inode checksum seed used by extent, directory and htree block checksums. */
export function inodeCsumSeed(csumSeed: number, ino: number, generation = 0): number {
  return crc32cU32(crc32cU32(csumSeed, ino), generation);
}

export function inodeChecksumOk(b: Buffer, off: number, ino: number, csumSeed: number, inodeSize: number): boolean {
  const copy = Buffer.from(b.subarray(off, off + inodeSize));
  const stored = copy.readUInt16LE(INO.checksumLo) | (inodeSize > GOOD_OLD_INODE_SIZE ? copy.readUInt16LE(INO.checksumHi) << 16 : 0);
  copy.writeUInt16LE(0, INO.checksumLo);
  if (inodeSize > GOOD_OLD_INODE_SIZE) copy.writeUInt16LE(0, INO.checksumHi);
  const crc = crc32c(inodeCsumSeed(csumSeed, ino, copy.readUInt32LE(INO.generation)), copy);
  const want = inodeSize > GOOD_OLD_INODE_SIZE ? crc >>> 0 : crc & 0xffff;
  return (stored >>> 0) === want;
}

export function decodeInode(b: Buffer, off: number): InodeFields & { extraIsize: number } {
  const extraIsize = b.readUInt16LE(off + INO.extraIsize);
  const has = (field: number) => field + 4 <= GOOD_OLD_INODE_SIZE + extraIsize;
  const time = (lo: number, extra: number) =>
    decodeTime(b.readUInt32LE(off + lo), has(extra) ? b.readUInt32LE(off + extra) : 0);
  return {
    mode: b.readUInt16LE(off + INO.mode),
    uid: (b.readUInt16LE(off + INO.uidLo) | (b.readUInt16LE(off + INO.uidHigh) << 16)) >>> 0,
    gid: (b.readUInt16LE(off + INO.gidLo) | (b.readUInt16LE(off + INO.gidHigh) << 16)) >>> 0,
    size: b.readUInt32LE(off + INO.sizeLo) + b.readUInt32LE(off + INO.sizeHigh) * 2 ** 32,
    atime: time(INO.atime, INO.atimeExtra),
    ctime: time(INO.ctime, INO.ctimeExtra),
    mtime: time(INO.mtime, INO.mtimeExtra),
    crtime: has(INO.crtimeExtra) ? time(INO.crtime, INO.crtimeExtra) : { sec: 0, nsec: 0 },
    linksCount: b.readUInt16LE(off + INO.linksCount),
    blocks512: b.readUInt32LE(off + INO.blocksLo) + b.readUInt16LE(off + INO.blocksHigh) * 2 ** 32,
    flags: b.readUInt32LE(off + INO.flags),
    iBlock: Buffer.from(b.subarray(off + INO.block, off + INO.block + I_BLOCK_SIZE)),
    fileAcl: b.readUInt32LE(off + INO.fileAclLo) + b.readUInt16LE(off + INO.fileAclHigh) * 2 ** 32,
    generation: b.readUInt32LE(off + INO.generation),
    extraIsize,
  };
}

function writeInodeTime(b: Buffer, loOff: number, extraOff: number, t: { sec: number; nsec: number }): void {
  const { lo, extra } = encodeTime(t.sec, t.nsec);
  b.writeUInt32LE(lo, loOff);
  b.writeUInt32LE(extra, extraOff);
}

// ---------------------------------------------------------------- extents

export interface Extent {
  logical: number;
  physical: number;
  length: number;
}

export interface ExtentIndex {
  logical: number;
  leaf: number;
}

export function encodeExtentHeader(out: Buffer, off: number, entries: number, max: number, depth: number): void {
  out.writeUInt16LE(EXTENT_MAGIC, off + EH.magic);
  out.writeUInt16LE(entries, off + EH.entries);
  out.writeUInt16LE(max, off + EH.max);
  out.writeUInt16LE(depth, off + EH.depth);
  out.writeUInt32LE(0, off + EH.generation);
}

export function encodeExtent(out: Buffer, off: number, e: Extent): void {
  out.writeUInt32LE(e.logical, off + EE.block);
  out.writeUInt16LE(e.length, off + EE.len);
  out.writeUInt16LE(Math.floor(e.physical / 2 ** 32), off + EE.startHi);
  out.writeUInt32LE(e.physical % 2 ** 32, off + EE.startLo);
}

export function encodeExtentIndex(out: Buffer, off: number, e: ExtentIndex): void {
  out.writeUInt32LE(e.logical, off + EI.block);
  out.writeUInt32LE(e.leaf % 2 ** 32, off + EI.leafLo);
  out.writeUInt16LE(Math.floor(e.leaf / 2 ** 32), off + EI.leafHi);
  out.writeUInt16LE(0, off + EI.leafHi + 2);
}

export interface ExtentNode {
  depth: number;
  extents: Extent[]; // depth 0
  indexes: ExtentIndex[]; // depth > 0
}

export function decodeExtentNode(b: Buffer, off: number): ExtentNode | null {
  if (b.readUInt16LE(off + EH.magic) !== EXTENT_MAGIC) return null;
  const entries = b.readUInt16LE(off + EH.entries);
  const depth = b.readUInt16LE(off + EH.depth);
  const node: ExtentNode = { depth, extents: [], indexes: [] };
  for (let i = 0; i < entries; i++) {
    const e = off + EXT_HEADER_SIZE + i * EXT_ENTRY_SIZE;
    if (depth === 0) {
      let len = b.readUInt16LE(e + EE.len);
      if (len > 32768) len -= 32768; // uninitialized extent: reads as zeros
      node.extents.push({
        logical: b.readUInt32LE(e + EE.block),
        length: len,
        physical: b.readUInt16LE(e + EE.startHi) * 2 ** 32 + b.readUInt32LE(e + EE.startLo),
      });
    } else {
      node.indexes.push({
        logical: b.readUInt32LE(e + EI.block),
        leaf: b.readUInt16LE(e + EI.leafHi) * 2 ** 32 + b.readUInt32LE(e + EI.leafLo),
      });
    }
  }
  return node;
}

/** Stores the extent-block tail checksum (after eh_max entries). */
export function sealExtentBlock(block: Buffer, inodeSeed: number): void {
  const max = block.readUInt16LE(EH.max);
  const tail = EXT_HEADER_SIZE + max * EXT_ENTRY_SIZE;
  block.writeUInt32LE(crc32c(inodeSeed, block, 0, tail), tail);
}

