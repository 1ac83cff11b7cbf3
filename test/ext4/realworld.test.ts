/**
 * Real archives: the official Alpine minirootfs and a Debian minbase made by mmdebstrap.
 * The reference is GNU tar's extraction of the same archive (as root), read through the kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { ALPINE_X86, debianMinbase, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { assertFsckClean, assertSameTree, canMount, fsManifest, mountManifest, NO_MOUNT, readerManifest, run } from '../helpers/image.js';

async function roundTrip(t: { diagnostic: (m: string) => void; after: (fn: () => void) => void }, tarPath: string, name: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), `rf-${name}-`));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const img = join(work, `${name}.img`);
  const res = await convert(`tar:${tarPath}`, img);
  assertFsckClean(img);
  t.diagnostic(`${name}: ${res.files} files, ${res.directories} dirs, image ${res.sizeBytes} bytes`);
  if (!canMount()) {
    t.diagnostic(`kernel comparison skipped: ${NO_MOUNT}`);
    await readerManifest(img);
    return;
  }
  const kernel = mountManifest(img);
  const ext = join(work, 'extract');
  mkdirSync(ext);
  run('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', tarPath, '-C', ext]);
  assertSameTree(kernel, fsManifest(ext));
  assertSameTree(await readerManifest(img), kernel);
}

test('Alpine minirootfs (gzip) converts exactly', async (t) => {
  if (!existsSync(ALPINE_X86)) return skipOrFail(t, NO_SHARED);
  await roundTrip(t, ALPINE_X86, 'alpine');
});

test('Debian minbase from mmdebstrap converts exactly', { timeout: 600_000 }, async (t) => {
  const m = debianMinbase();
  if ('skip' in m) return skipOrFail(t, m.skip);
  await roundTrip(t, m.path, 'minbase');
});

test('Alpine minirootfs converted twice is byte-identical', async (t) => {
  if (!existsSync(ALPINE_X86)) return skipOrFail(t, NO_SHARED);
  const work = mkdtempSync(join(tmpdir(), 'rf-det-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const a = join(work, 'a.img');
  const b = join(work, 'sub-b.img');
  await convert(`tar:${ALPINE_X86}`, a);
  await convert(`tar:${ALPINE_X86}`, b);
  assert.equal(run('cmp', [a, b], { allowFail: true }).code, 0, 'images differ');
});
