/**
 * The instance disk: an ext4 filesystem the size of the disk with two directories, /upper and
 * /work (overlayfs's upper and work directories), written by our own writer into a sparse
 * file. Nothing else is formatted: the guest's initramfs mounts it and builds the overlay.
 *
 * Deterministic: same size ⇒ same bytes (UUID derived from the contents, times 0).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { fail } from '../errors.js';
import { Ext4Writer, type ImageSummary } from '../ext4/writer.js';
import { FsTree } from '../tree/tree.js';
import { writeAtomically } from '../util/atomic.js';

export const UPPER_LABEL = 'rootforge-inst';
/** Smallest instance disk: the journal (4 MiB) plus room to write something. */
export const MIN_DISK_BYTES = 16 * 2 ** 20;
const EPOCH = { sec: 0, nsec: 0 };

export function checkDiskSize(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_DISK_BYTES) fail('OPTION_INVALID', 'size the instance disk', `at least ${MIN_DISK_BYTES / 2 ** 20} MiB`, bytes);
  if (bytes % 4096 !== 0) fail('OPTION_INVALID', 'size the instance disk', 'a multiple of 4 KiB', bytes);
}

export function upperTree(): FsTree {
  const tree = new FsTree();
  tree.addDir('upper', { mode: 0o755, uid: 0, gid: 0, mtime: EPOCH });
  tree.addDir('work', { mode: 0o700, uid: 0, gid: 0, mtime: EPOCH });
  return tree;
}

/** Writes an empty instance disk of `bytes` at `path` (whole or not at all). */
export async function writeUpperDisk(path: string, bytes: number): Promise<ImageSummary> {
  checkDiskSize(bytes);
  return writeAtomically(path, async (fh) => {
    await fh.chmod(0o600);
    const writer = new Ext4Writer(skipZeroBlocks(fh), { size: { mode: 'fixed', bytes }, label: UPPER_LABEL });
    const summary = await writer.finish(upperTree());
    await fh.truncate(bytes); // the file is the disk: its size is the device's size
    return summary;
  });
}

/**
 * The file handle the writer gets for a new, empty file: writes of whole 4 KiB blocks of zeros
 * are dropped (the file's holes already read as zeros). An empty filesystem is mostly zeroed
 * inode table; this keeps it a hole, so a 10 GiB instance disk takes well under 1 MiB.
 */
function skipZeroBlocks(fh: FileHandle): FileHandle {
  const writev = async (bufs: Buffer[], position: number): Promise<{ bytesWritten: number; buffers: Buffer[] }> => {
    const total = bufs.reduce((n, b) => n + b.length, 0);
    const data = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
    // runs of blocks that are not all zeros, written as they are
    const B = 4096;
    let start = -1;
    const flush = async (end: number) => {
      if (start < 0) return;
      const part = data.subarray(start, end);
      let done = 0;
      while (done < part.length) done += (await fh.write(part, done, part.length - done, position + start + done)).bytesWritten;
      start = -1;
    };
    for (let off = 0; off < data.length; off += B) {
      const blk = data.subarray(off, Math.min(off + B, data.length));
      const zero = blk.length === B && (position + off) % B === 0 && isZero(blk);
      if (zero) await flush(off);
      else if (start < 0) start = off;
    }
    await flush(data.length);
    return { bytesWritten: total, buffers: bufs };
  };
  return new Proxy(fh, {
    get(target, prop, receiver) {
      if (prop === 'writev') return writev;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const ZERO = Buffer.alloc(4096);
function isZero(b: Buffer): boolean {
  return b.equals(ZERO);
}

/** Grows a disk file (sparse) to `bytes`; the guest grows the filesystem at its next boot. */
export async function growDisk(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const { size } = await fh.stat();
    if (bytes < size) fail('OPTION_INVALID', `resize ${path}`, 'instance disks only grow (the filesystem holds the sandbox\'s data)', bytes);
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}
