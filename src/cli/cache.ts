import { ImageCache } from '../oci/cache.js';
import { defaultCacheDir } from '../util/cache-dir.js';
import { formatBytes } from '../util/size.js';
import { parse, UsageError } from './args.js';

export const CACHE_USAGE = `Usage: rootforge cache ls [--json] [--cache-dir DIR]
       rootforge cache prune [--images-only] [--cache-dir DIR]

ls      lists finished images (source, manifest digest, size), the blob store's size, and
        unfinished downloads (partials, locks: in progress or left over)
prune   removes cached images and (unless --images-only) every blob not being downloaded,
        and the partial downloads, stale locks and temporary files of dead processes`;

export async function cacheCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { 'cache-dir': { type: 'string' }, json: { type: 'boolean' }, 'images-only': { type: 'boolean' } } as const,
    CACHE_USAGE,
  );
  if (values.help) {
    process.stdout.write(CACHE_USAGE + '\n');
    return 0;
  }
  const cache = new ImageCache(values['cache-dir'] ?? defaultCacheDir());
  const [sub, ...rest] = positionals;
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}\n\n${CACHE_USAGE}`);
  if (sub === 'ls') {
    const images = await cache.list();
    const blobs = await cache.blobs.list();
    const blobBytes = blobs.reduce((n, b) => n + b.size, 0);
    const unfinished = await cache.blobs.listUnfinished();
    if (values.json) {
      process.stdout.write(JSON.stringify({ root: cache.root, images, blobs: { count: blobs.length, bytes: blobBytes }, unfinished }, null, 2) + '\n');
      return 0;
    }
    process.stdout.write(`cache: ${cache.root}\n`);
    for (const i of images) process.stdout.write(`  ${i.key.slice(0, 12)}  ${formatBytes(i.sizeBytes).padStart(10)}  ${i.manifestDigest.slice(0, 19)}  ${i.source}\n`);
    for (const u of unfinished) {
      const who = u.live !== undefined ? `in progress (${u.live})` : 'left over (prune removes it)';
      process.stdout.write(`  ${u.kind.padEnd(7)} ${formatBytes(u.size).padStart(10)}  ${u.digest.slice(0, 19)}  ${who}\n`);
    }
    const partials = unfinished.filter((u) => u.kind === 'partial');
    const partialBytes = partials.reduce((n, u) => n + u.size, 0);
    process.stdout.write(
      `${images.length} images, ${blobs.length} blobs (${formatBytes(blobBytes)}), ${partials.length} unfinished downloads (${formatBytes(partialBytes)}), ` +
        `${unfinished.length - partials.length} locks and temporary files\n`,
    );
    return 0;
  }
  if (sub === 'prune') {
    const r = await cache.prune({ images: true, blobs: !values['images-only'] });
    process.stdout.write(`removed ${r.files} files (${formatBytes(r.bytes)}) from ${cache.root}\n`);
    return 0;
  }
  throw new UsageError(`expected "ls" or "prune"\n\n${CACHE_USAGE}`);
}
