/**
 * build --format: an ext4 image's tree written as tar, an OCI layout and a docker-archive.
 * skopeo inspects both image forms; umoci unpacks the OCI layout and the unpacked tree (read
 * through the kernel) equals the ext4's tree (our reader): types, modes, owners, nanosecond
 * mtimes, xattrs, hard links, symlinks, devices, long paths. Outputs are byte-reproducible.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { parseFormat, writeFormat } from '../../src/output/formats.js';
import { isRootforgeError } from '../../src/errors.js';
import { assertSameTree, fsManifest, readerManifest } from '../helpers/image.js';
import { skipOrFail } from '../helpers/fixtures.js';
import { tarEntries } from '../helpers/tar-writer.js';

const work = mkdtempSync(join(tmpdir(), 'rf-format-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const has = (tool: string) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status === 0;
const sha = (p: string) => spawnSync('sha256sum', [p], { encoding: 'utf8' }).stdout.split(' ')[0];

const long = `usr/share/${'d'.repeat(90)}/${'e'.repeat(120)}/${'f'.repeat(80)}.txt`;
const t = (sec: number, nsec = 0) => ({ sec, nsec });

async function image(): Promise<string> {
  const tar = join(work, 'in.tar');
  writeFileSync(
    tar,
    tarEntries([
      { path: 'bin', type: 'dir', mtime: t(1_700_000_000, 5) },
      { path: 'bin/busybox', content: Buffer.alloc(70_000, 7), mode: 0o4755, mtime: t(1_700_000_001, 123_456_789) },
      { path: 'bin/sh', type: 'symlink', linkname: 'busybox', mtime: t(1_700_000_002) },
      { path: 'bin/ash', type: 'hardlink', linkname: 'bin/busybox' },
      { path: 'etc', type: 'dir', mode: 0o755, mtime: t(1_700_000_003) },
      { path: 'etc/shadow', content: 'root:*:1::::::\n', mode: 0o640, uid: 0, gid: 42, mtime: t(1_700_000_004, 999_999_999) },
      { path: 'home', type: 'dir', mtime: t(1_700_000_005) },
      { path: 'home/user', type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtime: t(1_700_000_006) },
      { path: 'home/user/notes', content: 'hi\n', uid: 1000, gid: 1000, mtime: t(1_700_000_007), xattrs: { 'user.origin': 'test', 'user.bin': Buffer.from([0, 1, 2, 255]) } },
      { path: 'dev', type: 'dir', mtime: t(1_700_000_008) },
      { path: 'dev/null', type: 'chardev', devmajor: 1, devminor: 3, mode: 0o666, mtime: t(1_700_000_009) },
      { path: 'run', type: 'dir', mtime: t(1_700_000_010) },
      { path: 'run/fifo', type: 'fifo', mode: 0o600, mtime: t(1_700_000_011) },
      { path: 'tmp', type: 'dir', mode: 0o1777, mtime: t(1_700_000_012) },
      { path: 'usr', type: 'dir', mtime: t(1_700_000_013) },
      { path: long, content: 'long path\n', mtime: t(1_700_000_014) },
      { path: 'usr/link-to-long', type: 'symlink', linkname: `/${long}`, mtime: t(1_700_000_015) },
    ]),
  );
  const out = join(work, 'in.ext4');
  await convert(`tar:${tar}`, out, { readOnly: true });
  return out;
}

test('--format parsing', () => {
  assert.deepEqual(parseFormat('oci:/x/layout'), { kind: 'oci', path: '/x/layout', tag: 'latest' });
  assert.deepEqual(parseFormat('oci:/x/layout:v2'), { kind: 'oci', path: '/x/layout', tag: 'v2' });
  assert.deepEqual(parseFormat('docker-archive:/x/a.tar'), { kind: 'docker-archive', path: '/x/a.tar' });
  assert.deepEqual(parseFormat('docker-archive:/x/a.tar:devbox'), { kind: 'docker-archive', path: '/x/a.tar', repoTag: 'devbox:latest' });
  assert.deepEqual(parseFormat('docker-archive:/x/a.tar:reg:5000/team/devbox:v1'), { kind: 'docker-archive', path: '/x/a.tar', repoTag: 'reg:5000/team/devbox:v1' });
  assert.deepEqual(parseFormat('tar:/x/r:oot.tar'), { kind: 'tar', path: '/x/r:oot.tar' });
  for (const bad of ['zip:/x', 'oci:', 'tar', 'oci:/x:bad tag']) assert.throws(() => parseFormat(bad), (e: unknown) => isRootforgeError(e, 'OPTION_INVALID'), bad);
});

test('tar, OCI layout and docker-archive hold the ext4 tree; skopeo and umoci read them; reproducible', async (t2) => {
  const missing = ['skopeo', 'umoci', 'python3'].find((x) => !has(x));
  if (missing) return skipOrFail(t2, `${missing} is not installed`);
  if (process.getuid?.() !== 0) return skipOrFail(t2, 'umoci unpack keeps owners and devices only as root');
  const img = await image();
  const opts = { architecture: 'amd64', timestamp: 1_700_000_000 };

  const tarOut = join(work, 'rootfs.tar');
  const r1 = await writeFormat(img, parseFormat(`tar:${tarOut}`), opts);
  const first = sha(tarOut);
  await writeFormat(img, parseFormat(`tar:${tarOut}`), opts);
  assert.equal(sha(tarOut), first, 'the same image gives the same tar');
  assert.equal(`sha256:${first}`, r1.layerDigest);

  const layout = join(work, 'layout');
  const oci = await writeFormat(img, parseFormat(`oci:${layout}:v1`), opts);
  assert.equal(oci.layerDigest, r1.layerDigest, 'the OCI layer is the same tar');
  const inspect = JSON.parse(spawnSync('skopeo', ['inspect', `oci:${layout}:v1`], { encoding: 'utf8' }).stdout || '{}') as { Architecture?: string; Os?: string; Layers?: string[]; Digest?: string };
  assert.equal(inspect.Architecture, 'amd64');
  assert.equal(inspect.Os, 'linux');
  assert.deepEqual(inspect.Layers, [oci.layerDigest]);
  assert.equal(inspect.Digest, oci.manifestDigest);

  const archive = join(work, 'image.tar');
  const da = await writeFormat(img, parseFormat(`docker-archive:${archive}:rootforge/test:v1`), opts);
  const daSha = sha(archive);
  await writeFormat(img, parseFormat(`docker-archive:${archive}:rootforge/test:v1`), opts);
  assert.equal(sha(archive), daSha, 'the same image gives the same docker-archive');
  const di = spawnSync('skopeo', ['inspect', `docker-archive:${archive}`], { encoding: 'utf8' });
  assert.equal(di.status, 0, di.stderr);
  const dij = JSON.parse(di.stdout) as { Architecture: string; RepoTags: string[]; Layers: string[] };
  assert.equal(dij.Architecture, 'amd64');
  assert.deepEqual(dij.Layers, [da.layerDigest]);
  // skopeo copies the archive into an OCI layout too: docker-archive is readable as an image.
  const copied = join(work, 'copied');
  const cp = spawnSync('skopeo', ['copy', '--insecure-policy', `docker-archive:${archive}`, `oci:${copied}:c`], { encoding: 'utf8' });
  assert.equal(cp.status, 0, cp.stderr);

  const bundle = join(work, 'bundle');
  const un = spawnSync('umoci', ['unpack', '--image', `${layout}:v1`, bundle], { encoding: 'utf8' });
  assert.equal(un.status, 0, un.stderr);
  const root = (m: ReturnType<typeof fsManifest>) => m.filter((e) => e.path !== '');
  assertSameTree(root(fsManifest(join(bundle, 'rootfs'))), root(await readerManifest(img)));
  const cfg = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { args: string[] } };
  assert.deepEqual(cfg.process.args, ['/bin/sh'], 'Cmd defaults to the image shell');
});
