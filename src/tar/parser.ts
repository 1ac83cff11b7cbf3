/**
 * Push parser for tar archives: feed bytes with write() in chunks of any size, get entries and
 * their bodies through a synchronous TarHandler. It is a state machine over 512-byte blocks (as
 * node-tar's parse.ts): header blocks are decoded in place when a chunk holds them whole, and only
 * copied (512 bytes) when they straddle chunks; bodies are passed on as views of the input chunk,
 * never copied or joined. Extension headers (PAX, GNU long names, Solaris ACLs, sparse maps) are
 * the only things buffered, each with a size cap.
 *
 *   Header ──x/g──▶ Meta (PAX records, streamed) ──▶ Header
 *     │ ──L/K/A─▶ Meta (collected, ≤ 1 MiB) ────────▶ Header
 *     │ ──'S' + isextended──▶ SparseExt (512-byte map blocks) ──┐
 *     │ ──GNU sparse 1.0──▶ SparseMap (map text at body start) ─┤
 *     │ ──entry──────────────────────────────────────────────────┴─▶ Body ──▶ Skip (padding) ──▶ Header
 *     └──zero block──▶ End (the rest of the input is ignored, as GNU tar and libarchive do)
 */
import { fail } from '../errors.js';
import { completeSparse, planEntry, typeflagName, type EntryPlan, type Extensions, type OldSparse, type PlanContext } from './entry.js';
import { BLOCK, T, checksumMatches, cString, decodeHeader, decodeSize, isZeroBlock, type RawHeader } from './header.js';
import { MAX_VALUE, PaxReader, addGlobal, mergePax, type PaxAttrs } from './pax.js';
import { SparseMapReader, readOldSparseExtension, readOldSparseHeader } from './sparse.js';
import type { TarHandler, TarParserOptions, TarWarningCode } from './types.js';

const enum S {
  Header,
  SparseExt,
  Body,
  Skip,
  Meta,
  SparseMap,
  End,
}

/** Receives the body of an extension header. */
interface MetaSink {
  write(buf: Buffer, start: number, end: number): void;
  finish(): void;
}

export class TarParser {
  private state = S.Header;
  /** Archive offset of the first byte of the chunk being consumed. */
  private base = 0;
  /** A header block that straddles chunks is assembled here. */
  private readonly block = Buffer.allocUnsafe(BLOCK);
  private blockFill = 0;
  /** Archive offset of the block being decoded. */
  private blockAt = 0;
  /** Body: bytes left to deliver. Skip: bytes left to skip. Meta/SparseMap: body bytes left. */
  private remain = 0;
  /** Skip: how many of the last `remain` bytes are padding (EOF there is tolerated). */
  private pad = 0;
  /** Body: bytes to skip after it (data a sparse map does not claim, then padding). */
  private after = 0;
  private afterPad = 0;
  private meta: MetaSink | undefined;
  private metaPad = 0;
  /** Extension headers waiting for their entry. */
  private ext: Extensions | undefined;
  private global: PaxAttrs | undefined;
  /** Valid header blocks seen (0 means we are still deciding whether this is tar at all). */
  private headers = 0;
  /** A hard link's stored size, owned by it only if the next block is not a header. */
  private linkProbe = 0;
  /** Entry waiting for its old-GNU sparse extension blocks or its 1.0 map. */
  private waiting: { raw: RawHeader; sparse: OldSparse; at: number } | undefined;
  private plan: EntryPlan | undefined;
  private planAt = 0;
  private mapReader: SparseMapReader | undefined;
  private mapPad = 0;
  private failed: unknown;
  private readonly warned = new Set<string>();
  private readonly ctx: PlanContext;

  constructor(
    private readonly handler: TarHandler,
    private readonly options: TarParserOptions = {},
  ) {
    this.ctx = { warn: this.warn, sawPax: false, resolveAclName: options.aclNameToId };
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.base;
  }

  /** True once the end-of-archive marker has been seen; later input is ignored. */
  get finished(): boolean {
    return this.state === S.End;
  }

  /**
   * Consumes a chunk. Handler callbacks run synchronously inside this call; the chunks passed to
   * `data` are views of `chunk`. Throws RootforgeError on a damaged archive; after that every
   * call throws the same error.
   */
  write(chunk: Buffer): void {
    if (this.failed !== undefined) throw this.failed;
    try {
      if (this.state !== S.End) this.consume(chunk);
      else if (this.options.checkTrailing) this.checkTrailing(chunk, 0);
    } catch (e) {
      this.failed = e;
      throw e;
    }
    this.base += chunk.length;
  }

  /** End of input. Throws TAR_TRUNCATED if it came inside a header or a body. */
  end(): void {
    if (this.failed !== undefined) throw this.failed;
    try {
      this.finishInput();
    } catch (e) {
      this.failed = e;
      throw e;
    }
  }

  private finishInput(): void {
    const at = this.base;
    switch (this.state) {
      case S.End:
        return;
      case S.Header:
        if (this.blockFill > 0) {
          if (this.headers === 0 && this.base < BLOCK) fail('TAR_NOT_TAR', 'read tar', 'input is shorter than one tar block', `${this.base} bytes`);
          fail('TAR_TRUNCATED', 'read tar', 'input ends inside a header block', `offset ${this.blockAt}`);
        }
        if (this.ext !== undefined) fail('TAR_TRUNCATED', 'read tar', 'input ends after an extended header, before its entry', `offset ${at}`);
        if (this.base === 0) fail('TAR_NOT_TAR', 'read tar', 'input is empty');
        this.warn('TAR_NO_END_MARKER', `Archive ends at offset ${at} without the end-of-archive blocks`);
        break;
      case S.Skip:
        if (this.remain > this.pad) fail('TAR_TRUNCATED', 'read tar', `input ends ${this.remain - this.pad} bytes before the end of an entry body`, `offset ${at}`);
        this.warn('TAR_NO_END_MARKER', `Archive ends at offset ${at} inside the padding of its last entry`);
        break;
      case S.Body:
        fail('TAR_TRUNCATED', 'read tar', `input ends ${this.remain} bytes before the end of the body of ${this.plan?.header.path ?? 'an entry'}`, `offset ${at}`);
      case S.SparseExt:
        fail('TAR_TRUNCATED', 'read tar', 'input ends inside a GNU sparse header', `offset ${at}`);
      case S.Meta:
      case S.SparseMap:
        fail('TAR_TRUNCATED', 'read tar', 'input ends inside an extended header', `offset ${at}`);
    }
    this.state = S.End;
  }

  private consume(chunk: Buffer): void {
    const n = chunk.length;
    let p = 0;
    while (p < n) {
      switch (this.state) {
        case S.Body: {
          const take = this.remain < n - p ? this.remain : n - p;
          this.remain -= take;
          this.handler.data(p === 0 && take === n ? chunk : chunk.subarray(p, p + take));
          p += take;
          if (this.remain === 0) {
            this.handler.entryEnd();
            this.skip(this.after, this.afterPad);
          }
          break;
        }
        case S.Skip: {
          const take = this.remain < n - p ? this.remain : n - p;
          this.remain -= take;
          p += take;
          if (this.remain === 0) this.state = S.Header;
          break;
        }
        case S.Header:
        case S.SparseExt: {
          if (this.blockFill === 0 && n - p >= BLOCK) {
            this.blockAt = this.base + p;
            p += BLOCK;
            this.onBlock(chunk, p - BLOCK);
          } else {
            if (this.blockFill === 0) this.blockAt = this.base + p;
            const take = Math.min(BLOCK - this.blockFill, n - p);
            chunk.copy(this.block, this.blockFill, p, p + take);
            this.blockFill += take;
            p += take;
            if (this.blockFill === BLOCK) {
              this.blockFill = 0;
              this.onBlock(this.block, 0);
            }
          }
          break;
        }
        case S.Meta: {
          const take = this.remain < n - p ? this.remain : n - p;
          this.meta!.write(chunk, p, p + take);
          this.remain -= take;
          p += take;
          if (this.remain === 0) {
            const meta = this.meta!;
            this.meta = undefined;
            meta.finish();
            this.skip(this.metaPad, this.metaPad);
          }
          break;
        }
        case S.SparseMap:
          p = this.readSparseMap(chunk, p);
          break;
        case S.End:
          if (this.options.checkTrailing) this.checkTrailing(chunk, p);
          return;
      }
    }
  }

  private checkTrailing(chunk: Buffer, p: number): void {
    for (let i = p; i < chunk.length; i++) {
      if (chunk[i] !== 0) {
        this.warn('TAR_TRAILING_DATA', `Non-zero data after the end-of-archive marker at offset ${this.base + i}`, 'trailing');
        return;
      }
    }
  }

  private skip(bytes: number, pad: number): void {
    if (bytes > 0) {
      this.state = S.Skip;
      this.remain = bytes;
      this.pad = pad;
    } else {
      this.state = S.Header;
    }
  }

  /** One complete 512-byte block at buf[off..], at archive offset this.blockAt. */
  private onBlock(buf: Buffer, off: number): void {
    const at = this.blockAt;
    if (this.state === S.SparseExt) {
      this.onSparseExtension(buf, off);
      return;
    }
    if (this.linkProbe > 0) {
      const owned = this.linkProbe;
      this.linkProbe = 0;
      if (!isZeroBlock(buf, off) && !checksumMatches(buf, off)) {
        this.skip(owned - BLOCK, 0); // not a header: the hard link did store a body, this was its start
        return;
      }
    }
    if (isZeroBlock(buf, off)) {
      if (this.ext !== undefined) fail('TAR_BAD_HEADER', 'read tar', 'extended header is not followed by an entry', `offset ${this.ext.at}`);
      this.state = S.End;
      return;
    }
    if (!checksumMatches(buf, off)) {
      if (this.headers === 0) fail('TAR_NOT_TAR', 'read tar', 'not a tar archive: the first block is not a valid tar header', `offset ${at}`);
      fail('TAR_BAD_CHECKSUM', 'read tar', 'header checksum mismatch', `header at offset ${at}`);
    }
    this.headers++;
    const flag = buf[off + 156]!;
    if (this.onExtensionHeader(flag, buf, off, at)) return;
    const raw = decodeHeader(buf, off, at);
    if (flag !== T.GNU_SPARSE) {
      this.begin(raw, undefined, at);
      return;
    }
    const sparse: OldSparse = { flat: [], realsize: 0 };
    const { extended, realsize } = readOldSparseHeader(buf, off, sparse.flat, at);
    sparse.realsize = realsize;
    if (extended) {
      this.waiting = { raw, sparse, at };
      this.state = S.SparseExt;
    } else {
      this.begin(raw, sparse, at);
    }
  }

  /** An old-GNU sparse extension block; the entry starts after the last one. */
  private onSparseExtension(buf: Buffer, off: number): void {
    const w = this.waiting!;
    if (readOldSparseExtension(buf, off, w.sparse.flat, this.blockAt)) return;
    this.waiting = undefined;
    this.state = S.Header;
    this.begin(w.raw, w.sparse, w.at);
  }

  /** Headers that describe the next entry or the archive rather than being one. */
  private onExtensionHeader(flag: number, buf: Buffer, off: number, at: number): boolean {
    switch (flag) {
      case T.PAX_LOCAL:
      case T.SUN_PAX: {
        const size = decodeSize(buf, off, at);
        this.ctx.sawPax = true;
        const ext = this.extensions(at);
        this.startMeta(new PaxReader((ext.pax ??= {}), size, at, this.warn), size);
        return true;
      }
      case T.PAX_GLOBAL: {
        const size = decodeSize(buf, off, at);
        this.ctx.sawPax = true;
        const attrs: PaxAttrs = {};
        const reader = new PaxReader(attrs, size, at, this.warn);
        const finish = (): void => {
          reader.finish();
          this.global = addGlobal(this.global, attrs, this.warn);
        };
        this.startMeta({ write: (b, s, e) => reader.write(b, s, e), finish }, size);
        return true;
      }
      case T.GNU_LONGNAME:
      case T.GNU_LONGLINK:
      case T.SOLARIS_ACL: {
        const size = decodeSize(buf, off, at);
        // Like a PAX value, a long name is buffered: refuse absurd sizes instead of allocating them.
        if (size > MAX_VALUE) fail('TAR_BAD_PAX', 'read tar', `${typeflagName(flag)} extension record larger than 1 MiB`, `${size} bytes at offset ${at}`);
        const ext = this.extensions(at);
        const body = Buffer.allocUnsafe(size);
        let fill = 0;
        const finish = (): void => {
          if (flag === T.GNU_LONGNAME) ext.longName = cString(body, 0, size);
          else if (flag === T.GNU_LONGLINK) ext.longLink = cString(body, 0, size);
          else ext.solarisAcl = body;
        };
        this.startMeta({ write: (b, s, e) => void (fill += b.copy(body, fill, s, e)), finish }, size);
        return true;
      }
      case T.GNU_VOLHDR:
      case T.GNU_MULTIVOL:
      case T.GNU_NAMES: {
        const size = decodeSize(buf, off, at);
        const what = flag === T.GNU_VOLHDR ? 'volume label' : flag === T.GNU_MULTIVOL ? 'multi-volume continuation' : 'GNU rename script';
        this.warn('TAR_SKIPPED_ENTRY', `Skipping ${what} (${typeflagName(flag)}) at offset ${at}`);
        this.ext = undefined;
        this.skip(size + padOf(size), padOf(size));
        return true;
      }
    }
    return false;
  }

  private extensions(at: number): Extensions {
    return (this.ext ??= { at });
  }

  private startMeta(sink: MetaSink, size: number): void {
    this.metaPad = padOf(size);
    if (size === 0) {
      sink.finish();
      this.skip(0, 0);
      return;
    }
    this.meta = sink;
    this.remain = size;
    this.state = S.Meta;
  }

  /** A real entry header (after any extension blocks): report it and set up its body. */
  private begin(raw: RawHeader, sparse: OldSparse | undefined, at: number): void {
    const ext = this.ext;
    this.ext = undefined;
    const plan = planEntry(raw, ext, mergePax(this.global, ext?.pax), sparse, at, this.ctx);
    plan.header.headerOffset = ext?.at ?? at;
    this.plan = plan;
    this.planAt = at;
    if (plan.mapInBody) {
      if (plan.stored === 0) fail('TAR_BAD_SPARSE', 'read tar', 'GNU sparse 1.0 entry has no map', `entry at offset ${at}`);
      this.mapReader = new SparseMapReader(at);
      this.mapPad = -1;
      this.remain = plan.stored;
      this.state = S.SparseMap;
      return;
    }
    this.startBody(plan, this.blockAt + BLOCK, 0);
  }

  /** GNU sparse 1.0: consume the map text and its padding, then start the data. */
  private readSparseMap(chunk: Buffer, p: number): number {
    const reader = this.mapReader!;
    const avail = Math.min(this.remain, chunk.length - p);
    if (!reader.done) {
      const used = reader.write(chunk, p, p + avail);
      p += used;
      this.remain -= used;
      if (reader.done) this.mapPad = Math.min(padOf(reader.consumed), this.remain);
    } else {
      const take = Math.min(this.mapPad, avail);
      p += take;
      this.remain -= take;
      this.mapPad -= take;
    }
    if (reader.done && this.mapPad === 0) {
      const plan = this.plan!;
      const mapBytes = plan.stored - this.remain;
      this.mapReader = undefined;
      completeSparse(plan, reader.flat, mapBytes, this.planAt);
      this.startBody(plan, this.base + p, mapBytes);
    } else if (!reader.done && this.remain === 0) {
      fail('TAR_BAD_SPARSE', 'read tar', 'GNU sparse map runs past the end of the body', `entry at offset ${this.planAt}`);
    }
    return p;
  }

  /** Reports the entry; its data starts at archive offset `bodyAt`, `used` stored bytes in. */
  private startBody(plan: EntryPlan, bodyAt: number, used: number): void {
    const h = plan.header;
    h.offset = bodyAt;
    const padding = padOf(plan.stored);
    const tail = plan.stored - used - h.bodySize;
    if (tail > 0 && h.type === 'file') {
      this.warn('TAR_SPARSE_EXCESS', `Skipping ${tail} stored bytes beyond the sparse map of ${h.path} (entry at offset ${this.planAt})`);
    }
    this.handler.entry(h);
    if (plan.linkBody === 'probe') {
      this.handler.entryEnd();
      this.linkProbe = plan.stored + padding;
      this.state = S.Header;
    } else if (h.bodySize > 0) {
      this.remain = h.bodySize;
      this.after = tail + padding;
      this.afterPad = padding;
      this.state = S.Body;
    } else {
      this.handler.entryEnd();
      this.skip(tail + padding, padding);
    }
  }

  private readonly warn = (code: TarWarningCode, message: string, onceKey?: string): void => {
    if (onceKey !== undefined) {
      const key = `${code}\0${onceKey}`;
      if (this.warned.has(key)) return;
      this.warned.add(key);
    }
    this.options.onWarning?.({ code, message });
  };
}

/** Zero bytes that pad `size` to a multiple of 512. */
function padOf(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}
