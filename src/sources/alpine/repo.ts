/**
 * Repositories as apk reads them: a base URL (http/https) or a local directory, each holding
 * `<arch>/APKINDEX.tar.gz` and `<arch>/<name>-<version>.apk`. Downloads are bounded in time and
 * retried once; every byte is checked later (signature, identity, datahash), never trusted here.
 */
import { readFile } from 'node:fs/promises';
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
