/**
 * The apk installer: resolves a world against signed repositories and writes the packages into
 * the tree being built — no apk-tools, no root, no chroot, nothing run on the host.
 *
 *   keys (base /etc/apk/keys + extra) → APKINDEX (signature) → resolve → per package, in order:
 *   fetch → identity / signature / datahash → data stream → tree (per-file SHA-1, owners from the
 *   image's passwd/group, xattrs, hard links, conflicts/replaces, .apk-new) → installed db
 *
 * Install scripts are recorded in scripts.tar as apk does and queued for the guest's first boot
 * (see firstboot.ts); a few common ones are done natively instead.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { fail, isRootforgeError, printable } from '../../errors.js';
import type { ProvisionContext } from '../../provision/context.js';
import { readTreeFile, writeFile } from '../../provision/context.js';
import { FsTree } from '../../tree/tree.js';
import type { IndexPackage } from './apkindex.js';
import { readIndex } from './apkindex.js';
import { aclString, formatInstalled, formatWorld, newDbPackage, parseInstalled, readScriptsTar, writeScriptsTar, type DbDir, type DbPackage, type ScriptEntry } from './db.js';
import { queueFirstBoot, type PendingScript } from './firstboot.js';
import { addKey, type KeyRing } from './keys.js';
import { controlIdentity, openPackage, streamData, type OpenedPackage } from './package.js';
import { fetchPackageCached, fetchRepoFile, isUrl } from './repo.js';
import { resolve } from './resolve.js';
import type { ApkTarEntry } from './tar.js';
import { formatDep, parseDep, versionMatches, type Dep } from './version.js';

export interface ApkInstallOptions {
  /** Repository URLs or local directories, in priority order. */
  repositories: string[];
  /** Dependencies to add to the world (`name`, `name>=1.2`, `!name`). */
  packages: string[];
  /** Extra trusted public keys (host files), on top of the image's /etc/apk/keys. */
  keys: string[];
  /** apk architecture: x86_64, aarch64 … */
  arch: string;
  /** Pin exact versions (a lock): name → { version, checksum }. */
  pins?: Map<string, { version: string; checksum: string }> | undefined;
  /** Where .apk bytes come from (default: the repository). For caches and tests. */
  fetchPackage?: ((repo: string, arch: string, file: string) => Promise<Buffer>) | undefined;
  /** Run scripts at first boot (default true); false: record them only (like apk --no-scripts). */
  firstBoot?: boolean;
  /** Keep downloaded packages in <cacheDir>/apk/ (by identity; checked again on every use). */
  cacheDir?: string | undefined;
}

const PREFETCH = 4;

export interface InstalledSummary {
  name: string;
  version: string;
  arch: string;
  checksum: string;
  repository: string;
  size: number;
}

export interface ApkInstallResult {
  installed: InstalledSummary[];
  world: string[];
  /** Scripts left for the first boot (`pkg-ver.post-install`). */
  pending: string[];
  /** Scripts done natively instead. */
  native: string[];
}

/** Paths apk protects: a file here that the image already has is kept, the new one is NAME.apk-new. */
function isProtected(path: string): boolean {
  return path.startsWith('etc/') && !path.startsWith('etc/apk/') && !path.startsWith('etc/init.d/');
}

const DB = 'lib/apk/db';

export async function installApk(ctx: ProvisionContext, o: ApkInstallOptions): Promise<ApkInstallResult> {
  const { tree } = ctx;
  const ring: KeyRing = new Map();
  const keysDir = tree.get('etc/apk/keys');
  if (keysDir?.kind === 'dir') {
    for (const name of [...keysDir.children!.keys()].sort()) {
      const data = await readTreeFile(ctx, `etc/apk/keys/${name}`);
      if (data) addKey(ring, name, data, `/etc/apk/keys/${name}`);
    }
  }
  for (const k of o.keys) {
    const data = await readFile(k).catch((e: NodeJS.ErrnoException) => fail('APK_BAD_KEY', `read key ${k}`, e.code ?? String(e), k, e));
    addKey(ring, basename(k), data, k);
    writeFile(ctx, `etc/apk/keys/${basename(k)}`, data);
  }
  if (o.repositories.length === 0) fail('SPEC_INVALID', 'install Alpine packages', 'no repositories', o.packages.join(' '));

  // indexes
  const available: IndexPackage[] = [];
  for (let i = 0; i < o.repositories.length; i++) {
    const repo = o.repositories[i]!;
    const buf = await fetchRepoFile(repo, o.arch, 'APKINDEX.tar.gz');
    const idx = readIndex(buf, ring, `${repo}/${o.arch}/APKINDEX.tar.gz`, i);
    for (const p of idx.packages) if (p.arch === o.arch || p.arch === 'noarch') available.push(p);
  }

  // what the base has
  const initdb = !tree.get(`${DB}/installed`);
  if (initdb) createDb(ctx, o.arch);
  const base = parseInstalled((await readDbFile(ctx, `${DB}/installed`))?.toString('utf8') ?? '');
  const worldText = (await readDbFile(ctx, 'etc/apk/world'))?.toString('utf8') ?? '';
  const world: Dep[] = worldText.split(/\s+/).map(parseDep).filter((d): d is Dep => d !== null);
  for (const text of o.packages) {
    const d = parseDep(text);
    if (!d) fail('SPEC_INVALID', 'install Alpine packages', 'not a package name or dependency', text);
    const i = world.findIndex((w) => w.name === d.name);
    if (i >= 0) world[i] = d;
    else world.push(d);
  }
  let pool = available;
  if (o.pins) {
    const pins = o.pins;
    pool = available.filter((p) => !pins.has(p.name) || (pins.get(p.name)!.version === p.version && pins.get(p.name)!.checksum === p.checksum));
  }
  let install: IndexPackage[];
  try {
    ({ install } = resolve(world, pool, base.map((b) => b.pkg)));
  } catch (e) {
    // with a lock, "nothing matches" means the repository no longer has what the lock pins
    if (o.pins && isRootforgeError(e, 'APK_UNSATISFIABLE')) fail('APK_LOCK_MISMATCH', 'install the locked packages', `${e.message.replace(/^Cannot /, '')}; the repositories no longer have the locked version or its checksum changed (run rootforge lock again)`, undefined, e);
    throw e;
  }
  if (o.pins) {
    for (const p of install) if (!o.pins.has(p.name)) fail('APK_LOCK_MISMATCH', `install ${p.name}-${p.version}`, 'the lock does not list it (run rootforge lock again)', p.name);
  }

  // ownership of every path by a package (for conflicts, replaces and .apk-new)
  const db: DbPackage[] = [...base];
  const owner = new Map<string, { dbp: DbPackage; dir: DbDir }>();
  for (const dbp of base) for (const d of dbp.dirs) for (const f of d.files) owner.set(join2(d.name, f.name), { dbp, dir: d });

  let scripts: ScriptEntry[] = [];
  const scriptsTar = await readDbFile(ctx, `${DB}/scripts.tar`);
  if (scriptsTar && scriptsTar.length > 0) scripts = readScriptsTar(scriptsTar);
  const triggers = ((await readDbFile(ctx, `${DB}/triggers`))?.toString('utf8') ?? '').split('\n').filter((l) => l.trim() !== '');

  const existingSha1 = await unownedEtcHashes(ctx, owner);
  const ids = new IdCache();
  const pending: PendingScript[] = [];
  const touchedDirs = new Set<string>();
  const result: InstalledSummary[] = [];
  // Downloads run ahead of the installation (a few at a time); packages are installed in order.
  const get = (p: IndexPackage) => {
    const repo = o.repositories[p.repo]!;
    const file = `${p.name}-${p.version}.apk`;
    return o.fetchPackage ? o.fetchPackage(repo, o.arch, file) : fetchPackageCached(repo, o.arch, file, p.checksum, o.cacheDir, (data) => controlIdentity(data) === p.checksum);
  };
  const toFetch = install.filter((p) => p.installedSize !== 0);
  const fetches = new Map<IndexPackage, Promise<Buffer>>();
  let next = 0;
  const prefetch = () => {
    while (next < toFetch.length && fetches.size < PREFETCH) {
      const p = toFetch[next++]!;
      const f = get(p);
      f.catch(() => undefined); // awaited (and its error reported) when its turn comes
      fetches.set(p, f);
    }
  };
  for (const p of install) {
    result.push({ name: p.name, version: p.version, arch: p.arch, checksum: p.checksum, repository: o.repositories[p.repo]!, size: p.size });
    if (p.installedSize === 0) {
      // apk unpacks nothing of a package with no installed size (meta packages): no files, no scripts
      db.push(newDbPackage(p, [], 0));
      continue;
    }
    const file = `${p.name}-${p.version}.apk`;
    const repo = o.repositories[p.repo]!;
    const what = `${repo}/${o.arch}/${file}`;
    prefetch();
    const download = fetches.get(p) ?? get(p);
    fetches.delete(p);
    prefetch();
    const buf = await download;
    const opened = openPackage(buf, p.checksum, ring, what);
    const dbp = newDbPackage(p, opened.replaces, opened.replacesPriority);
    await ids.refresh(ctx);
    await extract(ctx, p, opened, dbp, owner, existingSha1, ids, what, touchedDirs);
    db.push(dbp);
    for (const [name, body] of opened.scripts) {
      scripts.push({ name: `${p.name}-${p.version}.${p.checksum}.${name}`, body, mtime: p.buildTime ?? 0 });
      if (name === 'pre-install' || name === 'post-install') pending.push({ pkg: p, script: name, body, args: [p.version] });
    }
    if (opened.triggers.length > 0) triggers.push(`${p.checksum} ${opened.triggers.join(' ')}`);
  }
  // triggers of every package (old and new) whose watched directories got new files
  for (const line of triggers) {
    const [csum, ...globs] = line.split(' ');
    const dbp = db.find((d) => d.pkg.checksum === csum);
    if (!dbp) continue;
    const hit = [...touchedDirs].filter((d) => globs.some((g) => globMatch(g, `/${d}`))).sort().map((d) => `/${d}`);
    const body = scripts.find((s) => s.name === `${dbp.pkg.name}-${dbp.pkg.version}.${csum}.trigger`)?.body;
    if (hit.length > 0 && body) pending.push({ pkg: dbp.pkg, script: 'trigger', body, args: hit });
  }

  writeFile(ctx, `${DB}/installed`, formatInstalled(db));
  writeFile(ctx, `${DB}/scripts.tar`, writeScriptsTar(scripts));
  writeFile(ctx, `${DB}/triggers`, triggers.map((t) => t + '\n').join(''));
  writeFile(ctx, 'etc/apk/world', formatWorld(world));
  const urls = o.repositories.filter(isUrl);
  if (urls.length > 0) writeFile(ctx, 'etc/apk/repositories', urls.map((u) => u + '\n').join(''));
  const { queued, native } = await queueFirstBoot(ctx, pending, o.firstBoot !== false);
  return { installed: result, world: world.map(formatDep), pending: queued, native };
}

/** What `apk add --initdb` creates in an empty root. */
function createDb(ctx: ProvisionContext, arch: string): void {
  const { tree, time } = ctx;
  const a = (mode: number) => ({ mode, uid: 0, gid: 0, mtime: time });
  const mk = (p: string, mode = 0o755) => {
    if (!tree.get(p)) tree.addDir(p, a(mode));
  };
  mk('tmp', 0o1777);
  mk('dev');
  const dev = (n: string, major: number, minor: number, mode = 0o666) => {
    if (!tree.get(`dev/${n}`)) tree.addSpecial(`dev/${n}`, 'chardev', a(mode), major, minor);
  };
  dev('null', 1, 3);
  dev('zero', 1, 5);
  dev('random', 1, 8);
  dev('urandom', 1, 9);
  dev('console', 5, 1, 0o600);
  for (const d of ['etc', 'etc/apk', 'lib', 'lib/apk', 'lib/apk/db', 'var', 'var/cache', 'var/cache/apk', 'var/cache/misc']) mk(d);
  mk('proc', 0o555); // apk mounts /proc there for scripts
  writeFile(ctx, 'etc/apk/arch', `${arch}\n`);
  writeFile(ctx, `${DB}/lock`, '', 0o600);
}

function join2(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function globMatch(glob: string, path: string): boolean {
  const re = new RegExp('^' + glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]') + '$');
  return re.test(path);
}

/** uname/gname → id from the image's /etc/passwd and /etc/group, cached per name like apk. */
class IdCache {
  private passwd = '';
  private group = '';
  private users = new Map<string, number>();
  private groups = new Map<string, number>();

  private seen: [unknown, unknown] = [null, null];

  /** Re-reads passwd/group when a package replaced them (not before every package: reading back flushes the writer). */
  async refresh(ctx: ProvisionContext): Promise<void> {
    const p = ctx.tree.get('etc/passwd');
    const g = ctx.tree.get('etc/group');
    if (p?.content === this.seen[0] && g?.content === this.seen[1] && this.seen[0] !== null) return;
    this.seen = [p?.content ?? null, g?.content ?? null];
    this.passwd = (await readTreeFile(ctx, 'etc/passwd'))?.toString('utf8') ?? '';
    this.group = (await readTreeFile(ctx, 'etc/group'))?.toString('utf8') ?? '';
  }

  uid(name: string, fallback: number): number {
    return lookup(this.users, this.passwd, name, fallback);
  }

  gid(name: string, fallback: number): number {
    return lookup(this.groups, this.group, name, fallback);
  }
}

function lookup(cache: Map<string, number>, text: string, name: string, fallback: number): number {
  if (name === '') return fallback;
  let id = cache.get(name);
  if (id === undefined) {
    id = -1;
    for (const line of text.split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f.length >= 3 && /^\d+$/.test(f[2]!)) {
        id = Number(f[2]);
        break;
      }
    }
    cache.set(name, id);
  }
  return id >= 0 ? id : fallback;
}

/** Writes one package's data stream into the tree and its file list into `dbp`. */
async function extract(
  ctx: ProvisionContext,
  p: IndexPackage,
  opened: OpenedPackage,
  dbp: DbPackage,
  owner: Map<string, { dbp: DbPackage; dir: DbDir }>,
  existingSha1: Map<string, Buffer>,
  ids: IdCache,
  what: string,
  touched: Set<string>,
): Promise<void> {
  const { tree, writer } = ctx;
  const dirs = new Map<string, DbDir>();
  const files = new Map<string, string | null>(); // path → csum (for hard links)
  const dirOf = (d: string): DbDir => {
    let dir = dirs.get(d);
    if (!dir) {
      dir = { name: d, acl: null, files: [] };
      dirs.set(d, dir);
      dbp.dirs.push(dir);
    }
    return dir;
  };
  type Cur = { e: ApkTarEntry; path: string; hash: ReturnType<typeof createHash>; write: boolean; attrs: ReturnType<typeof attrsOf>; dbFile: { dir: DbDir; name: string; acl: string | null } | null };
  let cur: Cur | null = null;
  const attrsOf = (e: ApkTarEntry) => ({
    mode: e.mode,
    uid: ids.uid(e.uname, e.uid),
    gid: ids.gid(e.gname, e.gid),
    mtime: { sec: e.mtime, nsec: 0 },
    xattrs: e.xattrs.size > 0 ? e.xattrs : undefined,
  });

  /** May this package write `path`? false: an older owner wins (replaces priority). */
  const claim = (path: string): boolean => {
    const prev = owner.get(path);
    if (!prev || prev.dbp === dbp || prev.dbp.pkg.name === p.name) return true;
    const o = prev.dbp;
    if (o.pkg.origin !== undefined && o.pkg.origin === p.origin) return take(path, prev);
    const by = (reps: Dep[], target: IndexPackage) => reps.some((d) => d.name === target.name && versionMatches(target.version, d));
    const oPrio = by(o.replaces, p) ? o.replacesPriority : -1;
    const pPrio = by(opened.replaces, o.pkg) ? opened.replacesPriority : -1;
    if (oPrio > pPrio) return false;
    if (pPrio >= 0) return take(path, prev);
    return fail('APK_FILE_CONFLICT', `install ${p.name}-${p.version}`, `it would overwrite /${printable(path)}, which ${o.pkg.name}-${o.pkg.version} owns (and neither replaces the other)`, `/${path}`);
  };
  const take = (path: string, prev: { dbp: DbPackage; dir: DbDir }): boolean => {
    const name = path.slice(path.lastIndexOf('/') + 1);
    prev.dir.files = prev.dir.files.filter((f) => f.name !== name);
    return true;
  };

  const handler = {
    entry: (e: ApkTarEntry) => {
      const raw = e.name;
      if (raw.startsWith('.')) {
        cur = null; // control files repeated in the data stream: apk ignores them
        return;
      }
      if (raw.startsWith('/') || /(^|\/)\.\.?(\/|$)/.test(raw) || /[\x00-\x1f]/.test(raw)) {
        fail('APK_BAD_PACKAGE', `install ${p.name}-${p.version}`, 'a file name leaves the root or has control characters', raw);
      }
      const path = FsTree.split(raw).join('/');
      const attrs = attrsOf(e);
      if (e.type === 'dir') {
        cur = null;
        // an existing directory keeps its attributes (apk only creates missing ones), and so
        // does a symlink standing for one (merged /usr: bin -> usr/bin), as on a mounted root
        const existing = tree.get(path);
        if (!existing || (existing.kind !== 'dir' && existing.kind !== 'symlink')) tree.addDir(path, attrs);
        dirOf(path).acl = aclString('dir', attrs.uid, attrs.gid, e.mode, e.xattrs);
        return;
      }
      const slash = path.lastIndexOf('/');
      const dname = slash < 0 ? '' : path.slice(0, slash);
      const fname = path.slice(slash + 1);
      if (fname.startsWith('.keep_')) {
        cur = { e, path, hash: createHash('sha1'), write: false, attrs, dbFile: null };
        return;
      }
      const dir = dirOf(dname);
      touched.add(dname);
      const acl = aclString('file', attrs.uid, attrs.gid, e.mode, e.xattrs);
      const claimed = claim(path);
      let write = claimed;
      let target = path;
      if (write && e.type === 'file' && isProtected(path) && !owner.has(path)) {
        const existing = tree.get(path);
        if (existing && existing.kind === 'file') {
          // kept; identical → nothing to write, different → the new one beside it
          const same = e.sha1 !== null && existingSha1.get(path)?.equals(e.sha1);
          if (same) write = false;
          else target = `${path}.apk-new`;
        }
      }
      // the package owns the name even when its bytes went to NAME.apk-new or were already there
      const dbFile = claimed ? { dir, name: fname, acl } : null;
      cur = { e, path: target, hash: createHash('sha1'), write, attrs, dbFile };
      if (e.type === 'file') {
        if (write) writer.data.beginFile(e.size);
        return;
      }
      if (!write) return;
      if (e.type === 'symlink') {
        tree.addSymlink(target, attrs, e.linkname);
      } else if (e.type === 'hardlink') {
        const lt = FsTree.split(e.linkname).join('/');
        if (!files.has(lt)) fail('APK_BAD_PACKAGE', `install ${p.name}-${p.version}`, `hard link ${printable(path)} points outside the package`, e.linkname);
        tree.link(target, lt);
      } else {
        tree.addSpecial(target, e.type, attrs, e.devmajor, e.devminor);
      }
    },
    data: (chunk: Buffer) => {
      const c = cur as Cur | null;
      if (!c || c.e.type !== 'file') return;
      c.hash.update(chunk);
      if (c.write) writer.data.write(chunk);
    },
    end: (e: ApkTarEntry) => {
      const c = cur as Cur | null;
      cur = null;
      if (!c || c.e !== e) return;
      let csum: string | null = null;
      if (e.type === 'file') {
        const got = c.hash.digest();
        if (e.sha1 && !got.equals(e.sha1)) {
          if (c.write) writer.data.abortFile();
          fail('APK_CHECKSUM_MISMATCH', `install ${p.name}-${p.version}`, `/${printable(c.path)} does not match its APK-TOOLS.checksum.SHA1`, what);
        }
        if (c.write) tree.addFile(c.path, c.attrs, e.size, writer.data.endFile());
        csum = e.sha1 ? 'Q1' + e.sha1.toString('base64') : null;
      } else if (e.type === 'symlink') {
        const got = createHash('sha1').update(Buffer.from(e.linkname, 'latin1')).digest();
        if (e.sha1 && !got.equals(e.sha1)) fail('APK_CHECKSUM_MISMATCH', `install ${p.name}-${p.version}`, `symlink /${printable(c.path)} does not match its checksum`, what);
        csum = e.sha1 ? 'Q1' + e.sha1.toString('base64') : null;
      } else if (e.type === 'hardlink') {
        csum = files.get(FsTree.split(e.linkname).join('/')) ?? null;
      }
      files.set(FsTree.split(c.e.name).join('/'), csum); // by the package's own name (not .apk-new)
      if (c.dbFile) {
        const f = { name: c.dbFile.name, acl: c.dbFile.acl, csum };
        c.dbFile.dir.files = c.dbFile.dir.files.filter((x) => x.name !== f.name);
        c.dbFile.dir.files.push(f);
        owner.set(FsTree.split(c.e.name).join('/'), { dbp, dir: c.dbFile.dir });
      }
    },
  };
  try {
    await streamData(opened, handler, what, () => writer.data.drain());
  } catch (e) {
    const c = cur as Cur | null;
    if (c && c.e.type === 'file' && c.write) writer.data.abortFile();
    throw e;
  }
}

/**
 * SHA-1 of the protected files the image has that no package owns (the base's or the user's
 * configuration): a package file with the same bytes is left alone, a different one becomes
 * NAME.apk-new. Files this run writes are added as they are written.
 */
async function unownedEtcHashes(ctx: ProvisionContext, owner: Map<string, unknown>): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (path: string) => {
    const n = ctx.tree.get(path);
    if (!n) return;
    if (n.kind === 'dir') {
      for (const name of [...n.children!.keys()].sort()) await walk(`${path}/${name}`);
    } else if (n.kind === 'file' && isProtected(path) && !owner.has(path)) {
      out.set(path, createHash('sha1').update(await ctx.writer.readContent(n.content, n.size, 64 << 20)).digest());
    }
  };
  await walk('etc');
  return out;
}

/** apk's database files can pass readTreeFile's 1 MiB guard on big images: allow 256 MiB. */
async function readDbFile(ctx: ProvisionContext, path: string): Promise<Buffer | null> {
  const n = ctx.tree.get(path);
  if (!n || n.kind !== 'file') return null;
  return ctx.writer.readContent(n.content, n.size, 256 << 20);
}
