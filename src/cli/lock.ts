import { resolve } from 'node:path';
import { fail } from '../errors.js';
import { lockDebian, prepareDebian } from '../sources/debian/index.js';
import { formatLock } from '../sources/debian/lock.js';
import { loadSpec } from '../spec/load.js';
import { targetArch } from '../provision/arch.js';
import { writeAtomically } from '../util/atomic.js';
import { parse, UsageError } from './args.js';
import { lockAlpine } from './lock-alpine.js';
import { ProgressLine } from './progress.js';

export const LOCK_USAGE = `Usage: rootforge lock [SPEC] [-o LOCKFILE] [--json]

Resolves the package set of a spec and writes a lock file that \`rootforge build\` then follows
exactly (or fails naming what the repository no longer has):
- from: debian:SUITE — every package with its exact version, architecture and SHA-256 from the
  Packages index, and the Release date (SOURCE_DATE_EPOCH defaults to it);
- Alpine packages (from: alpine:BRANCH, or packages/profile on another base) — the minirootfs
  SHA-256 and each package's version, architecture and apk checksum.

Options:
  -o, --output FILE   the lock (default: the spec's lock:, else <spec name>.lock.json beside it)
  --cache-dir DIR     the download cache (Alpine)
  --quiet             no progress or summary
  --json              print the lock on stdout as well`;

export async function lockCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' }, 'cache-dir': { type: 'string' }, quiet: { type: 'boolean', short: 'q' }, json: { type: 'boolean' } } as const, LOCK_USAGE);
  if (values.help) {
    process.stdout.write(LOCK_USAGE + '\n');
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`expected at most one spec\n\n${LOCK_USAGE}`);
  const specPath = positionals[0] ?? 'rootforge.yaml';
  const spec = await loadSpec(specPath);
  if (spec.alpine) return lockAlpine(spec, specPath, values);
  if (!spec.debian) fail('SPEC_INVALID', `lock ${specPath}`, 'only package sets have a lock (from: debian:SUITE, or Alpine packages)', spec.from);
  const out = values.output ? resolve(values.output) : spec.lockPath;
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  if (epoch && !/^\d+$/.test(epoch)) fail('OPTION_INVALID', 'use SOURCE_DATE_EPOCH', 'not a whole number of seconds', epoch);
  // Like build: the spec's architecture, else its platform's, else the host's.
  const debian = spec.debian.architecture === undefined && spec.platform ? { ...spec.debian, architecture: targetArch(spec) } : spec.debian;
  const plan = await prepareDebian(debian, { lockPath: out, lockRequired: false, useLock: false, epoch: epoch ? Number(epoch) : undefined, strip: spec.strip });
  const progress = new ProgressLine(!values.quiet && process.stderr.isTTY === true);
  const lock = await lockDebian(plan, (phase) => {
    if (progress.enabled) progress.phase(phase);
    else if (!values.quiet) process.stderr.write(`${phase}\n`);
  });
  progress.done();
  const text = formatLock(lock);
  await writeAtomically(out, (fh) => fh.writeFile(text));
  if (values.json) process.stdout.write(text);
  if (!values.quiet) {
    const s = lock.source;
    process.stderr.write(`${out}: ${lock.packages.length} packages, debian:${s.suite}${s.codename && s.codename !== s.suite ? ` (${s.codename})` : ''} ${s.architecture}, date ${new Date(s.date * 1000).toISOString()}\n`);
  }
  return 0;
}
