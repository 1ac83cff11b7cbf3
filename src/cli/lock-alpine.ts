/**
 * `rootforge lock [SPEC]` for Alpine specs: resolves the spec afresh (ignoring an existing lock),
 * and writes <spec name>.lock.json beside it: the minirootfs (URL + SHA-256) and every package
 * installed (name, version, architecture, apk checksum, repository). `build` then installs exactly
 * that, or fails. The image built to find out is thrown away.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../build.js';
import { fail } from '../errors.js';
import { writeLock } from '../sources/alpine/lock.js';
import { loadSpec } from '../spec/load.js';
import { imageOptions, parse, UsageError } from './args.js';

export const LOCK_USAGE = `Usage: rootforge lock [SPEC] [-o LOCKFILE] [--cache-dir DIR] [--json]

Pins what an Alpine spec installs (from: alpine:BRANCH, packages, profile): writes
<spec name>.lock.json beside the spec with the minirootfs SHA-256 and each package's version and
checksum. rootforge build uses it when present.`;

export async function lockAlpineCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' }, 'cache-dir': { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' } } as const, LOCK_USAGE);
  if (values.help) {
    process.stdout.write(LOCK_USAGE + '\n');
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`expected at most one spec\n\n${LOCK_USAGE}`);
  const specPath = positionals[0] ?? 'rootforge.yaml';
  const spec = await loadSpec(specPath);
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
