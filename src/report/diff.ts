/**
 * Compares two images path by path, reading both with our reader: what was added, removed and
 * changed (type, permission bits, owner, size, content by SHA-256, symlink target, device
 * numbers; not times: a rebuild changes those), and how the space moved, by directory and by
 * package. A directory's own size is not compared: it changes with the number of entries.
 */
import { createHash } from 'node:crypto';
import type { Ext4Image } from '../ext4/reader.js';
import { attribute, directoryTotals } from './model.js';
import { scanImage, type ScanEntry } from './scan.js';

export type ChangeField = 'type' | 'mode' | 'owner' | 'size' | 'content' | 'target' | 'device';

export interface DiffEntry {
  path: string;
  kind: ScanEntry['kind'];
  size: number;
  bytes: number;
}

export interface ChangedEntry {
  path: string;
  fields: ChangeField[];
  before: EntrySummary;
  after: EntrySummary;
  bytesDelta: number;
}

export interface EntrySummary {
  kind: ScanEntry['kind'];
  mode: string;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  target?: string;
}

export interface ImageDiff {
  added: DiffEntry[];
  removed: DiffEntry[];
  changed: ChangedEntry[];
  /** Content bytes of B minus those of A (real blocks, hard links once). */
  bytesDelta: number;
  /** Directories whose recursive size changed, largest change first. */
  byDirectory: { path: string; before: number; after: number; delta: number }[];
  /** Packages whose size or version changed, or that came or went; largest change first. */
  byPackage: { id: string; before: number; after: number; delta: number; versionBefore: string | null; versionAfter: string | null }[];
}

async function sha256(img: Ext4Image, ino: number): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of img.stream(await img.stat(ino))) h.update(chunk);
  return h.digest('hex');
}

function summary(e: ScanEntry, hash?: string): EntrySummary {
  return {
    kind: e.kind,
    mode: e.perm.toString(8).padStart(4, '0'),
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    ...(hash ? { sha256: hash } : {}),
    ...(e.target !== undefined ? { target: e.target } : {}),
  };
}

const brief = (e: ScanEntry): DiffEntry => ({ path: e.path, kind: e.kind, size: e.size, bytes: e.bytes });
const byDelta = <T extends { delta: number }>(key: (x: T) => string) => (a: T, b: T) => Math.abs(b.delta) - Math.abs(a.delta) || (key(a) < key(b) ? -1 : 1);

export async function diffImages(a: Ext4Image, b: Ext4Image): Promise<ImageDiff> {
  const [ea, eb] = [await scanImage(a), await scanImage(b)];
  const mapA = new Map(ea.map((e) => [e.path, e]));
  const mapB = new Map(eb.map((e) => [e.path, e]));
  const added = eb.filter((e) => !mapA.has(e.path)).map(brief);
  const removed = ea.filter((e) => !mapB.has(e.path)).map(brief);
  const changed: ChangedEntry[] = [];
  for (const x of ea) {
    const y = mapB.get(x.path);
    if (!y) continue;
    const fields: ChangeField[] = [];
    let ha: string | undefined;
    let hb: string | undefined;
    if (x.kind !== y.kind) fields.push('type');
    else {
      if (x.perm !== y.perm) fields.push('mode');
      if (x.uid !== y.uid || x.gid !== y.gid) fields.push('owner');
      if (x.kind === 'file') {
        if (x.size !== y.size) fields.push('size');
        else if (x.size > 0) {
          ha = await sha256(a, x.ino);
          hb = await sha256(b, y.ino);
          if (ha !== hb) fields.push('content');
        }
      }
      if (x.kind === 'symlink' && x.target !== y.target) fields.push('target');
      if ((x.kind === 'chardev' || x.kind === 'blockdev') && (x.major !== y.major || x.minor !== y.minor)) fields.push('device');
    }
    if (fields.length > 0) changed.push({ path: x.path, fields, before: summary(x, ha), after: summary(y, hb), bytesDelta: y.bytes - x.bytes });
  }

  const [ta, tb] = [directoryTotals(ea), directoryTotals(eb)];
  const byDirectory = [...new Set([...ta.keys(), ...tb.keys()])]
    .map((path) => ({ path, before: ta.get(path) ?? 0, after: tb.get(path) ?? 0, delta: (tb.get(path) ?? 0) - (ta.get(path) ?? 0) }))
    .filter((d) => d.delta !== 0)
    .sort(byDelta((d) => d.path));

  const [pa, pb] = [await attribute(a, ea), await attribute(b, eb)];
  const sizes = (entries: ScanEntry[], owner: Map<string, string>) => {
    const m = new Map<string, number>();
    for (const e of entries) {
      const id = e.kind === 'dir' ? undefined : owner.get(e.path);
      if (id !== undefined) m.set(id, (m.get(id) ?? 0) + e.bytes);
    }
    return m;
  };
  const [sa, sb] = [sizes(ea, pa.owner), sizes(eb, pb.owner)];
  const byPackage = [...new Set([...pa.ids.keys(), ...pb.ids.keys()])]
    .map((id) => {
      const before = sa.get(id) ?? 0;
      const after = sb.get(id) ?? 0;
      return { id, before, after, delta: after - before, versionBefore: pa.ids.get(id)?.version ?? null, versionAfter: pb.ids.get(id)?.version ?? null };
    })
    .filter((p) => p.delta !== 0 || p.versionBefore !== p.versionAfter)
    .sort(byDelta((p) => p.id));

  const byPath = (x: { path: string }, y: { path: string }) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0);
  added.sort(byPath);
  removed.sort(byPath);
  changed.sort(byPath);
  const total = (es: ScanEntry[]) => es.reduce((s, e) => s + e.bytes, 0);
  return { added, removed, changed, bytesDelta: total(eb) - total(ea), byDirectory, byPackage };
}
