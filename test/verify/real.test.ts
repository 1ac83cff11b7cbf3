/**
 * verify on real root filesystems: the Alpine minirootfs (musl, busybox) for both architectures,
 * a Debian minbase from mmdebstrap, and a Debian "devbox" when one is cached. Durations are
 * reported as diagnostics (`node --test` prints them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { verifyImage } from '../../src/verify/verify.js';
import { ALPINE_X86, debianMinbase, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { ALPINE_ARM64, check, failed, scratch } from './helpers.js';

async function image(t: Parameters<typeof scratch>[0], tar: string, name: string): Promise<string> {
  const img = join(scratch(t, name), `${name}.ext4`);
  await convert(`tar:${tar}`, img);
  return img;
}

const timing = (r: Awaited<ReturnType<typeof verifyImage>>) =>
  `${r.stats.durationMs} ms: ${r.stats.filesScanned} executable files opened, ${r.stats.programs} programs, ${r.stats.libraries} libraries, ${r.stats.elfFilesParsed} ELF files parsed`;

test('Alpine minirootfs x86_64 verifies clean', async (t) => {
  if (!existsSync(ALPINE_X86)) return skipOrFail(t, NO_SHARED);
  const r = await verifyImage(await image(t, ALPINE_X86, 'alpine'));
  t.diagnostic(`alpine x86_64: ${timing(r)}`);
  assert.deepEqual(failed(r), { errors: [], warnings: [] }, JSON.stringify(r.checks, null, 2));
  assert.equal(r.architecture.arch, 'amd64');
  assert.match(check(r, 'init').message, /^\/sbin\/init -> \/bin\/busybox: ELF x86_64 \(amd64\), dynamic \(interpreter \/lib\/ld-musl-x86_64\.so\.1/);
  assert.ok(r.stats.programs >= 5 && r.stats.libraries >= 4, timing(r));
});

test('Alpine minirootfs aarch64 verifies clean, its architecture found from /bin', async (t) => {
  if (!existsSync(ALPINE_ARM64)) return skipOrFail(t, NO_SHARED);
  const r = await verifyImage(await image(t, ALPINE_ARM64, 'alpine-arm64'));
  t.diagnostic(`alpine aarch64: ${timing(r)}`);
  assert.deepEqual(failed(r), { errors: [], warnings: [] }, JSON.stringify(r.checks, null, 2));
  assert.deepEqual(r.architecture, { arch: 'arm64', name: 'aarch64 (arm64)', source: 'binaries' });
});

test('Debian minbase verifies clean with a shell as init (minbase has no /sbin/init)', { timeout: 600_000 }, async (t) => {
  const m = debianMinbase();
  if ('skip' in m) return skipOrFail(t, m.skip);
  const img = await image(t, m.path, 'minbase');
  const r = await verifyImage(img, { init: '/bin/sh' });
  t.diagnostic(`minbase: ${timing(r)}`);
  assert.deepEqual(failed(r), { errors: [], warnings: [] }, JSON.stringify(r.checks, null, 2));
  assert.ok(r.stats.programs > 250, timing(r));
  // Without --init the default /sbin/init is looked for, and minbase installs no init system.
  const d = await verifyImage(img, { fsck: false });
  assert.deepEqual(failed(d), { errors: ['init'], warnings: [] });
  assert.match(check(d, 'init').message, /^\/sbin\/init: no such file or directory \(\/usr\/sbin\/init\) \(via \/sbin -> usr\/sbin\)$/);
});
