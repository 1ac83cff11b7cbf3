/**
 * What is in an input tar, read with our own tar reader. The pass reads the whole file, so it
 * doubles as the warm-up that puts the input in the page cache before any pipeline is timed
 * (dropping the cache needs privileges we may not have; warming it is the fair alternative).
 *
 * `fileBytes4k` is the yardstick for image size: every regular file's size rounded up to a
 * 4 KiB block, summed (hard links count once, as the data is stored once).
 */
import { openArchive } from '../src/tar/decompress.js';
import { TarParser } from '../src/tar/parser.js';
import type { EntryType, TarHeader } from '../src/tar/types.js';

export interface TarStats {
  /** Size of the archive file. */
  tarBytes: number;
  compression: string;
  /** Every member the reader reports (extension headers are not members). */
  entries: number;
  byType: Partial<Record<EntryType, number>>;
  /** Sum of regular file sizes. */
  fileBytes: number;
  /** Sum of regular file sizes, each rounded up to 4 KiB. */
  fileBytes4k: number;
  /**
   * Rough `du -sb` of an extraction: files + 4 KiB per directory + symlink target lengths. Sizes
   * pipeline B's image the way pipeline A sizes its own from the staging directory.
   */
  apparentBytes: number;
}

const BLOCK = 4096;

export async function readTarStats(path: string): Promise<TarStats> {
  const archive = await openArchive(path);
  const stats: TarStats = {
    tarBytes: archive.compressedSize,
    compression: archive.compression,
    entries: 0,
    byType: {},
    fileBytes: 0,
    fileBytes4k: 0,
    apparentBytes: 0,
  };
  const parser = new TarParser({
    entry(h: TarHeader) {
      stats.entries++;
      stats.byType[h.type] = (stats.byType[h.type] ?? 0) + 1;
      if (h.type === 'file') {
        stats.fileBytes += h.size;
        stats.fileBytes4k += Math.ceil(h.size / BLOCK) * BLOCK;
        stats.apparentBytes += h.size;
      } else if (h.type === 'dir') {
        stats.apparentBytes += BLOCK;
      } else if (h.type === 'symlink') {
        stats.apparentBytes += h.linkname.length;
      }
    },
    data() {},
    entryEnd() {},
  });
  // Keep reading after the end-of-archive marker too: the point is also to warm the whole file.
  for await (const chunk of archive.stream) parser.write(chunk);
  parser.end();
  return stats;
}
