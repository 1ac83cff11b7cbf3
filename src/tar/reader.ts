/**
 * Pull-style adapter over TarParser: `for await (const e of readTar(source)) { for await (const
 * c of e.body) ... }`. Each source chunk is pushed through the parser as a whole; the events it
 * produces wait in a queue until the consumer asks for them, so memory stays at about one input
 * chunk. Body chunks are views of the source's chunks (no copy), which is only safe because the
 * source hands out fresh buffers (fs and zlib streams do, and so does decompress.ts): a source
 * that reuses its buffers must copy first.
 *
 * A body not read (or not read to the end) before asking for the next entry is skipped. After
 * the end-of-archive marker the rest of the source is read and ignored (so decompressors check
 * their trailing checksums). Leaving the loop early closes the source (its iterator's return()).
 */
import { TarParser } from './parser.js';
import type { TarHandler, TarHeader, TarParserOptions } from './types.js';

export type TarEntry = TarHeader & { body: AsyncIterable<Buffer> };

const END = Symbol('entryEnd');
type Event = TarHeader | Buffer | typeof END;

export async function* readTar(source: AsyncIterable<Uint8Array>, options?: TarParserOptions): AsyncGenerator<TarEntry, void, undefined> {
  const pump = new Pump(source, options);
  try {
    for (;;) {
      const header = await pump.nextEntry();
      if (header === undefined) return;
      const entry = header as TarEntry;
      entry.body = pump.body(pump.serial);
      yield entry;
      await pump.skipBody();
    }
  } finally {
    await pump.close();
  }
}

class Pump implements TarHandler {
  private events: Event[] = [];
  private head = 0;
  private readonly parser: TarParser;
  private readonly it: AsyncIterator<Uint8Array>;
  private exhausted = false;
  /** The source reported its end (so there is nothing to close). */
  private sourceDone = false;
  /** Number of the entry whose body is current; older body iterators see nothing. */
  serial = 0;
  private inBody = false;

  constructor(source: AsyncIterable<Uint8Array>, options?: TarParserOptions) {
    this.parser = new TarParser(this, options);
    this.it = source[Symbol.asyncIterator]();
  }

  entry(header: TarHeader): void {
    this.events.push(header);
  }

  data(chunk: Buffer): void {
    this.events.push(chunk);
  }

  entryEnd(): void {
    this.events.push(END);
  }

  /** Pushes one more source chunk through the parser; false when there is no more input. */
  private async fill(): Promise<boolean> {
    if (this.exhausted) return false;
    if (this.parser.finished) {
      // End-of-archive marker seen. The bytes after it are ignored, but still read: gzip and
      // zstd verify their checksums only at the end of the stream, and a corrupt byte anywhere
      // must not pass unnoticed.
      this.exhausted = true;
      for (;;) {
        const r = await this.it.next();
        if (r.done === true) break;
      }
      this.sourceDone = true;
      return false;
    }
    const r = await this.it.next();
    if (r.done === true) {
      this.exhausted = this.sourceDone = true;
      this.parser.end();
      return false;
    }
    const v = r.value;
    this.parser.write(Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    return true;
  }

  private shift(): Event | undefined {
    if (this.head === this.events.length) {
      if (this.head > 0) {
        this.events = [];
        this.head = 0;
      }
      return undefined;
    }
    const ev = this.events[this.head]!;
    this.events[this.head++] = END; // drop the reference so consumed chunks can be collected
    return ev;
  }

  async nextEntry(): Promise<TarHeader | undefined> {
    for (;;) {
      const ev = this.shift();
      if (ev === undefined) {
        if (!(await this.fill())) return undefined;
        continue;
      }
      if (ev !== END && !Buffer.isBuffer(ev)) {
        this.serial++;
        this.inBody = true;
        return ev;
      }
    }
  }

  async *body(serial: number): AsyncGenerator<Buffer, void, undefined> {
    while (serial === this.serial && this.inBody) {
      const ev = this.shift();
      if (ev === undefined) {
        if (!(await this.fill())) return;
      } else if (ev === END) {
        this.inBody = false;
      } else if (Buffer.isBuffer(ev)) {
        yield ev;
      }
    }
  }

  /** Discards what is left of the current body. */
  async skipBody(): Promise<void> {
    while (this.inBody) {
      const ev = this.peek();
      if (ev === undefined) {
        if (!(await this.fill())) return;
      } else if (ev === END) {
        this.shift();
        this.inBody = false;
      } else if (Buffer.isBuffer(ev)) {
        this.shift();
      } else {
        return; // the next entry's header: leave it for nextEntry()
      }
    }
  }

  private peek(): Event | undefined {
    return this.head < this.events.length ? this.events[this.head] : undefined;
  }

  async close(): Promise<void> {
    if (!this.sourceDone) await this.it.return?.();
  }
}
