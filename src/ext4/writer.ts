/**
 * Ext4Writer: turns an FsTree plus already-streamed file data into a finished ext4 image.
 *
 * Two phases. While a source is read, file bodies go through `writer.data` (a DataSink) to their
 * final blocks. `finish(tree)` then knows everything: it numbers inodes, plans directories,
 * sizes the filesystem (exactly: no shrinking afterwards), places the metadata after the data
 * (see the layout in format.ts) and writes it, the bitmaps, descriptors and superblocks.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { fail, printable, RootforgeError } from '../errors.js';
import { formatBytes } from '../util/size.js';
import type { Content, Inode } from '../tree/types.js';
import type { FsTree } from '../tree/tree.js';
import { BlockAllocator, type Run } from './alloc.js';
import {
  encodeGroupDesc,
  encodeInode,
  encodeSuperblock,
  inodeCsumSeed,
  sealInode,
  type Extent,
  type GroupDesc,
  type Superblock,
  TIME_MAX,
  TIME_MIN,
} from './codec.js';
import { crc32c } from './crc32c.js';
import { DataSink, writevFully } from './datasink.js';
import { encodeDirectory, planDirectory, type DirEntry, type DirPlan } from './dir.js';
import { encodeExtentTree, extentTreeBlocks } from './extents.js';
import {
  BG_INODE_ZEROED,
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  CHECKSUM_TYPE_CRC32C,
  COMPAT_DIR_INDEX,
  COMPAT_EXT_ATTR,
  COMPAT_HAS_JOURNAL,
  DEFM_ACL,
  DEFM_XATTR_USER,
  DESC_SIZE,
  DESCS_PER_BLOCK,
  DX_HASH_HALF_MD4,
  ERRORS_CONTINUE,
  EXTRA_ISIZE,
  FAST_SYMLINK_MAX,
  FIRST_INO,
  FLAG_UNSIGNED_HASH,
  FT_BLKDEV,
  FT_CHRDEV,
  FT_DIR,
  FT_FIFO,
  FT_REG,
  FT_SOCK,
  FT_SYMLINK,
  groupHasSuperblock,
  IFL_EXTENTS,
  IFL_INDEX,
  INCOMPAT_64BIT,
  INCOMPAT_EXTENTS,
  INCOMPAT_FILETYPE,
  INCOMPAT_FLEX_BG,
  INCOMPAT_META_BG,
  INODE_SIZE,
  INODES_PER_BLOCK,
  JNL_BACKUP_BLOCKS,
  JOURNAL_INO,
  LOG_BLOCK_SIZE,
  LOG_GROUPS_PER_FLEX,
  LOST_FOUND_BLOCKS,
  LOST_FOUND_INO,
  MAGIC,
  MAX_EXTENT_LEN,
  MAX_INODES_PER_GROUP,
  MAX_LINKS,
  OS_LINUX,
  REV_DYNAMIC,
  RO_COMPAT_DIR_NLINK,
  RO_COMPAT_EXTRA_ISIZE,
  RO_COMPAT_HUGE_FILE,
  RO_COMPAT_LARGE_FILE,
  RO_COMPAT_METADATA_CSUM,
  RO_COMPAT_SPARSE_SUPER,
  ROOT_INO,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  STATE_CLEAN,
  SUPERBLOCK_OFFSET,
  groupReservedBlocks,
} from './format.js';
import { defaultJournalBlocks, encodeJournalSuperblock } from './journal.js';
import {
  compareItems,
  encodeInodeXattrs,
  encodeXattrBlock,
  placeXattrs,
  sealXattrBlock,
  toXattrItem,
  type XattrItem,
} from './xattr.js';

/** How big the image is. */
export type SizeSpec =
  | { mode: 'auto' }
  | { mode: 'fixed'; bytes: number }
  | { mode: 'plus'; bytes: number };

export interface Ext4Options {
  /** Default `{ mode: 'auto' }`: the contents plus the headroom below. */
  size?: SizeSpec;
  /** No journal, no headroom. Default false. */
  readOnly?: boolean;
  /** Volume label, at most 16 bytes of UTF-8. Default ''. */
  label?: string;
  /** Filesystem UUID (16 bytes). Default: derived from the contents and options. */
  uuid?: Buffer;
  /** Journal size in 4 KiB blocks (≥ 1024). Default: defaultJournalBlocks(). */
  journalBlocks?: number;
  /** A writable image without a journal (saves ≥ 4 MiB on tiny images). Default true. */
  journal?: boolean;
  /** Seconds since the epoch stamped on the superblock (mkfs/write time) and on lost+found. Default 0. */
  timestamp?: number;
}

/** Free space and inodes left for the guest in an `auto`-sized writable image. */
export const HEADROOM = {
  /** Free blocks: this fraction of the used blocks ... */
  blocksFraction: 0.01,
  /** ... plus this many (1 MiB). */
  blocksMin: 256,
  /** Free inodes: this fraction of the used inodes ... */
  inodesFraction: 0.01,
  /** ... plus this many. */
  inodesMin: 64,
  /** Bytes per inode for the space a fixed or `+N` size adds (mke2fs's default ratio). */
  bytesPerInode: 16384,
} as const;

export interface ImageSummary {
  path?: string;
  sizeBytes: number;
  blocks: number;
  freeBlocks: number;
  inodes: number;
  freeInodes: number;
  groups: number;
  journalBlocks: number;
  uuid: string;
  files: number;
  directories: number;
  dataBytes: number;
  /** Milliseconds spent in each phase of finishing the image (diagnostics only). */
  timings: Record<string, number>;
}

interface Planned {
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

/** Marks where inode 8 (the journal) falls in the inode-order walk. */
const JOURNAL_SLOT = { ino: JOURNAL_INO } as unknown as Planned;

interface XattrBlockRef {
  key: string;
  items: XattrItem[];
  refs: number;
  block: number;
}

export class Ext4Writer {
  readonly alloc: BlockAllocator;
  readonly data: DataSink;
  private readonly opts: Required<Omit<Ext4Options, 'uuid' | 'journalBlocks'>> & Pick<Ext4Options, 'uuid' | 'journalBlocks'>;

  constructor(
    private readonly fh: FileHandle,
    options: Ext4Options = {},
  ) {
    this.opts = {
      size: options.size ?? { mode: 'auto' },
      readOnly: options.readOnly ?? false,
      label: options.label ?? '',
      uuid: options.uuid,
      journalBlocks: options.journalBlocks,
      journal: options.journal ?? true,
      timestamp: options.timestamp ?? 0,
    };
    validateOptions(this.opts);
    const limit = this.opts.size.mode === 'fixed' ? Math.floor(this.opts.size.bytes / BLOCK_SIZE) : Infinity;
    // block 0: superblock, block 1: meta-group 0's descriptors; data starts at block 2
    this.alloc = new BlockAllocator(2, limit);
    this.data = new DataSink(fh, this.alloc);
  }

  /** Content dropped from the tree (a replaced file): its blocks become reusable. */
  release(content: Content): void {
    if (content.kind !== 'placed') return;
    for (const r of content.runs) this.alloc.release({ start: r.physical, length: r.length });
  }

  /**
   * Reads back a file's bytes (provisioning edits a base's /etc/passwd, say). Placed content is
   * read from the image being written, after the data written so far reaches it.
   */
  async readContent(content: Content | null, size: number, maxBytes = 1 << 20): Promise<Buffer> {
    if (size > maxBytes) fail('PROVISION_FAILED', 'read file back', `larger than ${maxBytes} bytes`, size);
    if (!content) return Buffer.alloc(0);
    if (content.kind === 'bytes') return content.data;
    if (content.kind === 'hostfile') return readFile(content.path);
    if (content.kind === 'deferred') throw new Error('internal: deferred content read before it is filled in');
    await this.data.flush();
    const out = Buffer.alloc(size);
    for (const r of content.runs) {
      const start = r.logical * BLOCK_SIZE;
      if (start >= size) continue;
      const len = Math.min(r.length * BLOCK_SIZE, size - start);
      const { bytesRead } = await this.fh.read(out, start, len, r.physical * BLOCK_SIZE);
      if (bytesRead !== len) throw new Error('internal: short read of placed content');
    }
    return out;
  }

  /** Streams a host file's bytes into the image. */
  async placeHostFile(path: string | Buffer, size: number): Promise<Content | null> {
    const shown = typeof path === 'string' ? path : path.toString('latin1');
    this.data.beginFile(size);
    let got = 0;
    try {
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
        const buf = chunk as Buffer;
        if (got + buf.length > size) fail('SOURCE_UNREADABLE', `read ${printable(shown)}`, 'file grew while being read', size);
        this.data.write(buf);
        got += buf.length;
        await this.data.drain();
      }
    } catch (e) {
      this.data.abortFile();
      if (e instanceof RootforgeError) throw e;
      fail('SOURCE_UNREADABLE', `read ${printable(shown)}`, (e as Error).message, shown, e);
    }
    if (got !== size) {
      this.data.abortFile();
      fail('SOURCE_UNREADABLE', `read ${printable(shown)}`, 'file shrank while being read', `${got} of ${size} bytes`);
    }
    return this.data.endFile();
  }

  /** Writes all metadata for `tree` and completes the image. */
  async finish(tree: FsTree): Promise<ImageSummary> {
    const o = this.opts;
    // Wall-clock phase times for diagnostics (ImageSummary.timings); they never reach the image.
    const timings: Record<string, number> = {};
    let t0 = performance.now();
    const lap = (name: string) => {
      const t = performance.now();
      timings[name] = Math.round(t - t0);
      t0 = t;
    };
    await this.placePending(tree);
    await this.data.flush();

    lap('flush data');
    // ---- lost+found, inode numbers, link counts
    let lostFound = tree.root.children!.get('lost+found');
    if (!lostFound) {
      const t = { sec: o.timestamp, nsec: 0 };
      lostFound = tree.addDir('lost+found', { mode: 0o700, uid: 0, gid: 0, mtime: t });
    }
    const planned = numberInodes(tree.root, lostFound.kind === 'dir' ? lostFound : null);
    const byIno = new Map<number, Planned>();
    for (const p of planned) byIno.set(p.ino, p);
    const maxIno = Math.max(FIRST_INO, planned[planned.length - 1]!.ino); // planned is sorted by inode number

    lap('number inodes');
    // ---- identity (needed before hashing directory names)
    const fingerprint = fingerprintTree(planned, o);
    const uuid = o.uuid ?? uuidFrom(fingerprint.subarray(0, 16));
    const hashSeed = Buffer.from(fingerprint.subarray(16, 32));
    const csumSeed = crc32c(0xffffffff, uuid);

    lap('fingerprint');
    // ---- per-inode metadata needs
    const xattrBlocks = new Map<string, XattrBlockRef[]>();
    const xattrOrder: XattrBlockRef[] = [];
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
          const list = xattrBlocks.get(key) ?? [];
          let ref = list.find((r) => r.refs < 1024);
          if (!ref) {
            ref = { key, items: inBlock, refs: 0, block: 0 };
            list.push(ref);
            xattrBlocks.set(key, list);
            xattrOrder.push(ref);
            metaBlocks += 1;
          }
          ref.refs++;
          p.xattrBlock = ref;
        }
      }
    }

    lap('plan');
    // ---- size the filesystem
    const layout = this.chooseLayout(maxIno, metaBlocks, planned, xattrOrder.length);
    const { groups, ipg, totalBlocks, journalBlocks } = layout;
    const itableBlocks = ipg / INODES_PER_BLOCK;

    lap('layout');
    // ---- allocate metadata (the same sequence chooseLayout simulated)
    // Blocks handed out from gaps may hold dropped content; fresh ones are holes (zeros).
    const stale = this.alloc.freeGaps().map((g) => ({ ...g }));
    const placed = allocateMetadata(this.alloc, groups, ipg, journalBlocks, planned, xattrOrder.length);
    if (this.alloc.next > totalBlocks) throw new Error('internal: layout overflow');
    const { itable, blockBitmap, inodeBitmap, journalRuns } = placed;
    planned.forEach((p, i) => {
      const a = placed.perInode[i]!;
      if (p.dirPlan) {
        p.dirRuns = a.dirRuns;
        p.extents = runsToExtents(a.dirRuns);
      }
      if (a.symlinkBlock) {
        p.symlinkBlock = a.symlinkBlock;
        p.extents = [{ logical: 0, physical: a.symlinkBlock, length: 1 }];
      }
      p.treeBlocks = a.treeBlocks;
    });
    xattrOrder.forEach((x, i) => (x.block = placed.xattrBlocks[i]!));

    lap('allocate');
    // ---- encode and write
    const out = new BlockWriter(this.fh);
    // Inode tables are filled in inode order, so each group's table is written out as soon as
    // the walk passes it; tables of groups without inodes are left as holes (or zeroed if stale).
    let table: Buffer | null = null;
    let tableGroup = -1;
    const closeTable = () => {
      if (table) out.putRuns([{ start: itable[tableGroup]!, length: itableBlocks }], splitBlocks(table));
      table = null;
    };
    const tableSlot = (ino: number) => {
      const g = Math.floor((ino - 1) / ipg);
      if (g !== tableGroup) {
        closeTable();
        tableGroup = g;
        table = Buffer.alloc(itableBlocks * BLOCK_SIZE);
      }
      return { buf: table!, off: ((ino - 1) % ipg) * INODE_SIZE };
    };
    const inodes: Planned[] = [...planned];
    const journalAt = inodes.findIndex((p) => p.ino > JOURNAL_INO);
    inodes.splice(journalAt < 0 ? inodes.length : journalAt, 0, JOURNAL_SLOT);

    for (const p of inodes) {
      if (out.held > BLOCK_WRITER_BUDGET) await out.flush();
      if (p === JOURNAL_SLOT) {
        if (journalBlocks > 0) layout.jnlBlocks = this.encodeJournal(journalRuns, uuid, csumSeed, tableSlot(JOURNAL_INO), out);
        continue;
      }
      const n = p.node;
      const seed = inodeCsumSeed(csumSeed, p.ino);
      let iBlock: Buffer = Buffer.alloc(60);
      let flags = 0;
      let size = 0;
      let dataBlocks = 0;
      let mode = 0;
      switch (n.kind) {
        case 'dir': {
          const blocks = encodeDirectory(p.entries, p.dirPlan!, p.ino, p.parentIno, seed, p.dirPlan!.blocks);
          out.putRuns(p.dirRuns, blocks);
          mode = S_IFDIR;
          size = blocks.length * BLOCK_SIZE;
          dataBlocks = blocks.length;
          flags = IFL_EXTENTS | (p.dirPlan!.indexed ? IFL_INDEX : 0);
          break;
        }
        case 'file':
          mode = S_IFREG;
          size = n.size;
          flags = IFL_EXTENTS;
          for (const e of p.extents) dataBlocks += e.length;
          break;
        case 'symlink': {
          mode = S_IFLNK;
          const target = Buffer.from(n.target, 'latin1');
          size = target.length;
          if (p.symlinkBlock) {
            const b = Buffer.alloc(BLOCK_SIZE);
            target.copy(b);
            out.put(p.symlinkBlock, b);
            flags = IFL_EXTENTS;
            dataBlocks = 1;
          } else {
            target.copy(iBlock);
          }
          break;
        }
        case 'chardev':
        case 'blockdev':
          mode = n.kind === 'chardev' ? S_IFCHR : S_IFBLK;
          encodeDevice(iBlock, n.major, n.minor);
          break;
        case 'fifo':
          mode = S_IFIFO;
          break;
        case 'socket':
          mode = S_IFSOCK;
          break;
      }
      if (flags & IFL_EXTENTS) {
        const tree = encodeExtentTree(p.extents, p.treeBlocks, seed);
        iBlock = tree.iBlock;
        p.treeBlocks.forEach((blk, i) => out.put(blk, tree.blocks[i]!));
      }
      const blocks512 = (dataBlocks + p.treeBlocks.length + (p.xattrBlock ? 1 : 0)) * (BLOCK_SIZE / 512);
      const { buf, off } = tableSlot(p.ino);
      encodeInodeXattrs(p.inodeXattrs, buf, off);
      encodeInode(
        {
          mode: mode | n.mode,
          uid: n.uid,
          gid: n.gid,
          size,
          atime: clampTime(n.atime),
          ctime: clampTime(n.ctime),
          mtime: clampTime(n.mtime),
          crtime: clampTime(n.mtime),
          linksCount: p.links,
          blocks512,
          flags,
          iBlock,
          fileAcl: p.xattrBlock ? p.xattrBlock.block : 0,
          generation: 0,
        },
        buf,
        off,
      );
      sealInode(buf, off, p.ino, csumSeed);
    }

    for (const x of xattrOrder) {
      const b = encodeXattrBlock(x.items);
      sealXattrBlock(b, x.refs, x.block, csumSeed);
      out.put(x.block, b);
    }

    closeTable();
    // Metadata written only in part must not keep bytes of dropped content: unused inode
    // tables and the journal's log area, where they came from gaps.
    for (let g = 0; g < groups; g++) {
      if (usedInodesIn(g, ipg, maxIno) === 0) for (const r of intersect(stale, itable[g]!, itableBlocks)) out.zero(r.start, r.length);
    }
    for (const j of journalRuns) for (const r of intersect(stale, j.start, j.length)) out.zero(r.start, r.length);

    lap('encode inodes');
    // ---- bitmaps and descriptors
    const descs: GroupDesc[] = [];
    let freeBlocksTotal = 0;
    let freeInodesTotal = 0;
    const usedDirsPerGroup = new Array<number>(groups).fill(0);
    for (const p of planned) if (p.node.kind === 'dir') usedDirsPerGroup[Math.floor((p.ino - 1) / ipg)]!++;
    for (let g = 0; g < groups; g++) {
      const bb = this.blockBitmap(g, totalBlocks);
      const ib = Buffer.alloc(BLOCK_SIZE, 0xff); // bits past inodes_per_group stay set (padding)
      ib.fill(0, 0, ipg / 8);
      const usedHere = usedInodesIn(g, ipg, maxIno);
      setBits(ib, 0, usedHere);
      const freeBlocks = bb.free;
      const freeInodes = ipg - usedHere;
      freeBlocksTotal += freeBlocks;
      freeInodesTotal += freeInodes;
      out.put(blockBitmap[g]!, bb.bitmap);
      out.put(inodeBitmap[g]!, ib);
      descs.push({
        blockBitmap: blockBitmap[g]!,
        inodeBitmap: inodeBitmap[g]!,
        inodeTable: itable[g]!,
        freeBlocks,
        freeInodes,
        usedDirs: usedDirsPerGroup[g]!,
        flags: BG_INODE_ZEROED,
        itableUnused: freeInodes,
        blockBitmapCsum: crc32c(csumSeed, bb.bitmap, 0, BLOCKS_PER_GROUP / 8),
        inodeBitmapCsum: crc32c(csumSeed, ib, 0, ipg / 8),
      });
    }

    // ---- zero blocks that held dropped content and were not reused
    for (const gap of this.alloc.freeGaps()) out.zero(gap.start, gap.length);

    const sb: Superblock = {
      inodesCount: groups * ipg,
      blocksCount: totalBlocks,
      rBlocksCount: 0,
      freeBlocksCount: freeBlocksTotal,
      freeInodesCount: freeInodesTotal,
      firstDataBlock: 0,
      logBlockSize: LOG_BLOCK_SIZE,
      blocksPerGroup: BLOCKS_PER_GROUP,
      inodesPerGroup: ipg,
      mtime: 0,
      wtime: o.timestamp,
      mntCount: 0,
      maxMntCount: -1,
      magic: MAGIC,
      state: STATE_CLEAN,
      errors: ERRORS_CONTINUE,
      lastcheck: o.timestamp,
      creatorOs: OS_LINUX,
      revLevel: REV_DYNAMIC,
      firstIno: FIRST_INO,
      inodeSize: INODE_SIZE,
      featureCompat: COMPAT_EXT_ATTR | COMPAT_DIR_INDEX | (journalBlocks > 0 ? COMPAT_HAS_JOURNAL : 0),
      featureIncompat: INCOMPAT_FILETYPE | INCOMPAT_META_BG | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG,
      featureRoCompat:
        RO_COMPAT_SPARSE_SUPER |
        RO_COMPAT_LARGE_FILE |
        RO_COMPAT_HUGE_FILE |
        RO_COMPAT_DIR_NLINK |
        RO_COMPAT_EXTRA_ISIZE |
        RO_COMPAT_METADATA_CSUM,
      uuid,
      volumeName: labelBytes(o.label),
      journalInum: journalBlocks > 0 ? JOURNAL_INO : 0,
      hashSeed,
      defHashVersion: DX_HASH_HALF_MD4,
      jnlBackupType: journalBlocks > 0 ? JNL_BACKUP_BLOCKS : 0,
      descSize: DESC_SIZE,
      defaultMountOpts: DEFM_XATTR_USER | DEFM_ACL,
      firstMetaBg: 0,
      mkfsTime: o.timestamp,
      jnlBlocks: layout.jnlBlocks,
      minExtraIsize: EXTRA_ISIZE,
      wantExtraIsize: EXTRA_ISIZE,
      flags: FLAG_UNSIGNED_HASH,
      logGroupsPerFlex: LOG_GROUPS_PER_FLEX,
      checksumType: CHECKSUM_TYPE_CRC32C,
      checksumSeed: 0,
      checksum: 0,
    };

    // descriptor blocks: one per meta-group, in its first, second and last group
    for (let m = 0; m * DESCS_PER_BLOCK < groups; m++) {
      const block = Buffer.alloc(BLOCK_SIZE);
      for (let i = 0; i < DESCS_PER_BLOCK && m * DESCS_PER_BLOCK + i < groups; i++) {
        const g = m * DESCS_PER_BLOCK + i;
        encodeGroupDesc(descs[g]!, g, csumSeed, block, i * DESC_SIZE);
      }
      for (const g of [m * DESCS_PER_BLOCK, m * DESCS_PER_BLOCK + 1, m * DESCS_PER_BLOCK + DESCS_PER_BLOCK - 1]) {
        if (g >= groups) continue;
        out.put(g * BLOCKS_PER_GROUP + (groupHasSuperblock(g) ? 1 : 0), block);
      }
    }
    // superblocks: primary at byte 1024, backups at the start of their groups
    for (let g = 0; g < groups; g++) {
      if (!groupHasSuperblock(g)) continue;
      const fixed = encodeSuperblockWithGroup(sb, g);
      const b = Buffer.alloc(BLOCK_SIZE);
      fixed.copy(b, g === 0 ? SUPERBLOCK_OFFSET : 0);
      out.put(g * BLOCKS_PER_GROUP, b);
    }
    await out.flush();
    await this.fh.truncate(totalBlocks * BLOCK_SIZE);
    lap('bitmaps, descriptors, write');

    return {
      sizeBytes: totalBlocks * BLOCK_SIZE,
      blocks: totalBlocks,
      freeBlocks: freeBlocksTotal,
      inodes: groups * ipg,
      freeInodes: freeInodesTotal,
      groups,
      journalBlocks,
      uuid: formatUuid(uuid),
      files,
      directories,
      dataBytes: this.data.bytesIn,
      timings,
    };
  }

  /** The journal inode (8) and the journal superblock; returns s_jnl_blocks. */
  private encodeJournal(runs: Run[], uuid: Buffer, csumSeed: number, slot: { buf: Buffer; off: number }, out: BlockWriter): number[] {
    const blocks = runs.reduce((n, r) => n + r.length, 0);
    const tree = encodeExtentTree(runsToExtents(runs), [], inodeCsumSeed(csumSeed, JOURNAL_INO));
    const t = { sec: this.opts.timestamp, nsec: 0 };
    encodeInodeXattrs([], slot.buf, slot.off);
    encodeInode(
      {
        mode: S_IFREG | 0o600,
        uid: 0,
        gid: 0,
        size: blocks * BLOCK_SIZE,
        atime: t,
        ctime: t,
        mtime: t,
        crtime: t,
        linksCount: 1,
        blocks512: blocks * (BLOCK_SIZE / 512),
        flags: IFL_EXTENTS,
        iBlock: tree.iBlock,
        fileAcl: 0,
        generation: 0,
      },
      slot.buf,
      slot.off,
    );
    sealInode(slot.buf, slot.off, JOURNAL_INO, csumSeed);
    out.put(runs[0]!.start, encodeJournalSuperblock(blocks, uuid));
    return jnlBackup(tree.iBlock, blocks * BLOCK_SIZE);
  }

  /** Streams content that is not in the image yet (host files, generated bytes). */
  private async placePending(tree: FsTree): Promise<void> {
    const visit = async (dir: Inode): Promise<void> => {
      for (const name of [...dir.children!.keys()].sort()) {
        const n = dir.children!.get(name)!;
        if (n.kind === 'dir') await visit(n);
        else if (n.kind === 'file' && n.content && n.content.kind !== 'placed') {
          if (n.content.kind === 'deferred') throw new Error('internal: deferred content not filled in before finish');
          if (n.content.kind === 'bytes') {
            this.data.beginFile(n.content.data.length);
            this.data.write(n.content.data);
            n.content = this.data.endFile();
            await this.data.drain();
          } else {
            n.content = await this.placeHostFile(n.content.path, n.size);
          }
        }
      }
    };
    await visit(tree.root);
  }

  /**
   * Picks groups, inodes per group, journal and total size. Simulates the metadata allocation on
   * a copy of the allocator, because where the cursor ends depends on gaps and reserved spots.
   */
  private chooseLayout(maxIno: number, metaBlocks: number, planned: Planned[], xattrBlockCount: number): Layout {
    const o = this.opts;
    const usedInodes = maxIno;
    let wantInodes: number;
    let fixedTotal = 0;
    if (o.size.mode === 'fixed') {
      fixedTotal = Math.floor(o.size.bytes / BLOCK_SIZE);
      wantInodes = Math.max(usedInodes + (o.readOnly ? 0 : HEADROOM.inodesMin), Math.floor(o.size.bytes / HEADROOM.bytesPerInode));
    } else {
      wantInodes = o.readOnly ? usedInodes : Math.ceil(usedInodes * (1 + HEADROOM.inodesFraction)) + HEADROOM.inodesMin;
      if (o.size.mode === 'plus') wantInodes += Math.floor(o.size.bytes / HEADROOM.bytesPerInode);
    }
    let groups = Math.max(1, Math.ceil(wantInodes / MAX_INODES_PER_GROUP), fixedTotal ? Math.ceil(fixedTotal / BLOCKS_PER_GROUP) : Math.ceil(this.alloc.next / BLOCKS_PER_GROUP));
    for (let iter = 0; iter < 64; iter++) {
      const ipg = Math.min(MAX_INODES_PER_GROUP, roundUp(Math.max(Math.ceil(wantInodes / groups), INODES_PER_BLOCK), INODES_PER_BLOCK));
      if (ipg * groups < usedInodes) {
        groups++;
        continue;
      }
      const est = this.alloc.next + metaBlocks + (groups * ipg) / INODES_PER_BLOCK + 2 * groups;
      const journalBlocks = o.readOnly || !o.journal ? 0 : (o.journalBlocks ?? defaultJournalBlocks(fixedTotal || est));
      const sim = cloneAllocator(this.alloc);
      allocateMetadata(sim, groups, ipg, journalBlocks, planned, xattrBlockCount);
      const usedEnd = sim.next;
      const used = usedEnd - sim.gapBlocks();
      let total: number;
      if (fixedTotal) {
        if (usedEnd > fixedTotal) {
          fail('EXT4_NO_SPACE', 'write image', `the contents need ${formatBytes(usedEnd * BLOCK_SIZE)}`, `size ${formatBytes(fixedTotal * BLOCK_SIZE)}`);
        }
        total = fixedTotal;
      } else {
        const headroom = o.readOnly ? 0 : Math.ceil(used * HEADROOM.blocksFraction) + HEADROOM.blocksMin;
        const extra = o.size.mode === 'plus' ? Math.ceil(o.size.bytes / BLOCK_SIZE) : 0;
        total = Math.max(usedEnd, used + headroom + extra);
        // the last group must hold more than its reserved spots
        const lastGroup = Math.floor((total - 1) / BLOCKS_PER_GROUP);
        const minTotal = lastGroup * BLOCKS_PER_GROUP + groupReservedBlocks(lastGroup) + 1;
        total = Math.max(total, minTotal, (groups - 1) * BLOCKS_PER_GROUP + groupReservedBlocks(groups - 1) + 1);
      }
      const needGroups = Math.ceil(total / BLOCKS_PER_GROUP);
      if (needGroups > groups) {
        groups = needGroups;
        continue;
      }
      if (needGroups < groups && !fixedTotal) {
        // more groups than blocks need (inode-heavy tree): the image spans them all
        total = Math.max(total, (groups - 1) * BLOCKS_PER_GROUP + groupReservedBlocks(groups - 1) + 1);
      }
      return { groups, ipg, totalBlocks: total, journalBlocks, jnlBlocks: [] };
    }
    throw new Error('internal: layout did not converge');
  }

  /** Block bitmap of group g: used = below the cursor and not a gap, or a reserved spot; past the end = set. */
  private blockBitmap(g: number, totalBlocks: number): { bitmap: Buffer; free: number } {
    const bitmap = Buffer.alloc(BLOCK_SIZE);
    const start = g * BLOCKS_PER_GROUP;
    const end = Math.min(start + BLOCKS_PER_GROUP, totalBlocks);
    const usedEnd = Math.min(this.alloc.next, end);
    if (usedEnd > start) setBits(bitmap, 0, usedEnd - start);
    for (const gap of this.alloc.freeGaps()) {
      const a = Math.max(gap.start, start);
      const b = Math.min(gap.start + gap.length, end);
      if (b > a) clearBits(bitmap, a - start, b - a);
    }
    setBits(bitmap, 0, groupReservedBlocks(g));
    if (end < start + BLOCKS_PER_GROUP) setBits(bitmap, end - start, start + BLOCKS_PER_GROUP - end);
    let used = 0;
    for (let i = 0; i < (end - start + 7) >> 3; i++) used += POPCOUNT[bitmap[i]!]!;
    // bits past `end` in the last partial byte were counted; subtract them
    const tailBits = ((end - start) & 7) === 0 ? 0 : 8 - ((end - start) & 7);
    used -= tailBits;
    return { bitmap, free: end - start - used };
  }
}

interface MetadataPlacement {
  itable: number[];
  blockBitmap: number[];
  inodeBitmap: number[];
  journalRuns: Run[];
  perInode: { dirRuns: Run[]; treeBlocks: number[]; symlinkBlock: number }[];
  xattrBlocks: number[];
}

/**
 * Places all metadata, in a fixed order: inode tables (each contiguous), bitmaps, journal,
 * directories, extent-tree blocks, slow-symlink blocks, xattr blocks. Run once on a copy of the
 * allocator to size the image and once for real, so both agree to the block.
 */
function allocateMetadata(a: BlockAllocator, groups: number, ipg: number, journalBlocks: number, planned: Planned[], xattrBlockCount: number): MetadataPlacement {
  const itable: number[] = [];
  for (let g = 0; g < groups; g++) itable.push(a.allocateContiguous(ipg / INODES_PER_BLOCK));
  const blockBitmap: number[] = [];
  const inodeBitmap: number[] = [];
  for (let g = 0; g < groups; g++) blockBitmap.push(a.allocate(1)[0]!.start);
  for (let g = 0; g < groups; g++) inodeBitmap.push(a.allocate(1)[0]!.start);
  const journalRuns: Run[] = [];
  if (journalBlocks > 0) {
    const first = Math.min(journalBlocks, MAX_EXTENT_LEN);
    journalRuns.push({ start: a.allocateContiguous(first), length: first });
    if (journalBlocks > first) journalRuns.push(...a.allocate(journalBlocks - first));
  }
  const perInode = planned.map((p) => ({
    dirRuns: p.dirPlan ? a.allocate(p.dirPlan.blocks) : [],
    treeBlocks: [] as number[],
    symlinkBlock: 0,
  }));
  planned.forEach((p, i) => {
    const extents = p.dirPlan ? runsToExtents(perInode[i]!.dirRuns).length : p.extents.length;
    const need = extentTreeBlocks(extents);
    if (need > 0) perInode[i]!.treeBlocks = runsToBlocks(a.allocate(need));
  });
  planned.forEach((p, i) => {
    if (p.node.kind === 'symlink' && p.node.target.length > FAST_SYMLINK_MAX) perInode[i]!.symlinkBlock = a.allocate(1)[0]!.start;
  });
  const xattrBlocks: number[] = [];
  for (let i = 0; i < xattrBlockCount; i++) xattrBlocks.push(a.allocate(1)[0]!.start);
  return { itable, blockBitmap, inodeBitmap, journalRuns, perInode, xattrBlocks };
}

interface Layout {
  groups: number;
  ipg: number;
  totalBlocks: number;
  journalBlocks: number;
  jnlBlocks: number[];
}

// ---------------------------------------------------------------- helpers

function validateOptions(o: { size: SizeSpec; label: string; uuid?: Buffer | undefined; journalBlocks?: number | undefined; timestamp: number }): void {
  if (Buffer.byteLength(o.label, 'utf8') > 16) fail('OPTION_INVALID', 'set label', 'longer than 16 bytes', o.label);
  if (o.uuid && o.uuid.length !== 16) fail('OPTION_INVALID', 'set UUID', 'must be 16 bytes', o.uuid.toString('hex'));
  if (o.journalBlocks !== undefined && (!Number.isInteger(o.journalBlocks) || o.journalBlocks < 1024 || o.journalBlocks > 262144)) {
    fail('OPTION_INVALID', 'set journal size', 'must be 1024..262144 blocks', o.journalBlocks);
  }
  if (o.size.mode !== 'auto' && (!Number.isFinite(o.size.bytes) || o.size.bytes < 0)) fail('OPTION_INVALID', 'set size', 'not a byte count', o.size.bytes);
  if (o.size.mode === 'fixed' && o.size.bytes < 64 * BLOCK_SIZE) fail('OPTION_INVALID', 'set size', 'smaller than 256 KiB', o.size.bytes);
  if (!Number.isInteger(o.timestamp)) fail('OPTION_INVALID', 'set timestamp', 'not whole seconds', o.timestamp);
}

/**
 * Numbers inodes: root 2, lost+found 11, then each directory's children in name order before
 * descending into its subdirectories (so a directory's entries sit close in the inode table).
 */
function numberInodes(root: Inode, lostFound: Inode | null): Planned[] {
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

function fileType(n: Inode): number {
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

/** Device numbers: the old 16-bit form in i_block[0] when both fit in 8 bits, else i_block[1]. */
function encodeDevice(iBlock: Buffer, major: number, minor: number): void {
  if (major < 256 && minor < 256) {
    iBlock.writeUInt32LE((major << 8) | minor, 0);
  } else {
    iBlock.writeUInt32LE(((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0, 4);
  }
}

function clampTime(t: { sec: number; nsec: number }): { sec: number; nsec: number } {
  if (t.sec < TIME_MIN) return { sec: TIME_MIN, nsec: 0 };
  if (t.sec > TIME_MAX) return { sec: TIME_MAX, nsec: 999999999 };
  return t;
}

/**
 * A digest of everything that determines the image: the tree (in inode order, with content
 * checksums) and the options. UUID and htree hash seed come from it, so equal inputs give equal
 * images and different inputs different UUIDs.
 */
function fingerprintTree(planned: Planned[], o: { size: SizeSpec; readOnly: boolean; label: string; journalBlocks?: number | undefined; journal: boolean }): Buffer {
  const h = createHash('sha256');
  h.update(`rootforge-ext4-v1\0${JSON.stringify(o.size)}\0${o.readOnly}\0${o.label}\0${o.journalBlocks ?? ''}\0${o.journal ? '' : 'nojournal'}\0`);
  // One latin1 string per batch of inodes: far fewer hash updates than one per field.
  let batch = '';
  for (const p of planned) {
    const n = p.node;
    const c = n.content && n.content.kind === 'placed' ? n.content : null;
    batch += `${p.ino} ${n.kind} ${n.mode} ${n.uid} ${n.gid} ${n.mtime.sec}.${n.mtime.nsec} ${n.atime.sec}.${n.atime.nsec} ${n.ctime.sec}.${n.ctime.nsec} ${n.size} ${c ? c.crc : ''}:${c ? c.runs.length : ''} ${n.major}:${n.minor} ${n.target.length}:${n.target}`;
    if (n.xattrs.size > 0) {
      for (const [k, v] of [...n.xattrs].sort((a, b) => (a[0] < b[0] ? -1 : 1))) batch += ` ${k.length}:${k}=${v.length}:${v.toString('latin1')}`;
    }
    for (const e of p.entries) batch += ` ${e.ino}/${e.name.length}:${e.name.toString('latin1')}`;
    batch += '\n';
    if (batch.length > 1 << 16) {
      h.update(batch, 'latin1');
      batch = '';
    }
  }
  h.update(batch, 'latin1');
  return h.digest();
}

/** RFC 9562 version 8 (custom) UUID from 16 digest bytes. */
function uuidFrom(bytes: Buffer): Buffer {
  const u = Buffer.from(bytes);
  u[6] = (u[6]! & 0x0f) | 0x80;
  u[8] = (u[8]! & 0x3f) | 0x80;
  return u;
}

export function formatUuid(u: Buffer): string {
  const h = u.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function parseUuid(s: string): Buffer {
  const hex = s.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) fail('OPTION_INVALID', 'parse UUID', 'expected 32 hex digits', s);
  return Buffer.from(hex, 'hex');
}

function labelBytes(label: string): Buffer {
  const b = Buffer.alloc(16);
  Buffer.from(label, 'utf8').copy(b, 0, 0, 16);
  return b;
}

function xattrKey(items: XattrItem[]): string {
  return items.map((i) => `${i.index}:${i.name.toString('hex')}=${i.value.toString('hex')}`).join(';');
}

function runsToExtents(runs: Run[]): Extent[] {
  const out: Extent[] = [];
  let logical = 0;
  for (const r of runs) {
    let left = r.length;
    let phys = r.start;
    while (left > 0) {
      const n = Math.min(left, MAX_EXTENT_LEN);
      out.push({ logical, physical: phys, length: n });
      logical += n;
      phys += n;
      left -= n;
    }
  }
  return out;
}

function runsToBlocks(runs: Run[]): number[] {
  const out: number[] = [];
  for (const r of runs) for (let i = 0; i < r.length; i++) out.push(r.start + i);
  return out;
}

/** Inodes 1..maxIno are in use: how many of them fall in group g. */
function usedInodesIn(g: number, ipg: number, maxIno: number): number {
  return Math.max(0, Math.min(maxIno, (g + 1) * ipg) - g * ipg);
}

/** The parts of [start, start + length) that lie in `runs`. */
function intersect(runs: Run[], start: number, length: number): Run[] {
  const out: Run[] = [];
  for (const r of runs) {
    const a = Math.max(r.start, start);
    const b = Math.min(r.start + r.length, start + length);
    if (b > a) out.push({ start: a, length: b - a });
  }
  return out;
}

/** Metadata held in memory before it is written out. */
const BLOCK_WRITER_BUDGET = 32 * 1024 * 1024;

function splitBlocks(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < buf.length; off += BLOCK_SIZE) out.push(buf.subarray(off, off + BLOCK_SIZE));
  return out;
}

/** s_jnl_blocks: a copy of the journal inode's i_block, then i_size_high and i_size. */
function jnlBackup(iBlock: Buffer, size: number): number[] {
  const words: number[] = [];
  for (let i = 0; i < 15; i++) words.push(iBlock.readUInt32LE(i * 4));
  words.push(Math.floor(size / 2 ** 32));
  words.push(size % 2 ** 32);
  return words;
}

function encodeSuperblockWithGroup(sb: Superblock, group: number): Buffer {
  const b = encodeSuperblock(sb);
  if (group === 0) return b;
  b.writeUInt16LE(group, 0x5a); // s_block_group_nr
  b.writeUInt32LE(crc32c(0xffffffff, b, 0, 0x3fc), 0x3fc);
  return b;
}

function cloneAllocator(a: BlockAllocator): BlockAllocator {
  const c = new BlockAllocator(a.next, Infinity);
  for (const g of a.freeGaps()) c.release({ ...g });
  return c;
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

function setBits(b: Buffer, from: number, count: number): void {
  let i = from;
  const end = from + count;
  while (i < end && i & 7) b[i >> 3]! |= 1 << (i & 7), i++;
  while (i + 8 <= end) b[i >> 3] = 0xff, (i += 8);
  while (i < end) b[i >> 3]! |= 1 << (i & 7), i++;
}

function clearBits(b: Buffer, from: number, count: number): void {
  let i = from;
  const end = from + count;
  while (i < end && i & 7) b[i >> 3]! &= ~(1 << (i & 7)), i++;
  while (i + 8 <= end) b[i >> 3] = 0, (i += 8);
  while (i < end) b[i >> 3]! &= ~(1 << (i & 7)), i++;
}

const POPCOUNT = new Uint8Array(256);
for (let i = 0; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1]!;


/**
 * Collects metadata blocks and writes them sorted, merging neighbours into large writes.
 */
class BlockWriter {
  private blocks = new Map<number, Buffer>();
  private zeros: Run[] = [];
  /** Bytes of blocks waiting to be written. */
  held = 0;

  constructor(private readonly fh: FileHandle) {}

  put(block: number, buf: Buffer): void {
    if (buf.length !== BLOCK_SIZE) throw new Error('internal: metadata block of wrong size');
    if (!this.blocks.has(block)) this.held += BLOCK_SIZE;
    this.blocks.set(block, buf);
  }

  putRuns(runs: Run[], bufs: Buffer[]): void {
    let i = 0;
    for (const r of runs) for (let k = 0; k < r.length; k++) this.put(r.start + k, bufs[i++]!);
    if (i !== bufs.length) throw new Error('internal: run/buffer count mismatch');
  }

  zero(start: number, length: number): void {
    this.zeros.push({ start, length });
  }

  async flush(): Promise<void> {
    const zero = Buffer.alloc(BLOCK_SIZE);
    for (const z of this.zeros) for (let k = 0; k < z.length; k++) if (!this.blocks.has(z.start + k)) this.blocks.set(z.start + k, zero);
    const keys = [...this.blocks.keys()].sort((a, b) => a - b);
    const MAX = 1000; // blocks per write (writev takes at most 1024 buffers)
    let i = 0;
    while (i < keys.length) {
      let j = i + 1;
      while (j < keys.length && keys[j] === keys[j - 1]! + 1 && j - i < MAX) j++;
      await writevFully(this.fh, keys.slice(i, j).map((k) => this.blocks.get(k)!), keys[i]! * BLOCK_SIZE);
      i = j;
    }
    this.blocks.clear();
    this.zeros = [];
    this.held = 0;
  }
}
