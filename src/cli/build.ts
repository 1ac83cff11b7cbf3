import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { buildImage } from '../build-image.js';
import { fail } from '../errors.js';
import { loadSpec } from '../spec/load.js';
import { formatBytes } from '../util/size.js';
import { writeAtomically } from '../util/atomic.js';
import { imageOptions, parse, UsageError } from './args.js';
import { ProgressLine } from './progress.js';
import type { FormatResult } from '../output/formats.js';
import type { pushTo } from './push.js';
// Firecracker configs, kernels, --format and --push are loaded when asked for: an up-to-date
// build (see build-cache.ts) is mostly Node's start and module loading.

export const BUILD_USAGE = `Usage: rootforge build [SPEC] [-o IMAGE] [options]

Builds a sandbox image from a spec (default ./rootforge.yaml): a base (scratch or any convert
source) plus the guest agent, an init mode, essential /etc files, users, mounts and files.
See README.md "Build specs" and schema/rootforge.schema.json.

Options:
  -o, --output FILE     the image (default: the spec's output, else <spec name>.ext4)
  --platform OS/ARCH    the target platform (overrides the spec's platform:), e.g. linux/arm64:
                        the agent's architecture, the image of a multi-platform base
  --creds USER:PASS     registry credentials for a docker:// base
  --tls-verify=false    accept any TLS certificate
  --cache-dir DIR       blob cache and build records (default $XDG_CACHE_HOME/rootforge)
  --no-cache            build even when the output is up to date (same spec, same inputs,
                        output untouched since that build wrote it)
  --emit-firecracker-config FILE
                        also write a Firecracker VM config (--config-file) that boots the
                        image with --kernel (vsock socket: <image>.vsock)
  --kernel K            the kernel for that config (default: the cache's default kernel)
  --format F            also write the rootfs as oci:DIR[:TAG], docker-archive:FILE[:NAME[:TAG]]
                        or tar:FILE (the same tree, one uncompressed layer, loadable by
                        docker/podman load; the archive's name defaults to the image file's)
  --push docker://REF   then push the image as a rootforge artifact (see rootforge push)
  --quiet               no progress, warnings or summary
  --json                print the result as JSON

Environment: IMAGE_SIZE overrides size:, IMAGE_NAME the output name, SOURCE_DATE_EPOCH the
time of provisioned files and the superblock (from: debian:… — default: the lock's date, else
the suite's Release date; also given to mmdebstrap).`;

export async function buildCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      output: { type: 'string', short: 'o' },
      creds: { type: 'string' },
      'tls-verify': { type: 'string' },
      'cache-dir': { type: 'string' },
      'no-cache': { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      json: { type: 'boolean' },
      'emit-firecracker-config': { type: 'string' },
      kernel: { type: 'string' },
      platform: { type: 'string' },
      format: { type: 'string' },
      push: { type: 'string' },
    } as const,
    BUILD_USAGE,
  );
  if (values.help) {
    process.stdout.write(BUILD_USAGE + '\n');
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`expected at most one spec\n\n${BUILD_USAGE}`);
  const specPath = positionals[0] ?? 'rootforge.yaml';
  const spec = await loadSpec(specPath);
  const formats = values.format !== undefined ? await import('../output/formats.js') : undefined;
  const format = values.format !== undefined ? formats!.parseFormat(values.format) : undefined;
  if (values.push !== undefined && !values.push.startsWith('docker://')) throw new UsageError(`--push: expected docker://HOST/REPO:TAG (${values.push})`);
  if (values.output) spec.output = resolve(values.output);
  if (values.platform) spec.platform = values.platform;
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  if (epoch && !/^\d+$/.test(epoch)) fail('OPTION_INVALID', 'use SOURCE_DATE_EPOCH', 'not a whole number of seconds', epoch);
  const img = imageOptions(values);
  const progress = new ProgressLine(!values.quiet && process.stderr.isTTY === true);
  const result = await buildImage(spec, {
    ...(epoch ? { timestamp: Number(epoch) } : {}),
    ...(values['no-cache'] ? { cache: false } : {}),
    image: {
      ...(img.creds ? { creds: img.creds } : {}),
      ...(img.tlsVerify !== undefined ? { tlsVerify: img.tlsVerify } : {}),
      ...(img.cacheDir ? { cacheDir: img.cacheDir } : {}),
    },
    onProgress: (p) => {
      if (p.phase === undefined) progress.update(p.done, p.total);
      else if (progress.enabled) progress.phase(p.phase);
      else if (!values.quiet && !values.json) process.stderr.write(`${p.phase}\n`); // mmdebstrap's phases, one a line in logs
    },
    onWarning: (w) => {
      if (!values.quiet) process.stderr.write(`\r\x1b[Kwarning: ${w.message} [${w.code}]\n`);
    },
  });
  progress.done();
  const fcPath = values['emit-firecracker-config'];
  if (fcPath) {
    const [{ firecrackerConfig }, { checkArch }, { kernelArchOf, kernelRef }] = await Promise.all([import('../vm/firecracker.js'), import('../vm/boot.js'), import('../kernel/kernel-ref.js')]);
    const karch = kernelArchOf(result.arch);
    const kernel = await kernelRef(values.kernel, { ...(img.cacheDir ? { cacheDir: img.cacheDir } : {}), ...(karch ? { arch: karch } : {}) });
    checkArch(result.output, result.arch, kernel);
    const config = firecrackerConfig({ image: result.output, kernel, init: result.init, readOnlyRoot: spec.readOnly }, `${result.output}.vsock`);
    await writeAtomically(resolve(fcPath), (fh) => fh.writeFile(JSON.stringify(config, null, 2) + '\n'));
    if (!values.quiet) process.stderr.write(`${fcPath}: firecracker --no-api --config-file ${fcPath} (agent on vsock port 1024 via ${result.output}.vsock)\n`);
  }
  let formatted: FormatResult | undefined;
  if (format) {
    // docker load names the image after the output file (devbox.ext4 → devbox:latest) unless named.
    if (format.kind === 'docker-archive' && format.repoTag === undefined) {
      const name = basename(result.output).replace(/\.ext4$/, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '');
      if (name !== '') format.repoTag = `${name}:latest`;
    }
    formatted = await formats!.writeFormat(result.output, format, {
      architecture: result.arch,
      timestamp: epoch ? Number(epoch) : 0,
      onWarning: (m) => {
        if (!values.quiet) process.stderr.write(`warning: ${m}\n`);
      },
    });
    if (!values.quiet && !values.json) process.stderr.write(`${formatted.format}: ${formatBytes(formatted.layerBytes)} layer ${formatted.layerDigest}, ${formatted.entries} entries\n`);
  }
  let pushed: Awaited<ReturnType<typeof pushTo>> | undefined;
  if (values.push !== undefined) {
    // The spec file's own bytes identify what was built (a loadSpec error above means it exists).
    const [{ sha256Digest }, { printPush, pushTo }] = await Promise.all([import('../oci/digest.js'), import('./push.js')]);
    const specDigest = sha256Digest(await readFile(specPath).catch((e: NodeJS.ErrnoException) => fail('SPEC_NOT_FOUND', 'read spec', e.code ?? String(e), specPath, e)));
    pushed = await pushTo(result.output, values.push, { ...values, quiet: values.quiet || values.json }, { specDigest });
    if (!values.quiet && !values.json) printPush(pushed, process.stderr);
  }
  if (values.json) process.stdout.write(JSON.stringify({ ...result, ...(formatted ? { format: formatted } : {}), ...(pushed ? { push: pushed } : {}) }, null, 2) + '\n');
  else if (!values.quiet) {
    process.stderr.write(
      `${result.output}: ${result.cacheHit ? 'up to date (same spec and inputs; --no-cache builds anyway), ' : ''}${formatBytes(result.sizeBytes)}, linux/${result.arch}, init ${result.init}, ` +
        `${result.files} files, ${formatBytes(result.freeBlocks * 4096)} free, UUID ${result.uuid}` +
        (result.alpine ? `, ${result.alpine.installed.length} Alpine packages installed, ${result.alpine.pending.length} scripts for the first boot` : '') + '\n',
    );
    if (result.debian) {
      const d = result.debian;
      process.stderr.write(`  debian:${d.suite}${d.codename && d.codename !== d.suite ? ` (${d.codename})` : ''} ${d.architecture}: ${d.packages.length} packages, mmdebstrap mode ${d.mode}, SOURCE_DATE_EPOCH ${d.epoch}${d.lock ? `, from lock ${d.lock}` : ''}\n`);
    }
    // why the next run of the same spec will build in full again (an unlocked package set, …)
    if (result.cacheSkipped !== undefined) process.stderr.write(`  not recorded for skipping: ${result.cacheSkipped}\n`);
  }
  return 0;
}
