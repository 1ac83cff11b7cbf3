import { convert } from '../convert.js';
import { fail } from '../errors.js';
import { parseUuid } from '../ext4/identity.js';
import { formatBytes, parseBytes, parseSize } from '../util/size.js';
import { imageOptions, parse, parseOwner, UsageError } from './args.js';
import { LIMIT_FLAGS, LIMIT_USAGE, limitOptions, MAX_SIZE_USAGE } from './limits.js';
import { ProgressLine } from './progress.js';

export const CONVERT_USAGE = `Usage: rootforge convert <source> -o <image> [options]

Sources:
  tar:PATH                    a tar archive: plain, gzip or zstd (detected by content);
                              tar:- reads standard input
  dir:PATH                    a directory, taken as it is
  oci:PATH[:REF]              an OCI image layout; REF is a tag or a digest
  docker-archive:PATH[:REF]   \`docker save\` output; REF is a tag or @N
  docker://[HOST/]REPO[:TAG|@DIGEST]
                              an image in a registry (docker://alpine is Docker Hub's)
  PATH                        a directory or a tar archive, by what PATH is

Options:
  -o, --output FILE     image to write (replaced only when the run succeeds)
  --size SIZE           auto (default): contents + headroom; 2G: exactly that;
                        +512M: auto plus that much free space
  --read-only           no journal and no headroom (for read-only root disks)
  --label LABEL         volume label (≤ 16 bytes)
  --uuid UUID           filesystem UUID (default: derived from the contents)
  --owner UID:GID       make everything owned by UID:GID (e.g. 0:0)
  --journal-size SIZE   journal size (default 4 MiB below 256 MiB, 16 MiB below 16 GiB, else 64 MiB)
  --platform OS/ARCH    image sources: which platform of a multi-platform image
                        (default: this host's, e.g. linux/amd64)
  --creds USER:PASS     registry credentials (default: from $DOCKER_CONFIG/config.json)
  --tls-verify=false    registries: accept any TLS certificate (plain HTTP is always
                        allowed for localhost and 127.0.0.0/8)
  --cache-dir DIR       blob and image cache (default $XDG_CACHE_HOME/rootforge)
  --no-cache            image sources: do not use or fill the finished-image cache
${MAX_SIZE_USAGE}
${LIMIT_USAGE}
  --quiet               no progress or summary on stderr
  --json                print the result as JSON on stdout
  --debug               show stack traces on errors

Environment: SOURCE_DATE_EPOCH sets the superblock times and the time of implied directories.`;

export async function convertCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      output: { type: 'string', short: 'o' },
      size: { type: 'string' },
      'read-only': { type: 'boolean' },
      label: { type: 'string' },
      uuid: { type: 'string' },
      owner: { type: 'string' },
      'journal-size': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      json: { type: 'boolean' },
      platform: { type: 'string' },
      creds: { type: 'string' },
      'tls-verify': { type: 'string' },
      'cache-dir': { type: 'string' },
      'no-cache': { type: 'boolean' },
      ...LIMIT_FLAGS,
    } as const,
    CONVERT_USAGE,
  );
  if (values.help) {
    process.stdout.write(CONVERT_USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected exactly one source\n\n${CONVERT_USAGE}`);
  if (!values.output) throw new UsageError(`missing -o <image>\n\n${CONVERT_USAGE}`);
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  let timestamp = 0;
  if (epoch !== undefined && epoch !== '') {
    if (!/^\d+$/.test(epoch)) fail('OPTION_INVALID', 'use SOURCE_DATE_EPOCH', 'not a whole number of seconds', epoch);
    timestamp = Number(epoch);
  }
  const journalBytes = values['journal-size'] ? parseBytes(values['journal-size']) : undefined;
  const progress = new ProgressLine(!values.quiet && process.stderr.isTTY === true);
  const result = await convert(positionals[0]!, values.output, {
    size: parseSize(values.size ?? 'auto'),
    readOnly: values['read-only'] ?? false,
    label: values.label ?? '',
    ...(values.uuid ? { uuid: parseUuid(values.uuid) } : {}),
    ...(values.owner ? { owner: parseOwner(values.owner) } : {}),
    ...(journalBytes !== undefined ? { journalBlocks: Math.ceil(journalBytes / 4096) } : {}),
    timestamp,
    ...imageOptions(values),
    ...limitOptions(values),
    onProgress: (p) => progress.update(p.done, p.total),
    onWarning: (w) => {
      if (!values.quiet) process.stderr.write(`\r\x1b[Kwarning: ${w.message} [${w.code}]\n`);
    },
  });
  progress.done();
  if (result.cacheHit && !values.quiet) process.stderr.write(`cache hit: ${result.image?.manifestDigest} (built before with the same options${result.upToDate ? '; output already up to date, left as it is' : ''})\n`);
  if (values.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } else if (!values.quiet) {
    process.stderr.write(
      `${result.output}: ${formatBytes(result.sizeBytes)}, ${result.files} files, ${result.directories} directories, ` +
        `${formatBytes(result.freeBlocks * 4096)} and ${result.freeInodes} inodes free, UUID ${result.uuid}\n`,
    );
  }
  return 0;
}
