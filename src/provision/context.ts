/** What provisioning steps work on: the tree, a way to read files back, a time, warnings. */
import type { ContentSink } from '../tree/sink.js';
import type { FsTree } from '../tree/tree.js';
import type { Inode, Timestamp } from '../tree/types.js';

export interface ProvisionContext {
  tree: FsTree;
  writer: ContentSink;
  /** mtime for everything provisioning writes (SOURCE_DATE_EPOCH or 0). */
  time: Timestamp;
  onWarning: (w: { code: string; message: string }) => void;
  /** Paths written or changed, for the build report. */
  changed: string[];
}

export function attrs(ctx: ProvisionContext, mode: number, uid = 0, gid = 0) {
  return { mode, uid, gid, mtime: ctx.time };
}

/** Adds (or replaces) a small file with the given bytes. */
export function writeFile(ctx: ProvisionContext, path: string, data: Buffer | string, mode = 0o644, uid = 0, gid = 0): Inode {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  ctx.changed.push(path);
  return ctx.tree.addFile(path, attrs(ctx, mode, uid, gid), bytes.length, { kind: 'bytes', data: bytes });
}

/** Ensures a directory exists; sets its mode/owner only when it is new (or `force`). */
export function ensureDir(ctx: ProvisionContext, path: string, mode = 0o755, uid = 0, gid = 0, force = false): void {
  const existing = ctx.tree.get(path);
  if (existing?.kind === 'dir' && !force) return;
  if (existing && existing.kind !== 'dir') {
    ctx.onWarning({ code: 'PROVISION_REPLACED', message: `replaced ${existing.kind} /${path} with a directory` });
  }
  ctx.tree.addDir(path, attrs(ctx, mode, uid, gid));
  ctx.changed.push(path + '/');
}

export function ensureSymlink(ctx: ProvisionContext, path: string, target: string): void {
  const existing = ctx.tree.get(path);
  if (existing?.kind === 'symlink' && existing.target === target) return;
  ctx.tree.addSymlink(path, attrs(ctx, 0o777), target);
  ctx.changed.push(path);
}

/** Reads a file of the tree back (null when absent or not a regular file). */
export async function readTreeFile(ctx: ProvisionContext, path: string): Promise<Buffer | null> {
  const n = ctx.tree.get(path);
  if (!n || n.kind !== 'file') return null;
  return ctx.writer.readContent(n.content, n.size);
}
