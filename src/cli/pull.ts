import { defaultCacheDir } from '../util/cache-dir.js';
import { formatReference, parseDockerReference, pullImage } from '../oci/registry.js';
import { formatBytes } from '../util/size.js';
import { imageOptions, parse, UsageError } from './args.js';
import { LIMIT_FLAGS, LIMIT_USAGE, limitOptions } from './limits.js';
import { ProgressLine } from './progress.js';

export const PULL_USAGE = `Usage: rootforge pull [docker://][HOST/]REPO[:TAG|@DIGEST] [options]

Downloads an image's manifest, config and layers into the blob cache (nothing is converted);
blobs already there are not fetched again, and an interrupted download resumes.

Options:
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
  const image = await pullImage(ref, {
    cacheDir: opts.cacheDir ?? defaultCacheDir(),
    ...(opts.platform ? { platform: opts.platform } : {}),
    ...(opts.creds ? { creds: opts.creds } : {}),
    ...(opts.tlsVerify !== undefined ? { tlsVerify: opts.tlsVerify } : {}),
    ...limitOptions(values),
    onProgress: (p) => progress.update(p.done, p.total),
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
