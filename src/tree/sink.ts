/**
 * Where file content goes while a tree is filled: the small interface sources, provisioning and
 * the OCI layer merger need, so they depend on it and not on the ext4 writer that implements it.
 */
import type { SparseSegment } from '../tar/types.js';
import type { Content } from './types.js';

/** File bodies streamed in order, each placed as it arrives. */
export interface BodySink {
  /** Starts a file of `size` bytes (for a sparse file, `segments` lists its data). */
  beginFile(size: number, segments?: SparseSegment[]): void;
  /** Body bytes of the current file, in order. Synchronous; await `drain()` between input chunks. */
  write(chunk: Buffer): void;
  /** Ends the current file; returns where its content lives (null for an empty one). */
  endFile(): Content | null;
  /** Abandons the current file. */
  abortFile(): void;
  /** Bounds the writes in flight. */
  drain(): Promise<void>;
  /** Resolves once no write reads from `buffer` any more (without one: once nothing is in flight). */
  settle(buffer?: ArrayBufferLike): Promise<void>;
  /** Whether `write` may keep views of the caller's buffers until they are written. */
  zeroCopy: boolean;
}

export interface ContentSink {
  readonly data: BodySink;
  /** Content dropped from the tree: its space becomes reusable. */
  release(content: Content): void;
  /** A file's bytes, read back (at most `maxBytes`, default 1 MiB). */
  readContent(content: Content | null, size: number, maxBytes?: number): Promise<Buffer>;
  /** Streams a host file's bytes in. */
  placeHostFile(path: string | Buffer, size: number): Promise<Content | null>;
}
