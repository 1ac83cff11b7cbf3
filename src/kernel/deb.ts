/**
 * Reading Debian packages (.deb) in place: a .deb is an `ar` archive of three members,
 *
 *   "!<arch>\n"
 *   member header (60 bytes): 0x00 16 name ("debian-binary", "control.tar.xz/", …)
 *                             0x10 12 mtime  0x1c 6 uid  0x22 6 gid  0x28 8 mode (octal)
 *                             0x30 10 size (decimal)   0x3a 2 "`\n"
 *   member data, padded to an even length
 *
 *   debian-binary "2.0\n" · control.tar.{gz,xz,zst} · data.tar.{gz,xz,zst,bz2,…}
 *
 * Members are streamed from their byte range of the file through the decompressor (xz via the
 * CLI, gzip/zstd in process) into our TarParser (readTar): nothing is extracted to disk.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { fail } from '../errors.js';
import { readTar, type TarEntry } from '../tar/reader.js';
import { decompressStream, detectCompression, type Compression } from './kernel-decompress.js';

export interface ArMember {
  name: string;
  /** Offset of the member's data in the file. */
  offset: number;
  size: number;
}

const AR_MAGIC = '!<arch>\n';
const AR_HEADER = 60;

/** The members of an ar archive, from their headers (data is not read). */
export async function listArMembers(path: string): Promise<ArMember[]> {
  const what = 'read .deb';
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'KERNEL_NOT_FOUND' : 'KERNEL_BAD_DEB', what, code === 'ENOENT' ? 'no such file' : String(e), path, e);
  }
  try {
    const size = (await fh.stat()).size;
    const magic = Buffer.alloc(8);
    await fh.read(magic, 0, 8, 0);
    if (magic.toString('latin1') !== AR_MAGIC) fail('KERNEL_BAD_DEB', what, 'not an ar archive (no "!<arch>" magic)', path);
    const members: ArMember[] = [];
    let pos = 8;
    const h = Buffer.alloc(AR_HEADER);
    while (pos + AR_HEADER <= size) {
      await fh.read(h, 0, AR_HEADER, pos);
      if (h[58] !== 0x60 || h[59] !== 0x0a) fail('KERNEL_BAD_DEB', what, 'bad ar member header', `${path} at ${pos}`);
      let name = h.toString('latin1', 0, 16).trimEnd();
      if (name.endsWith('/')) name = name.slice(0, -1);
      const len = Number(h.toString('latin1', 48, 58).trim());
      if (!Number.isSafeInteger(len) || len < 0 || pos + AR_HEADER + len > size) fail('KERNEL_BAD_DEB', what, 'member runs past the end of the file (truncated?)', `${path}: ${name}`);
      let offset = pos + AR_HEADER;
      let dataSize = len;
      // BSD long names: "#1/N", the name is the first N bytes of the data
      const bsd = /^#1\/(\d+)$/.exec(name);
      if (bsd) {
        const n = Number(bsd[1]);
        const nb = Buffer.alloc(n);
        await fh.read(nb, 0, n, offset);
        name = nb.toString('latin1').replace(/\0+$/, '');
        offset += n;
        dataSize -= n;
      }
      members.push({ name, offset, size: dataSize });
      pos += AR_HEADER + len + (len & 1);
    }
    return members;
  } finally {
    await fh.close();
  }
}

/** A member's bytes, decompressed as its name says (…tar.xz/.gz/.zst, checked by magic). */
export async function memberStream(path: string, m: ArMember): Promise<{ stream: AsyncIterable<Buffer>; compression: Compression }> {
  const head = Buffer.alloc(Math.min(16, m.size));
  const fh = await open(path, 'r');
  try {
    await fh.read(head, 0, head.length, m.offset);
  } finally {
    await fh.close();
  }
  const compression = detectCompression(head);
  const raw = m.size === 0 ? emptyStream() : (createReadStream(path, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>);
  return { stream: decompressStream(compression, raw, `read ${m.name} of ${path}`), compression };
}

async function* emptyStream(): AsyncGenerator<Buffer> {}

function findMember(members: ArMember[], prefix: string, path: string): ArMember {
  const m = members.find((x) => x.name === prefix || x.name.startsWith(prefix + '.'));
  if (m === undefined) fail('KERNEL_BAD_DEB', 'read .deb', `no ${prefix} member (has ${members.map((x) => x.name).join(', ')})`, path);
  return m;
}

/** The package's control fields (deb822: "Key: value", continuation lines start with a space). */
export async function readDebControl(path: string): Promise<Record<string, string>> {
  const members = await listArMembers(path);
  const { stream } = await memberStream(path, findMember(members, 'control.tar', path));
  for await (const e of readTar(stream)) {
    if (e.type === 'file' && (e.path === './control' || e.path === 'control')) {
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(Buffer.from(c));
      return parseControl(Buffer.concat(parts).toString('utf8'));
    }
  }
  return fail('KERNEL_BAD_DEB', 'read .deb', 'control.tar has no control file', path);
}

export function parseControl(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let key: string | undefined;
  for (const line of text.split('\n')) {
    if (line === '') {
      if (Object.keys(out).length > 0) break; // first paragraph only
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && key !== undefined) {
      out[key] += '\n' + line.trim();
      continue;
    }
    const i = line.indexOf(':');
    if (i <= 0) continue;
    key = line.slice(0, i).trim();
    out[key] = line.slice(i + 1).trim();
  }
  return out;
}

/** The entries of the package's data.tar, streamed (read each body or it is skipped). */
export async function* readDebData(path: string): AsyncGenerator<TarEntry> {
  const members = await listArMembers(path);
  const { stream } = await memberStream(path, findMember(members, 'data.tar', path));
  yield* readTar(stream);
}

/** Package names from a Depends field ("a (= 1), b | c, d:any"): the first alternative of each. */
export function dependsNames(field: string | undefined): string[] {
  if (field === undefined) return [];
  return field
    .split(',')
    .map((d) => d.split('|')[0]!.trim().split(/[\s(:]/)[0]!)
    .filter((n) => n !== '');
}
