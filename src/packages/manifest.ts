/**
 * /etc/rootforge/packages.json: the installed packages (name, version, architecture, source
 * package), derived from the base's dpkg or apk database while an image is provisioned. Sorted
 * by name and architecture, fixed key order, no times: the same database gives the same bytes.
 */
import { writeFile, type ProvisionContext } from '../provision/context.js';
import { readPackageDb, treeFs } from './read.js';
import type { PackageDb } from './types.js';

export const PACKAGES_JSON = 'etc/rootforge/packages.json';

export interface PackagesManifest {
  manager: PackageDb['manager'];
  packages: { name: string; version: string; architecture: string; source: string }[];
}

export function packagesManifest(db: PackageDb): PackagesManifest {
  return {
    manager: db.manager,
    packages: db.packages.map((p) => ({ name: p.name, version: p.version, architecture: p.architecture, source: p.source })),
  };
}

/** Writes packages.json when the tree has a package database; returns the package count (or null). */
export async function writePackagesManifest(ctx: ProvisionContext): Promise<number | null> {
  const db = await readPackageDb(treeFs(ctx.tree, ctx.writer));
  if (!db) return null;
  writeFile(ctx, PACKAGES_JSON, JSON.stringify(packagesManifest(db), null, 2) + '\n');
  return db.packages.length;
}
