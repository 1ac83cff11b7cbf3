/**
 * APKINDEX.tar.gz: a signature member (`.SIGN.RSA*.<key>`, a tar without end blocks) and a
 * member holding DESCRIPTION and APKINDEX. The signature covers the compressed bytes of
 * everything after the first member. APKINDEX is records of `X:value` lines separated by blank
 * lines (C: identity, P: name, V: version, A: arch, S: size, I: installed size, T: description,
 * U: url, L: license, o: origin, m: maintainer, t: build time, c: commit, k: provider priority,
 * D: depends, p: provides, i: install_if).
 */
import { gunzipSync } from 'node:zlib';
import { fail } from '../../errors.js';
import { checkSignatures, type KeyRing } from './keys.js';
import { readMember } from './gzip.js';
import { readSmallTar } from './tar.js';
import { parseDeps, validVersion, type Dep } from './version.js';

export interface IndexPackage {
  name: string;
  version: string;
  arch: string;
  /** `Q1…`: base64 SHA-1 of the package's compressed control stream. */
  checksum: string;
  size: number;
  installedSize: number;
  description: string;
  url: string;
  license: string;
  origin: string | undefined;
  maintainer: string | undefined;
  buildTime: number | undefined;
  commit: string | undefined;
  providerPriority: number;
  depends: Dep[];
  provides: Dep[];
  installIf: Dep[];
  /** The record's raw lines (kept for the installed database, in index order). */
  fields: Array<[string, string]>;
  /** Which repository it came from (index into the repository list). */
  repo: number;
}

export interface RepoIndex {
  description: string;
  packages: IndexPackage[];
  /** The key that signed it. */
  signer: string;
}

export function readIndex(buf: Buffer, ring: KeyRing, what: string, repo: number): RepoIndex {
  const first = readMember(buf, 0, what);
  const sigs = readSmallTar(first.data, what).map((e) => ({ name: e.entry.name, body: e.body }));
  if (!sigs.some((s) => s.name.startsWith('.SIGN.'))) fail('APK_UNTRUSTED', `verify ${what}`, 'the index is not signed', what);
  const signed = buf.subarray(first.end);
  const signer = checkSignatures(ring, sigs, signed, what);
  let body: Buffer;
  try {
    body = gunzipSync(signed);
  } catch (e) {
    return fail('APK_BAD_INDEX', `read ${what}`, `corrupt gzip data: ${(e as Error).message}`, what, e);
  }
  const files = readSmallTar(body, what);
  const text = files.find((f) => f.entry.name === 'APKINDEX');
  if (!text) fail('APK_BAD_INDEX', `read ${what}`, 'no APKINDEX file in the archive', what);
  const desc = files.find((f) => f.entry.name === 'DESCRIPTION')?.body.toString('utf8').trim() ?? '';
  return { description: desc, packages: parseIndexText(text.body.toString('utf8'), what, repo), signer };
}

export function parseIndexText(text: string, what: string, repo: number): IndexPackage[] {
  const out: IndexPackage[] = [];
  let fields: Array<[string, string]> = [];
  const flush = () => {
    if (fields.length === 0) return;
    out.push(toPackage(fields, what, repo));
    fields = [];
  };
  for (const line of text.split('\n')) {
    if (line === '') {
      flush();
      continue;
    }
    if (line.length < 2 || line[1] !== ':') fail('APK_BAD_INDEX', `read ${what}`, 'malformed line', line.slice(0, 80));
    fields.push([line[0]!, line.slice(2)]);
  }
  flush();
  return out;
}

export function toPackage(fields: Array<[string, string]>, what: string, repo: number): IndexPackage {
  const get = (k: string) => fields.find((f) => f[0] === k)?.[1];
  const name = get('P');
  const version = get('V');
  const checksum = get('C');
  if (!name || !version || !checksum) fail('APK_BAD_INDEX', `read ${what}`, 'a record lacks P:, V: or C:', name ?? fields.map((f) => f.join(':')).join(' '));
  if (!validVersion(version)) fail('APK_BAD_INDEX', `read ${what}`, `bad version of ${name}`, version);
  if (!/^Q1[A-Za-z0-9+/]{27}=$/.test(checksum)) fail('APK_BAD_INDEX', `read ${what}`, `bad C: checksum of ${name}`, checksum);
  const num = (k: string) => {
    const v = get(k);
    return v === undefined ? undefined : Number.parseInt(v, 10);
  };
  return {
    name,
    version,
    arch: get('A') ?? 'noarch',
    checksum,
    size: num('S') ?? 0,
    installedSize: num('I') ?? 0,
    description: get('T') ?? '',
    url: get('U') ?? '',
    license: get('L') ?? '',
    origin: get('o'),
    maintainer: get('m'),
    buildTime: num('t'),
    commit: get('c'),
    providerPriority: num('k') ?? 0,
    depends: parseDeps(get('D')),
    provides: parseDeps(get('p')),
    installIf: parseDeps(get('i')),
    fields,
    repo,
  };
}
