/**
 * Applies image layers to the tree top-down, in one pass, with no staging directory.
 *
 * Layers are read from the top (last) layer down. An entry of a lower layer is kept only if no
 * upper layer already decided its path: replaced it, whited it out, made a parent opaque, or
 * made a parent something other than a directory. So the bytes of files that upper layers hide
 * are never written to the image. Within one layer, tar order holds (a later entry wins).
 *
 *   layer 2 (read first):  a/.wh.old   a/new   b        (b: a file)
 *   layer 1 (read next):   a/old  ✗    a/keep ✓  b/x ✗  (b is not a directory above)
 *
 * Hard links need care, because a link's target can live in a layer not read yet:
 *  - a link to a path defined earlier in the same layer joins that inode; if that path is
 *    hidden at the top, its content is fetched again from the layer afterwards (a deferred
 *    content reference: blob + offset), and only because a visible name needs it;
 *  - a link to a path of a lower layer waits (a pending request) until that layer reaches the
 *    path, as long as nothing between the two layers changed it.
 */
import { fail, printable } from '../errors.js';
import { entryAttrs, entryExcluded } from '../sources/entry.js';
import type { IngestContext } from '../sources/types.js';
import { TarParser } from '../tar/parser.js';
import type { TarHandler, TarHeader } from '../tar/types.js';
import { FsTree, type NodeAttrs } from '../tree/tree.js';
import type { Content, Inode } from '../tree/types.js';
import type { Layer } from './types.js';

type DecisionKind = 'dir' | 'impliedDir' | 'nondir' | 'whiteout' | 'opaque';

interface Decision {
  layer: number;
  kind: DecisionKind;
}

/** A regular file of the current layer that is hidden at the top: where its bytes are. */
interface HiddenFile {
  header: TarHeader;
  attrs: NodeAttrs;
  /** The inode made for it once a visible hard link needed it. */
  inode: Inode | null;
}

/** A visible name waiting for the inode of `target` as it is at `level` (an upper layer). */
interface LinkRequest {
  level: number;
  names: string[];
}

/** A file of this layer being written, and the names it gets. */
export interface FilePlan {
  path: string;
  names: string[];
}

interface Deferred {
  node: Inode;
  layer: number;
  offset: number;
  header: TarHeader;
}

const HIDING: readonly DecisionKind[] = ['nondir', 'whiteout', 'opaque'];
const REPLACING: readonly DecisionKind[] = ['nondir', 'whiteout'];
const DIRECTORY: readonly DecisionKind[] = ['dir', 'impliedDir', 'opaque'];
const EXPLICIT_DIR: readonly DecisionKind[] = ['dir'];
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

export class LayerMerger {
  private readonly decisions = new Map<string, Decision[]>();
  private readonly pending = new Map<string, LinkRequest[]>();
  private readonly deferred: Deferred[] = [];
  private layer = 0;
  /** Per layer: the inode each path got in this layer (visible or materialized), or its hidden file. */
  private layerInodes = new Map<string, Inode>();
  private layerHidden = new Map<string, HiddenFile>();

  constructor(private readonly ctx: IngestContext) {}

  /** Reads every layer, top first, into ctx.tree. */
  async apply(layers: Layer[]): Promise<void> {
    for (let i = layers.length - 1; i >= 0; i--) {
      this.layer = i;
      this.layerInodes = new Map();
      this.layerHidden = new Map();
      await this.readLayer(layers[i]!);
    }
    await this.materialize(layers);
    for (const [target, reqs] of this.pending) {
      for (const r of reqs) {
        fail('OCI_LAYER_INVALID', `link ${printable(r.names[0]!)}`, 'hard-link target is not in any lower layer', target);
      }
    }
  }

  private async readLayer(layer: Layer): Promise<void> {
    const handler = new LayerHandler(this, this.ctx);
    const parser = new TarParser(handler, { onWarning: (w) => this.ctx.onWarning?.({ code: w.code, message: `layer ${layer.descriptor.digest.slice(7, 19)}: ${w.message}` }) });
    try {
      for await (const chunk of await layer.open()) {
        parser.write(chunk);
        await this.ctx.writer.data.drain();
      }
      parser.end();
    } catch (e) {
      handler.abort();
      throw e;
    }
  }

  // ------------------------------------------------------------------ decisions

  private decide(path: string, kind: DecisionKind): void {
    const list = this.decisions.get(path);
    if (list) list.push({ layer: this.layer, kind });
    else this.decisions.set(path, [{ layer: this.layer, kind }]);
  }

  /** Whether a layer in (this layer, below) decided `path` with one of `kinds` (no allocation: hot path). */
  private decidedAbove(path: string, kinds: readonly DecisionKind[], below = Infinity): boolean {
    const list = this.decisions.get(path);
    if (!list) return false;
    for (const d of list) if (d.layer > this.layer && d.layer < below && kinds.includes(d.kind)) return true;
    return false;
  }

  /** Whether an upper layer (below `below`) hides `parts` through one of its parents. */
  private parentHidden(parts: string[], below = Infinity): boolean {
    let p = '';
    for (let i = 0; i < parts.length - 1; i++) {
      p = p === '' ? parts[i]! : `${p}/${parts[i]}`;
      if (this.decidedAbove(p, HIDING, below)) return true;
    }
    return false;
  }

  /**
   * Where an entry of this layer stands: 'hidden' by an upper layer, 'merge' (a directory that
   * an upper layer also lists: keep its contents, not its metadata) or 'visible'.
   */
  private standing(parts: string[], isDir: boolean, below = Infinity): 'hidden' | 'merge' | 'visible' {
    if (this.parentHidden(parts, below)) return 'hidden';
    const path = parts.join('/');
    if (this.decidedAbove(path, REPLACING, below)) return 'hidden';
    if (this.decidedAbove(path, DIRECTORY, below)) {
      if (!isDir) return 'hidden'; // an upper layer has a directory here
      return this.decidedAbove(path, EXPLICIT_DIR, below) ? 'merge' : 'visible';
    }
    return 'visible';
  }

  private markParents(parts: string[]): void {
    let p = '';
    for (let i = 0; i < parts.length - 1; i++) {
      p = p === '' ? parts[i]! : `${p}/${parts[i]}`;
      const list = this.decisions.get(p);
      if (!list || !list.some((d) => d.layer === this.layer)) this.decide(p, 'impliedDir');
    }
  }

  // ------------------------------------------------------------------ entries

  /**
   * An entry of the current layer. For a regular file whose body is needed, returns the names
   * it will get (call fileDone with its content); otherwise null.
   */
  entry(h: TarHeader, attrs: NodeAttrs): FilePlan | null {
    const parts = FsTree.split(h.path);
    if (parts.length === 0) {
      // the layer's root directory
      if (h.type === 'dir' && !this.decidedAbove('', EXPLICIT_DIR)) this.ctx.tree.addDir('', attrs);
      this.decide('', 'dir');
      return null;
    }
    const path = parts.join('/');
    const name = parts[parts.length - 1]!;
    if (name.startsWith(WHITEOUT)) {
      this.whiteout(parts, name);
      return null;
    }
    const isDir = h.type === 'dir';
    const stand = this.standing(parts, isDir);
    this.markParents(parts);
    this.decide(path, isDir ? 'dir' : 'nondir');
    if (isDir) {
      if (stand === 'visible') this.ctx.tree.addDir(path, attrs);
      return null;
    }
    const visible = stand === 'visible';
    const requests = this.takeRequests(path);
    const names = visible ? [path, ...requests] : requests;
    if (h.type === 'hardlink') {
      this.link(path, names, FsTree.split(h.linkname).join('/'));
      return null;
    }
    if (h.type === 'file') {
      if (names.length === 0) {
        // Hidden at the top, and nobody above links to it (yet): remember where it is, in
        // case a later link in this layer needs it.
        this.layerHidden.set(path, { header: h, attrs, inode: null });
        this.layerInodes.delete(path);
        return null;
      }
      return { path, names };
    }
    // symlinks, devices, fifos: no body
    if (names.length > 0) this.addLeaf(h, attrs, names);
    return null;
  }

  /** A regular file whose body has been written: give it its names. */
  fileDone(plan: FilePlan, h: TarHeader, attrs: NodeAttrs, content: Content | null): void {
    const [first, ...more] = plan.names;
    const node = this.ctx.tree.addFile(first!, attrs, h.size, content);
    for (const n of more) this.ctx.tree.link(n, first!);
    this.layerInodes.set(plan.path, node);
    this.layerHidden.delete(plan.path);
  }

  private addLeaf(h: TarHeader, attrs: NodeAttrs, names: string[]): void {
    const { tree } = this.ctx;
    let node: Inode;
    if (h.type === 'symlink') node = tree.addSymlink(names[0]!, attrs, h.linkname);
    else if (h.type === 'fifo') node = tree.addSpecial(names[0]!, 'fifo', attrs);
    else node = tree.addSpecial(names[0]!, h.type as 'chardev' | 'blockdev', attrs, h.devmajor, h.devminor);
    for (const n of names.slice(1)) tree.link(n, names[0]!);
    this.layerInodes.set(FsTree.split(h.path).join('/'), node);
  }

  /**
   * Requests from upper layers that this entry (at `path`, in this layer) satisfies: those whose
   * level sees this layer's version of the path (nothing in between changed it).
   */
  private takeRequests(path: string): string[] {
    const reqs = this.pending.get(path);
    if (!reqs) return [];
    const parts = FsTree.split(path);
    const names: string[] = [];
    const keep: LinkRequest[] = [];
    for (const r of reqs) {
      if (this.standing(parts, false, r.level) === 'visible') names.push(...r.names);
      else keep.push(r); // something between hides it; an even lower layer cannot satisfy it either
    }
    if (keep.length > 0) this.pending.set(path, keep);
    else this.pending.delete(path);
    return names;
  }

  /**
   * A hard link at `path` (this layer) to `target`: `names` are the visible names it gives the
   * target's inode (its own path if visible, plus names waiting on it from upper layers).
   */
  private link(path: string, names: string[], target: string): void {
    const { tree } = this.ctx;
    // 1. the target was defined earlier in this layer
    let inode = this.layerInodes.get(target);
    const hidden = inode ? undefined : this.layerHidden.get(target);
    if (hidden) {
      if (names.length === 0) {
        this.layerHidden.set(path, hidden);
        return;
      }
      if (!hidden.inode) {
        // Only hard links need this hidden file: give it its first name now, its bytes later.
        hidden.inode = tree.addFile(names[0]!, hidden.attrs, hidden.header.size, { kind: 'deferred' });
        this.deferred.push({ node: hidden.inode, layer: this.layer, offset: hidden.header.offset, header: hidden.header });
        names = names.slice(1);
      }
      inode = hidden.inode;
    }
    if (inode) {
      const existing = names.length > 0 ? this.nameOf(target, inode) : '';
      for (const n of names) tree.link(n, existing);
      this.layerInodes.set(path, inode);
      return;
    }
    // 2. the target is in a lower layer: the names wait for it
    if (names.length === 0) return;
    const list = this.pending.get(target) ?? [];
    const same = list.find((r) => r.level === this.layer);
    if (same) same.names.push(...names);
    else list.push({ level: this.layer, names: [...names] });
    this.pending.set(target, list);
  }

  /** A current name in the tree for `inode` (its path, or a name a link gave it). */
  private nameOf(path: string, inode: Inode): string {
    if (this.ctx.tree.get(path) === inode) return path;
    for (const [p, n] of this.layerInodes) if (n === inode && this.ctx.tree.get(p) === inode) return p;
    return fail('OCI_LAYER_INVALID', 'link', 'internal: hard-link target has no visible name', path);
  }

  private whiteout(parts: string[], name: string): void {
    const dir = parts.slice(0, -1).join('/');
    if (name === OPAQUE) {
      this.decide(dir, 'opaque');
      return;
    }
    if (name.startsWith(WHITEOUT + WHITEOUT)) return; // other aufs metadata (.wh..wh.plnk, ...)
    const target = dir === '' ? name.slice(WHITEOUT.length) : `${dir}/${name.slice(WHITEOUT.length)}`;
    this.decide(target, 'whiteout');
  }

  // ------------------------------------------------------------------ deferred content

  /**
   * Writes the content of files that only hard links from upper layers need, reading each
   * layer again once, in offset order.
   */
  private async materialize(layers: Layer[]): Promise<void> {
    const live: Deferred[] = [];
    for (const d of this.deferred) {
      if (d.node.links === 0) continue; // replaced later in its layer
      if (d.header.bodySize === 0) d.node.content = null;
      else live.push(d);
    }
    const byLayer = new Map<number, Deferred[]>();
    for (const d of live) byLayer.set(d.layer, [...(byLayer.get(d.layer) ?? []), d]);
    const data = this.ctx.writer.data;
    for (const [layerIndex, items] of [...byLayer].sort((a, b) => b[0] - a[0])) {
      items.sort((a, b) => a.offset - b.offset);
      let pos = 0;
      let i = 0;
      let cur: Deferred | null = null;
      let left = 0;
      for await (const chunk of await layers[layerIndex]!.open()) {
        let off = 0;
        while (off < chunk.length) {
          if (!cur) {
            if (i >= items.length) break;
            const next = items[i]!;
            if (next.offset >= pos + chunk.length) break;
            const skip = next.offset - (pos + off);
            if (skip > 0) {
              off += skip;
              continue;
            }
            cur = next;
            i++;
            left = cur.header.bodySize;
            data.beginFile(cur.header.size, cur.header.sparse);
          }
          const n = Math.min(left, chunk.length - off);
          data.write(chunk.subarray(off, off + n));
          off += n;
          left -= n;
          if (left === 0) {
            cur.node.content = data.endFile();
            cur = null;
          }
        }
        pos += chunk.length;
        await data.drain();
        if (!cur && i >= items.length) break;
      }
      if (cur || i < items.length) fail('OCI_LAYER_INVALID', 'read layer again', 'it ended before a file it held', layerIndex);
    }
  }
}

/** Feeds one layer's parse into the merger, streaming the bodies it wants to the image. */
class LayerHandler implements TarHandler {
  private file: { plan: FilePlan; header: TarHeader; attrs: NodeAttrs } | null = null;

  constructor(
    private readonly m: LayerMerger,
    private readonly ctx: IngestContext,
  ) {}

  entry(h: TarHeader): void {
    const attrs = entryAttrs(h, this.ctx.owner);
    // whiteouts still apply; only real entries are left out
    if (this.ctx.exclude && !(FsTree.split(h.path).pop() ?? '').startsWith(WHITEOUT) && entryExcluded(h, this.ctx)) return;
    const plan = this.m.entry(h, attrs);
    if (plan) {
      this.ctx.writer.data.beginFile(h.size, h.sparse);
      this.file = { plan, header: h, attrs };
    }
  }

  data(chunk: Buffer): void {
    if (this.file) this.ctx.writer.data.write(chunk);
  }

  entryEnd(): void {
    if (!this.file) return;
    const { plan, header, attrs } = this.file;
    this.file = null;
    this.m.fileDone(plan, header, attrs, this.ctx.writer.data.endFile());
  }

  abort(): void {
    if (this.file) this.ctx.writer.data.abortFile();
    this.file = null;
  }
}
