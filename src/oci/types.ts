/**
 * OCI image model shared by every image source (OCI layout, docker-archive, registry) and the
 * layer merger. Sources resolve a reference to a manifest, a config and layer blobs; the merger
 * reads the layers top-down into the tree.
 */

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** A content descriptor (OCI image-spec descriptor.md). */
export interface Descriptor {
  mediaType: string;
  digest: string; // "sha256:<64 hex>"
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** The parts of an image config (config.md) an image keeps at /etc/rootforge/image.json. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, unknown>;
    Volumes?: Record<string, unknown>;
    StopSignal?: string;
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: unknown[];
}

/** A layer ready to be read: its descriptor and a way to stream its uncompressed tar. */
export interface Layer {
  descriptor: Descriptor;
  /**
   * Opens the layer's tar (decompressed, digest-verified as it streams). A chunk of a compressed
   * layer is a view of the decompressor's reused buffer, valid only until the next chunk is asked
   * for: copy what you keep.
   */
  open(): Promise<AsyncIterable<Buffer>>;
}

/** A resolved image: what the merger and the image cache need. */
export interface ResolvedImage {
  /** Where it came from, for messages ("oci:dir:tag", "docker://host/repo:tag"). */
  source: string;
  /** Digest of the selected image manifest (the image cache key). */
  manifestDigest: string;
  manifest: ImageManifest;
  config: ImageConfig;
  /** Bottom layer first, as in the manifest. */
  layers: Layer[];
  /** Sources that download in the background: time layer open() calls spent waiting, ms. */
  readonly waitedMs?: number;
  /** Releases what the source holds open (downloads in flight, connections). Call when done. */
  close?(): Promise<void>;
  /** After close(): the error of a failed layer download, which explains a failure better. */
  downloadFailure?(): unknown;
}

/** Limits on what an untrusted image may make rootforge do (see README, "Untrusted images"). */
export interface ImageLimits {
  /** Most layers an image may have. Default 1000 (DEFAULT_MAX_LAYERS). */
  maxLayers?: number;
}
