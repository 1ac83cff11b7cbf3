/**
 * Ext4Writer: turns an FsTree plus already-streamed file data into a finished ext4 image.
 *
 * Two phases. While a source is read, file bodies go through `writer.data` (a DataSink) to their
 * final blocks. `finish(tree)` then knows everything and runs the steps, each in its own module:
 *   plan.ts      number inodes, plan directories, xattrs and the metadata every inode needs
 *   identity.ts  fingerprint → UUID and htree hash seed
 *   layout.ts    size the filesystem exactly (no shrinking afterwards) and place the metadata
 *                after the data (see the layout in format.ts)
 *   (here)       encode inodes, directories, extent trees, xattr blocks, the journal
 *   bitmaps.ts   block and inode bitmaps, group descriptors
 *   output.ts    descriptor blocks, superblocks, sorted block writes
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { fail, printable, RootforgeError } from '../errors.js';
import type { Content, Inode } from '../tree/types.js';
import type { ContentSink } from '../tree/sink.js';
import type { FsTree } from '../tree/tree.js';
import { BlockAllocator, type Run } from './alloc.js';
import { groupBitmaps, usedInodesIn } from './bitmaps.js';
import { encodeInode, inodeCsumSeed, sealInode, type Extent, type Superblock, TIME_MAX, TIME_MIN } from './codec.js';
import { DataSink, writevFully } from './datasink.js';
import { encodeDirectory } from './dir.js';
import { encodeExtentTree, runsToExtents } from './extents.js';
import {
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  CHECKSUM_TYPE_CRC32C,
  COMPAT_DIR_INDEX,
  COMPAT_EXT_ATTR,
  COMPAT_HAS_JOURNAL,
  DEFM_ACL,
  DEFM_XATTR_USER,
  DESC_SIZE,
  DX_HASH_HALF_MD4,
  ERRORS_CONTINUE,
  EXTRA_ISIZE,
  FIRST_INO,
  FLAG_UNSIGNED_HASH,
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
  MAGIC,
  OS_LINUX,
  REV_DYNAMIC,
  RO_COMPAT_DIR_NLINK,
  RO_COMPAT_EXTRA_ISIZE,
  RO_COMPAT_HUGE_FILE,
  RO_COMPAT_LARGE_FILE,
  RO_COMPAT_METADATA_CSUM,
  RO_COMPAT_SPARSE_SUPER,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  STATE_CLEAN,
} from './format.js';
import { formatUuid, imageIdentity } from './identity.js';
import { encodeJournalSuperblock } from './journal.js';
import { allocateMetadata, chooseLayout, type MetadataPlacement } from './layout.js';
import { resolveExt4Options, type Ext4Options, type ResolvedExt4Options } from './options.js';
import { BLOCK_WRITER_BUDGET, BlockWriter, putDescriptors, putSuperblocks } from './output.js';
import { dirEntries, dirShape, numberInodes, planMetadata, type TreePlan } from './plan.js';
import { encodeInodeXattrs, encodeXattrBlock, sealXattrBlock, type XattrItem } from './xattr.js';

// Kept here too: callers imported these from the writer before they had modules of their own.
export { HEADROOM, type Ext4Options, type SizeSpec } from './options.js';
export { formatUuid, parseUuid } from './identity.js';

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

export class Ext4Writer implements ContentSink {
  readonly alloc: BlockAllocator;
  readonly data: DataSink;
  private readonly opts: ResolvedExt4Options;

  constructor(
    private readonly fh: FileHandle,
    options: Ext4Options = {},
  ) {
    this.opts = resolveExt4Options(options);
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
    // ---- plan: lost+found, inode numbers, link counts
    let lostFound = tree.root.children!.get('lost+found');
    if (!lostFound) {
      const t = { sec: o.timestamp, nsec: 0 };
      lostFound = tree.addDir('lost+found', { mode: 0o700, uid: 0, gid: 0, mtime: t });
    }
    const plan = numberInodes(tree.root, lostFound.kind === 'dir' ? lostFound : null);
    const maxIno = plan.maxIno;

    lap('number inodes');
    // ---- identity (needed before hashing directory names)
    const { uuid, hashSeed, csumSeed } = imageIdentity(plan, o);

    lap('fingerprint');
    // ---- per-inode metadata needs
    planMetadata(plan, hashSeed);
    const xattrOrder = plan.xattrBlocks;

    lap('plan');
    // ---- size the filesystem
    const layout = chooseLayout(this.alloc, o, plan);
    const { groups, ipg, totalBlocks, journalBlocks } = layout;
    const itableBlocks = ipg / INODES_PER_BLOCK;

    lap('layout');
    // ---- allocate metadata (the same sequence chooseLayout simulated)
    // Blocks handed out from gaps may hold dropped content; fresh ones are holes (zeros).
    const stale = this.alloc.freeGaps().map((g) => ({ ...g }));
    const placed = allocateMetadata(this.alloc, groups, ipg, journalBlocks, plan);
    if (this.alloc.next > totalBlocks) throw new Error('internal: layout overflow');
    const { itable, journalRuns } = placed;
    xattrOrder.forEach((x, i) => (x.block = placed.xattrBlocks[i]!));

    lap('allocate');
    // ---- encode and write
    const out = new BlockWriter(this.fh);
    // Inode tables are filled in inode order, so each group's table is written out (one
    // contiguous write) as soon as the walk passes it, and its buffer is reused for the next
    // group; tables of groups without inodes are left as holes (or zeroed if stale).
    const table = Buffer.alloc(itableBlocks * BLOCK_SIZE);
    let tableGroup = -1;
    const closeTable = async () => {
      if (tableGroup < 0) return;
      await writevFully(this.fh, [table], itable[tableGroup]! * BLOCK_SIZE);
      table.fill(0);
      tableGroup = -1;
    };
    const tableSlot = (ino: number) => {
      if (Math.floor((ino - 1) / ipg) !== tableGroup) throw new Error('internal: inode table of another group');
      return { buf: table, off: ((ino - 1) % ipg) * INODE_SIZE };
    };
    // Metadata written only in part must not keep bytes of dropped content: unused inode
    // tables and the journal's log area, where they came from gaps. Registered before anything
    // is put, so a flush part-way through never writes these zeros over a block put earlier.
    for (let g = 0; g < groups; g++) {
      if (usedInodesIn(g, ipg, maxIno) === 0) for (const r of intersect(stale, itable[g]!, itableBlocks)) out.zero(r.start, r.length);
    }
    for (const j of journalRuns) for (const r of intersect(stale, j.start, j.length)) out.zero(r.start, r.length);
    let jnlBlocks: number[] = [];
    for (let ino = 1; ino <= maxIno; ino++) {
      if (out.held > BLOCK_WRITER_BUDGET) await out.flush();
      if (Math.floor((ino - 1) / ipg) !== tableGroup) {
        await closeTable();
        tableGroup = Math.floor((ino - 1) / ipg);
      }
      if (ino === JOURNAL_INO) {
        if (journalBlocks > 0) jnlBlocks = this.encodeJournal(journalRuns, uuid, csumSeed, tableSlot(JOURNAL_INO), out);
        continue;
      }
      const node = plan.nodes[ino];
      if (node) encodeOne(node, ino, plan, placed, hashSeed, csumSeed, tableSlot(ino), out);
    }

    for (const x of xattrOrder) {
      const b = encodeXattrBlock(x.items);
      sealXattrBlock(b, x.refs, x.block, csumSeed);
      out.put(x.block, b);
    }

    await closeTable();

    lap('encode inodes');
    // ---- bitmaps and descriptors
    const bitmaps = groupBitmaps(this.alloc, layout, maxIno, plan.dirInos, placed, csumSeed);
    for (let g = 0; g < groups; g++) {
      out.put(placed.blockBitmap[g]!, bitmaps.blockBitmaps[g]!);
      out.put(placed.inodeBitmap[g]!, bitmaps.inodeBitmaps[g]!);
    }

    // ---- zero blocks that held dropped content and were not reused
    for (const gap of this.alloc.freeGaps()) out.zero(gap.start, gap.length);

    const sb: Superblock = {
      inodesCount: groups * ipg,
      blocksCount: totalBlocks,
      rBlocksCount: 0,
      freeBlocksCount: bitmaps.freeBlocks,
      freeInodesCount: bitmaps.freeInodes,
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
      jnlBlocks,
      minExtraIsize: EXTRA_ISIZE,
      wantExtraIsize: EXTRA_ISIZE,
      flags: FLAG_UNSIGNED_HASH,
      logGroupsPerFlex: LOG_GROUPS_PER_FLEX,
      checksumType: CHECKSUM_TYPE_CRC32C,
      checksumSeed: 0,
      checksum: 0,
    };
    putDescriptors(out, bitmaps.descs, csumSeed);
    putSuperblocks(out, sb, groups);
    await out.flush();
    await this.fh.truncate(totalBlocks * BLOCK_SIZE);
    lap('bitmaps, descriptors, write');

    return {
      sizeBytes: totalBlocks * BLOCK_SIZE,
      blocks: totalBlocks,
      freeBlocks: bitmaps.freeBlocks,
      inodes: groups * ipg,
      freeInodes: bitmaps.freeInodes,
      groups,
      journalBlocks,
      uuid: formatUuid(uuid),
      files: plan.files,
      directories: plan.directories,
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
}

const I_BLOCK_SCRATCH = Buffer.alloc(60);
const NO_BLOCKS: number[] = [];
const NO_XATTR_ITEMS: XattrItem[] = [];
const NO_INOS = new Uint32Array(0);
const NO_TYPES = new Uint8Array(0);

/** Encodes one inode into its table slot, and its directory, extent-tree and symlink blocks. */
function encodeOne(
  n: Inode,
  ino: number,
  plan: TreePlan,
  placed: MetadataPlacement,
  hashSeed: Buffer,
  csumSeed: number,
  slot: { buf: Buffer; off: number },
  out: BlockWriter,
): void {
  const seed = inodeCsumSeed(csumSeed, ino);
  // one scratch i_block for every inode: encodeInode copies it into the table
  let iBlock: Buffer = I_BLOCK_SCRATCH.fill(0);
  let flags = 0;
  let size = 0;
  let dataBlocks = 0;
  let mode = 0;
  let links = n.links;
  let extents: readonly Extent[] = [];
  switch (n.kind) {
    case 'dir': {
      const info = plan.dirs.get(ino)!;
      // the htree leaves are planned again here (the same way), not kept for every directory
      const entries = dirEntries(n, info);
      const shape = dirShape(ino, n, info, hashSeed, entries);
      const runs = placed.dirRuns.get(ino)!;
      const blocks = encodeDirectory(entries, shape, ino, info.parentIno, seed, shape.blocks, () => out.block());
      out.putRuns(runs, blocks);
      // nothing reads a directory's entries after this: let them go while the walk goes on
      info.inos = NO_INOS;
      info.types = NO_TYPES;
      extents = runsToExtents(runs);
      mode = S_IFDIR;
      size = blocks.length * BLOCK_SIZE;
      dataBlocks = blocks.length;
      flags = IFL_EXTENTS | (shape.indexed ? IFL_INDEX : 0);
      links = info.links;
      break;
    }
    case 'file':
      mode = S_IFREG;
      size = n.size;
      flags = IFL_EXTENTS;
      if (n.content?.kind === 'placed') {
        extents = n.content.runs; // a BlockRun is an Extent
        for (const e of extents) dataBlocks += e.length;
      }
      break;
    case 'symlink': {
      mode = S_IFLNK;
      const target = Buffer.from(n.target, 'latin1');
      size = target.length;
      const block = placed.symlinkBlocks.get(ino);
      if (block !== undefined) {
        const b = Buffer.alloc(BLOCK_SIZE);
        target.copy(b);
        out.put(block, b);
        extents = [{ logical: 0, physical: block, length: 1 }];
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
  const treeBlocks = placed.treeBlocks.get(ino) ?? NO_BLOCKS;
  if (flags & IFL_EXTENTS) {
    const tree = encodeExtentTree(extents, treeBlocks, seed, iBlock);
    iBlock = tree.iBlock;
    treeBlocks.forEach((blk, i) => out.put(blk, tree.blocks[i]!));
  }
  const xattrs = plan.xattrs.get(ino);
  const blocks512 = (dataBlocks + treeBlocks.length + (xattrs?.block ? 1 : 0)) * (BLOCK_SIZE / 512);
  const { buf, off } = slot;
  encodeInodeXattrs(xattrs?.inInode ?? NO_XATTR_ITEMS, buf, off);
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
      linksCount: links,
      blocks512,
      flags,
      iBlock,
      fileAcl: xattrs?.block ? xattrs.block.block : 0,
      generation: 0,
    },
    buf,
    off,
  );
  sealInode(buf, off, ino, csumSeed);
}

// ---------------------------------------------------------------- helpers

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

function labelBytes(label: string): Buffer {
  const b = Buffer.alloc(16);
  Buffer.from(label, 'utf8').copy(b, 0, 0, 16);
  return b;
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

/** s_jnl_blocks: a copy of the journal inode's i_block, then i_size_high and i_size. */
function jnlBackup(iBlock: Buffer, size: number): number[] {
  const words: number[] = [];
  for (let i = 0; i < 15; i++) words.push(iBlock.readUInt32LE(i * 4));
  words.push(Math.floor(size / 2 ** 32));
  words.push(size % 2 ** 32);
  return words;
}
