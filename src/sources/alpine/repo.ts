/**
 * Repositories as apk reads them: a base URL (http/https) or a local directory, each holding
 * `<arch>/APKINDEX.tar.gz` and `<arch>/<name>-<version>.apk`. Downloads are bounded in time and
 * retried once; every byte is checked later (signature, identity, datahash), never trusted here.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../../errors.js';

export const CDN = 'https://dl-cdn.alpinelinux.org/alpine';

export function isUrl(repo: string): boolean {
  return /^https?:\/\//.test(repo);
}

export async function fetchRepoFile(repo: string, arch: string, file: string, timeoutMs = 120_000): Promise<Buffer> {
  if (!isUrl(repo)) {
    const path = join(repo, arch, file);
    try {
      return await readFile(path);
    } catch (e) {
      return fail('APK_FETCH_FAILED', `read ${path}`, (e as NodeJS.ErrnoException).code ?? String(e), path, e);
    }
  }
  return fetchUrl(`${repo.replace(/\/+$/, '')}/${arch}/${file}`, timeoutMs);
}

export async function fetchUrl(url: string, timeoutMs = 120_000): Promise<Buffer> {
  let last: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      if (res.status === 404) fail('APK_FETCH_FAILED', `download ${url}`, 'not found (404)', url);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return Buffer.from(await res.arrayBuffer());
    } catch (e) {
      if ((e as { code?: string }).code === 'APK_FETCH_FAILED') throw e;
      last = e;
    }
  }
  return fail('APK_FETCH_FAILED', `download ${url}`, (last as Error)?.message ?? String(last), url, last);
}

/**
 * A package from an http(s) repository through the cache (<cacheDir>/apk/<identity>.apk): the
 * name is the identity the signed index gave, and openPackage checks it again on every use, so
 * a damaged or planted cache file fails like a tampered download. Local repositories are read
 * directly.
 */
export async function fetchPackageCached(
  repo: string,
  arch: string,
  file: string,
  identity: string,
  cacheDir: string | undefined,
  check: (data: Buffer) => boolean,
): Promise<Buffer> {
  if (!cacheDir || !isUrl(repo)) return fetchRepoFile(repo, arch, file);
  const dir = join(cacheDir, 'apk');
  const path = join(dir, `${identity.replace(/\//g, '_').replace(/\+/g, '-')}.apk`);
  try {
    const cached = await readFile(path);
    // a damaged entry (a cut download of an older version, a disk error) is replaced; what is
    // downloaded instead is checked like any download
    if (check(cached)) return cached;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const data = await fetchRepoFile(repo, arch, file);
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.floor(performance.now())}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
  return data;
}
