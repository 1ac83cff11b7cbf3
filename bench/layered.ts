/**
 * The registry benchmark's image: the devbox tar cut into four gzip layers of about equal bytes,
 * as an OCI image layout tagged "layered". Cuts fall only between entries and each layer is the
 * source's raw bytes for its entries (headers, PAX records and padding as they were) plus an
 * end-of-archive marker, so the four layers together hold exactly the tar's entries and the
 * merged image is the same tree as the tar.
 *
 *   devbox.tar   [e0 e1 … ek | … | … | … eN][end marker]
 *                 └ layer 1 ┘  2   3   4        each + two zero blocks ─gzip -6─▶ blobs/sha256/…
 *
 * Built once (gzip level 6 of 1.4 GB takes a minute) next to the devbox tar as
 * devbox-layered-oci/, in a temp dir renamed into place, so an interrupted build leaves no half
 * layout. Rebuilt when missing, or when the tar it was cut from changed (size or mtime, recorded
 * in a manifest annotation). Each layer is checked once, at build time: it must gunzip, hash to
 * its diff_id and re-parse to the number of entries cut into it; then `umoci stat` must read it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { TarParser } from '../src/tar/parser.js';
import type { TarHeader } from '../src/tar/types.js';
import { benchFail } from './errors.js';
import { exec, requireTool } from './exec.js';

export const LAYERED_TAG = 'layered';
const LAYERS = 4;
/** Docker's (and gzip's) default level. */
const GZIP_LEVEL = 6;
const BLOCK = 512;
const END_MARKER = Buffer.alloc(2 * BLOCK);

const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;
const ANNOTATION = {
  refName: 'org.opencontainers.image.ref.name',
  /** On the manifest: "<bytes> <mtime ms>" of the tar the layers were cut from. */
  source: 'dev.rootforge.bench.source',
  /** On each layer: its uncompressed size and entry count. */
  tarBytes: 'dev.rootforge.bench.tar-bytes',
  entries: 'dev.rootforge.bench.entries',
} as const;

export interface LayerInfo {
  /** sha256:… of the gzip blob. */
  digest: string;
  /** sha256:… of the uncompressed layer tar (the config's rootfs.diff_ids entry). */
  diffId: string;
  gzipBytes: number;
  tarBytes: number;
  entries: number;
  /** The blob file in the layout. */
  path: string;
}

export interface LayeredImage {
  /** The OCI layout directory (use as `oci:LAYOUT:layered`). */
  layout: string;
  tag: string;
  manifestDigest: string;
  layers: LayerInfo[];
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The layered image for `tarPath`: the cached layout, or a freshly built one. */
export async function ensureLayeredImage(tarPath: string, log: (line: string) => void): Promise<LayeredImage> {
  const layout = join(dirname(tarPath), `${basename(tarPath, '.tar')}-layered-oci`);
  const st = await stat(tarPath);
  const source = `${st.size} ${Math.round(st.mtimeMs)}`;
  const cached = await loadLayout(layout);
  if (cached && cached.source === source) return cached.image;
  log(cached ? `${layout} was cut from another ${tarPath} (${cached.source}, now ${source}): rebuilding` : `building ${layout} (4 gzip layers of ${tarPath}; once, ~1 min)`);
  const t0 = performance.now();
  const tmp = await mkdtemp(`${layout}.tmp-`);
  try {
    await buildLayout(tarPath, tmp, source);
    await exec(requireTool('umoci'), ['stat', '--image', `${tmp}:${LAYERED_TAG}`]);
    if (cached) await rm(layout, { recursive: true, force: true });
    await rename(tmp, layout);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    benchFail('BENCH_FIXTURE_FAILED', `build the layered image ${layout}`, (e as Error).message, undefined, e);
  }
  log(`built ${layout} in ${((performance.now() - t0) / 1000).toFixed(1)} s (umoci stat reads it)`);
  const built = await loadLayout(layout);
  if (!built) return benchFail('BENCH_FIXTURE_FAILED', `read the layered image ${layout}`, 'not found right after building it');
  return built.image;
}

/** The layout at `dir` as described by its own index and manifest, or null when there is none. */
async function loadLayout(dir: string): Promise<{ image: LayeredImage; source: string } | null> {
  const indexText = await readFile(join(dir, 'index.json'), 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (indexText === null) return null;
  const blob = (digest: string) => join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const index = JSON.parse(indexText) as { manifests: Descriptor[] };
  const entry = index.manifests.find((m) => m.annotations?.[ANNOTATION.refName] === LAYERED_TAG);
  if (!entry) return benchFail('BENCH_FIXTURE_FAILED', `read ${dir}`, `no image tagged ${LAYERED_TAG} (delete the directory to rebuild it)`);
  const manifest = JSON.parse(await readFile(blob(entry.digest), 'utf8')) as { config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> };
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  const layers: LayerInfo[] = [];
  for (const [i, d] of manifest.layers.entries()) {
    const path = blob(d.digest);
    const size = (await stat(path)).size;
    if (size !== d.size) benchFail('BENCH_FIXTURE_FAILED', `read ${dir}`, `layer blob ${d.digest} has ${size} bytes, the manifest says ${d.size} (delete the directory to rebuild it)`);
    layers.push({
      digest: d.digest,
      diffId: config.rootfs.diff_ids[i] ?? '',
      gzipBytes: d.size,
      tarBytes: Number(d.annotations?.[ANNOTATION.tarBytes]),
      entries: Number(d.annotations?.[ANNOTATION.entries]),
      path,
    });
  }
  return { image: { layout: dir, tag: LAYERED_TAG, manifestDigest: entry.digest, layers }, source: manifest.annotations?.[ANNOTATION.source] ?? '' };
}

interface Cut {
  /** Byte range of the layer's entries in the source tar. */
  start: number;
  end: number;
  entries: number;
}

/**
 * One pass of our tar reader over the source: where every entry's bytes begin, and where the
 * last one ends; then for each quarter mark the entry boundary nearest to it.
 */
async function planCuts(tarPath: string): Promise<Cut[]> {
  const starts: number[] = [];
  let end = 0;
  const parser = new TarParser({
    entry(h: TarHeader) {
      if (h.headerOffset !== end) {
        benchFail('BENCH_FIXTURE_FAILED', `cut ${tarPath} into layers`, `bytes between entries (a global PAX header?) before ${h.path}`, `${end}..${h.headerOffset}`);
      }
      starts.push(h.headerOffset);
      // Stored body = bodySize (0 for links, directories, devices), padded to whole blocks.
      end = h.offset + Math.ceil(h.bodySize / BLOCK) * BLOCK;
    },
    data() {},
    entryEnd() {},
  });
  for await (const chunk of createReadStream(tarPath, { highWaterMark: 1 << 20 })) parser.write(chunk as Buffer);
  parser.end();
  // Index of the first entry of each layer: the boundary nearest each k/LAYERS of the bytes.
  const firsts = [0];
  for (let k = 1; k < LAYERS; k++) {
    const mark = (end * k) / LAYERS;
    let i = firsts[k - 1]! + 1;
    while (i < starts.length - 1 && starts[i]! < mark) i++;
    if (i > firsts[k - 1]! + 1 && mark - starts[i - 1]! < starts[i]! - mark) i--;
    if (i >= starts.length) benchFail('BENCH_FIXTURE_FAILED', `cut ${tarPath} into layers`, `too few entries for ${LAYERS} layers`, String(starts.length));
    firsts.push(i);
  }
  firsts.push(starts.length);
  return firsts.slice(0, LAYERS).map((first, k) => ({
    start: starts[first]!,
    end: k + 1 < LAYERS ? starts[firsts[k + 1]!]! : end,
    entries: firsts[k + 1]! - first,
  }));
}

const sha256 = () => createHash('sha256');

/** Writes layer `cut` of `tarPath` gzipped to `out`. */
async function writeLayer(tarPath: string, cut: Cut, out: string): Promise<{ diffId: string; digest: string; gzipBytes: number; tarBytes: number }> {
  const diff = sha256();
  const gz = sha256();
  let tarBytes = 0;
  let gzipBytes = 0;
  async function* raw(): AsyncGenerator<Buffer> {
    for await (const chunk of createReadStream(tarPath, { start: cut.start, end: cut.end - 1, highWaterMark: 1 << 20 })) {
      diff.update(chunk as Buffer);
      tarBytes += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    diff.update(END_MARKER);
    tarBytes += END_MARKER.length;
    yield END_MARKER;
  }
  async function* count(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of src) {
      gz.update(chunk);
      gzipBytes += chunk.length;
      yield chunk;
    }
  }
  await pipeline(raw, createGzip({ level: GZIP_LEVEL }), count, createWriteStream(out));
  return { diffId: `sha256:${diff.digest('hex')}`, digest: `sha256:${gz.digest('hex')}`, gzipBytes, tarBytes };
}

/** Gunzips a layer blob and re-parses it: its diff_id and entry count. */
async function readLayer(path: string): Promise<{ diffId: string; entries: number }> {
  const diff = sha256();
  let entries = 0;
  const parser = new TarParser({ entry: () => void entries++, data() {}, entryEnd() {} });
  await pipeline(createReadStream(path), createGunzip(), async (src: AsyncIterable<Buffer>) => {
    for await (const chunk of src) {
      diff.update(chunk);
      parser.write(chunk);
    }
    parser.end();
  });
  return { diffId: `sha256:${diff.digest('hex')}`, entries };
}

async function buildLayout(tarPath: string, dir: string, source: string): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const putBlob = async (bytes: Buffer): Promise<string> => {
    const hex = sha256().update(bytes).digest('hex');
    await writeFile(join(blobs, hex), bytes);
    return `sha256:${hex}`;
  };
  const cuts = await planCuts(tarPath);
  // zlib compresses on the libuv thread pool: the four layers go in parallel. All of them
  // settle before a failure is thrown, so none is still writing when the caller removes `dir`.
  const settled = await Promise.allSettled(
    cuts.map(async (cut, i) => {
      const tmp = join(dir, `layer-${i}.tar.gz`);
      const l = await writeLayer(tarPath, cut, tmp);
      const path = join(blobs, l.digest.slice(7));
      await rename(tmp, path);
      const back = await readLayer(path);
      if (back.diffId !== l.diffId || back.entries !== cut.entries) {
        benchFail('BENCH_FIXTURE_FAILED', `check layer ${i + 1}`, `re-read as ${back.entries} entries, ${back.diffId}; cut as ${cut.entries} entries, ${l.diffId}`);
      }
      return { ...l, entries: cut.entries };
    }),
  );
  const layers = settled.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  const configDesc: Descriptor = { mediaType: MEDIA.config, digest: await putBlob(config), size: config.length };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: configDesc,
      layers: layers.map((l) => ({
        mediaType: MEDIA.layer,
        digest: l.digest,
        size: l.gzipBytes,
        annotations: { [ANNOTATION.tarBytes]: String(l.tarBytes), [ANNOTATION.entries]: String(l.entries) },
      })),
      annotations: { [ANNOTATION.source]: source },
    }),
  );
  const manifestDesc: Descriptor = {
    mediaType: MEDIA.manifest,
    digest: await putBlob(manifest),
    size: manifest.length,
    annotations: { [ANNOTATION.refName]: LAYERED_TAG },
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: [manifestDesc] }));
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}
