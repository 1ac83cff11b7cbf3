/**
 * Do two images hold the same files? Each is loop-mounted read-only (root only) and listed with
 * `find`: per path its type, mode, owner, size (not for directories, whose size depends on how
 * the writer laid them out), link count (not for directories: /etc/rootforge adds one to /etc)
 * and symlink target. Paths only one writer adds are left out: lost+found and /etc/rootforge
 * (ours records the image config there). Contents and times are not compared: a loose check
 * that the same tree came out, not a byte comparison.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanups } from './cleanup.js';
import { exec, requireTool } from './exec.js';

/** Path (relative, '' for the root) → "type mode uid:gid size links target". */
export type Listing = Map<string, string>;

const FIELDS = 7;
const IGNORED = [/^lost\+found(\/|$)/, /^etc\/rootforge(\/|$)/];

/** Mounts `image` read-only at DIR/NAME (unmounted by `cleanups`) and lists it. */
export async function listImage(image: string, dir: string, name: string, cleanups: Cleanups): Promise<Listing> {
  const mnt = join(dir, name);
  await mkdir(mnt);
  // noload: a read-only mount must not replay (write) the journal.
  await exec(requireTool('mount'), ['-o', 'loop,ro,noload', image, mnt]);
  const unmount = cleanups.push(`unmount ${mnt}`, async () => {
    await exec(requireTool('umount'), [mnt]);
  });
  // NUL-separated fields: names may hold spaces and newlines.
  const r = await exec(requireTool('find'), [mnt, '-printf', '%P\\0%y\\0%m\\0%U:%G\\0%s\\0%n\\0%l\\0']);
  await unmount();
  const f = r.stdout.split('\0');
  const listing: Listing = new Map();
  for (let i = 0; i + FIELDS <= f.length; i += FIELDS) {
    const [path, type, mode, owner, size, links, target] = f.slice(i, i + FIELDS) as [string, string, string, string, string, string, string];
    if (IGNORED.some((re) => re.test(path))) continue;
    const dir = type === 'd';
    listing.set(path, [type, mode, owner, dir ? '-' : size, dir ? '-' : links, target].join(' ').trimEnd());
  }
  return listing;
}

export interface ListingDiff {
  /** Paths compared (union of both listings). */
  paths: number;
  /** Human-readable differences, at most `limit`. */
  differences: string[];
  /** All differences, counted. */
  count: number;
}

export function compareListings(a: Listing, aName: string, b: Listing, bName: string, limit = 20): ListingDiff {
  const differences: string[] = [];
  let count = 0;
  const note = (line: string) => {
    count++;
    if (differences.length < limit) differences.push(line);
  };
  for (const [path, attrs] of a) {
    const other = b.get(path);
    if (other === undefined) note(`only in ${aName}: /${path} (${attrs})`);
    else if (other !== attrs) note(`/${path}: ${aName} ${attrs} ≠ ${bName} ${other}`);
  }
  for (const [path, attrs] of b) {
    if (!a.has(path)) note(`only in ${bName}: /${path} (${attrs})`);
  }
  const paths = new Set([...a.keys(), ...b.keys()]).size;
  return { paths, differences, count };
}
