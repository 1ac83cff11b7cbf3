/**
 * OCI images → ext4, against umoci's own unpack of the same image (read through the kernel):
 * whiteouts, opaque directories, type flips, cross-layer hard links, owner/mode/xattr changes,
 * from an OCI layout (gzip, zstd and plain layers) and from docker-archive files in both forms.
 * Content hidden by upper layers must not be in the image at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { isRootforgeError } from '../../src/errors.js';
import { assertFsckClean, assertSameTree, canMount, fsManifest, mountManifest, readerManifest, type ManifestEntry } from '../helpers/image.js';
import { buildComplexImage, haveTools, HIDDEN_MARKER, recompressLayout, sh, umociUnpack } from '../helpers/oci-fixtures.js';
import { skipOrFail } from '../helpers/fixtures.js';
import { rootforge } from '../helpers/cli.js';
import { pushImage, registryToolsMissing, startRegistry } from '../helpers/registry.js';

const work = mkdtempSync(join(tmpdir(), 'rf-oci-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const layout = join(work, 'layout');
/** Never the user's cache: every conversion here uses this one. */
const CACHE = { cacheDir: join(work, 'cache') };
let built: string | null | undefined;

/** Builds the fixture once (needs root and umoci); returns why not when it cannot. */
function fixture(): string | null {
  if (built !== undefined) return built;
  if (process.getuid?.() !== 0) return (built = 'building umoci fixtures needs root (CI runs as root)');
  const missing = haveTools('umoci', 'skopeo', 'setfattr', 'setcap', 'zstd');
  if (missing) return (built = missing);
  buildComplexImage(layout, join(work, 'build'));
  return (built = null);
}

/** umoci's unpack without the implied-directory noise: the file umoci itself never has. */
function reference(tag: string): ManifestEntry[] {
  const dest = join(work, `ref-${tag}`);
  if (!existsSync(dest)) umociUnpack(layout, tag, dest);
  return fsManifest(join(dest, 'rootfs'));
}

/** Our image minus /etc/rootforge (ours, not the image's) for comparison with umoci. */
function withoutOurs(m: ManifestEntry[]): ManifestEntry[] {
  const ours = Buffer.from('etc/rootforge').toString('hex');
  return m.filter((e) => e.path !== ours && !e.path.startsWith(ours + Buffer.from('/').toString('hex')));
}

async function checkImage(img: string, tag: string): Promise<void> {
  assertFsckClean(img);
  if (tag === 'v3') {
    // every file carrying the marker is deleted, replaced or hidden by layer 2 or 3
    assert.equal(readFileSync(img).indexOf(HIDDEN_MARKER), -1, 'content hidden by upper layers was written to the image');
  }
  const ours = await readerManifest(img);
  const ref = reference(tag);
  // umoci stamps directories no layer lists (the root, layer 3's implied "layer3") with the
  // time of unpacking; ours take the deterministic default
  const opts = { ignoreMtimeOf: new Set(['', Buffer.from('layer3').toString('hex')]) };
  if (canMount()) {
    const kernel = mountManifest(img);
    assertSameTree(withoutOurs(kernel), ref, opts);
    assertSameTree(ours, kernel);
  } else {
    assertSameTree(withoutOurs(ours), ref, opts);
  }
}

test('oci: layout, every tag: image equals umoci unpack; hidden content never written', async (t) => {
  const why = fixture();
  if (why) return skipOrFail(t, why);
  for (const tag of ['v1', 'v2', 'v3']) {
    const img = join(work, `oci-${tag}.img`);
    const res = await convert(`oci:${layout}:${tag}`, img, CACHE);
    assert.equal(res.image?.source, `oci:${layout}:${tag}`);
    await checkImage(img, tag);
  }
});

test('oci: zstd and uncompressed layers convert to the same tree', async (t) => {
  const why = fixture();
  if (why) return skipOrFail(t, why);
  for (const how of ['zstd', 'none'] as const) {
    const dir = join(work, `layout-${how}`);
    mkdirSync(join(work, `re-${how}`), { recursive: true });
    recompressLayout(layout, 'v3', dir, how, join(work, `re-${how}`));
    const img = join(work, `oci-${how}.img`);
    await convert(`oci:${dir}:v3`, img, CACHE);
    await checkImage(img, 'v3');
  }
});

test('docker-archive: legacy (skopeo) and OCI (Docker ≥ 25) forms', async (t) => {
  const why = fixture();
  if (why) return skipOrFail(t, why);
  const legacy = join(work, 'legacy.tar');
  sh('skopeo', ['copy', '-q', `oci:${layout}:v3`, `docker-archive:${legacy}:test/complex:v3`]);
  const img = join(work, 'archive-legacy.img');
  const res = await convert(`docker-archive:${legacy}`, img, CACHE);
  await checkImage(img, 'v3');
  const again = join(work, 'archive-legacy-tag.img');
  const byTag = await convert(`docker-archive:${legacy}:test/complex:v3`, again, CACHE);
  assert.equal(byTag.image?.manifestDigest, res.image?.manifestDigest, 'the same image by tag and by default');
  // Docker 25+ saves an OCI layout plus a legacy manifest.json in one tar
  const ociDir = join(work, 'docker25');
  sh('skopeo', ['copy', '-q', `oci:${layout}:v3`, `oci:${ociDir}:docker.io/test/complex:v3`]);
  writeFileSync(join(ociDir, 'manifest.json'), JSON.stringify([{ Config: 'blobs/sha256/x', RepoTags: ['test/complex:v3'], Layers: [] }]));
  const modern = join(work, 'docker25.tar');
  sh('tar', ['-cf', modern, '-C', ociDir, '.']);
  const img2 = join(work, 'archive-oci.img');
  const res2 = await convert(`docker-archive:${modern}`, img2, CACHE);
  await checkImage(img2, 'v3');
  assert.equal(res2.image?.Env.join(), res.image?.Env.join());
});

test('image config is kept in /etc/rootforge/image.json and shown by inspect', async (t) => {
  const why = fixture();
  if (why) return skipOrFail(t, why);
  const cfgLayout = join(work, 'cfg');
  sh('cp', ['-a', layout, cfgLayout]);
  sh('umoci', ['config', '--image', `${cfgLayout}:v3`, '--tag', 'cfg', '--config.env', 'FOO=bar', '--config.workingdir', '/work', '--config.user', '1000:1000', '--config.entrypoint', '/bin/tool', '--config.cmd', '--serve', '--config.label', 'org.example=yes']);
  const img = join(work, 'cfg.img');
  const res = await convert(`oci:${cfgLayout}:cfg`, img, CACHE);
  const image = await Ext4Image.open(img);
  const st = await image.resolve('/etc/rootforge/image.json');
  const doc = JSON.parse((await image.readData(st)).toString()) as Record<string, unknown>;
  await image.close();
  assert.equal(st.perm, 0o644);
  assert.ok((doc['Env'] as string[]).includes('FOO=bar'));
  assert.equal(doc['WorkingDir'], '/work');
  assert.equal(doc['User'], '1000:1000');
  assert.deepEqual(doc['Entrypoint'], ['/bin/tool']);
  assert.deepEqual(doc['Cmd'], ['--serve']);
  assert.deepEqual(doc['Labels'], { 'org.example': 'yes' });
  assert.equal(doc['manifestDigest'], res.image!.manifestDigest);
  const shown = rootforge(['inspect', img]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout.toString(), /Image: +oci:.*:cfg/);
  assert.match(shown.stdout.toString(), /Entrypoint: +\["\/bin\/tool"\]/);
  const json = JSON.parse(rootforge(['inspect', img, '--json']).stdout.toString()) as { image: { WorkingDir: string } };
  assert.equal(json.image.WorkingDir, '/work');
});

test('bad image sources give typed errors and no output', async (t) => {
  const why = fixture();
  if (why) return skipOrFail(t, why);
  const out = join(work, 'bad.img');
  const expectCode = async (src: string, code: string) => {
    await assert.rejects(convert(src, out, CACHE), (e) => isRootforgeError(e) && e.code === code);
    assert.equal(existsSync(out), false);
  };
  await expectCode(`oci:${layout}:nope`, 'OCI_NOT_FOUND');
  await expectCode(`oci:${work}`, 'SOURCE_NOT_FOUND');
  // a tampered layer blob: the digest check fails while streaming
  const tampered = join(work, 'tampered');
  sh('cp', ['-a', layout, tampered]);
  const index = JSON.parse(readFileSync(join(tampered, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const v3 = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'v3')!;
  const manifest = JSON.parse(readFileSync(join(tampered, 'blobs/sha256', v3.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  const blob = join(tampered, 'blobs/sha256', manifest.layers[0]!.digest.slice(7));
  const b = readFileSync(blob);
  b[b.length - 10] ^= 0xff;
  writeFileSync(blob, b);
  await expectCode(`oci:${tampered}:v3`, 'OCI_DIGEST_MISMATCH');
});

test('finished images are cached by manifest digest and options; a moved tag rebuilds', async (t) => {
  const why = fixture();
  if (why) return skipOrFail(t, why);
  const cacheDir = join(work, 'cache-test');
  const moving = join(work, 'moving');
  sh('cp', ['-a', layout, moving]);
  sh('umoci', ['tag', '--image', `${moving}:v2`, 'current']);
  const a = await convert(`oci:${moving}:current`, join(work, 'c1.img'), { cacheDir });
  assert.equal(a.cacheHit, false);
  const b = await convert(`oci:${moving}:current`, join(work, 'c2.img'), { cacheDir });
  assert.equal(b.cacheHit, true, 'same manifest, same options: a hit');
  assert.ok(readFileSync(join(work, 'c1.img')).equals(readFileSync(join(work, 'c2.img'))));
  // a cached copy a crash cut short (its size no longer the recorded one) is a miss, rebuilt over
  const cached = readdirSync(join(cacheDir, 'images')).filter((n) => n.endsWith('.ext4'));
  assert.equal(cached.length, 1);
  truncateSync(join(cacheDir, 'images', cached[0]!), 4096);
  const short = await convert(`oci:${moving}:current`, join(work, 'c2.img'), { cacheDir });
  assert.equal(short.cacheHit, false, 'a short cached copy is not used');
  assert.ok(readFileSync(join(work, 'c1.img')).equals(readFileSync(join(work, 'c2.img'))), 'rebuilt, the same image');
  assert.equal(statSync(join(cacheDir, 'images', cached[0]!)).size, statSync(join(work, 'c1.img')).size, 'and cached again whole');
  assert.equal((await convert(`oci:${moving}:current`, join(work, 'c2b.img'), { cacheDir })).cacheHit, true);
  // ... and so is one whose metadata a crash left empty
  writeFileSync(join(cacheDir, 'images', cached[0]!.replace(/\.ext4$/, '.json')), '');
  assert.equal((await convert(`oci:${moving}:current`, join(work, 'c2b.img'), { cacheDir })).cacheHit, false, 'empty metadata: a miss');
  assert.equal((await convert(`oci:${moving}:current`, join(work, 'c2b.img'), { cacheDir })).cacheHit, true, 'stored again');
  const ro = await convert(`oci:${moving}:current`, join(work, 'c3.img'), { cacheDir, readOnly: true });
  assert.equal(ro.cacheHit, false, 'other options: a miss');
  sh('umoci', ['tag', '--image', `${moving}:v3`, 'current']); // the tag moves
  const c = await convert(`oci:${moving}:current`, join(work, 'c4.img'), { cacheDir });
  assert.equal(c.cacheHit, false, 'a moved tag rebuilds');
  assert.notEqual(c.image?.manifestDigest, a.image?.manifestDigest);
  await checkImage(join(work, 'c4.img'), 'v3');
  const ls = rootforge(['cache', 'ls', '--cache-dir', cacheDir, '--json']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.equal((JSON.parse(ls.stdout.toString()) as { images: unknown[] }).images.length, 3);
  const pruned = rootforge(['cache', 'prune', '--cache-dir', cacheDir]);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.equal((JSON.parse(rootforge(['cache', 'ls', '--cache-dir', cacheDir, '--json']).stdout.toString()) as { images: unknown[] }).images.length, 0);
  const cli = rootforge(['convert', `oci:${moving}:current`, '-o', join(work, 'c5.img'), '--cache-dir', cacheDir]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.doesNotMatch(cli.stderr, /cache hit/);
  const cli2 = rootforge(['convert', `oci:${moving}:current`, '-o', join(work, 'c6.img'), '--cache-dir', cacheDir]);
  assert.match(cli2.stderr, /cache hit/);
});

test('docker://: a real registry with basic auth; moved tags rebuild, unchanged ones hit the cache', async (t) => {
  const why = fixture() ?? registryToolsMissing() ?? null;
  if (why) return skipOrFail(t, why);
  const registry = await startRegistry(t, { auth: { htpasswd: [{ user: 'alice', password: 's3cret' }] } });
  const cacheDir = join(work, 'cache-registry');
  pushImage(layout, 'v3', `${registry.host}/complex:v3`, { creds: 'alice:s3cret' });
  const img = join(work, 'registry.img');
  const res = await convert(`docker://${registry.host}/complex:v3`, img, { cacheDir, creds: { username: 'alice', password: 's3cret' } });
  assert.equal(res.cacheHit, false);
  assert.equal(res.image?.source, `docker://${registry.host}/complex:v3`);
  await checkImage(img, 'v3');
  // wrong credentials: typed error, nothing written
  await assert.rejects(
    convert(`docker://${registry.host}/complex:v3`, join(work, 'denied.img'), { cacheDir, creds: { username: 'alice', password: 'nope' } }),
    (e) => isRootforgeError(e) && e.code === 'OCI_AUTH_FAILED',
  );
  assert.equal(existsSync(join(work, 'denied.img')), false);
  // the CLI, credentials from a Docker config file
  const dockerConfig = join(work, 'docker-config');
  mkdirSync(dockerConfig, { recursive: true });
  writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
  pushImage(layout, 'v2', `${registry.host}/complex:current`, { creds: 'alice:s3cret' });
  const env = { DOCKER_CONFIG: dockerConfig };
  const first = rootforge(['convert', `docker://${registry.host}/complex:current`, '-o', join(work, 'cur1.img'), '--cache-dir', cacheDir, '--json'], env);
  assert.equal(first.code, 0, first.stderr);
  const j1 = JSON.parse(first.stdout.toString()) as { cacheHit: boolean; image: { manifestDigest: string } };
  assert.equal(j1.cacheHit, false);
  const second = rootforge(['convert', `docker://${registry.host}/complex:current`, '-o', join(work, 'cur2.img'), '--cache-dir', cacheDir, '--json'], env);
  assert.equal((JSON.parse(second.stdout.toString()) as { cacheHit: boolean }).cacheHit, true, 'unchanged tag: a cache hit');
  pushImage(layout, 'v3', `${registry.host}/complex:current`, { creds: 'alice:s3cret' }); // the tag moves
  const third = rootforge(['convert', `docker://${registry.host}/complex:current`, '-o', join(work, 'cur3.img'), '--cache-dir', cacheDir, '--json'], env);
  const j3 = JSON.parse(third.stdout.toString()) as { cacheHit: boolean; image: { manifestDigest: string } };
  assert.equal(j3.cacheHit, false, 'moved tag: rebuilt');
  assert.notEqual(j3.image.manifestDigest, j1.image.manifestDigest);
  await checkImage(join(work, 'cur3.img'), 'v3');
  // pull fills the blob cache only
  const pull = rootforge(['pull', `docker://${registry.host}/complex:v3`, '--cache-dir', join(work, 'cache-pull'), '--json'], env);
  assert.equal(pull.code, 0, pull.stderr);
  const p = JSON.parse(pull.stdout.toString()) as { layers: number; blobsFetched: number };
  assert.equal(p.layers, 3);
  assert.ok(p.blobsFetched >= 3, 'manifest/config/layers fetched');
});
