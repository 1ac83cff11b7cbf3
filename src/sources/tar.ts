/**
 * tar:PATH — a tar archive (plain, gzip or zstd; detected by magic) streamed into the tree and
 * the image in one pass: each body goes from the archive straight to its blocks. `tar:-` reads
 * standard input.
 */
import { fail, printable } from '../errors.js';
import { openArchive, openArchiveStream } from '../tar/decompress.js';
import { TarParser } from '../tar/parser.js';
import type { TarHandler, TarHeader } from '../tar/types.js';
import type { NodeAttrs } from '../tree/tree.js';
import { entryAttrs, entryExcluded } from './entry.js';
import type { IngestContext } from './types.js';

export async function ingestTar(path: string, ctx: IngestContext): Promise<void> {
  if (path === '-') {
    const archive = await openArchiveStream(process.stdin, { reuseOutput: true }); // bodies are copied: zeroCopy is off
    await ingestTarStream(archive.stream, ctx, () => ({ done: archive.bytesRead(), total: undefined }));
    return;
  }
  // Plain tars are read into a ring of reused buffers; bodies are written straight from them,
  // so a buffer is reused only once the writes reading it are done.
  // A compressed archive's chunks are views of the decompressor's reused buffers (reuseOutput),
  // valid until the next chunk: the data sink copies them (zeroCopy off) before asking for more.
  const archive = await openArchive(path, { recycle: (buf) => ctx.writer.data.settle(buf), reuseOutput: true });
  // the recycled read buffers make zero-copy safe for a plain tar
  ctx.writer.data.zeroCopy = archive.compression === 'none';
  try {
    await ingestTarStream(archive.stream, ctx, () => ({ done: archive.bytesRead(), total: archive.compressedSize }));
  } finally {
    ctx.writer.data.zeroCopy = false;
  }
}

/** Feeds an already-decompressed tar stream into the tree and image. */
export async function ingestTarStream(
  stream: AsyncIterable<Buffer>,
  ctx: IngestContext,
  progress?: () => { done: number; total: number | undefined },
): Promise<void> {
  const handler = new TarToTree(ctx);
  const parser = new TarParser(handler, {
    onWarning: (w) => ctx.onWarning?.({ code: w.code, message: w.message }),
  });
  try {
    for await (const chunk of stream) {
      parser.write(chunk);
      await ctx.writer.data.drain();
      if (progress) ctx.onProgress?.(progress());
    }
    parser.end();
  } catch (e) {
    handler.abort();
    throw e;
  }
}

class TarToTree implements TarHandler {
  private file: { header: TarHeader; attrs: NodeAttrs } | null = null;
  private skipBody = false;

  constructor(private readonly ctx: IngestContext) {}

  entry(h: TarHeader): void {
    const { tree, writer } = this.ctx;
    const attrs = entryAttrs(h, this.ctx.owner);
    this.skipBody = false;
    if (entryExcluded(h, this.ctx)) {
      this.skipBody = true;
      return;
    }
    switch (h.type) {
      case 'file':
        writer.data.beginFile(h.size, h.sparse);
        this.file = { header: h, attrs };
        return;
      case 'dir':
        tree.addDir(h.path, attrs);
        break;
      case 'symlink':
        tree.addSymlink(h.path, attrs, h.linkname);
        break;
      case 'hardlink':
        if (h.linkname === '') fail('TAR_HARDLINK_TARGET', `link ${printable(h.path)}`, 'empty hard-link target', h.path);
        tree.link(h.path, h.linkname);
        break;
      case 'chardev':
      case 'blockdev':
        tree.addSpecial(h.path, h.type, attrs, h.devmajor, h.devminor);
        break;
      case 'fifo':
        tree.addSpecial(h.path, 'fifo', attrs);
        break;
    }
    if (h.bodySize > 0) {
      // A body on a non-file entry (e.g. a hard link carrying data): tar readers differ; we keep
      // the link and ignore the bytes, and say so.
      this.skipBody = true;
      this.ctx.onWarning?.({ code: 'TAR_BODY_IGNORED', message: `ignored ${h.bodySize} data bytes on ${h.type} entry ${printable(h.path)}` });
    }
  }

  data(chunk: Buffer): void {
    if (this.skipBody) return;
    this.ctx.writer.data.write(chunk);
  }

  entryEnd(): void {
    if (!this.file) return;
    const { header, attrs } = this.file;
    this.file = null;
    const content = this.ctx.writer.data.endFile();
    this.ctx.tree.addFile(header.path, attrs, header.size, content);
  }

  abort(): void {
    if (this.file) this.ctx.writer.data.abortFile();
    this.file = null;
  }
}
