/**
 * Installed-package databases read from a root filesystem (dpkg's and apk's), whether it is an
 * in-memory tree being built or a finished ext4 image: both are reached through `PackageFs`.
 */

export type PackageManager = 'dpkg' | 'apk';

export interface PackageInfo {
  name: string;
  version: string;
  architecture: string;
  /** The source package (dpkg's Source:, apk's origin); the package's own name when unset. */
  source: string;
  /** What the package database says it occupies, in bytes (dpkg: Installed-Size × 1024; apk: I:). */
  installedSize: number;
  /** Paths (byte strings, leading '/') the package installed; only when files were asked for. */
  files?: string[];
}

export interface PackageDb {
  manager: PackageManager;
  /** Sorted by name, then architecture. */
  packages: PackageInfo[];
}

/** Read access to a root filesystem; paths have no leading slash. */
export interface PackageFs {
  /** The file's bytes, or null when there is no regular file there (symlinks followed). */
  readFile(path: string): Promise<Buffer | null>;
  /** Names in a directory, or null when it is not a directory. */
  list(path: string): Promise<string[] | null>;
}

/** A package's key in ownership maps and reports: name, or name:arch when several arches share a name. */
export function packageId(p: PackageInfo, all: PackageInfo[]): string {
  return all.some((q) => q !== p && q.name === p.name) ? `${p.name}:${p.architecture}` : p.name;
}

export function sortPackages(list: PackageInfo[]): PackageInfo[] {
  return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.architecture < b.architecture ? -1 : a.architecture > b.architecture ? 1 : 0));
}
