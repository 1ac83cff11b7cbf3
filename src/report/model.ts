/**
 * The content report of an image: where its blocks go, by directory and by package, its largest
 * files, and what each `strip:` item would save. Everything here is computed from a scan of the
 * image (scan.ts) and its package database; html.ts only draws it.
 */
import type { Ext4Image } from '../ext4/reader.js';
import { readPackageDb, imageFs } from '../packages/read.js';
import { packageId, type PackageDb } from '../packages/types.js';
import { STRIP_ITEMS, stripFilter } from '../provision/strip.js';
import { canonicalPath, scanImage, type ScanEntry } from './scan.js';

/** A node of a size tree, compact because the tree is embedded in the HTML: name, own bytes, children. */
export interface SizeNode {
  n: string;
  v: number;
  c?: SizeNode[];
}

export interface PackageSize {
  id: string;
  name: string;
  version: string;
  architecture: string;
  source: string;
  /** Real bytes of the files it owns in the image. */
  bytes: number;
  files: number;
}

export const UNOWNED = '(not in any package)';
export const DIRECTORIES = '(directories)';

export interface ImageReport {
  label: string;
  blockSize: number;
  /** The filesystem's size and used bytes (superblock counts, metadata and journal included). */
  sizeBytes: number;
  usedBytes: number;
  /** Bytes of blocks the entries take (hard links once): files, directories, symlinks, xattr blocks. */
  contentBytes: number;
  entries: number;
  byDirectory: SizeNode;
  /** Top-level directories with their recursive bytes, largest first. */
  topDirectories: { path: string; bytes: number }[];
  packageManager: PackageDb['manager'] | null;
  packages: PackageSize[];
  byPackage: SizeNode;
  largestFiles: { path: string; bytes: number; size: number; package: string | null }[];
  /** What each strip: item leaves out: bytes (subdirectories included) and non-directory entries. */
  strip: { item: string; bytes: number; files: number }[];
}

export interface Attribution {
  /** Canonical path → owning package id (the first package in name order that lists it). */
  owner: Map<string, string>;
  db: PackageDb | null;
  ids: Map<string, PackageDb['packages'][number]>;
}

/** Which package owns each path of the scan (symlinked parents in the lists resolved). */
export async function attribute(img: Ext4Image, entries: ScanEntry[]): Promise<Attribution> {
  const db = await readPackageDb(imageFs(img), { files: true });
  const owner = new Map<string, string>();
  const ids = new Map<string, PackageDb['packages'][number]>();
  if (!db) return { owner, db, ids };
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const p of db.packages) {
    const id = packageId(p, db.packages);
    ids.set(id, p);
    for (const f of p.files ?? []) {
      const c = byPath.has(f) ? f : canonicalPath(f, byPath);
      if (!owner.has(c)) owner.set(c, id);
    }
  }
  return { owner, db, ids };
}

/** Recursive bytes per directory path (the root is '/'). */
export function directoryTotals(entries: ScanEntry[]): Map<string, number> {
  const totals = new Map<string, number>();
  for (const e of entries) {
    if (e.bytes === 0) continue;
    let p = e.path;
    totals.set(p, (totals.get(p) ?? 0) + (e.kind === 'dir' ? e.bytes : 0));
    while (p !== '/') {
      p = p.slice(0, p.lastIndexOf('/')) || '/';
      totals.set(p, (totals.get(p) ?? 0) + e.bytes);
    }
  }
  return totals;
}

export async function buildReport(img: Ext4Image, options: { largest?: number } = {}): Promise<ImageReport> {
  const entries = await scanImage(img);
  const { owner, db, ids } = await attribute(img, entries);

  // ---- by directory: nested nodes, a directory's own blocks as its value
  const root: SizeNode = { n: '/', v: 0, c: [] };
  const nodes = new Map<string, SizeNode>([['/', root]]);
  for (const e of entries) {
    if (e.path === '/') {
      root.v = e.bytes;
      continue;
    }
    const parent = nodes.get(e.path.slice(0, e.path.lastIndexOf('/')) || '/')!;
    const node: SizeNode = { n: e.path.slice(e.path.lastIndexOf('/') + 1), v: e.bytes };
    if (e.kind === 'dir') {
      node.c = [];
      nodes.set(e.path, node);
    }
    parent.c!.push(node);
  }
  const totals = directoryTotals(entries);
  const topDirectories = (root.c ?? [])
    .map((n) => ({ path: `/${n.n}`, bytes: n.c ? totals.get(`/${n.n}`) ?? 0 : n.v }))
    .sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1));

  // ---- by package
  const pkgFiles = new Map<string, SizeNode[]>();
  const unowned: SizeNode[] = [];
  let dirBytes = 0;
  for (const e of entries) {
    if (e.kind === 'dir') {
      dirBytes += e.bytes;
      continue;
    }
    const id = owner.get(e.path);
    const leaf: SizeNode = { n: e.path, v: e.bytes };
    if (id === undefined) unowned.push(leaf);
    else {
      let list = pkgFiles.get(id);
      if (!list) pkgFiles.set(id, (list = []));
      list.push(leaf);
    }
  }
  const packages: PackageSize[] = [...ids.entries()].map(([id, p]) => {
    const files = pkgFiles.get(id) ?? [];
    return { id, name: p.name, version: p.version, architecture: p.architecture, source: p.source, bytes: files.reduce((s, f) => s + f.v, 0), files: files.length };
  });
  packages.sort((a, b) => b.bytes - a.bytes || (a.id < b.id ? -1 : 1));
  const byPackage: SizeNode = {
    n: '/',
    v: 0,
    c: [
      ...packages.map((p) => ({ n: p.id, v: 0, c: pkgFiles.get(p.id) ?? [] })),
      { n: UNOWNED, v: 0, c: unowned },
      { n: DIRECTORIES, v: dirBytes },
    ],
  };

  // ---- largest files, strip savings
  const largest = entries
    .filter((e) => e.kind !== 'dir' && e.bytes > 0)
    .sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1))
    .slice(0, options.largest ?? 50)
    .map((e) => ({ path: e.path, bytes: e.bytes, size: e.size, package: owner.get(e.path) ?? null }));
  const strip = STRIP_ITEMS.map((item) => {
    const leftOut = stripFilter([item])!;
    let bytes = 0;
    let files = 0;
    // strip leaves out the directories below its prefixes too (the prefix directories stay)
    for (const e of entries) {
      if (!leftOut(e.path.slice(1))) continue;
      bytes += e.bytes;
      if (e.kind !== 'dir') files++;
    }
    return { item, bytes, files };
  });

  const sb = img.sb;
  return {
    label: sb.volumeName.toString('utf8').replace(/\0+$/, ''),
    blockSize: img.blockSize,
    sizeBytes: sb.blocksCount * img.blockSize,
    usedBytes: (sb.blocksCount - sb.freeBlocksCount) * img.blockSize,
    contentBytes: entries.reduce((s, e) => s + e.bytes, 0),
    entries: entries.length,
    byDirectory: root,
    topDirectories,
    packageManager: db?.manager ?? null,
    packages,
    byPackage,
    largestFiles: largest,
    strip,
  };
}
