/**
 * Archives made by GNU tar and bsdtar from a real directory tree (every file type, long and
 * non-UTF-8 names, special modes, big ids, nanosecond and pre-1970 times, xattrs, ACLs), plain
 * and compressed. References: Python's tarfile for every member field, and the source tree itself
 * (lstat, getfattr) for what Python does not model.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { openArchive, openArchiveStream } from '../../src/tar/decompress.js';
import { byteStringToBytes } from '../../src/util/bytes.js';
import { collect, fingerprint, hasTool, lcg, pythonDump, run } from '../helpers/tar-collect.js';
import { collectAsync, compareWithPython } from '../helpers/tar-compare.js';

const isRoot = process.getuid?.() === 0;
const tools = ['tar', 'bsdtar', 'python3', 'gzip', 'zstd', 'setfattr', 'getfattr', 'setfacl', 'mkfifo', 'touch'];
const missing = tools.filter((t) => !hasTool(t));
const skip = missing.length > 0 ? `missing tools: ${missing.join(', ')}` : false;

const work = mkdtempSync(join(tmpdir(), 'rf-real-'));
const root = join(work, 'root');
after(() => rmSync(work, { recursive: true, force: true }));

const LONG_DIR = `${'d'.repeat(120)}/${'e'.repeat(120)}`;
const LONG_FILE = `${LONG_DIR}/${'f'.repeat(80)}-long-file-name`;
const NON_UTF8 = Buffer.from([0x6e, 0xff, 0xfe, 0x41]);
const xattrFiles = ['a/small.txt', 'a/b'];

before(() => {
  if (skip) return;
  mkdirSync(join(root, 'a/b'), { recursive: true });
  mkdirSync(join(root, 'empty'));
  mkdirSync(join(root, LONG_DIR), { recursive: true });
  mkdirSync(join(root, 'sticky'));
  writeFileSync(join(root, 'a/small.txt'), 'hello\n');
  writeFileSync(join(root, 'a/empty'), '');
  const rand = lcg(9);
  writeFileSync(join(root, 'a/b/random.bin'), Buffer.from(Array.from({ length: 1 << 20 }, () => Math.floor(rand() * 256))));
  writeFileSync(join(root, LONG_FILE), 'deep\n');
  writeFileSync(join(root, 'привет.txt'), 'utf-8 name\n');
  writeFileSync(Buffer.concat([Buffer.from(`${root}/`), NON_UTF8]), 'latin1 name\n');
  symlinkSync('small.txt', join(root, 'a/link'));
  symlinkSync(`../${'t'.repeat(150)}`, join(root, 'a/long-link')); // dangling, target > 100 bytes
  linkSync(join(root, 'a/small.txt'), join(root, 'a/hard'));
  run('mkfifo', [join(root, 'fifo')]);
  writeFileSync(join(root, 'suid'), '#!/bin/sh\n');
  if (isRoot) {
    run('mknod', [join(root, 'null'), 'c', '1', '3']);
    run('mknod', [join(root, 'loop0'), 'b', '7', '0']);
    chownSync(join(root, 'suid'), 1000, 1000);
    chownSync(join(root, 'a/empty'), 2097152, 2097153); // beyond 7 octal digits: base-256 / pax
  }
  chmodSync(join(root, 'suid'), 0o4755);
  chmodSync(join(root, 'sticky'), 0o1777);
  chmodSync(join(root, 'a/b'), 0o2750);
  run('setfattr', ['-n', 'user.bin', '-v', '0x00ff0a3d00', join(root, 'a/small.txt')]);
  run('setfattr', ['-n', 'user.text', '-v', 'some text', join(root, 'a/small.txt')]);
  if (isRoot) run('setfattr', ['-n', 'security.capability', '-v', '0x0100000200040000000000000000000000000000', join(root, 'a/small.txt')]);
  run('setfacl', ['-m', 'u:1234:rw,g:2:r,u:65534:x', join(root, 'a/small.txt')]);
  run('setfacl', ['-d', '-m', 'u:1234:rwx', join(root, 'a/b')]);
  run('touch', ['-h', '-d', '2001-02-03 04:05:06.123456789 UTC', join(root, 'a/small.txt')]);
  run('touch', ['-h', '-d', '1960-01-01 00:00:00.5 UTC', join(root, 'a/b/random.bin')]);
});

const archives: Record<string, { make: string[]; xattrs: boolean; acls?: boolean }> = {
  'gnu.tar': { make: ['tar', '--format=gnu', '--numeric-owner'], xattrs: false },
  'pax.tar': { make: ['tar', '--format=pax', '--numeric-owner', '--xattrs', '--xattrs-include=*', '--acls'], xattrs: true, acls: true },
  'bsd-pax.tar': { make: ['bsdtar', '--format=pax', '--numeric-owner', '--xattrs', '--acls'], xattrs: true, acls: true },
  'bsd-gnutar.tar': { make: ['bsdtar', '--format=gnutar', '--numeric-owner'], xattrs: false },
};

function build(name: string): string {
  const path = join(work, name);
  const [cmd, ...args] = archives[name]!.make;
  run(cmd!, [...args, '-cf', path, '-C', root, '.']);
  return path;
}

for (const name of Object.keys(archives)) {
  test(`${name}: every member equals Python tarfile's reading`, { skip }, () => {
    const path = build(name);
    const tar = readFileSync(path);
    const { entries, warnings } = collect(tar);
    assert.deepEqual(warnings, [], name);
    compareWithPython(entries, pythonDump(path), { label: name });
    // types we expect to be there, whatever the writer
    const types = new Set(entries.map((e) => e.header.type));
    for (const t of ['dir', 'file', 'symlink', 'hardlink', 'fifo', ...(isRoot ? ['chardev', 'blockdev'] : [])]) assert.ok(types.has(t as never), `${name} has a ${t}`);
    assert.ok(entries.some((e) => e.header.path.endsWith(LONG_FILE)), 'long name');
    assert.ok(entries.some((e) => e.header.path.endsWith(NON_UTF8.toString('latin1'))), 'non-UTF-8 name kept as bytes');
    // one byte at a time gives the same result
    assert.deepEqual(fingerprint(collect(tar, 1)), fingerprint({ entries, warnings }));
  });
}

for (const name of ['pax.tar', 'bsd-pax.tar']) {
  test(`${name}: nanosecond times, xattrs and ACLs equal the source tree's`, { skip }, () => {
    const { entries } = collect(readFileSync(build(name)));
    for (const e of entries) {
      const rel = e.header.path.replace(/^\.\//, '').replace(/\/$/, '');
      if (rel === '.' || rel === '') continue;
      const st = lstatSync(Buffer.concat([Buffer.from(`${root}/`), byteStringToBytes(rel)]), { bigint: true });
      const ns = BigInt(e.header.mtime.sec) * 1_000_000_000n + BigInt(e.header.mtime.nsec);
      if (e.header.type === 'symlink' && name === 'bsd-pax.tar') continue;
      if (name === 'bsd-pax.tar' && st.mtimeNs < 0n) {
        // Deliberate difference: bsdtar 3.6 writes 1960-01-01T00:00:00.5Z (-315619199.5 s) as
        // "mtime=-315619200.5" (whole seconds, then a positive fraction) and reads it back that
        // way. POSIX, GNU tar and Python read the text as the number it is, and so do we.
        assert.deepEqual(e.header.mtime, { sec: -315619201, nsec: 500000000 }, `${rel} mtime`);
        continue;
      }
      assert.equal(ns, st.mtimeNs, `${rel} mtime`);
    }
    for (const rel of xattrFiles) {
      const e = entries.find((x) => x.header.path.replace(/^\.\//, '').replace(/\/$/, '') === rel)!;
      const fromFs = getfattrAll(join(root, rel));
      assert.deepEqual(
        [...e.header.xattrs].map(([k, v]) => [k, v.toString('hex')]).sort(),
        [...fromFs].sort(),
        `${name} ${rel}: xattrs incl. system.posix_acl_* in kernel encoding`,
      );
    }
  });
}

test('GNU tar --acls without xattrs: names resolved by the caller, else dropped with a warning', { skip }, () => {
  const path = join(work, 'acl-names.tar');
  run('tar', ['--format=pax', '--acls', '-cf', path, '-C', root, 'a/small.txt']);
  const tar = readFileSync(path);
  const kernel = getfattrAll(join(root, 'a/small.txt')).get('system.posix_acl_access');
  const groups: Record<string, number> = { bin: 2, nogroup: 65534 };
  const users: Record<string, number> = { nobody: 65534 };
  const resolved = collect(tar, 'one', { aclNameToId: (kind, n) => (kind === 'user' ? users[n] : groups[n]) });
  assert.equal(resolved.entries[0]!.header.xattrs.get('system.posix_acl_access')?.toString('hex'), kernel);
  const text = readFileSync(path).toString('latin1');
  if (/user:nobody|group:bin/.test(text)) {
    const dropped = collect(tar);
    assert.equal(dropped.entries[0]!.header.xattrs.has('system.posix_acl_access'), false);
    assert.deepEqual(
      dropped.warnings.map((w) => w.code),
      ['TAR_ACL_DROPPED'],
    );
  }
});

test('gzip and zstd (single and multi-member/frame) read the same as plain tar', { skip }, async () => {
  const plainPath = build('pax.tar');
  const plain = readFileSync(plainPath);
  const expected = fingerprint(collect(plain));
  const half = 512 * Math.floor(plain.length / 1024);
  const variants: Record<string, Buffer> = {
    'pax.tar.gz': run('gzip', ['-c', plainPath]),
    'pax.tar.zst': run('zstd', ['-q', '-c', plainPath]),
    'multi.tar.gz': Buffer.concat([run('gzip', ['-c'], { input: plain.subarray(0, half) }), run('gzip', ['-c'], { input: plain.subarray(half) })]),
    'multi.tar.zst': Buffer.concat([run('zstd', ['-q', '-c'], { input: plain.subarray(0, half) }), run('zstd', ['-q', '-c'], { input: plain.subarray(half) })]),
  };
  for (const [name, data] of Object.entries(variants)) {
    const path = join(work, name);
    writeFileSync(path, data);
    const opened = await openArchive(path, { chunkSize: 65536 });
    assert.equal(opened.compression, name.endsWith('.gz') ? 'gzip' : 'zstd', name);
    assert.equal(opened.compressedSize, data.length);
    assert.deepEqual(fingerprint(await collectAsync(opened)), expected, name);
    assert.ok(opened.bytesRead() > 0 && opened.bytesRead() <= data.length, name);
    // the same through the stream variant (stdin "-"), in awkward pieces
    const pieces = Array.from({ length: Math.ceil(data.length / 1000) }, (_, i) => data.subarray(i * 1000, (i + 1) * 1000));
    const fromStream = await openArchiveStream(Readable.from(pieces));
    assert.equal(fromStream.compressedSize, undefined);
    assert.deepEqual(fingerprint(await collectAsync(fromStream)), expected, `${name} as a stream`);
  }
  const opened = await openArchive(plainPath);
  assert.equal(opened.compression, 'none');
  assert.deepEqual(fingerprint(await collectAsync(opened)), expected, 'plain file through openArchive');
});

/** All xattrs of a path as the kernel has them (name → hex). */
function getfattrAll(path: string): Map<string, string> {
  const out = run('getfattr', ['--absolute-names', '-h', '-d', '-m', '-', '-e', 'hex', path]).toString();
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const r = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
    if (r !== null) m.set(r[1]!, r[2]!);
  }
  return m;
}
