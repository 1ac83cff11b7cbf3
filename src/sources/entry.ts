/**
 * What every tar-shaped source (a tar archive, an image layer) does with an entry's header before
 * it reaches the tree: its attributes with the owner mapping applied, and whether `exclude`
 * (strip) leaves it out — a hard link to a left-out path goes too, with a STRIP_LINK_DROPPED
 * warning, since it would have no target.
 */
import { printable } from '../errors.js';
import type { TarHeader } from '../tar/types.js';
import { FsTree, type NodeAttrs } from '../tree/tree.js';
import type { IngestContext } from './types.js';

/** The tree attributes of a tar entry (every owner mapped to ctx.owner when set). */
export function entryAttrs(h: TarHeader, owner: IngestContext['owner']): NodeAttrs {
  return {
    mode: h.mode,
    uid: owner ? owner.uid : h.uid,
    gid: owner ? owner.gid : h.gid,
    mtime: h.mtime,
    atime: h.atime,
    ctime: h.ctime,
    xattrs: h.xattrs.size > 0 ? h.xattrs : undefined,
  };
}

/** Whether ctx.exclude leaves this entry out (and, for a hard link, its target). */
export function entryExcluded(h: TarHeader, ctx: Pick<IngestContext, 'exclude' | 'onWarning'>): boolean {
  const ex = ctx.exclude;
  if (!ex) return false;
  if (ex(FsTree.split(h.path).join('/'))) return true;
  if (h.type === 'hardlink' && ex(FsTree.split(h.linkname).join('/'))) {
    ctx.onWarning?.({ code: 'STRIP_LINK_DROPPED', message: `left out ${printable(h.path)}: a hard link to ${printable(h.linkname)}, which strip removes` });
    return true;
  }
  return false;
}
