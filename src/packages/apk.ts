/**
 * apk's database, lib/apk/db/installed: stanzas of "K:value" lines. P name, V version,
 * A architecture, o origin (the source package), I installed size in bytes, F a directory and
 * R a file in the last F directory.
 */
import { sortPackages, type PackageFs, type PackageInfo } from './types.js';

export const APK_INSTALLED = 'lib/apk/db/installed';

export function parseApkInstalled(data: Buffer, withFiles: boolean): PackageInfo[] {
  const out: PackageInfo[] = [];
  let cur: PackageInfo | null = null;
  let dir = '';
  // latin1 keeps file names as byte strings; names and versions are ASCII
  for (const line of data.toString('latin1').split('\n')) {
    if (line.length < 2 || line[1] !== ':') {
      if (line.trim() === '') cur = null;
      continue;
    }
    const key = line[0];
    const value = line.slice(2);
    if (!cur) {
      cur = { name: '', version: '', architecture: '', source: '', installedSize: 0, ...(withFiles ? { files: [] } : {}) };
      out.push(cur);
      dir = '';
    }
    switch (key) {
      case 'P':
        cur.name = value;
        break;
      case 'V':
        cur.version = value;
        break;
      case 'A':
        cur.architecture = value;
        break;
      case 'o':
        cur.source = value;
        break;
      case 'I':
        cur.installedSize = Number(value) || 0;
        break;
      case 'F':
        dir = value;
        if (withFiles) cur.files!.push(`/${value}`);
        break;
      case 'R':
        if (withFiles) cur.files!.push(dir ? `/${dir}/${value}` : `/${value}`);
        break;
    }
  }
  const pkgs = out.filter((p) => p.name !== '');
  for (const p of pkgs) if (!p.source) p.source = p.name;
  return pkgs;
}

export async function readApk(fs: PackageFs, withFiles: boolean): Promise<PackageInfo[] | null> {
  const b = await fs.readFile(APK_INSTALLED);
  if (!b) return null;
  return sortPackages(parseApkInstalled(b, withFiles));
}
