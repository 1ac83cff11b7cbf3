/**
 * dpkg's database: var/lib/dpkg/status (one stanza per package) and info/<pkg>[:<arch>].list
 * (the paths each package installed, directories included). Distroless images keep one status
 * file per package in var/lib/dpkg/status.d/ instead; both are read.
 */
import { parseControlStanzas } from './deb822.js';
import { sortPackages, type PackageFs, type PackageInfo } from './types.js';

export const DPKG_STATUS = 'var/lib/dpkg/status';
const STATUS_D = 'var/lib/dpkg/status.d';
const INFO = 'var/lib/dpkg/info';

/** Packages whose files are on disk (not "not-installed" or "config-files"). */
export function parseDpkgStatus(text: string): PackageInfo[] {
  const out: PackageInfo[] = [];
  for (const s of parseControlStanzas(text)) {
    const name = s.get('package');
    if (!name) continue;
    const state = (s.get('status') ?? 'install ok installed').split(/\s+/)[2] ?? '';
    if (state === 'not-installed' || state === 'config-files') continue;
    const src = s.get('source');
    out.push({
      name,
      version: s.get('version') ?? '',
      architecture: s.get('architecture') ?? '',
      source: src ? src.split(/\s+/)[0]! : name,
      installedSize: Number(s.get('installed-size') ?? 0) * 1024 || 0,
    });
  }
  return out;
}

/** A .list file: one absolute path per line; "/." stands for the root. Paths stay byte strings. */
export function parseDpkgList(data: Buffer): string[] {
  return data
    .toString('latin1')
    .split('\n')
    .filter((l) => l !== '' && l !== '/.');
}

export async function readDpkg(fs: PackageFs, withFiles: boolean): Promise<PackageInfo[] | null> {
  const status = await fs.readFile(DPKG_STATUS);
  const texts: string[] = status ? [status.toString('utf8')] : [];
  const extra = (await fs.list(STATUS_D)) ?? [];
  for (const name of extra.sort()) {
    if (name.endsWith('.md5sums')) continue;
    const b = await fs.readFile(`${STATUS_D}/${name}`);
    if (b) texts.push(b.toString('utf8'));
  }
  if (texts.length === 0) return null;
  const pkgs = parseDpkgStatus(texts.join('\n\n'));
  if (withFiles) {
    for (const p of pkgs) {
      const list = (await fs.readFile(`${INFO}/${p.name}:${p.architecture}.list`)) ?? (await fs.readFile(`${INFO}/${p.name}.list`));
      p.files = list ? parseDpkgList(list) : [];
    }
  }
  return sortPackages(pkgs);
}
