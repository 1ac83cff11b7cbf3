/**
 * make for builds: `rootforge build` of an unchanged spec with unchanged inputs, into an output
 * that still holds what the last such build wrote, does nothing (≈ the time to check, not to
 * build). A record per key in `<cacheDir>/builds/<key>.json` holds the build's result and the
 * identities of the outputs it wrote (util/file-identity.ts); no image is copied into the cache,
 * so a deleted or changed output is simply built again.
 *
 * The key covers everything the image's bytes depend on:
 *   - the tool: its version, this compiled module's own identity (tsc rewrites every output file
 *     on each build, so a rebuilt checkout is a new tool), the built-in agent binaries and the
 *     provisioning assets; the host's architecture (a base without one takes it);
 *   - the resolved spec (every key, defaults filled in; the output path left out) and the
 *     build's SOURCE_DATE_EPOCH;
 *   - every local file the spec reads (a tar:/dir:/oci:/docker-archive: base, `files:`, a custom
 *     agent, Alpine keys and repository directories, Debian repository keys, the lock): by
 *     identity — device, inode, size, mtime and ctime of each file, and for a directory of every
 *     entry under it (see util/file-identity.ts: a changed file always has a new ctime);
 *   - a registry base by its manifest digest (a moved tag rebuilds);
 *   - a package set only through its lock: a Debian or Alpine build without a lock depends on
 *     what the mirror serves today, so it is never a hit (the reason is reported); a Debian
 *     build also by mmdebstrap's mode (root or unshare) and the identity of the mmdebstrap
 *     program. Not covered: the host's apt and dpkg (the lock pins what they install).
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { fail } from './errors.js';
import { isRecordedOutput, withOutput, writtenIdentity, type FileIdentity } from './util/file-identity.js';
import type { Warning } from './sources/types.js';
import type { ResolvedImage } from './oci/types.js';
import { ASSETS_DIR } from './provision/assets.js';
import { builtinAgentPath } from './provision/agent.js';
import { hostArch } from './provision/arch.js';
import type { SourceSpec } from './sources/types.js';
import type { DebianPlan } from './sources/debian/index.js';
import type { AlpineBase } from './sources/alpine/step.js';
import type { ResolvedSpec } from './spec/load.js';
import { version } from './version.js';

/** Architectures with a built-in agent (src/provision/agent.ts). */
const AGENT_ARCHES = ['amd64', 'arm64'];
/** A directory input with more entries than this is not worth keying (walking it costs too much). */
const MAX_DIR_ENTRIES = 200_000;

export type BuildKey = { key: string; reason?: undefined } | { key?: undefined; reason: string };

export interface BuildKeyInputs {
  spec: ResolvedSpec;
  timestamp: number | undefined;
  src: SourceSpec | null;
  image: ResolvedImage | null;
  debian: DebianPlan | null;
  alpine: AlpineBase | undefined;
}

/** The cache key of a build, or why it has none (an unlocked package set). */
export async function buildKey(i: BuildKeyInputs): Promise<BuildKey> {
  const { spec } = i;
  if (i.debian && !i.debian.lock) return { reason: `the Debian package set has no lock (${spec.lockPath}): run rootforge lock to make builds cacheable` };
  if (spec.alpine && (spec.alpine.packages.length > 0 || spec.alpine.branch) && !i.alpine?.lock) {
    return { reason: `the Alpine package set has no lock (${spec.alpine.lock}): run rootforge lock to make builds cacheable` };
  }
  const { output: _output, explicit, ...rest } = spec;
  const files: Record<string, string> = {};
  let tooBig: string | undefined;
  const add = async (path: string) => {
    if (files[path] !== undefined || tooBig !== undefined) return;
    const f = await pathFingerprint(path);
    if (f === null) tooBig = path;
    else files[path] = f;
  };
  await add(fileURLToPath(import.meta.url));
  for (const arch of AGENT_ARCHES) await add(builtinAgentPath(arch));
  await add(ASSETS_DIR);
  if (i.src && i.src.kind !== 'docker') {
    if (i.src.path === '-') return { reason: 'the base is read from standard input' };
    await add(i.src.path);
  }
  if (spec.files) await add(spec.files);
  if (spec.agent !== 'builtin' && spec.agent !== 'none') await add(spec.agent);
  if (spec.alpine) {
    for (const k of spec.alpine.keys) await add(k);
    for (const r of spec.alpine.repositories) if (r.startsWith('/')) await add(r);
    if (i.alpine?.lock) await add(spec.alpine.lock);
  }
  if (i.debian) {
    for (const r of i.debian.options.repositories) if (r.key !== undefined && r.key.startsWith('/')) await add(r.key);
    if (i.debian.lockPath) await add(i.debian.lockPath);
    // the program that makes the tree: a host upgrade replaces it
    await add(i.debian.program);
  }
  if (tooBig !== undefined) return { reason: `${tooBig} has more than ${MAX_DIR_ENTRIES} entries to check` };
  const canonical = JSON.stringify(
    sorted({
      tool: version(),
      hostArch: hostArch(),
      spec: { ...rest, explicit: [...explicit].sort() },
      timestamp: i.timestamp ?? null,
      image: i.image ? { source: i.image.source, manifestDigest: i.image.manifestDigest } : null,
      debian: i.debian ? { options: i.debian.options, architecture: i.debian.architecture, epoch: i.debian.epoch, strip: i.debian.strip, mode: i.debian.mode } : null,
      alpine: i.alpine ? { from: i.alpine.from ?? null, pin: i.alpine.pin ?? null } : null,
      files,
    }),
  );
  return { key: createHash('sha256').update(canonical).digest('hex') };
}

/**
 * A file's or directory tree's identity as one hash: for each entry (sorted by name, symlinks not
 * followed) its relative path, type, device, inode, size, mtime and ctime. The input itself, when
 * it is a symlink, is also followed (the build reads what it points to): the target's identity
 * is hashed too, and a directory it points to is walked. Missing paths hash as missing: the build
 * itself reports them. Null when a directory has too many entries.
 */
async function pathFingerprint(path: string): Promise<string | null> {
  const h = createHash('sha256');
  let entries = 0;
  // Paths as bytes: a name that is not valid UTF-8 must be found again (as a string it would
  // come back as U+FFFD, be "missing", and what is under it never checked).
  const visit = async (p: Buffer, rel: Buffer): Promise<boolean> => {
    const shown = p.toString();
    let st;
    try {
      st = await lstat(p, { bigint: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return (h.update(rel).update('\0missing\n'), true);
      return fail('CACHE_IO', `check build input ${shown}`, code ?? String(e), shown, e);
    }
    if (++entries > MAX_DIR_ENTRIES) return false;
    h.update(rel).update(`\0${st.mode}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}\n`);
    if (rel.length === 0 && st.isSymbolicLink()) {
      try {
        st = await stat(p, { bigint: true });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return (h.update('\0dangling\n'), true);
        return fail('CACHE_IO', `check build input ${shown}`, code ?? String(e), shown, e);
      }
      h.update(`\0->${st.mode}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}\n`);
    }
    if (!st.isDirectory()) return true;
    let names: Buffer[];
    try {
      names = await readdir(p, { encoding: 'buffer' });
    } catch (e) {
      return fail('CACHE_IO', `list build input ${shown}`, (e as NodeJS.ErrnoException).code ?? String(e), shown, e);
    }
    for (const n of names.sort(Buffer.compare)) {
      const child = Buffer.concat([p, SLASH, n]);
      if (!(await visit(child, rel.length === 0 ? n : Buffer.concat([rel, SLASH, n])))) return false;
    }
    return true;
  };
  return (await visit(Buffer.from(path), Buffer.alloc(0))) ? h.digest('hex') : null;
}

const SLASH = Buffer.from('/');

/** JSON with object keys in sorted order, recursively (a key must not depend on key order). */
function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
    return Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])]));
  }
  return v;
}

let counter = 0;

interface BuildRecord {
  key: string;
  tool: string;
  outputs: FileIdentity[];
  result: unknown;
}

/** The build records under `<cacheDir>/builds` (`rootforge cache prune` removes them). */
export class BuildRecords {
  readonly dir: string;

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'builds');
  }

  /** The recorded result when `output` is exactly the file a build with `key` wrote there, else null. */
  async lookup(key: string, output: string): Promise<unknown> {
    const rec = await this.read(key);
    return rec && (await isRecordedOutput(rec.outputs, output)) ? rec.result : null;
  }

  /**
   * Notes that `output` (inode `ino`, just written) holds the image of `key`. Nothing is recorded
   * when another run replaced the output since. A record that cannot be written costs only the
   * next build's skip, so it is a warning.
   */
  async record(key: string, output: string, ino: bigint, result: unknown, onWarning: (w: Warning) => void): Promise<void> {
    const tmp = join(this.dir, `.${key}.${process.pid}.${counter++}.tmp.json`);
    try {
      const id = await writtenIdentity(output, ino);
      if (id === null) return;
      await mkdir(this.dir, { recursive: true });
      const rec: BuildRecord = { key, tool: version(), outputs: withOutput((await this.read(key))?.outputs, id), result };
      await writeFile(tmp, JSON.stringify(rec) + '\n');
      await rename(tmp, join(this.dir, `${key}.json`));
    } catch (e) {
      await unlink(tmp).catch(() => undefined); // best effort: the warning below is what matters
      onWarning({ code: 'CACHE_OUTPUT_NOT_RECORDED', message: `The build was not recorded in ${this.dir} (the next build of this spec runs in full): ${(e as Error).message}` });
    }
  }

  private async read(key: string): Promise<BuildRecord | null> {
    const p = join(this.dir, `${key}.json`);
    let text: string;
    try {
      text = await readFile(p, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      return fail('CACHE_IO', 'read build record', (e as NodeJS.ErrnoException).code ?? String(e), p, e);
    }
    try {
      const rec = JSON.parse(text) as BuildRecord;
      return rec.key === key && Array.isArray(rec.outputs) ? rec : null;
    } catch {
      return null; // a damaged record is no record: the build runs and rewrites it
    }
  }
}
