/**
 * `from: alpine:BRANCH`: the branch's official minirootfs. Its name and SHA-256 come from the
 * branch's latest-releases.yaml (over HTTPS) or, when the spec has a lock, from the lock; the
 * tarball is checked against that SHA-256 and cached by it (~/.cache/rootforge/alpine/).
 * ROOTFORGE_ALPINE_MIRROR replaces https://dl-cdn.alpinelinux.org/alpine (a mirror, or a local
 * server in tests).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../../errors.js';
import { fetchUrl } from './repo.js';
import { alpineMirror } from './spec.js';

export interface MinirootfsPin {
  url: string;
  sha256: string;
}

/** Finds the minirootfs of a branch in latest-releases.yaml (a list of `- key: value` maps). */
export async function latestMinirootfs(branch: string, arch: string): Promise<MinirootfsPin> {
  const base = `${alpineMirror()}/${branch}/releases/${arch}`;
  const yaml = (await fetchUrl(`${base}/latest-releases.yaml`)).toString('utf8');
  for (const item of yaml.split(/^-/m)) {
    const field = (k: string) => new RegExp(`^\\s*${k}:\\s*(\\S+)\\s*$`, 'm').exec(item)?.[1];
    if (field('flavor') !== 'alpine-minirootfs') continue;
    const file = field('file');
    const sha256 = field('sha256');
    if (file && sha256 && /^[0-9a-f]{64}$/.test(sha256)) return { url: `${base}/${file}`, sha256 };
  }
  return fail('APK_FETCH_FAILED', `find the minirootfs of Alpine ${branch}`, 'latest-releases.yaml lists no alpine-minirootfs with a sha256', `${base}/latest-releases.yaml`);
}

/** The tarball's path in the cache, downloading and checking it when needed. */
export async function minirootfsTar(pin: MinirootfsPin, cacheDir: string): Promise<string> {
  const dir = join(cacheDir, 'alpine');
  const path = join(dir, `${pin.sha256}.tar.gz`);
  const have = await readFile(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (have && createHash('sha256').update(have).digest('hex') === pin.sha256) return path;
  const data = await fetchUrl(pin.url);
  const got = createHash('sha256').update(data).digest('hex');
  if (got !== pin.sha256) fail('APK_CHECKSUM_MISMATCH', `download ${pin.url}`, `SHA-256 ${got} is not the pinned ${pin.sha256}`, pin.url);
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
  return path;
}
