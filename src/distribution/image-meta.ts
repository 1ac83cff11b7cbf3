/**
 * What an ext4 image says about itself, for the artifact's annotations: UUID, label,
 * architecture (from /etc/rootforge/image.json, else the ELF header of the agent or /bin/sh),
 * and the digest of /etc/rootforge/packages.json when the image has one.
 */
import { isRootforgeError } from '../errors.js';
import { formatUuid } from '../ext4/writer.js';
import { Ext4Image } from '../ext4/reader.js';
import { sha256Digest } from '../oci/digest.js';
import { IMAGE_JSON_PATH } from '../oci/image-json.js';
import { archOf } from '../verify/arch.js';

export interface ImageMeta {
  uuid: string;
  label: string;
  architecture?: string;
  packagesDigest?: string;
}

const PACKAGES_JSON = 'etc/rootforge/packages.json';
const ARCH_PROBES = ['usr/sbin/rootforge-agent', 'sbin/rootforge-agent', 'bin/sh', 'bin/busybox', 'usr/bin/env'];

export async function readImageMeta(path: string): Promise<ImageMeta> {
  const img = await Ext4Image.open(path);
  try {
    const meta: ImageMeta = { uuid: formatUuid(img.sb.uuid), label: img.sb.volumeName.toString('utf8').replace(/\0+$/, '') };
    const imageJson = await readSmall(img, IMAGE_JSON_PATH);
    if (imageJson !== undefined) {
      try {
        const arch = (JSON.parse(imageJson.toString('utf8')) as { architecture?: unknown }).architecture;
        if (typeof arch === 'string' && arch !== '') meta.architecture = arch;
      } catch {
        // Not JSON: `verify` reports that; here the architecture is then taken from an ELF.
      }
    }
    for (const probe of ARCH_PROBES) {
      if (meta.architecture !== undefined) break;
      const head = await readSmall(img, probe, 20);
      if (head === undefined || head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) continue;
      const data = head[5]!;
      const machine = data === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
      const a = archOf(machine, head[4]!, data);
      if (a !== undefined) meta.architecture = a.arch;
    }
    const packages = await readSmall(img, PACKAGES_JSON);
    if (packages !== undefined) meta.packagesDigest = sha256Digest(packages);
    return meta;
  } finally {
    await img.close();
  }
}

/** A file's bytes (following symlinks), its first `limit` bytes, or undefined when absent. */
async function readSmall(img: Ext4Image, path: string, limit?: number): Promise<Buffer | undefined> {
  let st;
  try {
    st = await img.resolve(path);
  } catch (e) {
    if (isRootforgeError(e, 'EXT4_NOT_FOUND')) return undefined;
    throw e;
  }
  if (st.kind !== 'file') return undefined;
  if (limit !== undefined) return img.readRange(st, 0, limit);
  if (st.size > 64 << 20) return undefined;
  return img.readData(st);
}
