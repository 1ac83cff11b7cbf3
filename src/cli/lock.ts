import { resolve } from 'node:path';
import { fail } from '../errors.js';
import { lockDebian, prepareDebian } from '../sources/debian/index.js';
import { formatLock } from '../sources/debian/lock.js';
import { loadSpec } from '../spec/load.js';
import { writeAtomically } from '../util/atomic.js';
import { parse, UsageError } from './args.js';
import { ProgressLine } from './progress.js';

export const LOCK_USAGE = `Usage: rootforge lock [SPEC] [-o LOCKFILE] [--json]

Resolves the package set of a spec with a package-set base (from: debian:SUITE) against its
mirror and writes a lock file: every package with its exact version, architecture and SHA-256
from the Packages index, and the Release date. \`rootforge build\` then installs exactly those
packages (or fails naming what the mirror no longer has), with SOURCE_DATE_EPOCH defaulting to
the lock's date.

Options:
  -o, --output FILE   the lock (default: the spec's lock:, else <spec name>.lock.json beside it)
  --quiet             no progress or summary
  --json              print the lock on stdout as well`;

export async function lockCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' }, quiet: { type: 'boolean', short: 'q' }, json: { type: 'boolean' } } as const, LOCK_USAGE);
  if (values.help) {
    process.stdout.write(LOCK_USAGE + '\n');
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`expected at most one spec\n\n${LOCK_USAGE}`);
  const specPath = positionals[0] ?? 'rootforge.yaml';
  const spec = await loadSpec(specPath);
  if (!spec.debian) fail('SPEC_INVALID', `lock ${specPath}`, 'only package-set bases have a lock (from: debian:SUITE)', spec.from);
  const out = values.output ? resolve(values.output) : spec.lockPath;
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  if (epoch && !/^\d+$/.test(epoch)) fail('OPTION_INVALID', 'use SOURCE_DATE_EPOCH', 'not a whole number of seconds', epoch);
  const plan = await prepareDebian(spec.debian, { lockPath: out, lockRequired: false, useLock: false, epoch: epoch ? Number(epoch) : undefined, strip: spec.strip });
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
