/**
 * Test helpers for images: e2fsck, a read-only loop mount read through the kernel, our own
 * reader, and manifest comparison. Manifests list every entry with its attributes, so an image
 * can be compared with an extraction of the same archive by a real tar, attribute by attribute.
 */
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, rmdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Ext4Image } from '../../src/ext4/reader.js';

export const HELPERS = new URL('../../../test/helpers/', import.meta.url).pathname;

export interface ManifestEntry {
  path: string; // hex of the path bytes, '' for the root
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime_ns: number | string;
  ino: number;
  nlink: number;
  xattrs: Record<string, string>;
  size?: number;
  sha256?: string;
  target?: string;
  major?: number;
  minor?: number;
}

export function run(cmd: string, args: string[], opts: { input?: Buffer; allowFail?: boolean } = {}): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(cmd, args, { input: opts.input, maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  const res = { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
  if (!opts.allowFail && res.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${res.code}: ${res.stderr}${res.stdout.toString().slice(0, 2000)}`);
  }
  return res;
}

/** e2fsck -fn must exit 0 (no problems found, nothing changed). */
export function assertFsckClean(img: string): void {
  const r = run('e2fsck', ['-fn', img], { allowFail: true });
  assert.equal(r.code, 0, `e2fsck -fn ${img} exited ${r.code}:\n${r.stdout.toString()}${r.stderr}`);
}

let mountable: boolean | undefined;
/** Whether loop mounts work here (root with a loop device). CI runs as root, so they do there. */
export function canMount(): boolean {
  if (mountable === undefined) {
    mountable = process.getuid?.() === 0 && existsSync('/dev/loop-control') && run('which', ['mount'], { allowFail: true }).code === 0;
  }
  return mountable;
}
export const NO_MOUNT = 'needs root and loop devices for a kernel read-back (CI runs as root)';

/** Loop-mounts `img` read-only (no journal replay), runs `fn` on the mount point, unmounts. */
export function withMount<T>(img: string, fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'rf-mnt-'));
  run('mount', ['-t', 'ext4', '-o', 'loop,ro,noload', img, dir]);
  try {
    return fn(dir);
  } finally {
    run('umount', [dir]);
    rmdirSync(dir);
  }
}

/** The kernel's view of a directory tree (see fs-manifest.py). */
export function fsManifest(dir: string): ManifestEntry[] {
  const r = run('python3', [join(HELPERS, 'fs-manifest.py'), dir]);
  return JSON.parse(r.stdout.toString()) as ManifestEntry[];
}

export function mountManifest(img: string): ManifestEntry[] {
  return withMount(img, (dir) => fsManifest(dir));
}

/** The same manifest produced by our reader (inode numbers are ours, as in the kernel's view). */
export async function readerManifest(img: string): Promise<ManifestEntry[]> {
  const image = await Ext4Image.open(img);
  try {
    const out: ManifestEntry[] = [];
    for await (const [p, st] of image.walk('')) {
      const rel = p === '/' ? '' : p.replace(/^\//, '');
      if (rel === 'lost+found' || rel.startsWith('lost+found/')) continue;
      const x = await image.xattrs(st);
      const e: ManifestEntry = {
        path: Buffer.from(rel, 'latin1').toString('hex'),
        type: st.kind,
        mode: st.perm,
        uid: st.uid,
        gid: st.gid,
        mtime_ns: BigInt(st.mtime.sec) * 1_000_000_000n + BigInt(st.mtime.nsec) + '',
        ino: st.ino,
        nlink: st.linksCount,
        xattrs: Object.fromEntries([...x].sort().map(([k, v]) => [k, v.toString('hex')])),
      };
      if (st.kind === 'file') {
        e.size = st.size;
        const h = createHash('sha256');
        for await (const c of image.stream(st)) h.update(c);
        e.sha256 = h.digest('hex');
      } else if (st.kind === 'symlink') {
        e.target = Buffer.from(await image.readlink(st), 'latin1').toString('hex');
      } else if (st.kind === 'chardev' || st.kind === 'blockdev') {
        e.major = st.major;
        e.minor = st.minor;
      }
      out.push(e);
    }
    return out;
  } finally {
    await image.close();
  }
}

export interface CompareOptions {
  /** Paths (hex) whose directory mtime is not compared (implied parents, extraction-touched dirs). */
  ignoreDirMtime?: boolean;
  /** Compare nlink (false when one side cannot know it, e.g. an extraction with skipped entries). */
  nlink?: boolean;
  /** Xattr names to ignore on both sides (e.g. security.selinux added by a host). */
  ignoreXattrs?: string[];
  /** Directories (path hex) whose mtime is not compared: implied parents a tar never listed. */
  ignoreMtimeOf?: Set<string>;
}

/** Directories implied by an archive's entries but never listed in it (path hex). */
export function impliedDirs(paths: (string | Buffer)[]): Set<string> {
  const listed = new Set<string>();
  const parents = new Set<string>();
  for (const p of paths) {
    const b = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
    const norm = b.toString('latin1').replace(/^\.?\/+/, '').replace(/\/+$/, '');
    listed.add(norm);
    const parts = norm.split('/');
    for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join('/'));
  }
  return new Set([...parents].filter((d) => !listed.has(d)).map((d) => Buffer.from(d, 'latin1').toString('hex')));
}

/**
 * Asserts two manifests describe the same tree: same paths, and for each the same type, mode,
 * owner, mtime (ns), size, content hash, symlink target, device numbers and xattrs; and the same
 * hard-link groups (paths sharing an inode on one side share one on the other).
 */
export function assertSameTree(actual: ManifestEntry[], expected: ManifestEntry[], opts: CompareOptions = {}): void {
  const show = (hex: string) => Buffer.from(hex, 'hex').toString('utf8') || '/';
  const a = new Map(actual.map((e) => [e.path, e]));
  const b = new Map(expected.map((e) => [e.path, e]));
  const missing = [...b.keys()].filter((k) => !a.has(k)).map(show);
  const extra = [...a.keys()].filter((k) => !b.has(k)).map(show);
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, 'path sets differ');
  const ignore = new Set(opts.ignoreXattrs ?? []);
  const norm = (e: ManifestEntry) => {
    const o: Record<string, unknown> = {
      type: e.type,
      mode: e.mode.toString(8),
      uid: e.uid,
      gid: e.gid,
      xattrs: Object.fromEntries(Object.entries(e.xattrs).filter(([k]) => !ignore.has(k))),
    };
    if (!(opts.ignoreDirMtime && e.type === 'dir') && !opts.ignoreMtimeOf?.has(e.path)) o['mtime_ns'] = String(e.mtime_ns);
    if (opts.nlink !== false && e.type !== 'dir') o['nlink'] = e.nlink;
    for (const k of ['size', 'sha256', 'target', 'major', 'minor'] as const) if (e[k] !== undefined) o[k] = e[k];
    return o;
  };
  for (const [k, exp] of b) assert.deepEqual(norm(a.get(k)!), norm(exp), `attributes of ${show(k)}`);
  // hard-link identity: the partition of non-directories by inode must match
  const groups = (m: ManifestEntry[]) => {
    const byIno = new Map<number, string[]>();
    for (const e of m) if (e.type !== 'dir') byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), e.path]);
    return [...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort().map(show).join(' = ')).sort();
  };
  assert.deepEqual(groups(actual), groups(expected), 'hard-link groups');
}
