/**
 * `npm run bench -- --distribution [--quick] [--runs N]`: shipping ext4 images through a
 * registry (issue 15), on the devbox image (minbase with --quick), against a local
 * docker-registry started for the run:
 *
 *   upload   push v1, then v2 (≈4 % of its files changed: bench/mutate-tar.py appends a line to
 *            every 25th file); v2's uploaded bytes against v1's          goal: ≤ 20 %
 *   pull     ours: rootforge pull docker://…:v1 -o IMG, empty blob cache each run
 *            skopeo: the same ext4 pushed as one zstd layer (zstd -3); skopeo copy docker://…
 *            dir:DIR, then zstd -d of the layer into the image (what it takes to get the file),
 *            then `sync IMAGE`: ours returns with the image durable (src/util/atomic.ts), so the
 *            baseline is timed to the same point, as the tar bench does for tar2ext4; the
 *            figure without that sync is reported beside it
 *                                                                      goal: ours ≥ 2× faster
 *            and the fleet case: v2 pulled with v1 already in the cache (bytes fetched, time)
 *
 * Every pulled image's sha256 is checked against the pushed one. Medians are reported; the
 * result goes to stdout and bench/results/distribution-<time>.json.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { withCleanups } from './cleanup.js';
import { benchFail } from './errors.js';
import { exec, requireTool } from './exec.js';
import { DEVBOX, MINBASE, ensureInput } from './fixtures.js';
import { machineInfo } from './machine.js';
import { startRegistry } from './registry.js';
import { fileStamp, median } from './report.js';
import { log } from './runner.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/rootforge');
const MUTATE = join(ROOT, 'bench/mutate-tar.py');
const RESULTS_DIR = join(ROOT, 'bench/results');
const EVERY = 25;

export const DISTRIBUTION_USAGE = `Usage: npm run bench -- --distribution [--quick] [--runs N]

Pushes the devbox image (minbase with --quick) to a local docker-registry as a rootforge
artifact, then a v2 with every ${EVERY}th file changed, and compares v2's upload with v1's
(goal ≤ 20 %); pulls it N times into an empty cache against skopeo copy of the same ext4
pushed as one zstd layer plus zstd -d and a sync of the image, since ours returns with it
durable (goal: ours ≥ 2× faster).`;

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(b as Buffer);
  return h.digest('hex');
}

export async function benchDistribution(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { distribution: { type: 'boolean' }, quick: { type: 'boolean' }, runs: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    process.stdout.write(DISTRIBUTION_USAGE + '\n');
    return 0;
  }
  const runs = Number(values.runs ?? '3');
  if (!Number.isSafeInteger(runs) || runs < 1) benchFail('BENCH_USAGE', 'use --runs', 'expected a positive integer', values.runs);
  for (const tool of ['docker-registry', 'skopeo', 'zstd', 'python3']) requireTool(tool);
  const input = values.quick ? MINBASE : DEVBOX;
  const machine = await machineInfo();
  log(`${machine.cpus} × ${machine.cpuModel}, load ${machine.loadAverage.join(' ')}`);

  return withCleanups(async (cleanups) => {
    const tar = await ensureInput(input, log);
    const tar2 = tar.replace(/\.tar$/, `-v2-every${EVERY}.tar`);
    let changed = '';
    if (!(await stat(tar2).catch(() => null))) {
      log(`writing ${tar2} (every ${EVERY}th file changed)`);
      const r = await exec(requireTool('python3'), [MUTATE, tar, `${tar2}.tmp`, String(EVERY)]);
      await exec(requireTool('mv'), [`${tar2}.tmp`, tar2]);
      changed = r.stdout.trim();
    } else {
      changed = (await exec(requireTool('python3'), ['-c', `import tarfile,sys\nn=sum(1 for m in tarfile.open(sys.argv[1]) if m.isreg())\nprint((n//${EVERY}), n)`, tar])).stdout.trim();
    }
    const [nChanged, nFiles] = changed.split(' ').map(Number) as [number, number];
    const work = await mkdtemp(join(tmpdir(), 'rootforge-bench-distribution-'));
    cleanups.push(`remove ${work}`, () => rm(work, { recursive: true, force: true }));
    const v1 = join(work, 'v1.ext4');
    const v2 = join(work, 'v2.ext4');
    for (const [src, out] of [[tar, v1], [tar2, v2]] as const) {
      log(`converting ${src}`);
      await exec(process.execPath, [BIN, 'convert', `tar:${src}`, '-o', out, '--quiet']);
    }
    const v1Sha = await sha256File(v1);
    const reg = await startRegistry(cleanups);
    const ref = (repo: string, tag: string) => `docker://${reg.host}/bench/${repo}:${tag}`;

    log('pushing v1 and v2');
    const push = async (img: string, tag: string) => {
      const r = await exec(process.execPath, [BIN, 'push', img, ref('devbox', tag), '--json']);
      return { ...(JSON.parse(r.stdout) as { uploadedBytes: number; blobBytes: number; blobs: number; uploaded: number; sizeBytes: number; zeroBytes: number }), seconds: r.seconds };
    };
    const p1 = await push(v1, 'v1');
    const p2 = await push(v2, 'v2');
    const uploadRatio = p2.uploadedBytes / p1.uploadedBytes;

    // The baseline: the same ext4 as a single zstd layer in an OCI layout, pushed with skopeo.
    log('pushing the baseline (one zstd layer) with skopeo');
    const layout = join(work, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    const layerTmp = join(layout, 'blobs', 'layer.zst');
    await exec(requireTool('zstd'), ['-3', '-q', '-T0', '-o', layerTmp, v1]);
    const layerDigest = await sha256File(layerTmp);
    const layerSize = (await stat(layerTmp)).size;
    await exec(requireTool('mv'), [layerTmp, join(layout, 'blobs', 'sha256', layerDigest)]);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const configDigest = createHash('sha256').update(config).digest('hex');
    await writeFile(join(layout, 'blobs', 'sha256', configDigest), config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: `sha256:${layerDigest}`, size: layerSize }],
      }),
    );
    const manifestDigest = createHash('sha256').update(manifest).digest('hex');
    await writeFile(join(layout, 'blobs', 'sha256', manifestDigest), manifest);
    await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${manifestDigest}`, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
    await exec(requireTool('skopeo'), ['copy', '--insecure-policy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:v1`, ref('zstd', 'v1')]);

    const ours: number[] = [];
    const skopeo: number[] = [];
    const skopeoCopy: number[] = [];
    const skopeoNoSync: number[] = [];
    for (let i = 1; i <= runs; i++) {
      const cache = join(work, `cache-${i}`);
      const out = join(work, `pulled-${i}.ext4`);
      log(`run ${i}/${runs}: ours`);
      await exec(requireTool('sync'), []);
      const r = await exec(process.execPath, [BIN, 'pull', ref('devbox', 'v1'), '-o', out, '--cache-dir', cache, '--quiet']);
      ours.push(r.seconds);
      if ((await sha256File(out)) !== v1Sha) benchFail('BENCH_BAD_OUTPUT', 'check pulled image', 'sha256 differs from the pushed image', out);
      await rm(cache, { recursive: true, force: true });
      await rm(out, { force: true });

      log(`run ${i}/${runs}: skopeo copy + zstd -d`);
      await exec(requireTool('sync'), []);
      const dir = join(work, `skopeo-${i}`);
      const c = await exec(requireTool('skopeo'), ['copy', '--insecure-policy', '--quiet', '--src-tls-verify=false', ref('zstd', 'v1'), `dir:${dir}`]);
      const blob = (await readdir(dir)).find((n) => n === layerDigest);
      if (blob === undefined) benchFail('BENCH_BAD_OUTPUT', 'find the copied layer', 'skopeo dir: has no file named after the layer digest', dir);
      const d = await exec(requireTool('zstd'), ['-d', '-q', '-o', out, join(dir, blob)]);
      const f = await exec(requireTool('sync'), [out]);
      skopeoCopy.push(c.seconds);
      skopeoNoSync.push(c.seconds + d.seconds);
      skopeo.push(c.seconds + d.seconds + f.seconds);
      if (i === 1 && (await sha256File(out)) !== v1Sha) benchFail('BENCH_BAD_OUTPUT', 'check skopeo image', 'sha256 differs', out);
      await rm(dir, { recursive: true, force: true });
      await rm(out, { force: true });
    }
    // The fleet case: v1 is in the host's cache, v2 is pulled (only its new packs download).
    log('pull of v2 with v1 in the cache');
    const warm = join(work, 'cache-warm');
    await exec(process.execPath, [BIN, 'pull', ref('devbox', 'v1'), '-o', join(work, 'warm-v1.ext4'), '--cache-dir', warm, '--quiet']);
    await rm(join(work, 'warm-v1.ext4'), { force: true });
    await exec(requireTool('sync'), []);
    const w = await exec(process.execPath, [BIN, 'pull', ref('devbox', 'v2'), '-o', join(work, 'warm-v2.ext4'), '--cache-dir', warm, '--json']);
    const warmResult = { ...(JSON.parse(w.stdout) as { packsFetched: number; packsCached: number; bytesFetched: number }), seconds: w.seconds };
    await rm(warm, { recursive: true, force: true });

    const result = {
      input: input.name,
      machine,
      imageBytes: p1.sizeBytes,
      filesChanged: nChanged,
      files: nFiles,
      push: { v1: p1, v2: p2, uploadRatio, goal: 0.2, met: uploadRatio <= 0.2 },
      pull: {
        runs,
        oursSeconds: ours,
        skopeoCopySeconds: skopeoCopy,
        skopeoCopyZstdSyncSeconds: skopeo,
        skopeoCopyZstdSeconds: skopeoNoSync,
        zstdLayerBytes: layerSize,
        speedup: median(skopeo) / median(ours),
        speedupVsNoSync: median(skopeoNoSync) / median(ours),
        speedupVsCopyAlone: median(skopeoCopy) / median(ours),
        goal: 2,
        met: median(skopeo) / median(ours) >= 2,
        v2WithV1Cached: { seconds: warmResult.seconds, packsFetched: warmResult.packsFetched, packsCached: warmResult.packsCached, bytesFetched: warmResult.bytesFetched },
      },
    };
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const lines = [
      `distribution (${input.name}: ${mb(p1.sizeBytes)} image, ${mb(p1.zeroBytes)} of zero runs not stored)`,
      `  push v1: ${p1.uploaded} blobs, ${mb(p1.uploadedBytes)} uploaded in ${p1.seconds.toFixed(1)} s`,
      `  push v2 (${nChanged} of ${nFiles} files changed, ${((100 * nChanged) / nFiles).toFixed(1)} %): ${p2.uploaded} blobs, ${mb(p2.uploadedBytes)} = ${(100 * uploadRatio).toFixed(1)} % of v1 (goal ≤ 20 %: ${result.push.met ? 'met' : 'MISSED'})`,
      `  pull, median of ${runs}: ours ${median(ours).toFixed(2)} s; skopeo copy ${median(skopeoCopy).toFixed(2)} s + zstd -d + sync = ${median(skopeo).toFixed(2)} s (one ${mb(layerSize)} zstd layer; ${median(skopeoNoSync).toFixed(2)} s without the sync)`,
      `  speedup ${result.pull.speedup.toFixed(2)}× (goal ≥ 2×: ${result.pull.met ? 'met' : 'MISSED'}); against it without the sync ${result.pull.speedupVsNoSync.toFixed(2)}×, against skopeo copy alone ${result.pull.speedupVsCopyAlone.toFixed(2)}×`,
      `  pull v2 with v1 in the cache: ${warmResult.seconds.toFixed(2)} s, ${warmResult.packsFetched} packs fetched (${mb(warmResult.bytesFetched)}), ${warmResult.packsCached} from the cache`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    await mkdir(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `distribution-${fileStamp(new Date())}.json`);
    await writeFile(file, JSON.stringify(result, null, 2) + '\n');
    log(`wrote ${file}`);
    return 0;
  });
}
