/**
 * The jbd2 journal: a contiguous file (inode 8) whose first block is the journal superblock
 * (big endian). A clean, empty journal is just that superblock with s_start = 0; the rest of
 * the journal's blocks are zero.
 */
import { BLOCK_SIZE, JBD2_MAGIC, JBD2_SUPERBLOCK_V2, JOURNAL_MIN_BLOCKS, JSB } from './format.js';

export function encodeJournalSuperblock(blocks: number, fsUuid: Buffer): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  b.writeUInt32BE(JBD2_MAGIC, JSB.magic);
  b.writeUInt32BE(JBD2_SUPERBLOCK_V2, JSB.blocktype);
  b.writeUInt32BE(0, JSB.sequence);
  b.writeUInt32BE(BLOCK_SIZE, JSB.blocksize);
  b.writeUInt32BE(blocks, JSB.maxlen);
  b.writeUInt32BE(1, JSB.first);
  b.writeUInt32BE(1, JSB.seq);
  b.writeUInt32BE(0, JSB.start); // 0: nothing to replay
  fsUuid.copy(b, JSB.uuid, 0, 16);
  b.writeUInt32BE(1, JSB.nrUsers);
  return b;
}

/**
 * Journal size for a filesystem of `fsBlocks` blocks: 4 MiB below 256 MiB, 16 MiB below 16 GiB,
 * 64 MiB above. Smaller than mke2fs's defaults (16-64 MiB for these sizes): a VM root
 * filesystem's transactions are small, and every journal block is image size.
 */
export function defaultJournalBlocks(fsBlocks: number): number {
  if (fsBlocks < 65536) return JOURNAL_MIN_BLOCKS;
  if (fsBlocks < 4 * 1024 * 1024) return 4096;
  return 16384;
}
