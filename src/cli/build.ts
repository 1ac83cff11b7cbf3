import { resolve } from 'node:path';
import { buildImage } from '../build.js';
import { fail } from '../errors.js';
import { loadSpec } from '../spec/load.js';
import { formatBytes } from '../util/size.js';
import { writeAtomically } from '../util/atomic.js';
import { firecrackerConfig } from '../vm/firecracker.js';
import { kernelRef } from '../vm/kernel-ref.js';
import { imageOptions, parse, UsageError } from './args.js';
import { ProgressLine } from './progress.js';

export const BUILD_USAGE = `Usage: rootforge build [SPEC] [-o IMAGE] [options]

Builds a sandbox image from a spec (default ./rootforge.yaml): a base (scratch or any convert
source) plus the guest agent, an init mode, essential /etc files, users, mounts and files.
See README.md "Build specs" and schema/rootforge.schema.json.

Options:
  -o, --output FILE     the image (default: the spec's output, else <spec name>.ext4)
  --creds USER:PASS     registry credentials for a docker:// base
  --tls-verify=false    accept any TLS certificate
  --cache-dir DIR       blob cache (default $XDG_CACHE_HOME/rootforge)
  --emit-firecracker-config FILE
                        also write a Firecracker VM config (--config-file) that boots the
                        image with --kernel (vsock socket: <image>.vsock)
  --kernel K            the kernel for that config (default: the cache's default kernel)
  --quiet               no progress, warnings or summary
  --json                print the result as JSON

Environment: IMAGE_SIZE overrides size:, IMAGE_NAME the output name, SOURCE_DATE_EPOCH the
time of provisioned files and the superblock.`;

export async function buildCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      output: { type: 'string', short: 'o' },
      creds: { type: 'string' },
      'tls-verify': { type: 'string' },
      'cache-dir': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      json: { type: 'boolean' },
      'emit-firecracker-config': { type: 'string' },
      kernel: { type: 'string' },
    } as const,
    BUILD_USAGE,
  );
  if (values.help) {
    process.stdout.write(BUILD_USAGE + '\n');
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`expected at most one spec\n\n${BUILD_USAGE}`);
  const spec = await loadSpec(positionals[0] ?? 'rootforge.yaml');
  if (values.output) spec.output = resolve(values.output);
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  if (epoch && !/^\d+$/.test(epoch)) fail('OPTION_INVALID', 'use SOURCE_DATE_EPOCH', 'not a whole number of seconds', epoch);
  const img = imageOptions(values);
  const progress = new ProgressLine(!values.quiet && process.stderr.isTTY === true);
  const result = await buildImage(spec, {
    timestamp: epoch ? Number(epoch) : 0,
    image: {
      ...(img.creds ? { creds: img.creds } : {}),
      ...(img.tlsVerify !== undefined ? { tlsVerify: img.tlsVerify } : {}),
      ...(img.cacheDir ? { cacheDir: img.cacheDir } : {}),
    },
    onProgress: (p) => progress.update(p.done, p.total),
    onWarning: (w) => {
      if (!values.quiet) process.stderr.write(`\r\x1b[Kwarning: ${w.message} [${w.code}]\n`);
    },
  });
  progress.done();
  const fcPath = values['emit-firecracker-config'];
  if (fcPath) {
    const kernel = await kernelRef(values.kernel, img.cacheDir ? { cacheDir: img.cacheDir } : {});
    const config = firecrackerConfig({ image: result.output, kernel, init: result.init, readOnlyRoot: spec.readOnly }, `${result.output}.vsock`);
    await writeAtomically(resolve(fcPath), (fh) => fh.writeFile(JSON.stringify(config, null, 2) + '\n'));
    if (!values.quiet) process.stderr.write(`${fcPath}: firecracker --no-api --config-file ${fcPath} (agent on vsock port 1024 via ${result.output}.vsock)\n`);
  }
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else if (!values.quiet) {
    process.stderr.write(
      `${result.output}: ${formatBytes(result.sizeBytes)}, linux/${result.arch}, init ${result.init}, ` +
        `${result.files} files, ${formatBytes(result.freeBlocks * 4096)} free, UUID ${result.uuid}` +
        (result.alpine ? `, ${result.alpine.installed.length} Alpine packages installed, ${result.alpine.pending.length} scripts for the first boot` : '') + '\n',
    );
  }
  return 0;
}
