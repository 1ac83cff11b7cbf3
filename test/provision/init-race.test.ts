/**
 * Defect 5(b) in the files a build writes: the systemd unit starts the agent only after the
 * system is set up (sysinit.target: local mounts, tmpfiles), the OpenRC service after bootmisc,
 * and init: wrapper over systemd or OpenRC warns that its agent runs before /tmp is set up.
 * (The devbox VM test proves the systemd ordering in a real boot.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../../src/build-image.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { resolveSpec } from '../../src/spec/load.js';

const work = mkdtempSync(join(tmpdir(), 'rf-init-race-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function base(name: string, init: 'systemd' | 'openrc'): string {
  const root = join(work, name);
  for (const d of ['bin', 'sbin', 'lib/systemd', 'etc']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'bin/sh'), '#!/bin/sh\n', { mode: 0o755 });
  if (init === 'systemd') {
    writeFileSync(join(root, 'lib/systemd/systemd'), 'not really\n', { mode: 0o755 });
    symlinkSync('/lib/systemd/systemd', join(root, 'sbin/init'));
  } else {
    writeFileSync(join(root, 'sbin/init'), 'busybox\n', { mode: 0o755 });
    writeFileSync(join(root, 'sbin/openrc'), 'openrc\n', { mode: 0o755 });
    writeFileSync(join(root, 'sbin/openrc-run'), 'openrc-run\n', { mode: 0o755 });
  }
  return root;
}

async function text(image: string, path: string): Promise<string> {
  const img = await Ext4Image.open(image);
  try {
    return (await img.readData(await img.resolve(path))).toString();
  } finally {
    await img.close();
  }
}

test('systemd unit: after sysinit.target and tmpfiles, stopped at shutdown', async () => {
  const spec = resolveSpec({ from: `dir:${base('sd', 'systemd')}`, init: 'systemd', agent: 'none', filesOwner: '0:0' }, work, 'sd');
  const r = await buildImage({ ...spec, output: join(work, 'sd.ext4') });
  assert.deepEqual(r.warnings.filter((w) => w.code === 'INIT_TMP_RACE'), []);
  const unit = await text(r.output, '/etc/systemd/system/rootforge-agent.service');
  assert.match(unit, /^After=.*\bsysinit\.target\b/m);
  assert.match(unit, /^After=.*\bsystemd-tmpfiles-setup\.service\b/m);
  assert.doesNotMatch(unit, /^Before=sysinit\.target/m, 'no longer before sysinit (tmpfiles emptied /tmp under the first commands)');
  assert.match(unit, /^Conflicts=shutdown\.target$/m);
});

test('OpenRC service: after bootmisc (which cleans /tmp)', async () => {
  const spec = resolveSpec({ from: `dir:${base('rc', 'openrc')}`, init: 'openrc', agent: 'none' }, work, 'rc');
  const r = await buildImage({ ...spec, output: join(work, 'rc.ext4') });
  assert.match(await text(r.output, '/etc/init.d/rootforge-agent'), /^\s*after bootmisc$/m);
});

test('init: wrapper over systemd or OpenRC warns of the /tmp race; over a plain init it does not', async () => {
  for (const kind of ['systemd', 'openrc'] as const) {
    const spec = resolveSpec({ from: `dir:${base(`w-${kind}`, kind)}`, init: 'wrapper', agent: 'none' }, work, `w-${kind}`);
    const r = await buildImage({ ...spec, output: join(work, `w-${kind}.ext4`) });
    assert.equal(r.warnings.filter((w) => w.code === 'INIT_TMP_RACE').length, 1, `${kind}: ${JSON.stringify(r.warnings)}`);
  }
  const plain = join(work, 'plain');
  mkdirSync(join(plain, 'sbin'), { recursive: true });
  writeFileSync(join(plain, 'sbin/init'), 'busybox\n', { mode: 0o755 });
  const spec = resolveSpec({ from: `dir:${plain}`, init: 'wrapper', agent: 'none' }, work, 'plain');
  const r = await buildImage({ ...spec, output: join(work, 'plain.ext4') });
  assert.deepEqual(r.warnings.filter((w) => w.code === 'INIT_TMP_RACE'), []);
});
