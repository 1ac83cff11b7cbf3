/**
 * The rootforge cache ($XDG_CACHE_HOME/rootforge, or --cache-dir):
 *
 *   blobs/sha256/<hex>     downloaded blobs, by digest (BlobStore: verified, resumable, locked)
 *   images/<key>.ext4      finished images; key = sha256 of (tool version, source, manifest
 *   images/<key>.json      digest, every option that changes the bytes) — so a moved tag (a new
 *                          manifest digest) rebuilds and an unchanged one is a hit
 *   builds/<key>.json      `rootforge build`'s records: which outputs hold which build (no image;
 *                          see build-cache.ts)
 *
 * Entries appear by atomic rename, so concurrent runs on one key are safe (the last identical
 * copy wins) and an interrupted run leaves no half entry behind, only a temporary file that
 * `prune` removes.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import type { ImageSummary } from '../ext4/writer.js';
import { defaultMinFree } from '../util/atomic.js';
import { formatBytes } from '../util/size.js';
import { isRecordedOutput, withOutput, writtenIdentity, type FileIdentity } from '../util/file-identity.js';
import { BlobStore } from './blobstore.js';

export { defaultCacheDir } from '../util/cache-dir.js';

export interface CachedImage {
  key: string;
  path: string;
  source: string;
  manifestDigest: string;
  sizeBytes: number;
  toolVersion: string;
  /** What the build reported (sizes, counts, UUID), returned again on a hit. */
  summary: ImageSummary;
  /** Outputs this entry was written to, as they were right after (at most MAX_OUTPUTS, newest last). */
  outputs?: FileIdentity[];
}

let counter = 0;

export class ImageCache {
  readonly dir: string;
  readonly blobs: BlobStore;

  constructor(readonly root: string) {
    this.dir = join(root, 'images');
    this.blobs = new BlobStore(join(root, 'blobs'));
  }

  /** The cache key for an image built from `manifestDigest` with `options`. */
  static key(toolVersion: string, source: string, manifestDigest: string, options: Record<string, unknown>): string {
    const canonical = JSON.stringify({ toolVersion, source, manifestDigest, options: sortKeys(options) });
    return createHash('sha256').update(canonical).digest('hex');
  }

  /** The cached image for `key`, or null. */
  async lookup(key: string): Promise<CachedImage | null> {
    const p = join(this.dir, `${key}.ext4`);
    try {
      // the metadata is renamed in last: its presence means the entry is complete
      const text = await readFile(join(this.dir, `${key}.json`), 'utf8');
      // ... unless a crash lost data after both renames reached the disk (neither file is synced:
      // a cache is not worth a second fsync of every image). Such files come back short or empty
      // (ext4 writes a file's size with its blocks): an entry whose metadata does not parse or
      // whose image is not the recorded size is a miss, rebuilt over.
      let meta: CachedImage;
      try {
        meta = JSON.parse(text) as CachedImage;
      } catch {
        return null;
      }
      if (typeof meta.sizeBytes !== 'number' || (await stat(p)).size !== meta.sizeBytes) return null;
      return { ...meta, path: p };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      return fail('CACHE_IO', 'look up cached image', (e as Error).message, p, e);
    }
  }

  /**
   * True when `output` is exactly the file `entry` last wrote there (same path, device, inode,
   * size, mtime and ctime): a rebuild can leave it as it is, make-style.
   */
  async upToDate(entry: CachedImage, output: string): Promise<boolean> {
    return isRecordedOutput(entry.outputs, output);
  }

  /**
   * Records that `output` now holds `key`'s image (call right after writing it). `ino` is the
   * inode that was written: if another run has replaced the output since, nothing is recorded
   * (its identity must never vouch for bytes this entry did not write). The metadata is
   * rewritten atomically; a lost race between two runs only costs a later copy.
   */
  async recordOutput(key: string, output: string, ino: bigint): Promise<void> {
    const meta = join(this.dir, `${key}.json`);
    const id = await writtenIdentity(output, ino);
    if (id === null) return;
    const tmp = join(this.dir, `.${key}.${process.pid}.${counter++}.tmp.json`);
    try {
      const entry = JSON.parse(await readFile(meta, 'utf8')) as CachedImage;
      await writeFile(tmp, JSON.stringify({ ...entry, outputs: withOutput(entry.outputs, id) }, null, 2) + '\n');
      await rename(tmp, meta);
    } catch (e) {
      await unlink(tmp).catch(() => undefined); // best effort: the failure below is what matters
      fail('CACHE_IO', 'record an output in the image cache', (e as Error).message, meta, e);
    }
  }

  /**
   * Copies a finished image into the cache under `key`. Returns a reason instead (and stores
   * nothing) when the copy would leave the cache's filesystem with less than `minFreeBytes` free
   * (default max(1 GiB, 5 %), as for outputs): a cache never fills the disk.
   */
  async store(key: string, image: string, meta: Omit<CachedImage, 'key' | 'path'>, minFreeBytes?: number): Promise<{ stored: true } | { stored: false; reason: string }> {
    await mkdir(this.dir, { recursive: true });
    try {
      const [fs, st] = await Promise.all([statfs(this.dir), stat(image)]);
      const avail = fs.bavail * fs.bsize;
      const reserve = minFreeBytes ?? defaultMinFree(fs.blocks * fs.bsize);
      if (avail - st.size < reserve) {
        return { stored: false, reason: `copying ${formatBytes(st.size)} would leave ${this.dir} less than ${formatBytes(reserve)} free (${formatBytes(avail)} available)` };
      }
    } catch (e) {
      fail('CACHE_IO', 'store image in the cache', (e as Error).message, this.dir, e);
    }
    const tmp = join(this.dir, `.${key}.${process.pid}.${counter++}.tmp`);
    try {
      await copyFile(image, tmp);
      await rename(tmp, join(this.dir, `${key}.ext4`));
      await writeFile(`${tmp}.json`, JSON.stringify({ key, ...meta }, null, 2) + '\n');
      await rename(`${tmp}.json`, join(this.dir, `${key}.json`));
      return { stored: true };
    } catch (e) {
      await unlink(tmp).catch(() => undefined); // best effort: the failure below is what matters
      await unlink(`${tmp}.json`).catch(() => undefined);
      fail('CACHE_IO', 'store image in the cache', (e as Error).message, this.dir, e);
    }
  }

  async list(): Promise<CachedImage[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      return fail('CACHE_IO', 'list cached images', (e as Error).message, this.dir, e);
    }
    const out: CachedImage[] = [];
    for (const n of names.filter((x) => /^[a-f0-9]{64}\.json$/.test(x)).sort()) {
      const meta = JSON.parse(await readFile(join(this.dir, n), 'utf8')) as CachedImage;
      const path = join(this.dir, n.replace(/\.json$/, '.ext4'));
      const st = await stat(path).catch(() => null);
      if (st) out.push({ ...meta, path, sizeBytes: st.size });
    }
    return out;
  }

  /**
   * Removes cached images (and their temporary leftovers) and, with `blobs`, every blob not
   * being fetched right now, and what unfinished downloads of dead processes left (partials,
   * stale locks, temporary files).
   */
  async prune(opts: { images: boolean; blobs: boolean }): Promise<{ files: number; bytes: number }> {
    let files = 0;
    let bytes = 0;
    const drop = async (p: string) => {
      const st = await stat(p).catch(() => null);
      if (!st) return;
      await rm(p, { force: true, recursive: st.isDirectory() });
      files++;
      bytes += st.isDirectory() ? 0 : st.size;
    };
    if (opts.images) {
      for (const n of await readdir(this.dir).catch(() => [] as string[])) await drop(join(this.dir, n));
      // `rootforge build`'s records of up-to-date outputs (build-cache.ts): small, no images
      const builds = join(this.root, 'builds');
      for (const n of await readdir(builds).catch(() => [] as string[])) await drop(join(builds, n));
    }
    if (opts.blobs) {
      // Unfinished downloads of dead processes first (a live fetcher's partial stays).
      const left = await this.blobs.pruneUnfinished();
      files += left.files;
      bytes += left.bytes;
      for (const b of await this.blobs.list()) {
        bytes += b.size;
        files++;
        await this.blobs.remove(b.digest);
      }
    }
    return { files, bytes };
  }
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}
