/**
 * libarchive's conformance corpus (../shared/fixtures/tar-conformance, see its README.md).
 *
 * Reference: what bsdtar (libarchive) really extracts, as root, with
 * `bsdtar -xpf F --xattrs --acls --numeric-owner`: every archive it extracts must read with us
 * to the same tree (names, types, modes, owners, mtimes, content incl. sparse files, link targets,
 * hard links, xattrs and ACLs as the kernel stores them); every archive it rejects must give a
 * typed RootforgeError. Python's tarfile is a second reference where it reads the archive.
 * Deliberate differences are listed in DIFFERENT with the reason.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, lstatSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, test } from 'node:test';
import { isRootforgeError, type ErrorCode } from '../../src/errors.js';
import { openArchive } from '../../src/tar/decompress.js';
import type { TarHeader } from '../../src/tar/types.js';
import { byteStringToBytes } from '../../src/util/bytes.js';
import { collect, fingerprint, hasTool, pythonDump, sharedFixture, sparseSha256, type Collected, type CollectResult } from '../helpers/tar-collect.js';
import { collectAsync, compareWithPython } from '../helpers/tar-compare.js';

const CORPUS = sharedFixture('tar-conformance');
const haveCorpus = existsSync(CORPUS);
const missingTools = ['bsdtar', 'python3', 'getfattr'].filter((t) => !hasTool(t));
const skipAll = !haveCorpus ? `no corpus at ${CORPUS} (../shared/fixtures is absent)` : missingTools.length > 0 ? `missing tools: ${missingTools.join(', ')}` : false;
const isRoot = process.getuid?.() === 0;

/**
 * Where we deliberately part from bsdtar 3.6.2. `ours` is our outcome; `bsdtar` its exit status
 * when extracting (checked, so a change of reference shows up).
 */
const DIFFERENT: Record<string, { ours: 'ok' | ErrorCode; bsdtar: 'ok' | 'fails'; why: string }> = {
  'test_acl_pax_posix1e.tar': {
    ours: 'ok',
    bsdtar: 'fails',
    why: 'named ACL entries without a mask: bsdtar passes that to the kernel (EINVAL); we add the mask as setfacl/acl_calc_mask do',
  },
  'test_compat_star_acl_posix1e.tar': {
    ours: 'ok',
    bsdtar: 'fails',
    why: 'ACLs name users (user77) with no numeric id: bsdtar fails to set them; we drop them with TAR_ACL_DROPPED unless aclNameToId resolves the names',
  },
  'test_pax_filename_encoding.tar': {
    ours: 'ok',
    bsdtar: 'fails',
    why: 'bsdtar only fails converting a non-UTF-8 name for the C locale; we keep names as bytes',
  },
  'test_read_format_gtar_sparse_skip_entry.tar': {
    ours: 'ok',
    bsdtar: 'fails',
    why: 'libarchive >= 3.7 reads it (its own test expects entries a and b); 3.6.2 does not. One stored byte beyond the map: TAR_SPARSE_EXCESS',
  },
  'test_read_format_tar_empty_filename.tar': {
    ours: 'ok',
    bsdtar: 'fails',
    why: 'reported with path "" and a TAR_EMPTY_PATH warning (as libarchive\'s API and Python do); the tree layer decides. bsdtar\'s CLI skips it with an error status',
  },
  'test_read_format_tar_pax_large_attr.tar': {
    ours: 'ok',
    bsdtar: 'fails',
    why: 'libarchive >= 3.7 and Python skip the 8 MB unknown attribute (libarchive\'s test expects "foo"); 3.6.2 refuses any extension header over 1 MiB',
  },
  'test_read_pax_empty_val_no_nl.tar': {
    ours: 'ok',
    bsdtar: 'fails',
    why: 'malformed PAX record: both warn and go on; the warning alone makes bsdtar exit 1',
  },
  'test_read_format_tar_V_negative_size.tar': {
    ours: 'TAR_NOT_TAR',
    bsdtar: 'ok',
    why: 'the first block has no valid checksum: bsdtar recognises no format ("Archive Format: (null)") yet exits 0 having extracted nothing; libarchive\'s own test expects ARCHIVE_FATAL',
  },
};

/** Where Python's tarfile reads differently from libarchive and us (skipped for Python only). */
const PYTHON_DIFFERS: Record<string, string> = {
  'test_read_format_gtar_redundant_L.tar': 'with repeated GNU L headers Python keeps the first name; GNU tar and libarchive the last',
  'test_compat_solaris_tar_acl.tar': 'Python lists the Solaris ACL headers (typeflag A) as members of their own',
  'test_read_format_tar_empty_with_gnulabel.tar': 'Python lists the GNU volume label (typeflag V) as a member; GNU tar and libarchive do not',
  'test_read_format_tar_pax_timestamps.tar': 'Python cannot parse "1748089464.951928467a" and reports mtime 0; libarchive and we read the number before the junk',
};

const work = mkdtempSync(join(tmpdir(), 'rf-corpus-'));
after(() => rmSync(work, { recursive: true, force: true }));

const files = haveCorpus ? readdirSync(CORPUS).filter((f) => f !== 'README.md').sort() : [];

test('the corpus is there and complete', { skip: skipAll }, () => {
  assert.equal(files.length, 57);
});

for (const name of files) {
  test(name, { skip: skipAll, timeout: 120_000 }, async () => {
    const path = join(CORPUS, name);
    const dest = join(work, name);
    mkdirSync(dest);
    const bsd = spawnSync('bsdtar', ['-xpf', path, '--xattrs', '--acls', '--numeric-owner', '-C', dest]);
    const bsdOk = bsd.status === 0;
    const expected = DIFFERENT[name];
    if (expected !== undefined) assert.equal(bsdOk ? 'ok' : 'fails', expected.bsdtar, `bsdtar's verdict changed: ${bsd.stderr.toString()}`);

    let ours: CollectResult | undefined;
    let error: unknown;
    try {
      ours = await collectAsync(await openArchive(path));
    } catch (e) {
      error = e;
    }
    const want = (expected?.ours ?? (bsdOk ? 'ok' : 'typed error')) as 'ok' | 'typed error' | ErrorCode;
    if (want !== 'ok') {
      assert.ok(isRootforgeError(error), `expected a typed error, got ${error === undefined ? 'success' : String(error)}`);
      if (want !== 'typed error') assert.equal(error.code, want);
      return;
    }
    if (error !== undefined) throw error;
    assert.ok(ours !== undefined);

    // In-memory parse, whole and byte by byte, agrees with the async file path.
    const raw = name.endsWith('.tar') || name.endsWith('.pax') ? readFileSync(path) : undefined;
    if (raw !== undefined) {
      assert.deepEqual(fingerprint(collect(raw)), fingerprint(ours));
      if (raw.length < 1 << 20) assert.deepEqual(fingerprint(collect(raw, 1)), fingerprint(ours));
    }

    if (bsdOk) compareWithTree(ours.entries, dest);
    if (PYTHON_DIFFERS[name] === undefined && name !== 'test_compat_zstd_1.tar.zst' && name !== 'test_compat_zstd_2.tar.zst') {
      const py = spawnSync('python3', ['-c', 'import tarfile,sys; list(tarfile.open(sys.argv[1]))', path]);
      if (py.status === 0) compareWithPython(ours.entries, pythonDump(path), { label: name });
    }
  });
}

test('spot checks against libarchive\'s own expectations', { skip: skipAll }, () => {
  const read = (f: string) => collect(readFileSync(join(CORPUS, f)));
  const one = (f: string): TarHeader => read(f).entries[0]!.header;
  // base-256 uid/gid (test_compat_gtar_2)
  assert.deepEqual([one('test_compat_gtar_2.tar').uid, one('test_compat_gtar_2.tar').gid], [2097152, 2097152]);
  // negative PAX times (test_read_format_tar_pax_negative_time)
  const neg = one('test_read_format_tar_pax_negative_time.tar');
  assert.deepEqual(neg.mtime, { sec: -2146608000, nsec: 0 });
  assert.deepEqual(neg.ctime, { sec: 1748089464, nsec: 951928467 });
  // xattrs in all three spellings (test_pax_xattr_header_*)
  for (const f of ['test_pax_xattr_header_all.tar', 'test_pax_xattr_header_libarchive.tar', 'test_pax_xattr_header_schily.tar']) {
    const h = one(f);
    assert.equal(h.xattrs.get('user.data1')?.toString(), 'ABCDEFG', f);
    assert.equal(h.xattrs.get('user.data2')?.toString(), 'XYZ', f);
    assert.deepEqual(h.mtime, { sec: 5, nsec: 50 }, f);
  }
  assert.equal(one('test_read_pax_xattr_rht_security_selinux.tar').xattrs.get('security.selinux')?.toString(), 'system_u:object_r:admin_home_t:s0');
  // concatenated archives: only the first (libarchive's default, GNU tar without -i)
  assert.deepEqual(
    read('test_read_format_tar_concatenated.tar').entries.map((e) => e.header.path),
    ['file1'],
  );
  // v7 directory with a size and no body, then another entry (test_compat_tar_directory)
  assert.deepEqual(
    read('test_compat_tar_directory_1.tar').entries.map((e) => [e.header.path, e.header.type]),
    [
      ['directory1/', 'dir'],
      ['directory2/', 'dir'],
    ],
  );
  // hard link with the target's size and no body, at the very end (test_compat_tar_hardlink)
  const hl = read('test_compat_tar_hardlink_1.tar').entries;
  assert.deepEqual([hl[1]!.header.type, hl[1]!.header.linkname, hl[1]!.header.size], ['hardlink', 'xmcd-3.3.2/docs_d/READMf', 0]);
  // Solaris ACL headers become the next entry's POSIX ACL; NFSv4 ones are dropped
  const sol = read('test_compat_solaris_tar_acl.tar');
  assert.deepEqual(
    sol.entries.map((e) => [e.header.path, [...e.header.xattrs.keys()]]),
    [
      ['file-with-posix-acls', ['system.posix_acl_access']],
      ['dir-with-posix-acls/', ['system.posix_acl_access', 'system.posix_acl_default']],
      ['file-with-nfsv4-acls', []],
      ['dir-with-nfsv4-acls/', []],
    ],
  );
  assert.equal(sol.warnings.filter((w) => w.code === 'TAR_ACL_NFS4').length, 2);
  // the GNU sparse file name, not the GNUSparseFile.N placeholder, and its real size
  const skipEntry = read('test_read_format_gtar_sparse_skip_entry.tar').entries.map((e) => [e.header.path, e.header.size]);
  assert.deepEqual(skipEntry, [
    ['a', 10737418244],
    ['b', 4],
  ]);
});

/** Our entries against the tree bsdtar extracted. */
function compareWithTree(entries: Collected[], dest: string): void {
  const final = new Map<string, Collected>();
  for (const e of entries) {
    const p = normalise(e.header.path);
    if (p !== '') final.set(p, e);
  }
  const onDisk = walk(dest);
  const expectedPaths = new Set<string>();
  for (const p of final.keys()) {
    const parts = p.split('/');
    for (let i = 1; i <= parts.length; i++) expectedPaths.add(parts.slice(0, i).join('/'));
  }
  assert.deepEqual([...onDisk].sort(), [...expectedPaths].sort(), 'paths');
  const xattrsOnDisk = getfattrTree(dest);
  for (const [p, e] of final) {
    const h = e.header;
    const abs = Buffer.concat([Buffer.from(`${dest}/`), byteStringToBytes(p)]);
    const st = lstatSync(abs, { bigint: true });
    const at = JSON.stringify(p);
    const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : st.isBlockDevice() ? 'blockdev' : '?';
    assert.equal(kind, h.type === 'hardlink' ? 'file' : h.type, `${at} type`);
    if (h.type === 'symlink') {
      assert.equal(readlinkSync(abs, { encoding: 'buffer' }).toString('latin1'), h.linkname, `${at} target`);
      continue;
    }
    if (h.type === 'hardlink') {
      const target = lstatSync(Buffer.concat([Buffer.from(`${dest}/`), byteStringToBytes(normalise(h.linkname))]), { bigint: true });
      assert.equal(st.ino, target.ino, `${at} is a hard link to ${h.linkname}`);
      continue;
    }
    assert.equal(Number(st.mode & 0o7777n), h.mode, `${at} mode`);
    if (isRoot) assert.deepEqual([Number(st.uid), Number(st.gid)], [h.uid, h.gid], `${at} owner`);
    if (h.type === 'file') {
      assert.equal(Number(st.size), h.size, `${at} size`);
      assert.equal(sha256File(abs), h.sparse === undefined ? createHash('sha256').update(e.body).digest('hex') : sparseSha256(h, e.body), `${at} content`);
      assert.equal(st.mtimeNs, BigInt(h.mtime.sec) * 1_000_000_000n + BigInt(h.mtime.nsec), `${at} mtime`);
    }
    if (h.type === 'file' || h.type === 'dir') {
      const disk = xattrsOnDisk.get(p) ?? new Map<string, string>();
      assert.deepEqual(
        [...h.xattrs].map(([k, v]) => [k, v.toString('hex')]).sort(),
        [...disk].sort(),
        `${at} xattrs (ACLs in the kernel's encoding)`,
      );
    }
  }
}

/** Path as the tree has it: no "./", no trailing or doubled slashes. */
function normalise(p: string): string {
  return p
    .split('/')
    .filter((c) => c !== '' && c !== '.')
    .join('/');
}

/** Relative byte-string paths of everything under `root`. */
function walk(root: string): Set<string> {
  const out = new Set<string>();
  const rec = (dir: Buffer, rel: string): void => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const r = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
      out.add(r);
      const abs = Buffer.concat([dir, Buffer.from('/'), name]);
      if (lstatSync(abs).isDirectory()) rec(abs, r);
    }
  };
  rec(Buffer.from(root), '');
  return out;
}

/** xattrs of every path under root (getfattr -R), keyed by relative byte-string path. */
function getfattrTree(root: string): Map<string, Map<string, string>> {
  const r = spawnSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root]);
  const out = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of r.stdout.toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) {
      const abs = line.slice(8).replace(/\\([0-7]{3})|\\\\/g, (_m, oct: string | undefined) => (oct === undefined ? '\\' : String.fromCharCode(parseInt(oct, 8))));
      current = new Map();
      out.set(abs.slice(root.length + 1), current);
    } else {
      const m = /^([^=]+)=0x([0-9a-f]*)$/.exec(line);
      if (m !== null && current !== undefined) current.set(m[1]!, m[2]!);
    }
  }
  return out;
}

function sha256File(p: Buffer): string {
  return createHash('sha256').update(readFileSync(p)).digest('hex');
}
