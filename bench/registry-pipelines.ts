/**
 * The registry benchmark's pipelines, on the layered devbox image served by a local registry
 * (RunContext.input is its reference, 127.0.0.1:PORT/devbox:layered):
 *
 *   ours    rootforge convert docker://REF in a child, with a fresh empty blob cache and the
 *           image cache off (so every run downloads every blob), incl. fsync
 *   C       the established way, as root: skopeo copy docker://REF oci:DIR + umoci unpack +
 *           mke2fs -d from the bundle's rootfs (overallocated as A and B are), then e2fsck -fy,
 *           resize2fs -M and truncate
 *   gunzip  the floor: `gzip -dc` of each layer blob to /dev/null, one after the other
 *   zlib    the same with node:zlib's createGunzip (our decompressor, fed and drained as our
 *           layer reader does it), in this process, to nothing
 *
 * The two baselines read the blobs of the cached OCI layout (warm after the push), not the
 * registry: they measure decompression alone.
 */
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { benchFail } from './errors.js';
import { exec, findTool, requireTool } from './exec.js';
import { overallocBytes, shrinkImage } from './image.js';
import { LAYERED_TAG, type LayeredImage } from './layered.js';
import { runOurs, type Pipeline } from './pipelines.js';

const MiB = 1 << 20;
const since = (t0: number): number => (performance.now() - t0) / 1000;

/** Names of convert()'s timings (result.timings) that are not finish phases. */
const DOWNLOAD = 'resolve image (download)';
const INGEST = 'read source, stream data';
/** Inside INGEST: waiting for layer blobs still downloading (the rest downloads meanwhile). */
const WAITED = 'of which waiting for layer downloads';

function missing(tools: string[]): string | undefined {
  const absent = tools.filter((t) => findTool(t) === undefined);
  return absent.length > 0 ? `missing ${absent.join(', ')}` : undefined;
}

export const oursRegistry: Pipeline = {
  id: 'ours',
  title: 'rootforge convert docker://… --size auto (empty blob cache, no image cache)',
  skipReason: () => undefined,
  async run({ input, dir }) {
    const image = join(dir, 'ours.img');
    const cache = join(dir, 'cache');
    await mkdir(cache);
    const { seconds, rep } = await runOurs([`docker://${input}`, image, cache]);
    const ms = rep.timings;
    const waited = (ms[WAITED] ?? 0) / 1000;
    const download = (ms[DOWNLOAD] ?? NaN) / 1000 + waited;
    const ingest = (ms[INGEST] ?? NaN) / 1000 - waited;
    const finish = Object.entries(ms)
      .filter(([k]) => k !== DOWNLOAD && k !== INGEST && k !== WAITED)
      .reduce((sum, [, v]) => sum + v / 1000, 0);
    if (Number.isNaN(download + ingest)) benchFail('BENCH_BAD_OUTPUT', 'read our time split', `convert() timings lack "${DOWNLOAD}" or "${INGEST}"`, JSON.stringify(ms));
    return {
      seconds,
      steps: {
        download,
        'decompress + parse + write': ingest,
        'finish (metadata)': finish,
        'rest of convert()': rep.convertSeconds - download - ingest - finish,
        fsync: rep.fsyncSeconds,
        'node start/exit': seconds - rep.convertSeconds - rep.fsyncSeconds,
      },
      image,
      peakRssMiB: rep.maxRssKiB / 1024,
      details: { files: rep.files, directories: rep.directories, warnings: rep.warnings, timingsMs: ms },
    };
  },
};

export const pipelineC: Pipeline = {
  id: 'C',
  title: 'skopeo copy + umoci unpack + mke2fs -d, e2fsck + resize2fs -M',
  skipReason() {
    if (process.getuid?.() !== 0) return 'needs root (umoci unpack without --rootless); not running as root';
    return missing(['skopeo', 'umoci', 'du', 'mke2fs', 'resize2fs']);
  },
  async run({ input, dir }) {
    const layout = join(dir, 'oci');
    const bundle = join(dir, 'bundle');
    const rootfs = join(bundle, 'rootfs');
    const image = join(dir, 'c.img');
    const steps: Record<string, number> = {};
    const t0 = performance.now();
    const copy = ['copy', '--insecure-policy', '--quiet', '--src-tls-verify=false', `docker://${input}`, `oci:${layout}:${LAYERED_TAG}`];
    steps['skopeo copy'] = (await exec(requireTool('skopeo'), copy)).seconds;
    steps['umoci unpack'] = (await exec(requireTool('umoci'), ['unpack', '--image', `${layout}:${LAYERED_TAG}`, bundle])).seconds;
    const du = await exec(requireTool('du'), ['-sb', rootfs]);
    steps['du -sb'] = du.seconds;
    const m = /^(\d+)\s/.exec(du.stdout);
    if (!m) benchFail('BENCH_BAD_OUTPUT', `read the size of ${rootfs}`, 'du -sb printed no byte count', du.stdout.trim());
    const size = overallocBytes(Number(m[1]));
    steps['mke2fs -d'] = (await exec(requireTool('mke2fs'), ['-q', '-t', 'ext4', '-d', rootfs, image, `${size / MiB}M`])).seconds;
    const shrink = await shrinkImage(image);
    Object.assign(steps, shrink.steps);
    return { seconds: since(t0), steps, image, details: { rootfsDuBytes: Number(m[1]), overallocatedBytes: size, fsckFixExit: shrink.fsckExit } };
  },
};

/** The decompress-only baselines over the layer blobs of `img`. */
export function decompressBaselines(img: LayeredImage): Pipeline[] {
  const gunzip: Pipeline = {
    id: 'gunzip',
    title: `gzip -dc of the ${img.layers.length} layer blobs > /dev/null, one after the other (decompress only)`,
    skipReason: () => missing(['gzip']),
    async run() {
      const steps: Record<string, number> = {};
      const t0 = performance.now();
      for (const [i, l] of img.layers.entries()) {
        steps[`layer ${i + 1}`] = (await exec(requireTool('gzip'), ['-dc', l.path], { discardStdout: true })).seconds;
      }
      return { seconds: since(t0), steps };
    },
  };
  const zlib: Pipeline = {
    id: 'zlib',
    title: `node:zlib createGunzip of the ${img.layers.length} layer blobs to nothing, in-process (our decompressor)`,
    skipReason: () => undefined,
    async run() {
      const steps: Record<string, number> = {};
      const t0 = performance.now();
      for (const [i, l] of img.layers.entries()) {
        const t1 = performance.now();
        const bytes = await gunzipToNothing(l.path);
        steps[`layer ${i + 1}`] = since(t1);
        if (bytes !== l.tarBytes) benchFail('BENCH_BAD_OUTPUT', `gunzip ${l.path}`, `${bytes} bytes out, the layer has ${l.tarBytes}`);
      }
      return { seconds: since(t0), steps };
    },
  };
  return [gunzip, zlib];
}

/** Reads as src/oci/layer.ts does (4 MiB reads, 1 MiB inflate chunks); returns the bytes out. */
async function gunzipToNothing(path: string): Promise<number> {
  let n = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      n += chunk.length;
      done();
    },
  });
  await pipeline(createReadStream(path, { highWaterMark: 4 << 20 }), createGunzip({ chunkSize: 1 << 20 }), sink);
  return n;
}
