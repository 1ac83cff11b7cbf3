/**
 * Layer merging without root or umoci: layers written in memory with the test tar writer, put in
 * an OCI layout by hand, converted, and read back with our reader. Each case states the tree the
 * OCI image spec's layer rules give, so a merging mistake shows as a wrong path, type, content,
 * owner or hard-link identity; bytes that only hidden files hold must not reach the image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { convert } from '../../src/convert.js';
import { Ext4Image, type Stat } from '../../src/ext4/reader.js';
import { tarEntries, type WriterEntry } from '../helpers/tar-writer.js';
import { assertFsckClean } from '../helpers/image.js';

const work = mkdtempSync(join(tmpdir(), 'rootforge-merge-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

const HIDDEN = 'HIDDEN-BYTES-MUST-NOT-BE-WRITTEN';
const t0 = { sec: 1_600_000_000, nsec: 0 };

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** An OCI layout at a new directory with one image whose layers (bottom first) are these tars. */
function layout(name: string, layers: WriterEntry[][], gzip = true): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  const put = (b: Buffer): string => {
    const d = sha256(b);
    writeFileSync(join(dir, 'blobs/sha256', d.slice(7)), b);
    return d;
  };
  const tars = layers.map((entries) => tarEntries(entries.map((e) => ({ mtime: t0, ...e })), { format: 'pax' }));
  const blobs = tars.map((tar) => (gzip ? gzipSync(tar) : tar));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: tars.map(sha256) }, config: {} }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(config), size: config.length },
      layers: blobs.map((b) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${gzip ? '+gzip' : ''}`, digest: put(b), size: b.length })),
    }),
  );
  const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: put(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] };
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return dir;
}

interface Seen {
  kind: Stat['kind'];
  ino: number;
  perm: number;
  uid: number;
  gid: number;
  content?: string;
  target?: string;
}

/** Converts the layout and returns every path of the image (rootforge's own /etc/rootforge left out). */
async function merged(dir: string): Promise<{ tree: Map<string, Seen>; img: string; warnings: string[] }> {
  const img = join(work, `${dir.split('/').pop()}.img`);
  const r = await convert(`oci:${dir}:v1`, img, { cache: false });
  assertFsckClean(img);
  const image = await Ext4Image.open(img);
  const tree = new Map<string, Seen>();
  try {
    for await (const [full, st] of image.walk()) {
      const path = full.replace(/^\//, '');
      if (path === '' || path === 'lost+found' || path.startsWith('etc/rootforge')) continue;
      const seen: Seen = { kind: st.kind, ino: st.ino, perm: st.perm, uid: st.uid, gid: st.gid };
      if (st.kind === 'file') seen.content = (await image.readData(st)).toString('latin1');
      if (st.kind === 'symlink') seen.target = await image.readlink(st);
      tree.set(path, seen);
    }
  } finally {
    await image.close();
  }
  return { tree, img, warnings: r.warnings.map((w) => w.code) };
}

function paths(tree: Map<string, Seen>): string[] {
  return [...tree.keys()].filter((p) => p !== 'etc').sort();
}

test('whiteouts delete files and whole directories of lower layers; hidden bytes are never written', async () => {
  const dir = layout('whiteout', [
    [
      { path: 'a/', type: 'dir' },
      { path: 'a/keep', content: 'kept\n' },
      { path: 'a/gone', content: `${HIDDEN} a/gone\n` },
      { path: 'd/', type: 'dir' },
      { path: 'd/sub/', type: 'dir' },
      { path: 'd/sub/f', content: `${HIDDEN} d/sub/f\n` },
    ],
    [
      { path: 'a/.wh.gone', content: '' },
      { path: '.wh.d', content: '' },
      { path: 'a/new', content: 'new in layer 2\n' },
    ],
  ]);
  const { tree, img } = await merged(dir);
  assert.deepEqual(paths(tree), ['a', 'a/keep', 'a/new']);
  assert.equal(tree.get('a/keep')?.content, 'kept\n');
  assert.ok(!readFileSync(img).includes(HIDDEN), 'content of deleted files is not in the image');
});

test('an opaque directory hides everything below it from lower layers, but not its own new entries', async () => {
  const dir = layout('opaque', [
    [
      { path: 'o/', type: 'dir', mode: 0o755 },
      { path: 'o/old1', content: `${HIDDEN} o/old1\n` },
      { path: 'o/sub/', type: 'dir' },
      { path: 'o/sub/old2', content: `${HIDDEN} o/sub/old2\n` },
      { path: 'other', content: 'untouched\n' },
    ],
    [
      { path: 'o/', type: 'dir', mode: 0o750, uid: 7, gid: 8 },
      { path: 'o/.wh..wh..opq', content: '' },
      { path: 'o/fresh', content: 'fresh\n' },
    ],
  ]);
  const { tree, img } = await merged(dir);
  assert.deepEqual(paths(tree), ['o', 'o/fresh', 'other']);
  assert.equal(tree.get('o')?.perm, 0o750, 'the upper layer decides the opaque directory attributes');
  assert.equal(tree.get('o')?.uid, 7);
  assert.ok(!readFileSync(img).includes(HIDDEN));
});

test('type flips: file → dir, dir → file, file → symlink; the upper layer wins and lower children vanish', async () => {
  const dir = layout('flips', [
    [
      { path: 'f2d', content: `${HIDDEN} f2d\n` },
      { path: 'd2f/', type: 'dir' },
      { path: 'd2f/child', content: `${HIDDEN} d2f/child\n` },
      { path: 'f2s', content: `${HIDDEN} f2s\n` },
      { path: 'target', content: 'target\n' },
    ],
    [
      { path: 'f2d/', type: 'dir' },
      { path: 'f2d/inside', content: 'inside\n' },
      { path: 'd2f', content: 'now a file\n' },
      { path: 'f2s', type: 'symlink', linkname: 'target' },
    ],
  ]);
  const { tree, img } = await merged(dir);
  assert.deepEqual(paths(tree), ['d2f', 'f2d', 'f2d/inside', 'f2s', 'target']);
  assert.equal(tree.get('f2d')?.kind, 'dir');
  assert.equal(tree.get('d2f')?.kind, 'file');
  assert.equal(tree.get('d2f')?.content, 'now a file\n');
  assert.equal(tree.get('f2s')?.kind, 'symlink');
  assert.equal(tree.get('f2s')?.target, 'target');
  assert.ok(!readFileSync(img).includes(HIDDEN));
});

test('hard links: within a layer, to a lower layer, and to a file whose own name is deleted above', async () => {
  const dir = layout('links', [
    [
      { path: 'h/', type: 'dir' },
      { path: 'h/a', content: 'shared a\n' },
      { path: 'h/b', type: 'hardlink', linkname: 'h/a' },
      { path: 'h/x', content: 'x content, x deleted later\n' },
      { path: 'h/y', type: 'hardlink', linkname: 'h/x' },
    ],
    [
      { path: 'h/.wh.x', content: '' },
      { path: 'h/c', type: 'hardlink', linkname: 'h/a' },
    ],
  ]);
  const { tree } = await merged(dir);
  assert.deepEqual(paths(tree), ['h', 'h/a', 'h/b', 'h/c', 'h/y']);
  const a = tree.get('h/a')!;
  assert.equal(tree.get('h/b')?.ino, a.ino, 'b is a link to a (same layer)');
  assert.equal(tree.get('h/c')?.ino, a.ino, 'c (layer 2) is a link to a (layer 1)');
  assert.equal(tree.get('h/y')?.content, 'x content, x deleted later\n', 'y keeps the content of its deleted peer');
  assert.notEqual(tree.get('h/y')?.ino, a.ino);
});

test('a later entry of the same path wins within and across layers; owners and modes come from the top', async () => {
  const dir = layout('override', [
    [
      { path: 'f', content: `${HIDDEN} v1\n`, mode: 0o644, uid: 1, gid: 1 },
      { path: 'g', content: 'g\n', mode: 0o600 },
    ],
    [
      { path: 'f', content: `${HIDDEN} v2 first\n` },
      { path: 'f', content: 'v2 final\n', mode: 0o4755, uid: 2000, gid: 2001 },
    ],
  ], false);
  const { tree, img } = await merged(dir);
  assert.equal(tree.get('f')?.content, 'v2 final\n');
  assert.equal(tree.get('f')?.perm, 0o4755);
  assert.equal(tree.get('f')?.uid, 2000);
  assert.equal(tree.get('f')?.gid, 2001);
  assert.equal(tree.get('g')?.perm, 0o600);
  assert.ok(!readFileSync(img).includes(HIDDEN));
});
