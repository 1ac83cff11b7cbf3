/** Command-line options of `npm run bench` (node build/bench/main.js). */
import { parseArgs } from 'node:util';
import { benchFail } from './errors.js';
import type { PipelineId } from './pipelines.js';

export interface BenchOptions {
  /** Timed runs per input and pipeline. Default 3. */
  runs: number;
  /**
   * 'grouped' (default): each pipeline's runs back to back after one untimed warm-up run, so a
   * pipeline is measured in its own steady state. 'interleaved': rounds of every pipeline, the
   * order rotating each round. (Which one runs right after another's 2 GB image was deleted
   * matters a lot on these machines: page-cache refills after big deletions are slow.)
   */
  order: 'grouped' | 'interleaved';
  /** minbase only, no registry benchmark (CI smoke). Default false: minbase, devbox, registry. */
  quick: boolean;
  /** Leave out the registry benchmark. Default false. */
  skipRegistry: boolean;
  /** Leave out the boot benchmark (QEMU boots of the examples). Default false. */
  skipBoot: boolean;
  /** Only the boot benchmark. Default false. */
  bootOnly: boolean;
  /** Only the registry benchmark (no tar inputs). Default false. */
  registryOnly: boolean;
  /** Only the instance benchmark (100 instances of devbox, minbase with --quick). Default false. */
  instances: boolean;
  /** Pipelines to measure. Default all (B and C are skipped unless root). */
  pipelines: PipelineId[];
  /** Only the distro benchmark (the devbox from Debian packages; see distro.ts). Default false. */
  distro: boolean;
  help: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]     (or: node build/bench/main.js [options])

Times rootforge against the established tar → ext4 pipelines, in one run, on Debian bookworm
tars made by mmdebstrap (cached; see below), and checks every image with e2fsck -fn.

Tar inputs (minbase, devbox):
  ours    rootforge convert tar:IN -o OUT --size auto (child process; peak RSS measured)
  A       fakeroot: tar -x into a staging dir + mke2fs -d, then e2fsck -fy, resize2fs -M, truncate
  B       as root: mke2fs + loop mount + tar -x + umount, then the same shrink (skipped if not root)
  T       hcsshim's tar2ext4 + fsync, when $ROOTFORGE_BENCH_TAR2EXT4 or tar2ext4 on PATH names a
          binary (not packaged; build cmd/tar2ext4 from github.com/microsoft/hcsshim); its
          images' e2fsck verdict is reported, not required

Boot (no pipelines to compare; a target instead): the scratch and Alpine examples built and booted
N times each under QEMU with the default kernel (made from linux-image-cloud-amd64 if the kernel
cache has none): wall time to agent ready, and on the guest clock init start → agent ready
(target ≤ 50 ms). Then both built for linux/arm64 (the Alpine aarch64 minirootfs) and booted
under qemu-system-aarch64 -M virt with an arm64 kernel (made from linux-image-cloud-arm64 if
the cache has none; TCG on x86_64 hosts), when qemu-system-aarch64 is installed.

Registry input (devbox-registry): the devbox tar cut into 4 gzip layers (an OCI layout built once
next to the tar), pushed to a local docker-registry started for the run:
  ours    rootforge convert docker://127.0.0.1:PORT/devbox:layered, empty blob cache each run
  C       as root: skopeo copy docker://… oci:DIR + umoci unpack + mke2fs -d, then the same shrink
  gunzip  gzip -dc of the layer blobs to /dev/null (the decompress-only floor)
  zlib    node:zlib createGunzip of the layer blobs to nothing (our decompressor alone)
  ours' and C's images are loop-mounted once (root) and their file listings compared.

Options:
  --runs N              timed runs per input and pipeline; medians are reported (default 3)
  --quick               minbase only, no registry benchmark (CI smoke test)
  --skip-registry       leave out the registry benchmark
  --registry-only       only the registry benchmark
  --skip-boot           leave out the boot benchmark
  --boot-only           only the boot benchmark
  --instances           only the instance benchmark: 100 \`instance create\` of the devbox image
                        (minbase with --quick) against cp + debugfs + resize2fs (--runs times)
  --pipelines LIST      comma-separated subset of ours,A,B,T,C,gunzip,zlib (default: all)
  --distro              only the distro benchmark: examples/devbox.yaml built by rootforge
                        (mmdebstrap → pipe → ext4) against the same mmdebstrap writing its tar
                        to /dev/null (goal ≤ 1.10×) and the seed's pipeline without Docker
                        (mmdebstrap → directory, mke2fs -d, resize2fs -M); downloads every run
  --order MODE          grouped (default): each pipeline's runs back to back after one untimed
                        warm-up run; interleaved: rounds of all pipelines, rotating the order
  -h, --help            this text

Inputs are looked up as minbase.tar / devbox.tar in $ROOTFORGE_BENCH_CACHE,
~/.cache/rootforge-bench and ~/.cache/rootforge-test; missing ones are built with mmdebstrap
into the first of those; the registry input's layout is built once beside devbox.tar as
devbox-layered-oci/. Results go to bench/results/<input>-<time>.json (input: minbase, devbox,
devbox-registry) and latest.json (all inputs of the run).
Exit status: 0 when every pipeline ran and every image passed e2fsck (targets missed or not),
1 when a pipeline or a check failed, 2 on a usage error.`;

const IDS: readonly PipelineId[] = ['ours', 'A', 'B', 'T', 'C', 'gunzip', 'zlib'];

export function parseOptions(argv: string[]): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        runs: { type: 'string' },
        quick: { type: 'boolean' },
        'skip-registry': { type: 'boolean' },
        'registry-only': { type: 'boolean' },
        'skip-boot': { type: 'boolean' },
        'boot-only': { type: 'boolean' },
        instances: { type: 'boolean' },
        pipelines: { type: 'string' },
        order: { type: 'string' },
        distro: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    return benchFail('BENCH_USAGE', 'parse the options', (e as Error).message);
  }
  const runs = values.runs === undefined ? 3 : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) benchFail('BENCH_USAGE', 'use --runs', 'expected a whole number ≥ 1', values.runs);
  const pipelines = values.pipelines === undefined ? [...IDS] : values.pipelines.split(',').map((s) => s.trim());
  for (const p of pipelines) {
    if (!(IDS as readonly string[]).includes(p)) benchFail('BENCH_USAGE', 'use --pipelines', `unknown pipeline (known: ${IDS.join(', ')})`, p);
  }
  const order = values.order ?? 'grouped';
  if (order !== 'grouped' && order !== 'interleaved') benchFail('BENCH_USAGE', 'use --order', 'expected grouped or interleaved', order);
  const quick = values.quick ?? false;
  const skipRegistry = values['skip-registry'] ?? false;
  const skipBoot = values['skip-boot'] ?? false;
  const bootOnly = values['boot-only'] ?? false;
  const registryOnly = values['registry-only'] ?? false;
  if (registryOnly && (quick || skipRegistry)) benchFail('BENCH_USAGE', 'use --registry-only', `it contradicts ${quick ? '--quick' : '--skip-registry'}`);
  if (bootOnly && (quick || skipBoot || registryOnly)) {
    benchFail('BENCH_USAGE', 'use --boot-only', `it contradicts ${quick ? '--quick' : skipBoot ? '--skip-boot' : '--registry-only'}`);
  }
  return { runs, order, quick, skipRegistry, registryOnly, skipBoot, bootOnly, instances: values.instances ?? false, pipelines: pipelines as PipelineId[], distro: values.distro ?? false, help: values.help ?? false };
}
