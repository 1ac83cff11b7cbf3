import { fail, isRootforgeError } from '../errors.js';
import { Ext4Image } from '../ext4/reader.js';
import { IMAGE_JSON_PATH, type ImageJson } from '../oci/image-json.js';
import { formatUuid } from '../ext4/identity.js';
import { formatBytes } from '../util/size.js';
import { imageFs, readPackageDb } from '../packages/read.js';
import type { PackageInfo, PackageManager } from '../packages/types.js';
import { writeReport } from '../report/write.js';
import { imageOptions, parse, UsageError } from './args.js';
import { isInstanceDir } from '../instance/manage.js';
import { inspectInstance } from './instance.js';
import { inspectRemote } from '../distribution/pull.js';
import { defaultCacheDir } from '../util/cache-dir.js';
import { parseDockerReference } from '../oci/reference.js';

export const INSPECT_USAGE = `Usage: rootforge inspect <image>|<instance dir> [--json] [--html FILE]
       rootforge inspect docker://HOST/REPO[:TAG|@DIGEST] [--creds USER:PASS] [--tls-verify=false] [--json]

Shows an image's label, UUID, size, features, block and inode usage, journal and installed
packages (from its dpkg or apk database); for an instance directory its base, disk size, real
disk use and config. For a docker:// reference: its manifest digest, type and annotations (a
rootforge artifact's size, image digest, UUID, architecture, …), read from the manifest alone:
no chunk is downloaded.
  --json        everything as JSON, every package included
  --html FILE   also write a self-contained HTML report: treemaps by directory and by package,
                the largest files, what strip: would save`;

export interface ImageInfo {
  label: string;
  uuid: string;
  sizeBytes: number;
  blockSize: number;
  blocks: number;
  freeBlocks: number;
  inodes: number;
  freeInodes: number;
  usedInodes: number;
  directories: number;
  groups: number;
  features: string[];
  journalBytes: number;
  readOnly: boolean;
  /** From /etc/rootforge/image.json, for images built from OCI/Docker images. */
  image?: ImageJson;
  /** From the image's dpkg or apk database, sorted by name. */
  packages?: { manager: PackageManager; count: number; list: Omit<PackageInfo, 'files'>[] };
}

export async function readImageInfo(path: string): Promise<ImageInfo> {
  const img = await Ext4Image.open(path);
  try {
    const sb = img.sb;
    let journalBytes = 0;
    if (sb.journalInum) journalBytes = (await img.stat(sb.journalInum)).size;
    const directories = img.groups.reduce((n, g) => n + g.usedDirs, 0);
    const image = await readImageJson(img);
    const db = await readPackageDb(imageFs(img));
    return {
      ...(image ? { image } : {}),
      ...(db ? { packages: { manager: db.manager, count: db.packages.length, list: db.packages } } : {}),
      label: sb.volumeName.toString('utf8').replace(/\0+$/, ''),
      uuid: formatUuid(sb.uuid),
      sizeBytes: sb.blocksCount * img.blockSize,
      blockSize: img.blockSize,
      blocks: sb.blocksCount,
      freeBlocks: sb.freeBlocksCount,
      inodes: sb.inodesCount,
      freeInodes: sb.freeInodesCount,
      usedInodes: sb.inodesCount - sb.freeInodesCount,
      directories,
      groups: img.groups.length,
      features: img.features,
      journalBytes,
      readOnly: !img.features.includes('has_journal'),
    };
  } finally {
    await img.close();
  }
}

async function readImageJson(img: Ext4Image): Promise<ImageJson | undefined> {
  let st;
  try {
    st = await img.resolve(IMAGE_JSON_PATH);
  } catch (e) {
    if (isRootforgeError(e, 'EXT4_NOT_FOUND')) return undefined; // not built from an image
    throw e;
  }
  if (st.kind !== 'file' || st.size > 1 << 20) return undefined;
  try {
    return JSON.parse((await img.readData(st)).toString('utf8')) as ImageJson;
  } catch (e) {
    return fail('EXT4_BAD_IMAGE', `read /${IMAGE_JSON_PATH}`, 'not valid JSON', (e as Error).message, e);
  }
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, html: { type: 'string' }, creds: { type: 'string' }, 'tls-verify': { type: 'string' } } as const, INSPECT_USAGE);
  if (values.help) {
    process.stdout.write(INSPECT_USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one image\n\n${INSPECT_USAGE}`);
  if (positionals[0]!.startsWith('docker://')) return inspectRemoteCommand(positionals[0]!, values);
  if (isInstanceDir(positionals[0]!)) return inspectInstance(positionals[0]!, values.json === true);
  const info = await readImageInfo(positionals[0]!);
  if (values.html !== undefined) {
    await writeReport(positionals[0]!, values.html);
    if (!values.json) process.stderr.write(`wrote ${values.html}\n`);
  }
  if (values.json) {
    process.stdout.write(JSON.stringify(info, null, 2) + '\n');
    return 0;
  }
  const lines = [
    ['Label', info.label || '(none)'],
    ['UUID', info.uuid],
    ['Size', `${formatBytes(info.sizeBytes)} (${info.blocks} blocks of ${info.blockSize} bytes, ${info.groups} groups)`],
    ['Used', `${formatBytes((info.blocks - info.freeBlocks) * info.blockSize)}, ${formatBytes(info.freeBlocks * info.blockSize)} free`],
    ['Inodes', `${info.usedInodes} used (${info.directories} directories), ${info.freeInodes} free`],
    ['Journal', info.journalBytes ? formatBytes(info.journalBytes) : 'none (read-only image)'],
    ['Features', info.features.join(' ')],
  ];
  const im = info.image;
  if (im) {
    lines.push(
      ['Image', im.source],
      ['Digest', im.manifestDigest],
      ['Platform', [im.os, im.architecture].filter(Boolean).join('/') || 'unknown'],
      ['Entrypoint', JSON.stringify(im.Entrypoint)],
      ['Cmd', JSON.stringify(im.Cmd)],
      ['WorkingDir', im.WorkingDir ?? '(none)'],
      ['User', im.User ?? '(none)'],
      ['Env', im.Env.join(' ')],
    );
    if (Object.keys(im.Labels).length > 0) lines.push(['Labels', Object.entries(im.Labels).map(([k, v]) => `${k}=${v}`).join(' ')]);
  }
  if (info.packages) {
    const biggest = [...info.packages.list].sort((a, b) => b.installedSize - a.installedSize || (a.name < b.name ? -1 : 1)).slice(0, 10);
    lines.push(
      ['Packages', `${info.packages.count} (${info.packages.manager})`],
      ['Biggest', biggest.map((p) => `${p.name} ${formatBytes(p.installedSize)}`).join(', ')],
    );
  }
  for (const [k, v] of lines) process.stdout.write(`${(k + ':').padEnd(11)} ${v}\n`);
  return 0;
}

async function inspectRemoteCommand(target: string, values: { json?: boolean; creds?: string; 'tls-verify'?: string }): Promise<number> {
  const opts = imageOptions(values);
  const info = await inspectRemote(parseDockerReference(target.slice('docker://'.length)), {
    cacheDir: defaultCacheDir(),
    ...(opts.creds ? { creds: opts.creds } : {}),
    ...(opts.tlsVerify !== undefined ? { tlsVerify: opts.tlsVerify } : {}),
  });
  if (values.json) {
    process.stdout.write(JSON.stringify(info, null, 2) + '\n');
    return 0;
  }
  const lines: [string, string][] = [
    ['Reference', info.reference],
    ['Digest', info.manifestDigest],
    ['Type', info.rootforge ? `rootforge ext4 artifact (${info.artifactType ?? info.mediaType})` : (info.artifactType ?? info.mediaType)],
  ];
  if (info.blobs !== undefined) lines.push([info.rootforge ? 'Packs' : 'Layers', `${info.blobs} blobs, ${formatBytes(info.blobBytes ?? 0)}`]);
  if (info.platforms) lines.push(['Platforms', info.platforms.join(' ')]);
  for (const [k, v] of Object.entries(info.annotations).sort(([a], [b]) => (a < b ? -1 : 1))) lines.push([k, v]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  for (const [k, v] of lines) process.stdout.write(`${(k + ':').padEnd(width)} ${v}\n`);
  return 0;
}
