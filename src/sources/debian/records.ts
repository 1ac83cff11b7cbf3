/**
 * Reading what rootforge's mmdebstrap hook (assets/debian/packages-hook) wrote: the installed
 * packages (dpkg), their Packages-index stanzas (SHA-256, size, pool path) and the Release files
 * apt used (codename, date). Pure parsing; the files are small (one line / stanza a package).
 */
import { fail } from '../../errors.js';

export interface InstalledPackage {
  name: string;
  version: string;
  architecture: string;
  /** The source package (dpkg's source:Package). */
  source: string;
  /** From the Packages index the .deb came from. */
  sha256: string;
  size: number;
  filename: string;
}

export interface ReleaseInfo {
  file: string;
  origin: string | undefined;
  suite: string | undefined;
  codename: string | undefined;
  version: string | undefined;
  /** Seconds since the epoch (the Release file's Date). */
  date: number | undefined;
}

/** Joins `installed` (TSV) with `records` (stanzas); every installed package must have one. */
export function parseHookOutput(installed: string, records: string): InstalledPackage[] {
  const index = new Map<string, Map<string, string>>();
  for (const stanza of records.split(/\n\s*\n/)) {
    const f = fields(stanza);
    const name = f.get('Package');
    if (!name) continue;
    index.set(`${name}=${f.get('Version')}:${f.get('Architecture')}`, f);
  }
  const out: InstalledPackage[] = [];
  const missing: string[] = [];
  for (const line of installed.split('\n')) {
    if (line === '') continue;
    const [name, version, architecture, source] = line.split('\t');
    if (!name || !version || !architecture) fail('DEBIAN_MMDEBSTRAP_FAILED', 'read the installed packages', 'a line is not NAME VERSION ARCH SOURCE', line);
    const f = index.get(`${name}=${version}:${architecture}`);
    if (!f) {
      missing.push(`${name}=${version}`);
      continue;
    }
    out.push({ name, version, architecture, source: source || name, sha256: f.get('SHA256') ?? '', size: Number(f.get('Size') ?? 0), filename: f.get('Filename') ?? '' });
  }
  if (missing.length > 0) {
    fail('DEBIAN_MMDEBSTRAP_FAILED', 'record the installed packages', `${missing.length} installed package(s) are in no Packages index apt used`, missing.slice(0, 8).join(', '));
  }
  return out.sort((a, b) => cmp(a.name, b.name) || cmp(a.architecture, b.architecture));
}

export function parseReleases(text: string): ReleaseInfo[] {
  const out: ReleaseInfo[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const f = fields(stanza);
    const file = f.get('File');
    if (!file) continue;
    const date = f.get('Date');
    const ms = date === undefined ? NaN : Date.parse(date);
    out.push({ file, origin: f.get('Origin'), suite: f.get('Suite'), codename: f.get('Codename'), version: f.get('Version'), date: Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined });
  }
  return out;
}

/** The Release of the base suite: its list file is MIRROR-PATH_dists_SUITE_(In)Release. */
export function mainRelease(releases: ReleaseInfo[], suite: string): ReleaseInfo | undefined {
  return releases.find((r) => r.file.endsWith(`_dists_${suite}_InRelease`) || r.file.endsWith(`_dists_${suite}_Release`)) ?? releases.find((r) => r.suite === suite || r.codename === suite);
}

/** The Date of a Release/InRelease file as seconds since the epoch. */
export function releaseDate(text: string): number | undefined {
  const m = /^Date: (.+)$/m.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(m[1]!);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

function fields(stanza: string): Map<string, string> {
  const f = new Map<string, string>();
  for (const line of stanza.split('\n')) {
    const i = line.indexOf(': ');
    if (i > 0 && !line.startsWith(' ')) f.set(line.slice(0, i), line.slice(i + 2).trim());
  }
  return f;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
