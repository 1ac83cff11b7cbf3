/**
 * Runs mmdebstrap for a package-set base. Its tar goes to a pipe that the tar reader consumes
 * as it arrives: rootforge keeps no staging directory, never mounts anything and reads the
 * archive once (mmdebstrap itself assembles the root in its own temporary directory, as it
 * always does). Its phase lines ("I: downloading packages with apt...") become progress.
 *
 *   mmdebstrap --mode=root|unshare --variant=minbase --format=tar
 *              --aptopt='APT::Install-Recommends "false"' [--dpkgopt=path-exclude=…]
 *              --include=PKG,… --customize-hook=<packages-hook> SUITE - MIRROR [extra.sources]
 *        │ stdout (tar)                          │ stderr (phases, errors)
 *        ▼                                       ▼
 *   ingestTarStream → tree + ext4 writer      progress / typed errors
 *
 * The customize hook (assets/debian/packages-hook) records the installed packages with their
 * Packages-index SHA-256 before apt's lists are cleaned: that is what a lock is made of and
 * what a locked build is checked against.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail, RootforgeError } from '../../errors.js';
import { ASSETS_DIR } from '../../provision/assets.js';
import type { StripItem } from '../../spec/types.js';
import { ingestTarStream } from '../tar.js';
import type { IngestContext } from '../types.js';
import type { AptProxy, MmdebstrapMode } from './host.js';
import type { DebianOptions } from './options.js';
import { mainRelease, parseHookOutput, parseReleases, type InstalledPackage, type ReleaseInfo } from './records.js';

export const PACKAGES_HOOK = join(ASSETS_DIR, 'debian/packages-hook');
export const DEB_CACHE_IN = join(ASSETS_DIR, 'debian/deb-cache-in');
export const DEB_CACHE_OUT = join(ASSETS_DIR, 'debian/deb-cache-out');

/** dpkg path filters for strip items: what dpkg never unpacks (the tar never carries it). */
const DPKG_EXCLUDES: Partial<Record<StripItem, string[]>> = {
  docs: ['/usr/share/doc/*', '/usr/share/gtk-doc/*', '/usr/share/lintian/*'],
  man: ['/usr/share/man/*', '/usr/share/info/*', '/usr/share/groff/*'],
  locales: ['/usr/share/locale/*'],
};

export interface MmdebstrapPlan {
  mode: MmdebstrapMode;
  /** 'tar' streams the root to stdout; 'null' builds and keeps nothing (for `rootforge lock`). */
  format: 'tar' | 'null';
  /** Debian architecture to build for. */
  architecture: string;
  strip: StripItem[];
  proxy: AptProxy;
  /** A locked build: exactly these NAME=VERSION (variant custom). */
  lockedIncludes?: string[] | undefined;
  /** Path of the deb822 file with the extra repositories (written by writeExtraSources). */
  extraSources?: string | undefined;
  /** A directory of .deb files kept between builds (offered to apt, refilled afterwards). */
  debCache?: string | undefined;
}

/** mmdebstrap's argv (without the program): a pure function of the options, tested as such. */
export function mmdebstrapArgs(o: DebianOptions, p: MmdebstrapPlan): string[] {
  const args = [`--mode=${p.mode}`, `--format=${p.format}`, `--variant=${p.lockedIncludes ? 'custom' : o.variant}`];
  args.push(`--architectures=${p.architecture}`);
  args.push(`--components=${o.components.join(',')}`);
  if (!o.recommends) args.push('--aptopt=APT::Install-Recommends "false"');
  if (p.proxy.http) args.push(`--aptopt=Acquire::http::Proxy "${p.proxy.http}"`);
  if (p.proxy.https) args.push(`--aptopt=Acquire::https::Proxy "${p.proxy.https}"`);
  for (const item of p.strip) for (const pattern of DPKG_EXCLUDES[item] ?? []) args.push(`--dpkgopt=path-exclude=${pattern}`);
  const include = p.lockedIncludes ?? o.packages;
  if (include.length > 0) args.push(`--include=${include.join(',')}`);
  if (p.debCache) {
    // keep the essential packages' .debs too (mmdebstrap unlinks them after installing by default)
    args.push('--skip=essential/unlink', `--setup-hook=${DEB_CACHE_IN}`, `--customize-hook=${DEB_CACHE_OUT}`);
  }
  // the host's resolv.conf and hostname are copied in by mmdebstrap; provisioning writes the image's own
  args.push('--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname"');
  args.push(`--customize-hook=${PACKAGES_HOOK}`);
  args.push(o.suite, p.format === 'tar' ? '-' : '/dev/null', o.mirror);
  if (p.extraSources) args.push(p.extraSources);
  return args;
}

/**
 * The extra repositories as one deb822 .sources file. A repository's key goes inline into
 * Signed-By (ASCII-armored), so the same file works while building and inside the image.
 */
export async function extraSourcesText(o: DebianOptions): Promise<string> {
  const parts: string[] = [];
  for (const r of o.repositories) {
    const lines = ['Types: deb', `URIs: ${r.uri}`, `Suites: ${r.suite}`, ...(r.suite.endsWith('/') ? [] : [`Components: ${r.components.join(' ')}`])];
    if (r.key) {
      let key: Buffer;
      try {
        key = await readFile(r.key);
      } catch (e) {
        return fail('SOURCE_NOT_FOUND', `read the key of repository ${r.uri}`, (e as NodeJS.ErrnoException).code ?? String(e), r.key, e);
      }
      const armored = key.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----') ? key.toString('utf8') : armor(key);
      // deb822 continuation lines: each begins with a space; an empty line is " ."
      const body = armored.trim().split('\n').map((l) => (l.trim() === '' ? ' .' : ` ${l.trimEnd()}`));
      lines.push('Signed-By:', ...body);
    }
    parts.push(lines.join('\n'));
  }
  return parts.join('\n\n') + '\n';
}

/** OpenPGP ASCII armor (RFC 4880 §6) of a binary key: base64 in 64-column lines and a CRC-24. */
export function armor(data: Buffer): string {
  let crc = 0xb704ce;
  for (const byte of data) {
    crc ^= byte << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  crc &= 0xffffff;
  const b64 = data.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd();
  const sum = Buffer.from([crc >> 16, (crc >> 8) & 0xff, crc & 0xff]).toString('base64');
  return `-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n${b64}\n=${sum}\n-----END PGP PUBLIC KEY BLOCK-----\n`;
}

export interface MmdebstrapRun {
  packages: InstalledPackage[];
  release: ReleaseInfo | undefined;
  releases: ReleaseInfo[];
}

export interface RunOptions {
  /** SOURCE_DATE_EPOCH for mmdebstrap (times in the tar, dpkg, shadow's last-change day). */
  epoch: number;
  /** Where the tar goes; absent for format null. */
  ingest?: IngestContext | undefined;
  /** mmdebstrap's phases ("downloading packages with apt"). */
  onPhase?: ((phase: string) => void) | undefined;
  /** Also keep mmdebstrap's tar here (tests and benchmarks reuse it); written atomically. */
  tarCopy?: string | undefined;
}

/** Runs mmdebstrap with `args`, streams its tar into `ingest`, returns what the hook recorded. */
export async function runMmdebstrap(program: string, o: DebianOptions, plan: MmdebstrapPlan, run: RunOptions): Promise<MmdebstrapRun> {
  const work = await mkdtemp(join(tmpdir(), 'rootforge-debian-'));
  try {
    if (o.repositories.length > 0) {
      plan = { ...plan, extraSources: join(work, 'rootforge-extra.sources') };
      await writeFile(plan.extraSources!, await extraSourcesText(o));
    }
    const hookOut = join(work, 'hook');
    await mkdir(hookOut);
    const args = mmdebstrapArgs(o, plan);
    if (plan.debCache) await mkdir(plan.debCache, { recursive: true });
    const env = { ...process.env, SOURCE_DATE_EPOCH: String(run.epoch), ROOTFORGE_HOOK_OUT: hookOut, LC_ALL: 'C.UTF-8', ...(plan.debCache ? { ROOTFORGE_DEB_CACHE: plan.debCache } : {}) };
    await spawnAndStream(program, args, env, plan, run);
    const [installed, records, releasesText] = await Promise.all(['installed', 'records', 'releases'].map((f) => readFile(join(hookOut, f), 'utf8')));
    const releases = parseReleases(releasesText!);
    return { packages: parseHookOutput(installed!, records!), release: mainRelease(releases, o.suite), releases };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function spawnAndStream(program: string, args: string[], env: NodeJS.ProcessEnv, plan: MmdebstrapPlan, run: RunOptions): Promise<void> {
  const child = spawn(program, args, { env, stdio: ['ignore', plan.format === 'tar' ? 'pipe' : 'ignore', 'pipe'] });
  const stderr: string[] = [];
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      stderr.push(line);
      if (stderr.length > 400) stderr.splice(0, stderr.length - 300); // keep the tail (errors come last)
      const m = /^I: (.+?)\.*$/.exec(line);
      if (m) run.onPhase?.(m[1]!);
    }
  });
  let spawnError: Error | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (e) => {
      spawnError = e;
      resolve({ code: null, signal: null });
    });
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  let ingestError: unknown;
  let killed = false;
  if (plan.format === 'tar') {
    if (!run.ingest) throw new Error('runMmdebstrap: format tar needs an ingest context');
    let bytes = 0;
    const copyTmp = run.tarCopy ? `${run.tarCopy}.${process.pid}.tmp` : undefined;
    const copy = copyTmp ? await open(copyTmp, 'w') : undefined;
    let ended = false;
    const counted = (async function* () {
      for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (copy) await copy.write(chunk);
        yield chunk;
      }
      ended = true;
    })();
    try {
      await ingestTarStream(counted, run.ingest, () => ({ done: bytes, total: undefined }));
    } catch (e) {
      ingestError = e;
      // The pipe ended (mmdebstrap failed and closed it, or its tar was bad): let it exit and
      // report its own error. Otherwise the failure is ours (e.g. no space): stop mmdebstrap.
      if (!ended) killed = child.exitCode === null && child.kill('SIGTERM');
    }
    if (copy) {
      await copy.close();
      const ok = ingestError === undefined && (await exited).code === 0;
      if (ok) await rename(copyTmp!, run.tarCopy!);
      else await rm(copyTmp!, { force: true });
    }
  }
  const { code, signal } = await exited;
  if (partial) stderr.push(partial);
  if (spawnError) fail('DEBIAN_TOOL_MISSING', 'run mmdebstrap', (spawnError as NodeJS.ErrnoException).code ?? spawnError.message, program, spawnError);
  if (code !== 0 && !(killed && ingestError)) throw mmdebstrapError(stderr, code, signal, plan);
  if (ingestError) throw ingestError;
}

/** A failed mmdebstrap as a typed error: what a locked build's mirror lacks, else apt's E: lines. */
export function mmdebstrapError(stderr: string[], code: number | null, signal: NodeJS.Signals | null, plan: Pick<MmdebstrapPlan, 'lockedIncludes'>): RootforgeError {
  const text = stderr.join('\n');
  const versions = [...text.matchAll(/Version '([^']+)' for '([^']+)' was not found/g)].map((m) => `${m[2]}=${m[1]}`);
  const unknown = [...text.matchAll(/Unable to locate package (\S+)/g)].map((m) => m[1]!);
  const missing = [...new Set([...versions, ...unknown])];
  if (plan.lockedIncludes && missing.length > 0) {
    return new RootforgeError('LOCK_UNAVAILABLE', `Cannot install the locked packages: the mirror no longer has ${missing.length} of them; run rootforge lock again (${missing.slice(0, 12).join(', ')}${missing.length > 12 ? ', …' : ''})`);
  }
  if (missing.length > 0) {
    return new RootforgeError('DEBIAN_MMDEBSTRAP_FAILED', `Cannot install the packages: the mirror has no ${missing.join(', ')}`);
  }
  const errors = stderr.filter((l) => /^(E|W): /.test(l) || /error/i.test(l)).slice(-8);
  const shown = (errors.length > 0 ? errors : stderr.slice(-8)).join(' | ');
  return new RootforgeError('DEBIAN_MMDEBSTRAP_FAILED', `Cannot build the Debian base: mmdebstrap ${signal ? `was killed by ${signal}` : `exited with ${code}`} (${shown})`);
}
