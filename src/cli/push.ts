import { pushArtifact, type PushResult } from '../distribution/push.js';
import { fail } from '../errors.js';
import { parseDockerReference } from '../oci/reference.js';
import { formatBytes } from '../util/size.js';
import { imageOptions, parse, UsageError } from './args.js';
import { ProgressLine } from './progress.js';

export const PUSH_USAGE = `Usage: rootforge push IMAGE.ext4 docker://HOST/REPO:TAG [options]

Stores an ext4 image in a registry as an OCI artifact (artifactType
application/vnd.rootforge.ext4.v1): content-defined chunks (~32 KiB), each zstd-compressed, in
packs of ~8 MiB; runs of zeros are not stored; chunks already in an artifact of the repository
(or of a --mount-from repository) are not uploaded again.
Pull it back with "rootforge pull docker://HOST/REPO:TAG -o IMAGE.ext4".

Options:
  --mount-from REPOS    other repositories on the same registry (comma-separated) whose
                        artifacts' chunks are reused, their packs mounted (cross-repository mount)
  --concurrency N       packs checked or uploaded at once (default 4)
  --creds USER:PASS     registry credentials (default: from $DOCKER_CONFIG/config.json)
  --tls-verify=false    accept any TLS certificate
  -q, --quiet           no progress line or summary
  --json                print the result as JSON`;

export async function pushCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      creds: { type: 'string' },
      'tls-verify': { type: 'string' },
      'mount-from': { type: 'string' },
      concurrency: { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    } as const,
    PUSH_USAGE,
  );
  if (values.help) {
    process.stdout.write(PUSH_USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError(`expected an image and a docker:// reference\n\n${PUSH_USAGE}`);
  const [image, target] = positionals as [string, string];
  const result = await pushTo(image, target, values);
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else if (!values.quiet) printPush(result, process.stdout);
  return 0;
}

/** Shared by push and build --push. */
export async function pushTo(
  image: string,
  target: string,
  values: { creds?: string | boolean; 'tls-verify'?: string | boolean; 'mount-from'?: string | boolean; concurrency?: string | boolean; quiet?: boolean },
  extra: { specDigest?: string; lockDigest?: string } = {},
): Promise<PushResult> {
  if (!target.startsWith('docker://')) fail('OPTION_INVALID', 'push', 'the destination must be docker://HOST/REPO:TAG', target);
  const ref = parseDockerReference(target.slice('docker://'.length));
  const opts = imageOptions(values);
  let concurrency: number | undefined;
  if (typeof values.concurrency === 'string') {
    concurrency = Number(values.concurrency);
    if (!/^\d+$/.test(values.concurrency) || concurrency < 1 || concurrency > 64) fail('OPTION_INVALID', 'use --concurrency', 'expected a number from 1 to 64', values.concurrency);
  }
  const mountFrom = typeof values['mount-from'] === 'string' ? values['mount-from'].split(',').filter((s) => s !== '') : [];
  const progress = new ProgressLine(!values.quiet && process.stderr.isTTY === true);
  const result = await pushArtifact(image, ref, {
    ...(opts.creds ? { creds: opts.creds } : {}),
    ...(opts.tlsVerify !== undefined ? { tlsVerify: opts.tlsVerify } : {}),
    ...(concurrency !== undefined ? { concurrency } : {}),
    mountFrom,
    ...extra,
    onProgress: (p) => progress.update(p.done, p.total),
  });
  progress.done();
  return result;
}

export function printPush(r: PushResult, out: NodeJS.WritableStream): void {
  out.write(
    `${r.reference}@${r.manifestDigest}: ${formatBytes(r.sizeBytes)} image, ${r.chunks} chunks (${r.newChunks} new) in ${r.blobs} packs ` +
      `(${formatBytes(r.blobBytes)} compressed, ${formatBytes(r.zeroBytes)} of zeros not stored); uploaded ${r.uploaded} blobs ` +
      `(${formatBytes(r.uploadedBytes)}), ${r.present} already there${r.mounted ? `, ${r.mounted} mounted` : ''}\n`,
  );
}
