/**
 * `apt-get download` of a package for another architecture (an arm64 kernel on an amd64 host)
 * without touching the host's apt: the host's apt knows only its own architecture unless someone
 * runs `dpkg --add-architecture` and `apt-get update` as root. Instead apt runs with a private
 * state directory under the rootforge cache that holds package lists for that architecture
 * only, read from the host's own sources and checked with the host's own keys:
 *
 *   <cache>/apt/<arch>/lists/      Dir::State::Lists   (Packages indexes of <arch>)
 *   <cache>/apt/<arch>/status      Dir::State::status  (empty: nothing is "installed")
 *   <cache>/apt/<arch>/cache/      Dir::Cache          (pkgcache.bin; downloads go to a temp dir)
 *   -o APT::Architecture=<arch> -o APT::Architectures=<arch>
 *
 * The lists are refreshed when older than a day, or when a download finds no such package.
 * No root is needed (apt-get update and download both work on private directories).
 * Debian's mirror serves arm64 from the same URLs as amd64; Ubuntu serves other architectures
 * from ports.ubuntu.com, which the host's sources do not list: there, download the .deb and
 * pass its path.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';

/** Lists older than this are refreshed before a download. */
const MAX_LIST_AGE_MS = 24 * 3600 * 1000;

export interface ForeignAptOptions {
  /** The rootforge cache directory (the state goes to <cacheDir>/apt/<arch>). */
  cacheDir: string;
  onLog?: (line: string) => void;
}

/** Debian architecture names rootforge builds kernels for. */
export const DEB_ARCHES = ['amd64', 'arm64'] as const;
export type DebArch = (typeof DEB_ARCHES)[number];

/** The apt options that point apt at the private state of `arch`. */
export function foreignAptArgs(stateDir: string, arch: string): string[] {
  return [
    '-q',
    '-o', `Dir::State::Lists=${join(stateDir, 'lists')}`,
    '-o', `Dir::State::status=${join(stateDir, 'status')}`,
    '-o', `Dir::Cache=${join(stateDir, 'cache')}`,
    '-o', `APT::Architecture=${arch}`,
    '-o', `APT::Architectures=${arch}`,
    // as root apt would hand downloads to the _apt user, who cannot write into ~/.cache
    ...(process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : []),
  ];
}

/** Downloads `pkg` for `arch` into `dir`; returns the .deb's path. */
export async function aptDownloadForeign(pkg: string, arch: string, dir: string, o: ForeignAptOptions): Promise<string> {
  const log = o.onLog ?? (() => {});
  const stateDir = join(o.cacheDir, 'apt', arch);
  await prepareState(stateDir);
  const args = foreignAptArgs(stateDir, arch);
  let updated = false;
  if (!(await listsFresh(stateDir))) {
    log(`apt-get update for ${arch} (private lists in ${stateDir})`);
    await aptUpdate(args, pkg);
    updated = true;
  }
  for (;;) {
    log(`apt-get download ${pkg} (${arch})`);
    const r = await run('apt-get', [...args, 'download', pkg], dir);
    if (r.error !== undefined) {
      const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
      fail('KERNEL_APT_FAILED', `download package ${pkg} for ${arch}`, missing ? 'apt-get is not available here: download the .deb yourself and pass its path' : r.error.message, pkg, r.error);
    }
    if (r.code === 0) break;
    const last = errorLines(r.stderr, r.code);
    if (!updated && /Unable to locate|has no installation candidate|404/.test(last)) {
      log(`apt-get update for ${arch}: ${pkg} is not in the lists (or they are stale)`);
      await aptUpdate(args, pkg);
      updated = true;
      continue;
    }
    fail('KERNEL_APT_FAILED', `download package ${pkg} for ${arch}`, `apt-get download failed: ${last}`, pkg);
  }
  const files = (await readdir(dir)).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith(`_${arch}.deb`));
  if (files.length !== 1) fail('KERNEL_APT_FAILED', `download package ${pkg} for ${arch}`, `expected one ${pkg}_*_${arch}.deb, found ${files.length}`, dir);
  return join(dir, files[0]!);
}

async function prepareState(stateDir: string): Promise<void> {
  try {
    await mkdir(join(stateDir, 'lists', 'partial'), { recursive: true });
    await mkdir(join(stateDir, 'cache', 'archives', 'partial'), { recursive: true });
    // an empty dpkg status: apt needs the file, and nothing is installed for this architecture
    await writeFile(join(stateDir, 'status'), '', { flag: 'a' });
  } catch (e) {
    fail('KERNEL_CACHE_IO', 'prepare the private apt state', (e as NodeJS.ErrnoException).code ?? String(e), stateDir, e);
  }
}

/** Lists are fresh when some Packages index is there and younger than a day. */
async function listsFresh(stateDir: string): Promise<boolean> {
  const lists = join(stateDir, 'lists');
  let newest = 0;
  for (const f of await readdir(lists)) {
    if (!/_Packages(\.[a-z0-9]+)?$/.test(f)) continue;
    newest = Math.max(newest, (await stat(join(lists, f))).mtimeMs);
  }
  return newest > 0 && Date.now() - newest < MAX_LIST_AGE_MS;
}

async function aptUpdate(args: string[], pkg: string): Promise<void> {
  let r = await run('apt-get', [...args, 'update'], undefined);
  // another rootforge refreshing the same lists holds apt's lock: wait for it (bounded)
  for (let tries = 0; r.code !== 0 && r.error === undefined && /Could not get lock|Unable to lock/.test(r.stderr) && tries < 60; tries++) {
    await new Promise((res) => setTimeout(res, 1000));
    r = await run('apt-get', [...args, 'update'], undefined);
  }
  if (r.error !== undefined) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    fail('KERNEL_APT_FAILED', `download package ${pkg}`, missing ? 'apt-get is not available here: download the .deb yourself and pass its path' : r.error.message, pkg, r.error);
  }
  // apt-get update exits 0 with W: lines for sources that lack the architecture: only E: fails
  if (r.code !== 0) fail('KERNEL_APT_FAILED', `download package ${pkg}`, `apt-get update (private lists) failed: ${errorLines(r.stderr, r.code)}`, pkg);
}

function errorLines(stderr: string, code: number | null): string {
  return stderr.split('\n').filter((l) => l.startsWith('E:')).join(' ') || stderr.trim().split('\n').pop() || `exit ${code}`;
}

function run(cmd: string, args: string[], cwd: string | undefined): Promise<{ code: number | null; stderr: string; error?: Error }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...(cwd !== undefined ? { cwd } : {}), stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 16384) stderr += b.toString();
    });
    child.on('error', (error) => resolve({ code: null, stderr, error }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** The Debian architecture a kernel package name is for ("linux-image-cloud-arm64" → arm64). */
export function debArchOfPackage(pkg: string): DebArch | undefined {
  const m = /-(amd64|arm64)(?:-unsigned)?$/.exec(pkg);
  return m ? (m[1] as DebArch) : undefined;
}
