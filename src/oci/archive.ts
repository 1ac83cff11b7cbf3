/**
 * docker-archive:PATH[:REF] — `docker save` output, read in place (nothing is extracted):
 * the outer tar is indexed by seeking from header to header, and its members (manifests,
 * configs, layer tars or blobs) are read as byte ranges of the archive.
 *
 * Two forms exist. The legacy one has `manifest.json` ([{Config, RepoTags, Layers}]) with
 * layers as `<id>/layer.tar`; Docker ≥ 25 writes an OCI layout (`oci-layout`, `index.json`,
 * `blobs/sha256/…`) and a manifest.json pointing into it. The OCI layout is used when present.
 * REF: a tag as in RepoTags ("alpine:3.20", "docker.io/library/alpine:3.20"), "@N" for the N-th
 * image, or (OCI form) a digest.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { fail } from '../errors.js';
import { checksumMatches, decodeHeader } from '../tar/header.js';
import { openArchiveStream, readRing } from '../tar/decompress.js';
import { PaxReader, type PaxAttrs, type Warn } from '../tar/pax.js';
import { sha256Digest, verifyDigest } from './digest.js';
import { checkLayerMediaType } from './layer.js';
import { checkLayerCount, parseConfig, parseIndex, parseJson } from './manifest.js';
import { checkPlatform, findInIndex, resolveDescriptor, syntheticDigest, type BlobAccess } from './resolve.js';
import { MEDIA, type Descriptor, type ImageLimits, type ImageManifest, type Layer, type Platform, type ResolvedImage } from './types.js';

interface Member {
  offset: number;
  size: number;
}

export async function resolveDockerArchive(path: string, ref: string | undefined, platform: Platform, explicitPlatform = false, limits: ImageLimits = {}): Promise<ResolvedImage> {
  const source = `docker-archive:${path}${ref ? `:${ref}` : ''}`;
  const members = await indexTar(path, source);
  const access = archiveBlobs(path, members, source);
  if (members.has('oci-layout') && members.has('index.json')) {
    const index = parseIndex(await readMember(path, members, 'index.json', source), `${source} index.json`);
    // Docker's OCI form names images in index.json; "@N" picks by position
    const desc = ref?.startsWith('@') ? pickNth(index.manifests, ref, source) : findInIndex(index, ref, source);
    return resolveDescriptor(access, desc, platform, source, explicitPlatform, limits);
  }
  if (!members.has('manifest.json')) fail('OCI_BAD_LAYOUT', `open ${source}`, 'neither manifest.json nor an OCI layout inside: not a docker save archive', path);
  const img = await legacyImage(path, members, ref, source, limits);
  if (explicitPlatform) checkPlatform(img.config, platform, source, false);
  return img;
}

function pickNth<T>(list: T[], ref: string, source: string): T {
  const n = Number(ref.slice(1));
  if (!Number.isInteger(n) || n < 0 || n >= list.length) fail('OCI_NOT_FOUND', `choose an image in ${source}`, `no image ${ref} (it holds ${list.length})`, ref);
  return list[n]!;
}

interface LegacyEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function legacyImage(path: string, members: Map<string, Member>, ref: string | undefined, source: string, limits: ImageLimits): Promise<ResolvedImage> {
  const list = parseJson(await readMember(path, members, 'manifest.json', source), `${source} manifest.json`) as LegacyEntry[];
  if (!Array.isArray(list) || list.length === 0) fail('OCI_BAD_MANIFEST', `read ${source}`, 'manifest.json lists no image', path);
  let entry: LegacyEntry;
  if (ref === undefined || ref === '') {
    if (list.length > 1) fail('OCI_NOT_FOUND', `choose an image in ${source}`, `it holds ${list.length} images; name one (${list.flatMap((e) => e.RepoTags ?? []).join(', ')})`, path);
    entry = list[0]!;
  } else if (ref.startsWith('@')) {
    entry = pickNth(list, ref, source);
  } else {
    const norm = (t: string) => t.replace(/^docker\.io\//, '').replace(/^library\//, '');
    const hit = list.find((e) => (e.RepoTags ?? []).some((t) => t === ref || norm(t) === norm(ref) || norm(t) === norm(`${ref}:latest`)));
    if (!hit) fail('OCI_NOT_FOUND', `find ${ref} in ${source}`, `no such tag (it has: ${list.flatMap((e) => e.RepoTags ?? []).join(', ') || 'none'})`, ref);
    entry = hit;
  }
  if (typeof entry.Config !== 'string' || !Array.isArray(entry.Layers)) fail('OCI_BAD_MANIFEST', `read ${source}`, 'manifest.json entry needs Config and Layers', JSON.stringify(entry).slice(0, 200));
  checkLayerCount(entry.Layers.length, limits.maxLayers, `${source} manifest.json`);
  // The config's file name is its digest (<hex>.json, or blobs/sha256/<hex> in newer saves).
  const configMember = member(members, entry.Config, source);
  const configBytes = await readMember(path, members, entry.Config, source);
  const configDigest = sha256Digest(configBytes);
  const named = /([a-f0-9]{64})(\.json)?$/.exec(entry.Config)?.[1];
  if (named && `sha256:${named}` !== configDigest) fail('OCI_DIGEST_MISMATCH', `read ${source} config`, `content hashes to ${configDigest}`, entry.Config);
  const config = parseConfig(configBytes, `${source} config`);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== entry.Layers.length) fail('OCI_BAD_MANIFEST', `read ${source}`, `config lists ${diffIds.length} layers, manifest.json ${entry.Layers.length}`, path);
  // Legacy layers are the uncompressed diffs: their digests are the config's diff_ids.
  const layers: Layer[] = entry.Layers.map((name, i) => {
    const m = member(members, name, source);
    const descriptor: Descriptor = { mediaType: MEDIA.ociLayer, digest: diffIds[i]!, size: m.size };
    return rangeLayer(path, m, descriptor);
  });
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configMember.size },
    layers: layers.map((l) => l.descriptor),
  };
  return { source, manifestDigest: syntheticDigest(manifest), manifest, config, layers };
}

function member(members: Map<string, Member>, name: string, source: string): Member {
  const m = members.get(name.replace(/^\.\//, ''));
  if (!m) return fail('OCI_BAD_LAYOUT', `read ${source}`, 'member missing from the archive', name);
  return m;
}

async function readMember(path: string, members: Map<string, Member>, name: string, source: string): Promise<Buffer> {
  const m = member(members, name, source);
  if (m.size > 64 << 20) fail('OCI_BAD_MANIFEST', `read ${source}`, 'metadata member too large', name);
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(m.size);
    const { bytesRead } = await fh.read(b, 0, m.size, m.offset);
    if (bytesRead !== m.size) fail('OCI_BAD_LAYOUT', `read ${source}`, 'archive truncated', name);
    return b;
  } finally {
    await fh.close();
  }
}

function rangeLayer(path: string, m: Member, descriptor: Descriptor): Layer {
  checkLayerMediaType(descriptor);
  return {
    descriptor,
    async open() {
      let raw: AsyncIterable<Buffer> = emptyStream();
      if (m.size > 0) {
        // a few reused buffers, not a fresh one per read (see readRing); closed when done
        const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => fail('OCI_BAD_LAYOUT', `read layer ${descriptor.digest}`, e.code ?? String(e), path, e));
        raw = readRing(fh, m.size, path, undefined, m.offset);
      }
      const archive = await openArchiveStream(verifyDigest(raw, descriptor.digest, descriptor.size, `read layer ${descriptor.digest}`));
      return archive.stream;
    },
  };
}

async function* emptyStream(): AsyncGenerator<Buffer> {}

function archiveBlobs(path: string, members: Map<string, Member>, source: string): BlobAccess {
  const name = (digest: string) => `blobs/${digest.replace(':', '/')}`;
  return {
    async read(d, what) {
      const bytes = await readMember(path, members, name(d.digest), source);
      const got = sha256Digest(bytes);
      if (got !== d.digest) fail('OCI_DIGEST_MISMATCH', `read ${what}`, `content hashes to ${got}`, d.digest);
      return bytes;
    },
    layer(d) {
      return rangeLayer(path, member(members, name(d.digest), source), d);
    },
  };
}

/**
 * Maps member names to their data ranges by hopping from header to header (only headers are
 * read). Handles PAX 'path'/'size' records and GNU long names, which docker save may use.
 */
export async function indexTar(path: string, source: string): Promise<Map<string, Member>> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'SOURCE_NOT_FOUND' : 'SOURCE_UNREADABLE', `open ${source}`, code ?? String(e), path, e);
  }
  try {
    const size = (await fh.stat()).size;
    const out = new Map<string, Member>();
    const block = Buffer.alloc(512);
    let pos = 0;
    let longName: string | undefined;
    let pax: PaxAttrs | undefined;
    const readAt = async (buf: Buffer, at: number, n: number) => {
      const { bytesRead } = await fh.read(buf, 0, n, at);
      if (bytesRead !== n) fail('TAR_TRUNCATED', `read ${source}`, 'archive ends inside an entry', at);
    };
    while (pos + 512 <= size) {
      await readAt(block, pos, 512);
      if (block.every((b) => b === 0)) break;
      if (pos === 0 && !checksumMatches(block, 0)) {
        const magic = block.subarray(0, 4).toString('hex');
        if (magic.startsWith('1f8b') || magic === '28b52ffd') fail('OCI_BAD_LAYOUT', `open ${source}`, 'compressed docker-archive: decompress it first (gunzip / zstd -d)', path);
      }
      if (!checksumMatches(block, 0)) fail('TAR_BAD_CHECKSUM', `read ${source}`, 'header checksum mismatch', `offset ${pos}`);
      const h = decodeHeader(block, 0, pos);
      const dataAt = pos + 512;
      let dataSize = h.size;
      const type = String.fromCharCode(h.typeflag);
      if (type === 'x' || type === 'g' || type === 'L') {
        if (h.size > 1 << 20) fail('TAR_BAD_PAX', `read ${source}`, 'extended header too large', h.size);
        const body = Buffer.alloc(h.size);
        await readAt(body, dataAt, h.size);
        if (type === 'L') longName = body.toString('latin1').replace(/\0+$/, '');
        else if (type === 'x') pax = readPax(body, pos, source);
      } else {
        // PAX values are byte strings; manifest.json names the members in UTF-8.
        const paxPath = pax?.path !== undefined ? Buffer.from(pax.path, 'latin1').toString('utf8') : undefined;
        const name = (paxPath ?? longName ?? h.name).replace(/^\.\//, '').replace(/\/$/, '');
        if (pax?.size !== undefined) dataSize = pax.size;
        if (type === '0' || type === '\0' || type === '7') out.set(name, { offset: dataAt, size: dataSize });
        longName = undefined;
        pax = undefined;
      }
      pos = dataAt + Math.ceil(dataSize / 512) * 512;
    }
    return out;
  } finally {
    await fh.close();
  }
}

/**
 * A PAX header body, read by the same PaxReader as layer tars: a size that is not a plain
 * decimal (negative, "abc", past 2^53) is TAR_BAD_PAX, never a position to seek to. A malformed
 * header is an error here too (the layer parser warns and goes on; an index must not guess).
 */
function readPax(body: Buffer, at: number, source: string): PaxAttrs {
  const attrs: PaxAttrs = {};
  const warn: Warn = (code, message) => {
    if (code === 'TAR_PAX_MALFORMED') fail('TAR_BAD_PAX', `read ${source}`, message, `offset ${at}`);
  };
  const reader = new PaxReader(attrs, body.length, at, warn);
  reader.write(body, 0, body.length);
  reader.finish();
  return attrs;
}
