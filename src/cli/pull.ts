import { CHUNKMAP_MEDIA_TYPE, isArtifactManifest } from '../distribution/artifact.js';
import { fail, isRootforgeError } from '../errors.js';
import { fetchRemoteManifest, pullArtifact } from '../distribution/pull.js';
import { defaultCacheDir } from '../util/cache-dir.js';
import { formatReference, parseDockerReference, pullImage } from '../oci/registry.js';
import { formatBytes } from '../util/size.js';
import { imageOptions, parse, UsageError } from './args.js';
import { LIMIT_FLAGS, LIMIT_USAGE, limitOptions } from './limits.js';
import { convertCommand } from './convert.js';
import { ProgressLine } from './progress.js';

export const PULL_USAGE = `Usage: rootforge pull [docker://][HOST/]REPO[:TAG|@DIGEST] [-o IMAGE.ext4] [options]

Without -o: downloads an image's manifest, config and layers into the blob cache (nothing is
converted); blobs already there are not fetched again, and an interrupted download resumes.
With -o: a rootforge ext4 artifact (see "rootforge push") is reassembled into IMAGE.ext4, every
chunk and the whole image checked against their digests; a container image is converted to
IMAGE.ext4 as "rootforge convert docker://…" does.

Options:
  -o, --output FILE     write the ext4 image (replaced only when the pull succeeds)
  --concurrency N       artifact packs downloaded at once (default 4)
  --platform OS/ARCH    which platform of a multi-platform image (default: this host's)
  --creds USER:PASS     registry credentials (default: from $DOCKER_CONFIG/config.json)
  --tls-verify=false    accept any TLS certificate
  --cache-dir DIR       the cache (default $XDG_CACHE_HOME/rootforge)
  --json                print the result as JSON
${LIMIT_USAGE}`;

export async function pullCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      platform: { type: 'string' },
      creds: { type: 'string' },
      'tls-verify': { type: 'string' },
      'cache-dir': { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      'max-layers': LIMIT_FLAGS['max-layers'],
      'min-rate': LIMIT_FLAGS['min-rate'],
      output: { type: 'string', short: 'o' },
      concurrency: { type: 'string' },
    } as const,
    PULL_USAGE,
  );
  if (values.help) {
    process.stdout.write(PULL_USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one image reference\n\n${PULL_USAGE}`);
  const ref = parseDockerReference(positionals[0]!.replace(/^docker:\/\//, ''));
  const opts = imageOptions(values);
  const progress = new ProgressLine(!values.quiet && process.stderr.isTTY === true);
  if (values.output !== undefined) {
    const remoteOpts = {
      cacheDir: opts.cacheDir ?? defaultCacheDir(),
      ...(opts.creds ? { creds: opts.creds } : {}),
      ...(opts.tlsVerify !== undefined ? { tlsVerify: opts.tlsVerify } : {}),
    };
    const remote = await fetchRemoteManifest(ref, remoteOpts);
    if (!isArtifactManifest(remote.doc)) {
      // A container image: exactly what convert does with it.
      const passthrough = ['platform', 'creds', 'tls-verify', 'cache-dir', 'max-layers', 'min-rate'] as const;
      const args = [`docker://${formatReference(ref)}`, '-o', values.output];
      for (const k of passthrough) if (typeof values[k] === 'string') args.push(`--${k}=${values[k]}`);
      if (values.json) args.push('--json');
      if (values.quiet) args.push('--quiet');
      return convertCommand(args);
    }
    let concurrency: number | undefined;
    if (values.concurrency !== undefined) {
      concurrency = Number(values.concurrency);
      if (!/^\d+$/.test(values.concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError(`--concurrency: expected a number from 1 to 64 (${values.concurrency})`);
    }
    const r = await pullArtifact(ref, values.output, { ...remoteOpts, ...(concurrency ? { concurrency } : {}), onProgress: (p) => progress.update(p.done, p.total) });
    progress.done();
    if (values.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else if (!values.quiet) {
      process.stdout.write(
        `${r.output}: ${formatBytes(r.sizeBytes)} from ${r.reference}@${r.manifestDigest}, image ${r.imageDigest} verified; ` +
          `${r.chunks} chunks in ${r.packs} packs: ${r.packsFetched} fetched (${formatBytes(r.bytesFetched)}), ${r.packsCached} from the cache\n`,
      );
    }
    return 0;
  }
  const image = await pullImage(ref, {
    cacheDir: opts.cacheDir ?? defaultCacheDir(),
    ...(opts.platform ? { platform: opts.platform } : {}),
    ...(opts.creds ? { creds: opts.creds } : {}),
    ...(opts.tlsVerify !== undefined ? { tlsVerify: opts.tlsVerify } : {}),
    ...limitOptions(values),
    onProgress: (p) => progress.update(p.done, p.total),
  }).catch(async (e: unknown) => {
    // A rootforge artifact is not a container image: say what to do with it instead.
    if (isRootforgeError(e, 'OCI_UNSUPPORTED_MEDIA_TYPE') && e.message.includes(CHUNKMAP_MEDIA_TYPE)) {
      fail('OPTION_INVALID', `pull ${formatReference(ref)}`, 'it is a rootforge ext4 artifact: pull it with -o IMAGE.ext4', formatReference(ref));
    }
    throw e;
  });
  progress.done();
  const size = image.manifest.layers.reduce((n, l) => n + l.size, 0);
  const result = {
    reference: formatReference(ref),
    manifestDigest: image.manifestDigest,
    layers: image.manifest.layers.length,
    layerBytes: size,
    blobsFetched: image.fromCache.blobsFetched,
    blobsCached: image.fromCache.blobsCached,
  };
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else {
    process.stdout.write(
      `${result.reference}: ${result.manifestDigest}, ${result.layers} layers (${formatBytes(size)}); ` +
        `${result.blobsFetched} blobs fetched, ${result.blobsCached} already cached\n`,
    );
  }
  return 0;
}
