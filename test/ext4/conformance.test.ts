/**
 * libarchive's tar test corpus (../shared/fixtures/tar-conformance) through the whole converter.
 * Every archive bsdtar extracts must convert to an image equal to that extraction, read through
 * the kernel; every archive it rejects must give a typed error, or a lenient result listed in
 * LENIENT with the reason — never a crash, a hang, or an image that fails e2fsck.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { convert } from '../../src/convert.js';
import { isRootforgeError } from '../../src/errors.js';
import { CONFORMANCE, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { assertFsckClean, assertSameTree, canMount, fsManifest, impliedDirs, mountManifest } from '../helpers/image.js';

/** Archives bsdtar rejects (or half-extracts) that we read anyway, and why that is right. */
const LENIENT: Record<string, string> = {
  'test_acl_pax_posix1e.tar': 'bsdtar fails to apply ACLs whose mode bits disagree; we store them (mode wins, as chmod would)',
  'test_compat_star_acl_posix1e.tar': 'same: ACLs stored, bsdtar cannot apply them',
  'test_pax_filename_encoding.tar': 'bsdtar cannot convert a non-UTF-8 PAX path to the locale; ext4 names are bytes, we keep them',
  'test_read_format_tar_empty_filename.tar': 'an entry with an empty name names the root directory: we apply it to /, bsdtar skips it',
  'test_read_pax_empty_val_no_nl.tar': 'a malformed PAX record is ignored with a warning, as bsdtar does (it exits 1 for the warning)',
  'test_read_format_gtar_sparse_skip_entry.tar': 'libarchive >= 3.7 reads it too (its own test expects entries a and b); Debian 12 has 3.6.2',
  'test_read_format_tar_pax_large_attr.tar': 'bsdtar refuses PAX headers over 1 MiB; ours keeps up to our limit and reads it',
};

/** Archives bsdtar "extracts" but we reject, and why. */
const STRICTER: Record<string, string> = {
  'test_read_format_tar_V_negative_size.tar': 'no valid header: bsdtar recognises no format, extracts nothing and exits 0; we report TAR_NOT_TAR',
};

test('libarchive tar corpus: images equal bsdtar extractions', { timeout: 600_000 }, async (t) => {
  if (!existsSync(CONFORMANCE)) return skipOrFail(t, NO_SHARED);
  const root = process.getuid?.() === 0;
  if (!root) t.diagnostic('not root: checking only typed errors and e2fsck (extraction and mounts need root)');
  const work = mkdtempSync(join(tmpdir(), 'rf-conf-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const archives = readdirSync(CONFORMANCE).filter((f) => /\.(tar|pax|tar\.zst|tar\.gz)$/.test(f)).sort();
  assert.ok(archives.length >= 50, `corpus has ${archives.length} archives`);
  let compared = 0;
  for (const a of archives) {
    const src = join(CONFORMANCE, a);
    const img = join(work, `${a}.img`);
    let ours: unknown = null;
    try {
      await convert(`tar:${src}`, img);
    } catch (e) {
      ours = e;
    }
    if (ours !== null) {
      assert.ok(isRootforgeError(ours), `${a}: not a typed error: ${(ours as Error).stack}`);
      assert.equal(existsSync(img), false, `${a}: output left behind`);
    } else {
      assertFsckClean(img);
    }
    if (!root) continue;
    const ext = join(work, `${a}.x`);
    mkdirSync(ext);
    const bsd = spawnSync('bsdtar', ['-xpf', src, '--xattrs', '--acls', '--numeric-owner', '-C', ext], { env: { ...process.env, LC_ALL: 'C.UTF-8' } });
    const bsdOk = bsd.status === 0;
    if (!bsdOk) {
      if (ours === null) assert.ok(LENIENT[a], `${a}: bsdtar rejects it (${bsd.stderr}) but we accepted it without a reason in LENIENT`);
      continue;
    }
    if (ours !== null && STRICTER[a]) continue;
    assert.equal(ours, null, `${a}: bsdtar extracts it but we failed: ${(ours as Error | null)?.message}`);
    if (!canMount()) continue;
    const listed = spawnSync('bsdtar', ['-tf', src], { env: { ...process.env, LC_ALL: 'C.UTF-8' }, maxBuffer: 1 << 26 })
      .stdout.toString('latin1')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => Buffer.from(l, 'latin1'));
    const implied = impliedDirs(listed);
    implied.add(''); // the extraction root is created by the test, not the archive
    assertSameTree(mountManifest(img), fsManifest(ext), { ignoreMtimeOf: implied });
    compared++;
  }
  t.diagnostic(`${compared} of ${archives.length} archives compared attribute by attribute with bsdtar's extraction`);
});
