/**
 * A read-only ext4 reader: enough for tests, `inspect`, `ls` and `cat`, and for reading images
 * other tools made (classic or meta_bg descriptors, 32- or 64-bit descriptors, extents, linear
 * and hashed directories, fast and slow symlinks, in-inode and block xattrs). It does not replay
 * journals, read block-mapped (ext2/3) files, inline data or encrypted files: those are
 * reported as EXT4_BAD_IMAGE errors, never misread.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { fail, RootforgeError } from '../errors.js';
import {
  decodeExtentNode,
  decodeGroupDesc,
  decodeInode,
  decodeSuperblock,
  inodeChecksumOk,
  superblockChecksumOk,
  type Extent,
  type GroupDesc,
  type InodeFields,
  type Superblock,
} from './codec.js';
import { crc32c } from './crc32c.js';
import {
  FEATURE_NAMES,
  groupHasSuperblock,
  I_BLOCK_SIZE,
  IFL_EXTENTS,
  IFL_INLINE_DATA,
  INCOMPAT_64BIT,
  INCOMPAT_META_BG,
  INO,
  MAGIC,
  RO_COMPAT_METADATA_CSUM,
  ROOT_INO,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  XATTR_BLOCK_HEADER,
  XATTR_INDEX,
  XATTR_MAGIC,
} from './format.js';
import { decodeXattrRegion, ext4AclToVfs, xattrFullName } from './xattr.js';

export type FileKind = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

export interface Stat extends InodeFields {
  ino: number;
  kind: FileKind;
  perm: number; // mode & 0o7777
  major: number;
  minor: number;
}

export interface DirListing {
  name: string; // byte string
  ino: number;
}

export class Ext4Image {
  private constructor(
    private readonly fh: FileHandle,
    readonly sb: Superblock,
    readonly groups: GroupDesc[],
    readonly blockSize: number,
    readonly csumSeed: number,
  ) {}

  static async open(path: string): Promise<Ext4Image> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      return fail('EXT4_NOT_FOUND', `open image ${path}`, (e as NodeJS.ErrnoException).code ?? String(e), path, e);
    }
    try {
      const raw = Buffer.alloc(SUPERBLOCK_SIZE);
      const { bytesRead } = await fh.read(raw, 0, SUPERBLOCK_SIZE, SUPERBLOCK_OFFSET);
      if (bytesRead < SUPERBLOCK_SIZE) fail('EXT4_BAD_IMAGE', `read image ${path}`, 'too short for an ext4 superblock', path);
      const sb = decodeSuperblock(raw);
      if (sb.magic !== MAGIC) fail('EXT4_BAD_IMAGE', `read image ${path}`, 'no ext4 superblock magic', path);
      if (sb.featureRoCompat & RO_COMPAT_METADATA_CSUM && !superblockChecksumOk(raw)) {
        fail('EXT4_BAD_IMAGE', `read image ${path}`, 'superblock checksum mismatch', path);
      }
      if (sb.logBlockSize > 6) fail('EXT4_BAD_IMAGE', `read image ${path}`, 'implausible block size', sb.logBlockSize);
      const blockSize = 1024 << sb.logBlockSize;
      const descSize = sb.featureIncompat & INCOMPAT_64BIT ? sb.descSize : 32;
      const nGroups = Math.ceil((sb.blocksCount - sb.firstDataBlock) / sb.blocksPerGroup);
      const perBlock = blockSize / descSize;
      const groups: GroupDesc[] = [];
      const blockCache = new Map<number, Buffer>();
      for (let g = 0; g < nGroups; g++) {
        const blk = descriptorBlock(sb, g, perBlock);
        let b = blockCache.get(blk);
        if (!b) {
          b = await readAt(fh, blk * blockSize, blockSize);
          blockCache.set(blk, b);
        }
        groups.push(decodeGroupDesc(b, (g % perBlock) * descSize, descSize));
      }
      const csumSeed = sb.checksumSeed && sb.featureIncompat & 0x2000 ? sb.checksumSeed : crc32c(0xffffffff, sb.uuid);
      return new Ext4Image(fh, sb, groups, blockSize, csumSeed);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  get features(): string[] {
    const out: string[] = [];
    const add = (word: number, names: [number, string][]) => {
      for (const [mask, name] of names) if (word & mask) out.push(name);
    };
    add(this.sb.featureCompat, FEATURE_NAMES.compat);
    add(this.sb.featureIncompat, FEATURE_NAMES.incompat);
    add(this.sb.featureRoCompat, FEATURE_NAMES.roCompat);
    return out;
  }

  async readBlock(block: number): Promise<Buffer> {
    if (block >= this.sb.blocksCount) fail('EXT4_BAD_IMAGE', 'read block', 'block number beyond the filesystem', block);
    return readAt(this.fh, block * this.blockSize, this.blockSize);
  }

  /** Raw inode bytes and decoded fields. Verifies the checksum when metadata_csum is on. */
  async stat(ino: number): Promise<Stat> {
    const raw = await this.rawInode(ino);
    return this.decode(ino, raw);
  }

  /**
   * stat() for many inodes at once, in the order given: inodes sharing a stretch of an inode
   * table are read in one request (a directory's files are usually numbered together), which
   * makes walking big trees several times faster than one read per inode.
   */
  async statMany(inos: number[]): Promise<Stat[]> {
    const size = this.sb.inodeSize;
    const places = inos.map((ino) => {
      if (ino < 1 || ino > this.sb.inodesCount) fail('EXT4_BAD_IMAGE', 'read inode', 'inode number out of range', ino);
      const g = Math.floor((ino - 1) / this.sb.inodesPerGroup);
      return this.groups[g]!.inodeTable * this.blockSize + ((ino - 1) % this.sb.inodesPerGroup) * size;
    });
    const order = places.map((_, i) => i).sort((a, b) => places[a]! - places[b]!);
    const out = new Array<Stat>(inos.length);
    const maxRun = 64 * 1024; // one read covers at most this much of a table
    let i = 0;
    while (i < order.length) {
      const start = places[order[i]!]!;
      let j = i + 1;
      // Take following inodes while they are within a block of the previous one and the run stays short.
      while (j < order.length && places[order[j]!]! - places[order[j - 1]!]! <= this.blockSize && places[order[j]!]! + size - start <= maxRun) j++;
      const run = await readAt(this.fh, start, places[order[j - 1]!]! + size - start);
      for (let k = i; k < j; k++) {
        const idx = order[k]!;
        const raw = run.subarray(places[idx]! - start, places[idx]! - start + size);
        if (this.sb.featureRoCompat & RO_COMPAT_METADATA_CSUM && !inodeChecksumOk(raw, 0, inos[idx]!, this.csumSeed, size)) {
          fail('EXT4_BAD_IMAGE', 'read inode', 'inode checksum mismatch', inos[idx]);
        }
        out[idx] = this.decode(inos[idx]!, raw);
      }
      i = j;
    }
    return out;
  }

  private async rawInode(ino: number): Promise<Buffer> {
    if (ino < 1 || ino > this.sb.inodesCount) fail('EXT4_BAD_IMAGE', 'read inode', 'inode number out of range', ino);
    const g = Math.floor((ino - 1) / this.sb.inodesPerGroup);
    const idx = (ino - 1) % this.sb.inodesPerGroup;
    const off = this.groups[g]!.inodeTable * this.blockSize + idx * this.sb.inodeSize;
    const raw = await readAt(this.fh, off, this.sb.inodeSize);
    if (this.sb.featureRoCompat & RO_COMPAT_METADATA_CSUM && !inodeChecksumOk(raw, 0, ino, this.csumSeed, this.sb.inodeSize)) {
      fail('EXT4_BAD_IMAGE', 'read inode', 'inode checksum mismatch', ino);
    }
    return raw;
  }

  private decode(ino: number, raw: Buffer): Stat {
    const f = decodeInode(raw, 0);
    const kind = kindOf(f.mode);
    let major = 0;
    let minor = 0;
    if (kind === 'chardev' || kind === 'blockdev') {
      const w0 = f.iBlock.readUInt32LE(0);
      if (w0 !== 0) {
        major = (w0 >>> 8) & 0xff;
        minor = w0 & 0xff;
      } else {
        const w1 = f.iBlock.readUInt32LE(4);
        major = (w1 & 0xfff00) >>> 8;
        minor = (w1 & 0xff) | ((w1 >>> 12) & 0xfff00);
      }
    }
    return { ...f, ino, kind, perm: f.mode & 0o7777, major, minor };
  }

  /** The file's extents (logical → physical). */
  async extents(st: Stat): Promise<Extent[]> {
    if (st.flags & IFL_INLINE_DATA) fail('EXT4_BAD_IMAGE', 'read file', 'inline data is not supported', st.ino);
    if (!(st.flags & IFL_EXTENTS)) {
      if (st.kind === 'file' || st.kind === 'dir') {
        if (st.size === 0) return [];
        fail('EXT4_BAD_IMAGE', 'read file', 'block-mapped (non-extent) files are not supported', st.ino);
      }
      return [];
    }
    const out: Extent[] = [];
    const walk = async (buf: Buffer, off: number, depth: number): Promise<void> => {
      const node = decodeExtentNode(buf, off);
      if (!node) fail('EXT4_BAD_IMAGE', 'read extents', 'bad extent header', st.ino);
      if (depth > 5) fail('EXT4_BAD_IMAGE', 'read extents', 'extent tree too deep', st.ino);
      if (node.depth === 0) out.push(...node.extents);
      else for (const ix of node.indexes) await walk(await this.readBlock(ix.leaf), 0, depth + 1);
    };
    await walk(st.iBlock, 0, 0);
    return out;
  }

  /** Reads a whole file (or directory) body; holes read as zeros. */
  async readData(st: Stat): Promise<Buffer> {
    if (st.size > 2 ** 31) fail('EXT4_BAD_IMAGE', 'read file', 'too large to read into memory', st.size);
    const out = Buffer.alloc(st.size);
    for (const e of await this.extents(st)) {
      const start = e.logical * this.blockSize;
      if (start >= st.size) continue;
      const len = Math.min(e.length * this.blockSize, st.size - start);
      const { bytesRead } = await this.fh.read(out, start, len, e.physical * this.blockSize);
      if (bytesRead < len) fail('EXT4_BAD_IMAGE', 'read file', 'image truncated', st.ino);
    }
    return out;
  }

  /**
   * Reads `length` bytes of a file from `offset` without reading the rest (verify reads only the
   * headers and dynamic sections of thousands of ELF files). The result is clipped at the end of
   * the file, so it is shorter than `length` when the range runs past it (empty at or beyond
   * the end); holes read as zeros. Pass `extents` from `extents(st)` to save decoding them again
   * when reading several ranges of one file.
   */
  async readRange(st: Stat, offset: number, length: number, extents?: Extent[]): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      fail('EXT4_BAD_IMAGE', 'read file range', 'offset and length must be non-negative integers', `${offset}+${length}`);
    }
    const end = Math.min(st.size, offset + length);
    if (end <= offset) return Buffer.alloc(0);
    if (end - offset > 2 ** 31) fail('EXT4_BAD_IMAGE', 'read file range', 'too large to read into memory', end - offset);
    const out = Buffer.alloc(end - offset);
    for (const e of extents ?? (await this.extents(st))) {
      const from = Math.max(offset, e.logical * this.blockSize);
      const to = Math.min(end, (e.logical + e.length) * this.blockSize);
      if (from >= to) continue;
      const pos = e.physical * this.blockSize + (from - e.logical * this.blockSize);
      const { bytesRead } = await this.fh.read(out, from - offset, to - from, pos);
      if (bytesRead < to - from) fail('EXT4_BAD_IMAGE', 'read file', 'image truncated', st.ino);
    }
    return out;
  }

  /** Streams a file's bytes in order (holes as zeros) without holding the whole file. */
  async *stream(st: Stat, chunk = 1 << 20): AsyncGenerator<Buffer> {
    const extents = (await this.extents(st)).sort((a, b) => a.logical - b.logical);
    let pos = 0;
    const zeros = Buffer.alloc(chunk);
    for (const e of extents) {
      const start = e.logical * this.blockSize;
      while (pos < Math.min(start, st.size)) {
        const n = Math.min(chunk, start - pos, st.size - pos);
        yield zeros.subarray(0, n);
        pos += n;
      }
      const end = Math.min(st.size, (e.logical + e.length) * this.blockSize);
      while (pos < end) {
        const n = Math.min(chunk, end - pos);
        const b = await readAt(this.fh, e.physical * this.blockSize + (pos - start), n);
        yield b;
        pos += n;
      }
    }
    while (pos < st.size) {
      const n = Math.min(chunk, st.size - pos);
      yield zeros.subarray(0, n);
      pos += n;
    }
  }

  async readlink(st: Stat): Promise<string> {
    if (st.kind !== 'symlink') fail('EXT4_BAD_IMAGE', 'read link', 'not a symlink', st.ino);
    if (st.flags & IFL_EXTENTS) return (await this.readData(st)).toString('latin1');
    if (st.size >= I_BLOCK_SIZE) fail('EXT4_BAD_IMAGE', 'read link', 'fast symlink longer than i_block', st.ino);
    return st.iBlock.subarray(0, st.size).toString('latin1');
  }

  /** Directory entries except "." and "..", in on-disk order. */
  async readdir(st: Stat): Promise<DirListing[]> {
    if (st.kind !== 'dir') fail('EXT4_BAD_IMAGE', 'list directory', 'not a directory', st.ino);
    const data = await this.readData(st);
    const out: DirListing[] = [];
    for (let blk = 0; blk * this.blockSize < data.length; blk++) {
      let off = blk * this.blockSize;
      const end = off + this.blockSize;
      while (off + 8 <= end) {
        const ino = data.readUInt32LE(off);
        const recLen = data.readUInt16LE(off + 4);
        const nameLen = data.readUInt8(off + 6);
        if (recLen < 8 || off + recLen > end) fail('EXT4_BAD_IMAGE', 'list directory', 'corrupt directory entry', st.ino);
        if (ino !== 0 && nameLen > 0) {
          const name = data.subarray(off + 8, off + 8 + nameLen).toString('latin1');
          if (name !== '.' && name !== '..') out.push({ name, ino });
        }
        off += recLen;
      }
    }
    return out;
  }

  /** Full xattr names → values; ACLs returned in the VFS encoding (as getxattr shows them). */
  async xattrs(st: Stat): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    const raw = await this.rawInode(st.ino);
    const add = (items: ReturnType<typeof decodeXattrRegion>) => {
      for (const it of items) {
        const isAcl = it.index === XATTR_INDEX.posixAclAccess || it.index === XATTR_INDEX.posixAclDefault;
        out.set(xattrFullName(it.index, it.name), isAcl ? ext4AclToVfs(it.value) : it.value);
      }
    };
    const extra = raw.readUInt16LE(INO.extraIsize);
    const ibody = 128 + extra;
    if (this.sb.inodeSize > ibody + 4 && raw.readUInt32LE(ibody) === XATTR_MAGIC) {
      const first = ibody + 4;
      add(decodeXattrRegion(raw, first, this.sb.inodeSize, first));
    }
    if (st.fileAcl) {
      const b = await this.readBlock(st.fileAcl);
      if (b.readUInt32LE(0) !== XATTR_MAGIC) fail('EXT4_BAD_IMAGE', 'read xattrs', 'bad xattr block magic', st.ino);
      add(decodeXattrRegion(b, XATTR_BLOCK_HEADER, this.blockSize, 0));
    }
    return out;
  }

  /** Resolves a path (byte string) without following symlinks. */
  async lookup(path: string): Promise<Stat> {
    let st = await this.stat(ROOT_INO);
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      if (st.kind !== 'dir') fail('EXT4_NOT_FOUND', `find ${path}`, 'a parent is not a directory', path);
      const entries = await this.readdir(st);
      const hit = part === '..' ? null : entries.find((e) => e.name === part);
      if (!hit) fail('EXT4_NOT_FOUND', `find ${path}`, 'no such file or directory in the image', path);
      st = await this.stat(hit.ino);
    }
    return st;
  }

  /** Resolves a path following symlinks (absolute targets resolve inside the image), like open(2). */
  async resolve(path: string, maxLinks = 40): Promise<Stat> {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    const stack: Stat[] = [await this.stat(ROOT_INO)];
    let hops = 0;
    while (parts.length > 0) {
      const part = parts.shift()!;
      const dir = stack[stack.length - 1]!;
      if (part === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      if (dir.kind !== 'dir') fail('EXT4_NOT_FOUND', `find ${path}`, 'a parent is not a directory', path);
      const hit = (await this.readdir(dir)).find((e) => e.name === part);
      if (!hit) fail('EXT4_NOT_FOUND', `find ${path}`, 'no such file or directory in the image', path);
      const st = await this.stat(hit.ino);
      if (st.kind === 'symlink') {
        if (++hops > maxLinks) fail('EXT4_NOT_FOUND', `find ${path}`, 'too many levels of symbolic links', path);
        const target = await this.readlink(st);
        if (target.startsWith('/')) stack.length = 1;
        parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
        continue;
      }
      stack.push(st);
    }
    return stack[stack.length - 1]!;
  }

  /** Depth-first walk in name order: [path, stat] for every inode reachable from the root. */
  async *walk(from = ''): AsyncGenerator<[string, Stat]> {
    const start = await this.lookup(from);
    const prefix = from.replace(/\/+$/, '');
    yield [prefix || '/', start];
    if (start.kind !== 'dir') return;
    const stack: [string, Stat][] = [[prefix, start]];
    while (stack.length > 0) {
      const [path, dir] = stack.pop()!;
      const entries = (await this.readdir(dir)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const subdirs: [string, Stat][] = [];
      for (const e of entries) {
        const st = await this.stat(e.ino);
        const p = `${path}/${e.name}`;
        yield [p, st];
        if (st.kind === 'dir') subdirs.push([p, st]);
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
  }
}

function descriptorBlock(sb: Superblock, group: number, perBlock: number): number {
  const metaBg = sb.featureIncompat & INCOMPAT_META_BG;
  const idx = Math.floor(group / perBlock);
  if (!metaBg || idx < sb.firstMetaBg) return sb.firstDataBlock + 1 + idx;
  const first = idx * perBlock;
  return sb.firstDataBlock + first * sb.blocksPerGroup + (groupHasSuperblock(first) ? 1 : 0);
}

function kindOf(mode: number): FileKind {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'chardev';
    case S_IFBLK:
      return 'blockdev';
    case S_IFIFO:
      return 'fifo';
    case S_IFSOCK:
      return 'socket';
    default:
      throw new RootforgeError('EXT4_BAD_IMAGE', `Cannot read inode: unknown file type (mode 0o${mode.toString(8)})`);
  }
}

async function readAt(fh: FileHandle, pos: number, len: number): Promise<Buffer> {
  const b = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(b, done, len - done, pos + done);
    if (bytesRead === 0) fail('EXT4_BAD_IMAGE', 'read image', 'unexpected end of image', pos + done);
    done += bytesRead;
  }
  return b;
}
