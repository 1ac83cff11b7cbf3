/** What a source needs to fill an image: the tree, the writer's data sink, and reporting hooks. */
import type { ContentSink } from '../tree/sink.js';
import type { FsTree } from '../tree/tree.js';
import type { Timestamp } from '../tree/types.js';

export interface Progress {
  /** Input bytes consumed so far (compressed bytes for a compressed archive). */
  done: number;
  /** Total input bytes when known. */
  total: number | undefined;
  /** What the source is doing, when it says (e.g. mmdebstrap's "downloading packages with apt"). */
  phase?: string;
}

export interface Warning {
  code: string;
  message: string;
}

export interface IngestContext {
  tree: FsTree;
  writer: ContentSink;
  /** Map every owner to this uid:gid (e.g. 0:0 when building from files you own). */
  owner?: { uid: number; gid: number } | undefined;
  defaultTime: Timestamp;
  /** Paths (normalized, no leading slash) to leave out: their bytes are never written. */
  exclude?: ((path: string) => boolean) | undefined;
  onProgress?: ((p: Progress) => void) | undefined;
  onWarning?: ((w: Warning) => void) | undefined;
}

export type SourceSpec =
  | { kind: 'tar'; path: string }
  | { kind: 'dir'; path: string }
  /** An OCI image layout directory; ref: a tag or a digest. */
  | { kind: 'oci'; path: string; ref?: string | undefined }
  /** `docker save` output; ref: a tag, @N, or (OCI form) a digest. */
  | { kind: 'docker-archive'; path: string; ref?: string | undefined }
  /** A registry image: what follows docker:// (HOST[:PORT]/REPO[:TAG|@DIGEST], or a short name). */
  | { kind: 'docker'; ref: string };
