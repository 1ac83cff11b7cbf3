/**
 * The directory layout every sandbox needs: FHS directories (all of them from scratch, only the
 * missing ones over a base), /tmp and /var/tmp 1777, /root 0700, the work directory, mount
 * points, and /dev/console and /dev/null for the moment before devtmpfs is mounted.
 */
import type { ResolvedSpec } from '../spec/load.js';
import { ensureDir, type ProvisionContext } from './context.js';

const FHS: [string, number][] = [
  ['bin', 0o755],
  ['sbin', 0o755],
  ['dev', 0o755],
  ['etc', 0o755],
  ['home', 0o755],
  ['proc', 0o555],
  ['run', 0o755],
  ['sys', 0o555],
  ['usr', 0o755],
  ['usr/bin', 0o755],
  ['usr/sbin', 0o755],
  ['usr/lib', 0o755],
  ['var', 0o755],
  ['var/log', 0o755],
  ['var/lib', 0o755],
  ['etc/rootforge', 0o755],
];

export function layout(ctx: ProvisionContext, spec: ResolvedSpec, imageBase = false): void {
  const { tree } = ctx;
  for (const [d, mode] of FHS) {
    // merged-/usr bases have bin and sbin as symlinks: keep them
    if (tree.get(d)?.kind === 'symlink') continue;
    ensureDir(ctx, d, mode);
  }
  for (const d of ['tmp', 'var/tmp']) {
    const n = tree.get(d);
    if (n?.kind === 'symlink') continue;
    if (!n || n.kind !== 'dir' || n.mode !== 0o1777) ensureDir(ctx, d, 0o1777, 0, 0, true);
  }
  if (tree.get('root')?.kind !== 'dir') ensureDir(ctx, 'root', 0o700);
  const owner = spec.users.find((u) => u.uid !== 0);
  // over an OCI image, its WorkingDir is the work directory unless the spec names one
  if (!imageBase || spec.explicit.has('workdir')) ensureDir(ctx, spec.workdir.replace(/^\/+/, ''), 0o755, owner?.uid ?? 0, owner?.gid ?? 0);
  for (const m of spec.mounts) ensureDir(ctx, m.target.replace(/^\/+/, ''), 0o755);
  for (const u of spec.users) ensureDir(ctx, u.home.replace(/^\/+/, ''), 0o750, u.uid, u.gid);
  if (!tree.get('dev/console')) tree.addSpecial('dev/console', 'chardev', { mode: 0o600, uid: 0, gid: 0, mtime: ctx.time }, 5, 1);
  if (!tree.get('dev/null')) tree.addSpecial('dev/null', 'chardev', { mode: 0o666, uid: 0, gid: 0, mtime: ctx.time }, 1, 3);
}
