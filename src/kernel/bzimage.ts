/**
 * The uncompressed vmlinux out of an x86 bzImage (/boot/vmlinuz-*), which is what Firecracker
 * needs and what QEMU boots fastest (directly, through the PVH note).
 *
 * A bzImage is the real-mode setup code followed by a self-decompressing stub whose payload is
 * the compressed vmlinux (plus its relocation table). The boot protocol header
 * (Documentation/arch/x86/boot.rst) says where the payload is:
 *
 *   0x1f1 1  setup_sects     512-byte setup sectors after the boot sector (0 means 4)
 *   0x202 4  header          "HdrS"
 *   0x206 2  version         boot protocol, ≥ 0x0208 for payload_offset/length
 *   0x20e 2  kernel_version  offset − 0x200 of the version string ("6.1.0-… (…) #1 SMP …")
 *   0x248 4  payload_offset  from the start of the protected-mode code
 *   0x24c 4  payload_length
 *
 *   file: [boot sector + setup: (setup_sects + 1) × 512][protected-mode code ... payload ...]
 *   payload: compressed(vmlinux.bin + relocs) then u32 LE uncompressed size (mkpiggy's input)
 *
 * The payload format is found from its magic (gzip, xz, lzma, zstd, lz4 legacy), decompressed,
 * and checked to be an ELF. The trailing size is the decompressor's expected output size.
 */
import { fail } from '../errors.js';
import { decompressBuffer, detectCompression, type Compression } from './kernel-decompress.js';
import { isElf } from './kernel-elf.js';

export interface BzImageHeader {
  setupSects: number;
  /** Boot protocol version, e.g. "2.15". */
  protocol: string;
  /** The version string the kernel embeds, when present. */
  version?: string;
  /** Where the payload starts in the file, and its length (with the trailing size). */
  payloadStart: number;
  payloadLength: number;
  compression: Compression;
}

export function isBzImage(b: Uint8Array): boolean {
  return b.length >= 0x250 && b[0x202] === 0x48 && b[0x203] === 0x64 && b[0x204] === 0x72 && b[0x205] === 0x53 && b[0x1fe] === 0x55 && b[0x1ff] === 0xaa;
}

export function parseBzImage(b: Buffer): BzImageHeader {
  const what = 'read bzImage';
  if (!isBzImage(b)) fail('KERNEL_BAD_IMAGE', what, 'no boot sector signature and "HdrS" header');
  const version = b.readUInt16LE(0x206);
  if (version < 0x0208) fail('KERNEL_BAD_IMAGE', what, 'boot protocol older than 2.08 has no payload fields', `${version >> 8}.${version & 0xff}`);
  const setupSects = b[0x1f1] === 0 ? 4 : b[0x1f1]!;
  const pmStart = (setupSects + 1) * 512;
  const payloadOffset = b.readUInt32LE(0x248);
  const payloadLength = b.readUInt32LE(0x24c);
  const payloadStart = pmStart + payloadOffset;
  if (payloadLength < 8 || payloadStart + payloadLength > b.length) {
    fail('KERNEL_BAD_IMAGE', what, 'payload outside the file (truncated?)', `${payloadStart}+${payloadLength} > ${b.length}`);
  }
  const header: BzImageHeader = {
    setupSects,
    protocol: `${version >> 8}.${version & 0xff}`,
    payloadStart,
    payloadLength,
    compression: detectCompression(b.subarray(payloadStart, payloadStart + 16)),
  };
  const kv = b.readUInt16LE(0x20e);
  if (kv !== 0 && kv + 0x200 < pmStart) {
    const at = kv + 0x200;
    const end = b.indexOf(0, at);
    if (end > at && end - at < 512) header.version = b.toString('latin1', at, end);
  }
  return header;
}

export interface ExtractedVmlinux {
  header: BzImageHeader;
  /** The uncompressed kernel: an ELF (with the relocation table the stub appends after it). */
  vmlinux: Buffer;
}

/** Extracts and decompresses the payload of a bzImage. */
export async function extractVmlinux(bzImage: Buffer): Promise<ExtractedVmlinux> {
  const header = parseBzImage(bzImage);
  const what = `decompress the bzImage payload (${header.compression})`;
  if (header.compression === 'none') fail('KERNEL_BAD_IMAGE', 'read bzImage', 'the payload has no known compression magic', `offset ${header.payloadStart}`);
  const end = header.payloadStart + header.payloadLength;
  const expected = bzImage.readUInt32LE(end - 4);
  const vmlinux = await decompressBuffer(header.compression, bzImage.subarray(header.payloadStart, end - 4), what, expected);
  if (!isElf(vmlinux)) fail('KERNEL_BAD_IMAGE', 'extract vmlinux from bzImage', 'the decompressed payload is not an ELF file');
  return { header, vmlinux };
}

/**
 * The release ("6.1.0-56-cloud-amd64") from a bzImage version string
 * ("6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian …").
 */
export function releaseOf(versionString: string | undefined): string | undefined {
  if (versionString === undefined) return undefined;
  const first = versionString.split(' ')[0];
  return first === undefined || first === '' ? undefined : first;
}
