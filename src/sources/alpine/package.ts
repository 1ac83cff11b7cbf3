/**
 * Reading one .apk (v2) the way apk-tools checks it when installing from a repository:
 *
 *   [ signature member ][ control member: .PKGINFO, .pre-install … ][ data member(s) ]
 *                        ^ SHA-1 of these compressed bytes = index C:   ^ SHA-256 = datahash
 *
 * The control member's SHA-1 must equal the identity the signed index gave (Q1+base64), the
 * data members' SHA-256 must equal .PKGINFO's `datahash`, and (while the data is extracted)
 * every file's SHA-1 must equal its APK-TOOLS.checksum.SHA1 PAX record. A signature member
 * signed by a trusted key is checked too; the index already vouches for the control stream.
 */
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { fail, RootforgeError } from '../../errors.js';
import { readMember } from './gzip.js';
import { checkSignatures, signatureName, type KeyRing } from './keys.js';
import { readSmallTar, ApkTarParser, type ApkTarHandler } from './tar.js';
import { parseDeps, type Dep } from './version.js';

export const SCRIPT_NAMES = ['pre-install', 'post-install', 'pre-upgrade', 'post-upgrade', 'pre-deinstall', 'post-deinstall', 'trigger'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

export interface PkgInfo {
  /** `key = value` lines of .PKGINFO, in order (keys may repeat: depend, provides …). */
  lines: Array<[string, string]>;
  get(key: string): string | undefined;
  all(key: string): string[];
}

export interface OpenedPackage {
  identity: string;
  info: PkgInfo;
  replaces: Dep[];
  replacesPriority: number;
  triggers: string[];
  scripts: Map<ScriptName, Buffer>;
  /** The compressed data members. */
  data: Buffer;
}

export function q1(bytes: Buffer): string {
  return 'Q1' + bytes.toString('base64');
}

/** Checks a package against the identity its index gave and splits it. */
export function openPackage(buf: Buffer, expectedIdentity: string, ring: KeyRing, what: string): OpenedPackage {
  let m = readMember(buf, 0, what);
  let entries = readSmallTar(m.data, what);
  if (entries.length > 0 && entries.every((e) => e.entry.name.startsWith('.SIGN.'))) {
    const sigs = entries.map((e) => ({ name: e.entry.name, body: e.body }));
    const control = readMember(buf, m.end, what);
    // a signature by a key we trust must be right; an unknown signer is fine (the index vouches)
    if (sigs.some((s) => { const n = signatureName(s.name); return n && ring.has(n.key); })) {
      checkSignatures(ring, sigs, buf.subarray(control.start, control.end), what);
    }
    m = control;
    entries = readSmallTar(m.data, what);
  }
  const identity = q1(createHash('sha1').update(buf.subarray(m.start, m.end)).digest());
  if (identity !== expectedIdentity) {
    fail('APK_CHECKSUM_MISMATCH', `verify ${what}`, `its control stream is not the one the signed index lists (index ${expectedIdentity}, package ${identity})`, what);
  }
  const pkginfo = entries.find((e) => e.entry.name === '.PKGINFO');
  if (!pkginfo) fail('APK_BAD_PACKAGE', `read ${what}`, 'no .PKGINFO in the control stream', what);
  const info = parsePkgInfo(pkginfo.body.toString('utf8'));
  const data = buf.subarray(m.end);
  const datahash = info.get('datahash');
  if (datahash !== undefined) {
    const h = createHash('sha256').update(data).digest('hex');
    if (h !== datahash.toLowerCase()) fail('APK_CHECKSUM_MISMATCH', `verify ${what}`, `its data stream does not match datahash (expected ${datahash}, got ${h})`, what);
  }
  const scripts = new Map<ScriptName, Buffer>();
  for (const e of entries) {
    const n = e.entry.name.slice(1) as ScriptName;
    if (e.entry.name.startsWith('.') && SCRIPT_NAMES.includes(n)) scripts.set(n, e.body);
  }
  return {
    identity,
    info,
    replaces: parseDeps(info.all('replaces').join(' ')),
    replacesPriority: Number.parseInt(info.get('replaces_priority') ?? '0', 10) || 0,
    triggers: info.all('triggers').flatMap((t) => t.split(/\s+/)).filter((t) => t !== ''),
    scripts,
    data,
  };
}

export function parsePkgInfo(text: string): PkgInfo {
  const lines: Array<[string, string]> = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(' = ');
    if (i < 0) continue;
    lines.push([line.slice(0, i), line.slice(i + 3)]);
  }
  return {
    lines,
    get: (k) => lines.find((l) => l[0] === k)?.[1],
    all: (k) => lines.filter((l) => l[0] === k).map((l) => l[1]),
  };
}

/**
 * Streams the data members through a gunzip into the tar parser. `onChunk` runs after each
 * decompressed chunk so the caller can await its writer.
 */
export async function streamData(pkg: OpenedPackage, handler: ApkTarHandler, what: string, afterChunk: () => Promise<void>): Promise<void> {
  const parser = new ApkTarParser(handler, what);
  const gz = createGunzip();
  const input = pkg.data;
  // The input is in memory: hand it over whole (gunzip reads it as it is consumed) and read
  // the output as a stream, so decompressed bytes never pile up.
  gz.end(input);
  try {
    for await (const chunk of gz as AsyncIterable<Buffer>) {
      parser.write(chunk);
      await afterChunk();
    }
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('Z_')) fail('APK_BAD_PACKAGE', `read ${what}`, `corrupt data stream: ${(e as Error).message}`, what, e);
    throw e;
  } finally {
    gz.destroy();
  }
  parser.end();
}

/** The identity of a package's bytes (Q1 + SHA-1 of its control member), or null when unreadable. */
export function controlIdentity(buf: Buffer): string | null {
  try {
    let m = readMember(buf, 0, 'cached package');
    const first = readSmallTar(m.data, 'cached package');
    if (first.length > 0 && first.every((e) => e.entry.name.startsWith('.SIGN.'))) m = readMember(buf, m.end, 'cached package');
    return q1(createHash('sha1').update(buf.subarray(m.start, m.end)).digest());
  } catch (e) {
    if (e instanceof RootforgeError) return null; // not a readable package: the caller downloads it again
    throw e;
  }
}
