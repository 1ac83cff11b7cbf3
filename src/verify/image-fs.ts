/**
 * A caching, path-level view of an image for `verify`, which looks up tens of thousands of paths
 * (every library name in every search directory, for thousands of programs). Directory listings
 * are read once and kept as Maps, inodes and whole resolutions are memoised, and a failed
 * lookup is an answer (with the reason a loader would get), not an exception.
 *
 * Paths are byte strings (util/bytes.ts). Symlinks resolve inside the image: an absolute target
 * restarts at the image's root, `..` stops at the root, like a chroot.
 */
import type { Ext4Image, Stat } from '../ext4/reader.js';
import { ROOT_INO } from '../ext4/format.js';

export type Lookup =
  | {
      ok: true;
      /** The path with every symlink resolved (a "realpath" inside the image). */
      path: string;
      st: Stat;
      /** The symlinks followed, as "link -> target". */
      via: string[];
    }
  | {
      ok: false;
      /** What open(2) would say: ENOENT (missing, or an empty link), ENOTDIR, ELOOP. */
      code: 'ENOENT' | 'ENOTDIR' | 'ELOOP';
      reason: string;
      via: string[];
    };

/** The limit Linux applies (MAXSYMLINKS). */
const MAX_LINKS = 40;

export class ImageFs {
  private readonly stats = new Map<number, Promise<Stat>>();
  private readonly dirs = new Map<number, Promise<Map<string, number>>>();
  private readonly lookups = new Map<string, Promise<Lookup>>();

  constructor(readonly img: Ext4Image) {}

  stat(ino: number): Promise<Stat> {
    let p = this.stats.get(ino);
    if (!p) {
      p = this.img.stat(ino);
      this.stats.set(ino, p);
    }
    return p;
  }

  /** A directory's entries by name (without "." and ".."), read once. */
  entries(dir: Stat): Promise<Map<string, number>> {
    let p = this.dirs.get(dir.ino);
    if (!p) {
      p = this.img.readdir(dir).then((list) => new Map(list.map((e) => [e.name, e.ino])));
      this.dirs.set(dir.ino, p);
    }
    return p;
  }

  /**
   * Resolves `path` (absolute, or relative to the root) like open(2) in a chroot at the image's
   * root: every symlink is followed, the last one too unless `followLast` is false.
   */
  resolve(path: string, followLast = true): Promise<Lookup> {
    const key = `${followLast ? 'F' : 'L'}${path}`;
    let p = this.lookups.get(key);
    if (!p) {
      p = this.walk(path, followLast);
      this.lookups.set(key, p);
    }
    return p;
  }

  private async walk(path: string, followLast: boolean): Promise<Lookup> {
    const parts = split(path);
    const root = await this.stat(ROOT_INO);
    const stack: { name: string; st: Stat }[] = [];
    const via: string[] = [];
    const seen = new Set<string>();
    let hops = 0;
    const here = () => '/' + stack.map((s) => s.name).join('/');
    while (parts.length > 0) {
      const part = parts.shift()!;
      if (part === '..') {
        stack.pop();
        continue;
      }
      const dir = stack.length > 0 ? stack[stack.length - 1]!.st : root;
      if (dir.kind !== 'dir') return { ok: false, code: 'ENOTDIR', reason: `not a directory (${here()})`, via };
      const ino = (await this.entries(dir)).get(part);
      const at = join(here(), part);
      if (ino === undefined) return { ok: false, code: 'ENOENT', reason: `no such file or directory (${at})`, via };
      const st = await this.stat(ino);
      if (st.kind === 'symlink' && (parts.length > 0 || followLast)) {
        const target = await this.img.readlink(st);
        via.push(`${at} -> ${target}`);
        // The same link with the same rest of the path to go means we are going round in circles.
        const state = `${ino}:${parts.join('/')}`;
        if (seen.has(state)) return { ok: false, code: 'ELOOP', reason: `symbolic link loop (${via.join(', ')})`, via };
        seen.add(state);
        if (++hops > MAX_LINKS) return { ok: false, code: 'ELOOP', reason: `too many levels of symbolic links (${via.length} followed)`, via };
        if (target === '') return { ok: false, code: 'ENOENT', reason: `empty symbolic link (${at})`, via };
        if (target.startsWith('/')) stack.length = 0;
        parts.unshift(...split(target));
        continue;
      }
      stack.push({ name: part, st });
    }
    return { ok: true, path: here(), st: stack.length > 0 ? stack[stack.length - 1]!.st : root, via };
  }

  /** Reads a small file whole (config files); `max` guards against a huge one. */
  async readSmall(st: Stat, max = 1 << 20): Promise<Buffer> {
    return this.img.readRange(st, 0, Math.min(st.size, max));
  }

  /**
   * Expands a glob (`*`, `?`, `[...]` in any component, as ldconfig's `include` uses glob(3))
   * to the existing paths it matches, sorted. Components without wildcards are taken as they are.
   */
  async glob(pattern: string): Promise<string[]> {
    let current = [''];
    const parts = split(pattern);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const next: string[] = [];
      for (const base of current) {
        if (!/[*?[]/.test(part)) {
          next.push(`${base}/${part}`);
          continue;
        }
        const dir = await this.resolve(base || '/');
        if (!dir.ok || dir.st.kind !== 'dir') continue;
        const re = globToRegExp(part);
        const names = [...(await this.entries(dir.st)).keys()].filter((n) => re.test(n) && (part.startsWith('.') || !n.startsWith('.')));
        for (const n of names.sort()) next.push(`${base}/${n}`);
      }
      current = next;
    }
    const out: string[] = [];
    for (const p of current) if ((await this.resolve(p)).ok) out.push(p);
    return out;
  }
}

export function split(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

function join(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** Lexically normalised absolute path: no empty, "." or ".." components (".." stops at "/"). */
export function normalize(path: string): string {
  const out: string[] = [];
  for (const p of split(path)) {
    if (p === '..') out.pop();
    else out.push(p);
  }
  return '/' + out.join('/');
}

export function dirname(path: string): string {
  const n = normalize(path);
  const i = n.lastIndexOf('/');
  return i <= 0 ? '/' : n.slice(0, i);
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close < 0) {
        re += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, close);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += `[${body.replace(/[\\\]]/g, '\\$&')}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}
