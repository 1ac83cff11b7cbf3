/**
 * /etc/rootforge/image.json: what the guest agent and init need from the image config (Env,
 * WorkingDir, User, Entrypoint, Cmd, Labels, ...) and where the image came from. Written with a
 * fixed key order so the image stays byte-reproducible.
 */
import type { FsTree } from '../tree/tree.js';
import type { Timestamp } from '../tree/types.js';
import type { ResolvedImage } from './types.js';

export const IMAGE_JSON_PATH = 'etc/rootforge/image.json';

export interface ImageJson {
  source: string;
  manifestDigest: string;
  configDigest: string;
  architecture: string | null;
  os: string | null;
  User: string | null;
  Env: string[];
  WorkingDir: string | null;
  Entrypoint: string[] | null;
  Cmd: string[] | null;
  Labels: Record<string, string>;
  ExposedPorts: string[];
  StopSignal: string | null;
}

export function imageJson(img: ResolvedImage): ImageJson {
  const c = img.config.config ?? {};
  const labels = c.Labels ?? {};
  return {
    source: img.source,
    manifestDigest: img.manifestDigest,
    configDigest: img.manifest.config.digest,
    architecture: img.config.architecture ?? null,
    os: img.config.os ?? null,
    User: c.User || null,
    Env: c.Env ?? [],
    WorkingDir: c.WorkingDir || null,
    Entrypoint: c.Entrypoint ?? null,
    Cmd: c.Cmd ?? null,
    Labels: Object.fromEntries(Object.keys(labels).sort().map((k) => [k, labels[k]!])),
    ExposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
    StopSignal: c.StopSignal || null,
  };
}

/** Adds the file (root-owned 0644) to the tree, replacing any the image carried. */
export function addImageJson(tree: FsTree, img: ResolvedImage, time: Timestamp): void {
  const data = Buffer.from(JSON.stringify(imageJson(img), null, 2) + '\n');
  tree.addFile(IMAGE_JSON_PATH, { mode: 0o644, uid: 0, gid: 0, mtime: time }, data.length, { kind: 'bytes', data });
}
