/**
 * `rootforge lock [SPEC]` for Alpine specs: resolves the spec afresh (ignoring an existing lock),
 * and writes <spec name>.lock.json beside it: the minirootfs (URL + SHA-256) and every package
 * installed (name, version, architecture, apk checksum, repository). `build` then installs exactly
 * that, or fails. The image built to find out is thrown away.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../build-image.js';
import { fail } from '../errors.js';
import { writeLock } from '../sources/alpine/lock.js';
import type { ResolvedSpec } from '../spec/load.js';
import { imageOptions } from './args.js';

/** Called by `rootforge lock` (cli/lock.ts) for a spec that installs Alpine packages. */
export async function lockAlpine(spec: ResolvedSpec, specPath: string, values: { output?: string | undefined; 'cache-dir'?: string | undefined; json?: boolean | undefined; quiet?: boolean | undefined }): Promise<number> {
  if (!spec.alpine) fail('SPEC_INVALID', `lock ${specPath}`, 'the spec installs no Alpine packages (no alpine: base, packages or profile)', specPath);
  spec.alpine.useLock = false;
  const dir = await mkdtemp(join(tmpdir(), 'rootforge-lock-'));
  spec.output = join(dir, 'image.ext4');
  const img = imageOptions(values);
  try {
    const epoch = process.env['SOURCE_DATE_EPOCH'];
    const r = await buildImage(spec, { timestamp: epoch && /^\d+$/.test(epoch) ? Number(epoch) : 0, image: img.cacheDir ? { cacheDir: img.cacheDir } : {} });
    const lock = r.alpine!.lock;
    const out = values.output ?? spec.alpine.lock;
    await writeLock(out, lock);
    if (values.json) process.stdout.write(JSON.stringify(lock, null, 2) + '\n');
    else if (!values.quiet) process.stderr.write(`${out}: ${lock.packages.length} packages${lock.source.minirootfs ? `, minirootfs sha256:${lock.source.minirootfs.sha256.slice(0, 12)}…` : ''}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return 0;
}
