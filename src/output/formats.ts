/**
 * `build --format`: the rootfs of a finished ext4 image also written as
 *
 *   tar:FILE                    a plain tar of the tree (what `docker import` / `convert tar:` take)
 *   oci:DIR[:TAG]               an OCI image layout with one uncompressed layer (TAG default "latest";
 *                               other tags already in DIR are kept, this one replaced)
 *   docker-archive:FILE[:NAME[:TAG]]
 *                               `docker save` form (manifest.json, <config>.json, <layer>/layer.tar)
 *                               that `docker load` / `podman load` read; RepoTags NAME:TAG when given
 *
 * The layer is the image's tree read back from the ext4 (rootfs-tar.ts), so both outputs hold
 * the same tree. Deterministic: layer bytes depend only on the image, the config's `created` is
 * SOURCE_DATE_EPOCH's time, JSON keys are in a fixed order. Layers are uncompressed: fastest, and
 * every loader accepts them. Each file is written beside its destination and renamed in.
 */
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, isRootforgeError } from '../errors.js';
import { Ext4Image } from '../ext4/reader.js';
import { sha256Digest } from '../oci/digest.js';
import { IMAGE_JSON_PATH, type ImageJson } from '../oci/image-json.js';
import { writeAtomically } from '../util/atomic.js';
import { writeRootfsTar } from './rootfs-tar.js';
import { HashingSink, TarWriter } from './tar-writer.js';

export type OutputFormat = { kind: 'tar'; path: string } | { kind: 'oci'; path: string; tag: string } | { kind: 'docker-archive'; path: string; repoTag?: string };

export function parseFormat(s: string): OutputFormat {
  const what = 'use --format';
  const i = s.indexOf(':');
  const kind = i < 0 ? s : s.slice(0, i);
  const rest = i < 0 ? '' : s.slice(i + 1);
  if (rest === '') fail('OPTION_INVALID', what, 'expected oci:DIR[:TAG], docker-archive:FILE[:NAME[:TAG]] or tar:FILE', s);
  if (kind === 'tar') return { kind, path: rest };
  // As with skopeo, the path ends at the first colon.
  const j = rest.indexOf(':');
  const path = j < 0 ? rest : rest.slice(0, j);
  const ref = j < 0 ? '' : rest.slice(j + 1);
  if (kind === 'oci') {
    const tag = ref === '' ? 'latest' : ref;
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) fail('OPTION_INVALID', what, 'bad tag', tag);
    return { kind, path, tag };
  }
  if (kind === 'docker-archive') {
    if (ref === '') return { kind, path };
    const repoTag = ref.lastIndexOf(':') > ref.lastIndexOf('/') ? ref : `${ref}:latest`;
    if (!/^[a-z0-9][a-z0-9._/:-]*:[\w][\w.-]{0,127}$/.test(repoTag)) fail('OPTION_INVALID', what, 'bad image name', ref);
    return { kind, path, repoTag };
  }
  return fail('OPTION_INVALID', what, 'unknown format (oci, docker-archive, tar)', kind);
}

export interface FormatResult {
  format: string;
  path: string;
  /** sha256 of the uncompressed layer tar (the config's diff_id and the layer digest). */
  layerDigest: string;
  layerBytes: number;
  /** oci / docker-archive: the manifest's digest; config digest. */
  manifestDigest?: string;
  configDigest?: string;
  entries: number;
}

export interface FormatOptions {
  /** OCI architecture name (amd64, arm64, …). */
  architecture: string;
  /** Seconds since the epoch for the config's created time. Default 0. */
  timestamp?: number;
  onWarning?: (message: string) => void;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export async function writeFormat(image: string, format: OutputFormat, options: FormatOptions): Promise<FormatResult> {
  const name = format.kind === 'tar' ? `tar:${format.path}` : `${format.kind}:${format.path}`;
  if (format.kind === 'tar') {
    const r = await writeAtomically(format.path, async (fh) => layerInto(fh, image, options));
    return { format: name, path: format.path, layerDigest: r.digest, layerBytes: r.bytes, entries: r.entries };
  }
  const config = await imageConfig(image, options);
  if (format.kind === 'oci') {
    const blobs = join(format.path, 'blobs', 'sha256');
    await mkdirOrFail(blobs);
    // The layer goes to a temporary name in blobs/ and is renamed to its digest.
    const tmp = join(blobs, `.layer-${process.pid}.tmp`);
    const layer = await writeAtomically(tmp, async (fh) => layerInto(fh, image, options));
    await renameOrFail(tmp, join(blobs, layer.digest.slice(7)));
    const cfg = configBytes(config, layer.digest);
    const cfgDigest = sha256Digest(cfg);
    await putFile(join(blobs, cfgDigest.slice(7)), cfg);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: cfgDigest, size: cfg.length },
        layers: [{ mediaType: OCI_LAYER, digest: layer.digest, size: layer.bytes }],
      }),
    );
    const manifestDigest = sha256Digest(manifest);
    await putFile(join(blobs, manifestDigest.slice(7)), manifest);
    await putFile(join(format.path, 'oci-layout'), Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    const index = await readIndex(join(format.path, 'index.json'));
    index.manifests = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] !== format.tag);
    index.manifests.push({ mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': format.tag } });
    await putFile(join(format.path, 'index.json'), Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: index.manifests })));
    return { format: `${name}:${format.tag}`, path: format.path, layerDigest: layer.digest, layerBytes: layer.bytes, manifestDigest, configDigest: cfgDigest, entries: layer.entries };
  }
  // docker-archive: the layer is written to a temporary file first (the outer tar needs its size).
  const tmp = `${format.path}.layer-${process.pid}.tmp`;
  try {
    const layer = await writeAtomically(tmp, async (fh) => layerInto(fh, image, options));
    const cfg = configBytes(config, layer.digest);
    const cfgDigest = sha256Digest(cfg);
    const layerDir = layer.digest.slice(7);
    const manifest = Buffer.from(JSON.stringify([{ Config: `${cfgDigest.slice(7)}.json`, RepoTags: format.repoTag !== undefined ? [format.repoTag] : null, Layers: [`${layerDir}/layer.tar`] }]));
    await writeAtomically(format.path, async (fh) => {
      const sink = new HashingSink(fh);
      const tar = new TarWriter(sink);
      const t = { sec: options.timestamp ?? 0, nsec: 0 };
      const file = async (path: string, data: Buffer) => {
        await tar.header({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: t });
        await tar.data(data);
        await tar.pad(data.length);
      };
      await tar.header({ path: layerDir, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: t });
      await tar.header({ path: `${layerDir}/layer.tar`, type: 'file', mode: 0o644, uid: 0, gid: 0, size: layer.bytes, mtime: t });
      const lf = await open(tmp, 'r');
      try {
        const buf = Buffer.alloc(1 << 20);
        for (let pos = 0; pos < layer.bytes; ) {
          const { bytesRead } = await lf.read(buf, 0, Math.min(buf.length, layer.bytes - pos), pos);
          if (bytesRead === 0) fail('OUTPUT_FAILED', `write ${format.path}`, 'layer file shrank', tmp);
          await tar.data(Buffer.from(buf.subarray(0, bytesRead)));
          pos += bytesRead;
        }
      } finally {
        await lf.close();
      }
      await tar.pad(layer.bytes);
      await file(`${cfgDigest.slice(7)}.json`, cfg);
      await file('manifest.json', manifest);
      await tar.finish();
      await sink.flush();
    });
    return { format: name, path: format.path, layerDigest: layer.digest, layerBytes: layer.bytes, manifestDigest: sha256Digest(manifest), configDigest: cfgDigest, entries: layer.entries };
  } finally {
    await unlink(tmp).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}

async function layerInto(fh: import('node:fs/promises').FileHandle, image: string, options: FormatOptions): Promise<{ digest: string; bytes: number; entries: number }> {
  const sink = new HashingSink(fh);
  const stats = await writeRootfsTar(image, sink, options.onWarning);
  await sink.flush();
  return { digest: sink.digest(), bytes: sink.bytes, entries: stats.entries };
}

interface Config {
  architecture: string;
  os: string;
  created: string;
  config: Record<string, unknown>;
}

/** The image config: what /etc/rootforge/image.json kept of a base image's config, else defaults. */
async function imageConfig(image: string, options: FormatOptions): Promise<Config> {
  const img = await Ext4Image.open(image);
  let ij: ImageJson | undefined;
  let hasSh = false;
  try {
    try {
      const st = await img.resolve(IMAGE_JSON_PATH);
      if (st.kind === 'file') ij = JSON.parse((await img.readData(st)).toString('utf8')) as ImageJson;
    } catch (e) {
      if (!isRootforgeError(e, 'EXT4_NOT_FOUND')) throw e;
    }
    try {
      hasSh = (await img.resolve('bin/sh')).kind === 'file';
    } catch (e) {
      if (!isRootforgeError(e, 'EXT4_NOT_FOUND')) throw e;
    }
  } finally {
    await img.close();
  }
  const c: Record<string, unknown> = {};
  if (ij?.User) c['User'] = ij.User;
  c['Env'] = ij?.Env?.length ? ij.Env : ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
  if (ij?.Entrypoint) c['Entrypoint'] = ij.Entrypoint;
  if (ij?.Cmd) c['Cmd'] = ij.Cmd;
  else if (!ij?.Entrypoint && hasSh) c['Cmd'] = ['/bin/sh'];
  if (ij?.WorkingDir) c['WorkingDir'] = ij.WorkingDir;
  if (ij?.Labels && Object.keys(ij.Labels).length > 0) c['Labels'] = ij.Labels;
  if (ij?.StopSignal) c['StopSignal'] = ij.StopSignal;
  const created = new Date((options.timestamp ?? 0) * 1000).toISOString().replace(/\.000Z$/, 'Z');
  return { architecture: options.architecture, os: 'linux', created, config: c };
}

function configBytes(c: Config, layerDigest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      created: c.created,
      architecture: c.architecture,
      os: c.os,
      config: c.config,
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
      history: [{ created: c.created, created_by: 'rootforge build' }],
    }),
  );
}

interface IndexDoc {
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
}

async function readIndex(path: string): Promise<IndexDoc> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { manifests: [] };
    return fail('OUTPUT_FAILED', 'read OCI layout index', (e as NodeJS.ErrnoException).code ?? String(e), path, e);
  }
  try {
    const doc = JSON.parse(text) as Partial<IndexDoc>;
    if (!Array.isArray(doc.manifests)) throw new Error('no manifests array');
    return { manifests: doc.manifests };
  } catch (e) {
    return fail('OCI_BAD_LAYOUT', 'add to OCI layout', `index.json is not an image index: ${(e as Error).message}`, path, e);
  }
}

async function putFile(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, data, { mode: 0o644 });
    await rename(tmp, path);
  } catch (e) {
    return fail('OUTPUT_FAILED', `write ${path}`, (e as NodeJS.ErrnoException).code ?? String(e), path, e);
  }
}

async function mkdirOrFail(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    fail('OUTPUT_FAILED', `create ${dir}`, (e as NodeJS.ErrnoException).code ?? String(e), dir, e);
  }
}

async function renameOrFail(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    fail('OUTPUT_FAILED', `write ${to}`, (e as NodeJS.ErrnoException).code ?? String(e), from, e);
  }
}
