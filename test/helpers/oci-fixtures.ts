/**
 * Multi-layer OCI images made with the real tools: umoci (unpack/repack as root computes the
 * layer diffs, whiteouts included) and `umoci raw add-layer` for a hand-written layer with what
 * repack never emits (an opaque directory, a hard link into a lower layer, a whiteout under a
 * path that is no longer a directory). The reference for every test is `umoci unpack`.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tarEntries } from './tar-writer.js';
import { missingTool } from './fixtures.js';

export function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

export function haveTools(...tools: string[]): string | null {
  return missingTool(...tools);
}

/** Bytes that appear only in content hidden by upper layers: they must not reach the image. */
export const HIDDEN_MARKER = 'HIDDEN-CONTENT-MUST-NOT-BE-WRITTEN';

function file(root: string, rel: string, content: string | Buffer, mode = 0o644): void {
  const p = join(root, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, content);
  chmodSync(p, mode);
}

/**
 * Builds the layout at `dir` with tags v1 (1 layer), v2 (2 layers) and v3 (3 layers).
 * Needs root (umoci unpack keeps owners; setcap, mknod).
 */
export function buildComplexImage(dir: string, work: string): void {
  const layout = dir;
  const bundle = join(work, 'bundle');
  sh('umoci', ['init', '--layout', layout]);
  sh('umoci', ['new', '--image', `${layout}:base`]);
  sh('umoci', ['unpack', '--image', `${layout}:base`, bundle]);
  const r = join(bundle, 'rootfs');

  // ---- layer 1
  file(r, 'etc/hostname', 'one\n');
  file(r, 'bin/tool', Buffer.alloc(5000, 0x7f), 0o755);
  sh('setfattr', ['-n', 'user.k', '-v', 'v', join(r, 'bin/tool')]);
  sh('setcap', ['cap_net_raw+ep', join(r, 'bin/tool')]);
  file(r, 'hard/a', 'shared by a, b and (layer 3) c\n');
  linkSync(join(r, 'hard/a'), join(r, 'hard/b'));
  file(r, 'hard/x', 'x and y share this; x is deleted later\n');
  linkSync(join(r, 'hard/x'), join(r, 'hard/y'));
  file(r, 'del/file', `${HIDDEN_MARKER} deleted file\n`);
  file(r, 'deldir/1', `${HIDDEN_MARKER} deleted dir 1\n`);
  file(r, 'deldir/sub/2', `${HIDDEN_MARKER} deleted dir 2\n`);
  file(r, 'flip/file2dir', `${HIDDEN_MARKER} file that becomes a dir\n`);
  file(r, 'flip/dir2file/child', `${HIDDEN_MARKER} child of a dir that becomes a file\n`);
  file(r, 'flip/file2sym', `${HIDDEN_MARKER} file that becomes a symlink\n`);
  file(r, 'own/f', 'owner changes\n');
  chownSync(join(r, 'own/f'), 1000, 1000);
  file(r, 'mode/f', 'mode changes\n', 0o644);
  file(r, 'opq/old1', `${HIDDEN_MARKER} opaque 1\n`);
  file(r, 'opq/old2', `${HIDDEN_MARKER} opaque 2\n`);
  file(r, 'xattr/f', 'xattrs change\n');
  sh('setfattr', ['-n', 'user.a', '-v', '1', join(r, 'xattr/f')]);
  file(r, 'big/blob', Buffer.concat([Buffer.from(HIDDEN_MARKER), Buffer.alloc(3 << 20, 0x11)]));
  file(r, 'keep/unchanged', Buffer.alloc(200000, 0x22));
  sh('mkfifo', [join(r, 'keep/fifo')]);
  mkdirSync(join(r, 'dev'), { recursive: true });
  sh('mknod', ['-m', '666', join(r, 'dev/null'), 'c', '1', '3']);
  symlinkSync('hostname', join(r, 'etc/link'));
  utimesSync(join(r, 'keep/unchanged'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));
  sh('umoci', ['repack', '--refresh-bundle', '--image', `${layout}:v1`, bundle]);

  // ---- layer 2: deletions, type flips, owner/mode/xattr changes, replaced content
  rmSync(join(r, 'del/file'));
  rmSync(join(r, 'deldir'), { recursive: true });
  rmSync(join(r, 'flip/file2dir'));
  file(r, 'flip/file2dir/new', 'now a directory\n');
  rmSync(join(r, 'flip/dir2file'), { recursive: true });
  file(r, 'flip/dir2file', 'now a file\n');
  rmSync(join(r, 'flip/file2sym'));
  symlinkSync('../etc/hostname', join(r, 'flip/file2sym'));
  chownSync(join(r, 'own/f'), 2000, 2001);
  chmodSync(join(r, 'mode/f'), 0o600);
  rmSync(join(r, 'hard/x'));
  sh('setfattr', ['-n', 'user.a', '-v', '2', join(r, 'xattr/f')]);
  sh('setfattr', ['-n', 'user.b', '-v', '3', join(r, 'xattr/f')]);
  file(r, 'etc/hostname', 'two\n');
  rmSync(join(r, 'big/blob'));
  file(r, 'big/blob', Buffer.alloc(2 << 20, 0x33));
  sh('umoci', ['repack', '--refresh-bundle', '--image', `${layout}:v2`, bundle]);

  // ---- layer 3, written by hand: what repack never emits
  const t = { sec: 1700000000, nsec: 0 };
  const layer3 = join(work, 'layer3.tar');
  writeFileSync(
    layer3,
    tarEntries([
      { path: 'opq/', type: 'dir', mode: 0o750, mtime: t },
      { path: 'opq/.wh..wh..opq', content: '', mtime: t },
      { path: 'opq/new', content: 'fresh in an opaque directory\n', mtime: t },
      { path: 'hard/c', type: 'hardlink', linkname: 'hard/a', mtime: t },
      { path: 'flip/dir2file/.wh.child', content: '', mtime: t },
      { path: 'etc/.wh.link', content: '', mtime: t },
      { path: 'layer3/added', content: 'added by layer 3\n', mode: 0o640, uid: 33, gid: 33, mtime: { sec: 1700000000, nsec: 123456789 } },
    ]),
  );
  sh('umoci', ['raw', 'add-layer', '--image', `${layout}:v2`, '--tag', 'v3', layer3]);
}

/**
 * An OCI layout at `layout` whose image `alpine` is a minirootfs tarball as one layer, with
 * `umoci config` arguments applied (e.g. --architecture, --config.env). Needs root and umoci.
 */
export function alpineOciLayout(layout: string, bundle: string, tarball: string, configArgs: string[]): void {
  sh('umoci', ['init', '--layout', layout]);
  sh('umoci', ['new', '--image', `${layout}:alpine`]);
  sh('umoci', ['unpack', '--image', `${layout}:alpine`, bundle]);
  sh('tar', ['-xzf', tarball, '-C', join(bundle, 'rootfs')]);
  sh('umoci', ['repack', '--image', `${layout}:alpine`, bundle]);
  sh('umoci', ['config', '--image', `${layout}:alpine`, ...configArgs]);
}

/** umoci's own unpack of `ref`: the reference rootfs. */
export function umociUnpack(layout: string, tag: string, dest: string): string {
  sh('umoci', ['unpack', '--image', `${layout}:${tag}`, dest]);
  return join(dest, 'rootfs');
}

/**
 * A copy of the layout at `src` whose `tag` has every layer re-compressed as `how` (zstd or
 * uncompressed), with fresh digests and media types — what other tools push.
 */
export function recompressLayout(src: string, tag: string, dest: string, how: 'zstd' | 'none', work: string): void {
  sh('cp', ['-a', src, dest]);
  const index = JSON.parse(readFileSync(join(dest, 'index.json'), 'utf8')) as { manifests: { digest: string; size: number; annotations?: Record<string, string> }[] };
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!;
  const blob = (d: string) => join(dest, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(readFileSync(blob(desc.digest), 'utf8')) as { layers: { mediaType: string; digest: string; size: number }[] };
  for (const l of manifest.layers) {
    const raw = join(work, `${l.digest.slice(7)}.tar`);
    writeFileSync(raw, spawnSync('gzip', ['-dc', blob(l.digest)], { maxBuffer: 1 << 30 }).stdout);
    let out = raw;
    if (how === 'zstd') {
      sh('zstd', ['-q', '-f', '-3', raw, '-o', `${raw}.zst`]);
      out = `${raw}.zst`;
    }
    const bytes = readFileSync(out);
    const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
    renameSync(out, blob(digest));
    l.digest = digest;
    l.size = bytes.length;
    l.mediaType = how === 'zstd' ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.oci.image.layer.v1.tar';
  }
  const mbytes = Buffer.from(JSON.stringify(manifest));
  const mdigest = 'sha256:' + createHash('sha256').update(mbytes).digest('hex');
  writeFileSync(blob(mdigest), mbytes);
  desc.digest = mdigest;
  desc.size = mbytes.length;
  writeFileSync(join(dest, 'index.json'), JSON.stringify(index));
}
