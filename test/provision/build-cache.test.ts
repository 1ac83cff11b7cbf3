/**
 * `rootforge build` skips an unchanged build, make-style (src/build-cache.ts): same spec, same
 * inputs and an output untouched since that build wrote it ⇒ nothing is written. Any change to
 * the spec, a file it reads, SOURCE_DATE_EPOCH or the output itself ⇒ a real build, whose image
 * equals a build without the cache. Package sets without a lock are never skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../../src/build-image.js';
import { buildKey } from '../../src/build-cache.js';
import type { DebianPlan } from '../../src/sources/debian/index.js';
import { loadSpec, resolveSpec } from '../../src/spec/load.js';
import { rootforge } from '../helpers/cli.js';
import { assertFsckClean } from '../helpers/image.js';

const work = mkdtempSync(join(tmpdir(), 'rf-build-cache-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const cacheDir = join(work, 'cache');
const AGENT = join(work, 'fake-agent');
writeFileSync(AGENT, Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(4000, 1)]));
chmodSync(AGENT, 0o755);
mkdirSync(join(work, 'files/etc'), { recursive: true });
writeFileSync(join(work, 'files/etc/motd'), 'one\n');
const yaml = join(work, 'box.yaml');
writeFileSync(yaml, `agent: ${AGENT}\nhostname: box\nfiles: files\njournal: false\noutput: box.ext4\n`);
const output = join(work, 'box.ext4');

const stamp = (p: string) => {
  const s = statSync(p, { bigint: true });
  return `${s.ino}:${s.mtimeNs}:${s.ctimeNs}`;
};

async function build(opts: { timestamp?: number; cache?: boolean } = {}) {
  return buildImage(await loadSpec(yaml), { image: { cacheDir }, ...opts });
}

test('an unchanged build is skipped and leaves the output alone; every change builds again', async () => {
  const first = await build();
  assert.equal(first.cacheHit, false);
  assertFsckClean(output);
  const bytes = readFileSync(output);
  const before = stamp(output);

  const again = await build();
  assert.equal(again.cacheHit, true);
  assert.equal(again.upToDate, true);
  assert.equal(stamp(output), before, 'the output was not written');
  assert.equal(again.uuid, first.uuid, 'the recorded result is returned');
  assert.equal(again.files, first.files);

  // a file the spec reads changed (same size, same second: the ctime still differs)
  writeFileSync(join(work, 'files/etc/motd'), 'two\n');
  const changedFile = await build();
  assert.equal(changedFile.cacheHit, false, 'a changed files: entry rebuilds');
  assert.notEqual(changedFile.uuid, first.uuid);
  assert.equal(readFileSync(output).includes(Buffer.from('two\n')), true);

  // the spec changed
  writeFileSync(yaml, `agent: ${AGENT}\nhostname: box2\nfiles: files\njournal: false\noutput: box.ext4\n`);
  assert.equal((await build()).cacheHit, false, 'a changed spec rebuilds');
  assert.equal((await build()).cacheHit, true);

  // SOURCE_DATE_EPOCH changed
  assert.equal((await build({ timestamp: 1_700_000_000 })).cacheHit, false);
  assert.equal((await build({ timestamp: 1_700_000_000 })).cacheHit, true);

  // the output was changed behind our back: built again, and exactly what a cacheless build gives
  writeFileSync(output, 'not an image');
  const repaired = await build({ timestamp: 1_700_000_000 });
  assert.equal(repaired.cacheHit, false);
  const viaCache = readFileSync(output);
  const fresh = await build({ timestamp: 1_700_000_000, cache: false });
  assert.equal(fresh.cacheHit, undefined, 'cache: false neither looks up nor records');
  assert.ok(readFileSync(output).equals(viaCache));
  assert.ok(!viaCache.equals(bytes));

  // an output deleted: built again
  rmSync(output);
  assert.equal((await build({ timestamp: 1_700_000_000 })).cacheHit, false);
  assertFsckClean(output);
});

test('CLI: a second build says up to date; --no-cache builds; cache prune forgets the records', () => {
  const spec = join(work, 'cli.yaml');
  writeFileSync(spec, `agent: ${AGENT}\nhostname: cli\njournal: false\n`);
  const out = join(work, 'cli.ext4');
  const run = (...extra: string[]) => rootforge(['build', spec, '-o', out, '--cache-dir', cacheDir, ...extra]);
  const a = run();
  assert.equal(a.code, 0, a.stderr);
  assert.doesNotMatch(a.stderr, /up to date/);
  const st = stamp(out);
  const b = run();
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /up to date/);
  assert.equal(stamp(out), st);
  const json = run('--json', '-q');
  assert.equal((JSON.parse(json.stdout.toString()) as { cacheHit: boolean }).cacheHit, true);
  const c = run('--no-cache');
  assert.equal(c.code, 0, c.stderr);
  assert.doesNotMatch(c.stderr, /up to date/);
  assert.notEqual(stamp(out), st, '--no-cache wrote the image');
  assert.ok(readdirSync(join(cacheDir, 'builds')).length > 0);
  const prune = rootforge(['cache', 'prune', '--images-only', '--cache-dir', cacheDir]);
  assert.equal(prune.code, 0, prune.stderr);
  assert.deepEqual(readdirSync(join(cacheDir, 'builds')), []);
  assert.doesNotMatch(run().stderr, /up to date/, 'with its record gone the build runs again');
});

test('an input given through a symlink: a change to what it points to builds again', async () => {
  const real = join(work, 'agent-v1');
  writeFileSync(real, Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(3000, 2)]));
  chmodSync(real, 0o755);
  const link = join(work, 'agent-link');
  symlinkSync(real, link);
  const spec = join(work, 'link.yaml');
  writeFileSync(spec, `agent: agent-link\nhostname: link\njournal: false\noutput: link.ext4\n`);
  const build = async () => buildImage(await loadSpec(spec), { image: { cacheDir } });
  assert.equal((await build()).cacheHit, false);
  assert.equal((await build()).cacheHit, true);
  writeFileSync(real, Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(3000, 3)])); // the link itself is unchanged
  assert.equal((await build()).cacheHit, false, 'the target changed: built again');
  assert.ok(readFileSync(join(work, 'link.ext4')).includes(Buffer.alloc(3000, 3)), 'with the new agent');
});

test('a package set without a lock is never skipped, and says why', async () => {
  const spec = resolveSpec({ agent: AGENT }, work, 'deb');
  const plan = { lock: undefined, lockPath: undefined } as unknown as DebianPlan;
  const k = await buildKey({ spec, timestamp: undefined, src: null, image: null, debian: plan, alpine: undefined });
  assert.equal(k.key, undefined);
  assert.match(k.reason ?? '', /no lock .*rootforge lock/);
  const locked = await buildKey({ spec, timestamp: undefined, src: null, image: null, debian: null, alpine: undefined });
  assert.match(locked.key ?? '', /^[0-9a-f]{64}$/);
});

test('a file under a directory whose name is not UTF-8: a change to it builds again', async () => {
  const dir = join(work, 'raw');
  const odd = Buffer.concat([Buffer.from(`${dir}/files/caf`), Buffer.from([0xe9])]);
  mkdirSync(odd, { recursive: true });
  const inside = Buffer.concat([odd, Buffer.from('/config')]);
  writeFileSync(inside, 'one\n');
  const spec = join(dir, 'raw.yaml');
  writeFileSync(spec, `agent: ${AGENT}\nhostname: raw\nfiles: files\njournal: false\noutput: raw.ext4\n`);
  const build = async () => buildImage(await loadSpec(spec), { image: { cacheDir } });
  assert.equal((await build()).cacheHit, false);
  assert.equal((await build()).cacheHit, true);
  writeFileSync(inside, 'two\n'); // same size; the directory itself is unchanged
  assert.equal((await build()).cacheHit, false, 'the file under the non-UTF-8 name was checked');
  assert.ok(readFileSync(join(dir, 'raw.ext4')).includes(Buffer.from('two\n')));
});

test("a locked Debian build's key covers mmdebstrap's mode and the mmdebstrap program", async () => {
  const spec = resolveSpec({ agent: AGENT }, work, 'deb-locked');
  const program = join(work, 'fake-mmdebstrap');
  const lockPath = join(work, 'deb.lock.json');
  writeFileSync(program, '#!/usr/bin/perl\n# 1.3.5\n');
  writeFileSync(lockPath, '{}\n');
  const plan = (mode: string) =>
    ({ lock: {}, lockPath, program, mode, options: { repositories: [] }, architecture: 'amd64', epoch: 0, strip: [] }) as unknown as DebianPlan;
  const key = async (mode: string) => (await buildKey({ spec, timestamp: undefined, src: null, image: null, debian: plan(mode), alpine: undefined })).key;
  const root = await key('root');
  assert.match(root ?? '', /^[0-9a-f]{64}$/);
  assert.equal(await key('root'), root, 'stable');
  assert.notEqual(await key('unshare'), root, 'another mode, another key');
  writeFileSync(program, '#!/usr/bin/perl\n# 1.4.0\n'); // a host upgrade
  assert.notEqual(await key('root'), root, 'another mmdebstrap, another key');
});
