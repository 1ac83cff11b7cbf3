/**
 * dir:PATH — a host directory taken as it is: types, modes, owners (or --owner), nanosecond
 * mtimes (atime and ctime are set to them, for reproducible images), hard links (by device and inode), device numbers, and extended attributes including
 * capabilities and ACLs. Node has no xattr API, so xattrs come from one recursive `getfattr`
 * run (package `attr`); without it the build goes on and warns that xattrs were not read.
 */
import { spawn } from 'node:child_process';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { BigIntStats } from 'node:fs';
import { fail } from '../errors.js';
import type { NodeAttrs } from '../tree/tree.js';
import type { Timestamp } from '../tree/types.js';
import type { IngestContext } from './types.js';

export async function ingestDir(dir: string, ctx: IngestContext, opts: { applyRootAttrs?: boolean } = {}): Promise<void> {
  const root = resolve(dir);
  let top: BigIntStats;
  try {
    top = await lstat(root, { bigint: true });
  } catch (e) {
    return fail('SOURCE_NOT_FOUND', `read directory ${dir}`, (e as NodeJS.ErrnoException).code ?? String(e), dir, e);
  }
  if (!top.isDirectory()) fail('SOURCE_BAD_SPEC', `read directory ${dir}`, 'not a directory', dir);
  const xattrs = await readAllXattrs(root, ctx);
  const links = new Map<string, string>(); // "dev:ino" → first image path
  let done = 0;

  // Host paths are Buffers throughout, so names that are not UTF-8 survive.
  const attrsOf = (st: BigIntStats, hostPath: Buffer): NodeAttrs => ({
    mode: Number(st.mode) & 0o7777,
    uid: ctx.owner ? ctx.owner.uid : Number(st.uid),
    gid: ctx.owner ? ctx.owner.gid : Number(st.gid),
    // atime and ctime change by merely reading or linking a file, which would make a directory
    // give a different image each time: both take the mtime, as a tar of the tree would.
    mtime: nsToTime(st.mtimeNs),
    xattrs: xattrs.get(hostPath.toString('latin1')),
  });

  const rootBuf = Buffer.from(root);
  if (opts.applyRootAttrs !== false) ctx.tree.addDir('', attrsOf(top, rootBuf));
  const walk = async (hostDir: Buffer, imageDir: string): Promise<void> => {
    const names = (await readdir(hostDir, { encoding: 'buffer' })).map((b) => b.toString('latin1')).sort();
    for (const name of names) {
      const hostPath = Buffer.concat([hostDir, SLASH, Buffer.from(name, 'latin1')]);
      const imagePath = imageDir === '' ? name : `${imageDir}/${name}`;
      if (ctx.exclude?.(imagePath)) continue;
      const st = await lstat(hostPath, { bigint: true });
      const attrs = attrsOf(st, hostPath);
      if (!st.isDirectory() && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          ctx.tree.link(imagePath, first);
          continue;
        }
        links.set(key, imagePath);
      }
      if (st.isDirectory()) {
        ctx.tree.addDir(imagePath, attrs);
        await walk(hostPath, imagePath);
      } else if (st.isFile()) {
        const size = Number(st.size);
        const content = size > 0 ? await ctx.writer.placeHostFile(hostPath, size) : null;
        ctx.tree.addFile(imagePath, attrs, size, content);
        done += size;
        ctx.onProgress?.({ done, total: undefined });
      } else if (st.isSymbolicLink()) {
        const target = (await readlink(hostPath, { encoding: 'buffer' })).toString('latin1');
        ctx.tree.addSymlink(imagePath, attrs, target);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const { major, minor } = splitDev(st.rdev);
        ctx.tree.addSpecial(imagePath, st.isCharacterDevice() ? 'chardev' : 'blockdev', attrs, major, minor);
      } else if (st.isFIFO()) {
        ctx.tree.addSpecial(imagePath, 'fifo', attrs);
      } else if (st.isSocket()) {
        ctx.tree.addSpecial(imagePath, 'socket', attrs);
      }
    }
  };
  await walk(rootBuf, '');
}

const SLASH = Buffer.from('/');

function nsToTime(ns: bigint): Timestamp {
  const sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  let s = sec;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    s -= 1n;
  }
  return { sec: Number(s), nsec: Number(nsec) };
}

/** Linux dev_t → (major, minor), glibc's gnu_dev_major/minor. */
function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

/**
 * Runs `getfattr -R -h -d -m - -e hex -P --absolute-names ROOT` (-h: a symlink's own xattrs) and parses its dump into
 * host path (byte string) → xattrs. Names in the dump escape non-printable bytes as \ooo.
 */
async function readAllXattrs(root: string, ctx: IngestContext): Promise<Map<string, Map<string, Buffer>>> {
  const out = new Map<string, Map<string, Buffer>>();
  const text = await new Promise<string | null>((resolve, reject) => {
    const child = spawn('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '-P', '--absolute-names', '--', root], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    const errs: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => errs.push(c));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') resolve(null);
      else reject(e);
    });
    child.on('close', (code) => {
      if (code !== 0 && code !== 1) {
        reject(new Error(`getfattr exited ${code}: ${Buffer.concat(errs).toString().trim()}`));
      } else resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
  if (text === null) {
    ctx.onWarning?.({ code: 'DIR_NO_XATTRS', message: 'getfattr not found (Debian package "attr"): extended attributes, capabilities and ACLs were not read' });
    return out;
  }
  let current: Map<string, Buffer> | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      out.set(unescapeName(line.slice(8)).replace(/\/+$/, '') || '/', current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const name = unescapeName(line.slice(0, eq));
      const value = line.slice(eq + 1);
      current.set(name, value.startsWith('0x') ? Buffer.from(value.slice(2), 'hex') : Buffer.alloc(0));
    }
  }
  return out;
}

function unescapeName(s: string): string {
  return s.replace(/\\([0-7]{3}|\\)/g, (_, o: string) => (o === '\\' ? '\\' : String.fromCharCode(parseInt(o, 8))));
}
