/**
 * `rootforge verify` as a command: human output, --json, exit codes 0/1/2. Runs the command
 * module in a child process, with the error handling the CLI's main applies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { skipOrFail } from '../helpers/fixtures.js';
import { buildImage, goodTree, hostLib, hostUsable, realDir } from './helpers.js';

const COMMAND = new URL('../../src/cli/verify.js', import.meta.url).href;
const ARGS = new URL('../../src/cli/args.js', import.meta.url).href;
const ERRORS = new URL('../../src/errors.js', import.meta.url).href;
const CHILD = `
const { verifyCommand } = await import(${JSON.stringify(COMMAND)});
const { UsageError } = await import(${JSON.stringify(ARGS)});
const { isRootforgeError } = await import(${JSON.stringify(ERRORS)});
try { process.exitCode = await verifyCommand(process.argv.slice(1)); }
catch (e) {
  if (e instanceof UsageError) { process.stderr.write('rootforge verify: ' + e.message + '\\n'); process.exitCode = 2; }
  else if (isRootforgeError(e)) { process.stderr.write('rootforge: ' + e.message + ' [' + e.code + ']\\n'); process.exitCode = 1; }
  else throw e;
}`;

function verify(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, '--', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const SKIP = hostUsable();

test('a clean image: one line per check, OK summary, exit 0; --json is the report', async (t) => {
  if (SKIP) return skipOrFail(t, SKIP);
  const img = await buildImage(t, goodTree(), 'cli-good');
  const r = verify([img]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  for (const id of ['fsck', 'config', 'dirs', 'tmp-mode', 'init', 'agent', 'elf-deps', 'elf-arch']) {
    assert.ok(lines.some((l) => new RegExp(`^✓ ${id}\\s`).test(l)), `${id} in:\n${r.stdout}`);
  }
  assert.match(lines[lines.length - 1]!, /^OK: .*cli-good\.ext4 — 8 checks; x86_64 \(amd64\) \(binaries\); \d+ programs, \d+ libraries; \d+\.\d\d s$/);
  const j = verify([img, '--json']);
  assert.equal(j.code, 0);
  const report = JSON.parse(j.stdout);
  assert.equal(report.ok, true);
  assert.equal(report.checks.length, 8);
});

test('a failing image: ✗ line with the findings (capped), FAILED summary, exit 1; --json has them all', async (t) => {
  if (SKIP) return skipOrFail(t, SKIP);
  const tree = goodTree();
  tree.remove(hostLib('/bin/ls', 'libselinux.so.1'));
  const truncated = readFileSync('/bin/ls').subarray(0, 3000);
  for (let i = 0; i < 12; i++) tree.file(`${realDir('/bin')}/broken-${String(i).padStart(2, '0')}`, truncated, 0o755);
  tree.dir('/tmp', 0o700);
  const img = await buildImage(t, tree, 'cli-bad');
  const r = verify([img]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^✗ elf-deps  13 problems in 13 files/m);
  assert.match(r.stdout, /^! tmp-mode  \/tmp is 0700, expected 1777/m);
  assert.match(r.stdout, /^ {12}\/.*bin\/broken-00: Cannot read ELF: /m);
  assert.match(r.stdout, /^ {12}… and 3 more \(--json lists all\)$/m);
  assert.match(r.stdout, /\nFAILED: .*1 failed, 1 warning/);
  const j = verify([img, '--json']);
  assert.equal(j.code, 1);
  const report = JSON.parse(j.stdout);
  const deps = report.checks.find((c: { id: string }) => c.id === 'elf-deps');
  assert.equal(deps.details.problems.length, 13);
  assert.ok(deps.details.problems.some((p: { name: string; file: string }) => p.name === 'libselinux.so.1' && /\/ls$/.test(p.file)));
});

test('warnings alone exit 0', async (t) => {
  if (SKIP) return skipOrFail(t, SKIP);
  const img = await buildImage(t, goodTree().dir('/tmp', 0o755), 'cli-warn');
  const r = verify([img]);
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /^! tmp-mode/m);
  assert.match(r.stdout, /\nOK: .*1 warning/);
});

test('usage errors exit 2; --help exits 0; a missing image exits 1', () => {
  for (const args of [[], ['a.img', 'b.img'], ['--arch', 'sparc', 'x.img'], ['--bogus', 'x.img'], ['--init', '', 'x.img']]) {
    const r = verify(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^rootforge verify: /);
  }
  const h = verify(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^Usage: rootforge verify <image> \[--json\] \[--init PATH\] \[--agent PATH\] \[--arch ARCH\]/);
  const m = verify(['/nonexistent/image.ext4']);
  assert.equal(m.code, 1);
  assert.match(m.stderr, /^rootforge: Cannot open image \/nonexistent\/image\.ext4: ENOENT .*\[EXT4_NOT_FOUND\]/);
});
