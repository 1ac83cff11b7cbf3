/**
 * The official Alpine 3.20.3 minirootfs tarballs (../shared/fixtures/alpine), read through the
 * file API (gzip detected from the bytes), compared member by member with Python's tarfile.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { openArchive } from '../../src/tar/decompress.js';
import { hasTool, pythonDump, sharedFixture } from '../helpers/tar-collect.js';
import { collectAsync, compareWithPython } from '../helpers/tar-compare.js';

const DIR = `${sharedFixture('alpine')}/`;

for (const arch of ['x86_64', 'aarch64']) {
  const path = `${DIR}alpine-minirootfs-3.20.3-${arch}.tar.gz`;
  const skip = !existsSync(path) ? `no fixture at ${path} (../shared/fixtures is absent)` : !hasTool('python3') ? 'python3 missing' : false;
  test(`alpine minirootfs ${arch}: every member equals Python's reading`, { skip }, async () => {
    const archive = await openArchive(path);
    assert.equal(archive.compression, 'gzip');
    const { entries, warnings } = await collectAsync(archive);
    assert.deepEqual(warnings, []);
    compareWithPython(entries, pythonDump(path), { label: arch });
    assert.ok(entries.length > 80, `${entries.length} entries`);
    const byPath = new Map(entries.map((e) => [e.header.path.replace(/^\.\//, ''), e])); // stored as "./etc/..." 
    assert.equal(byPath.get('etc/alpine-release')?.body.toString(), '3.20.3\n');
    assert.equal(byPath.get('bin/sh')?.header.type, 'symlink');
    assert.equal(byPath.get('bin/sh')?.header.linkname, '/bin/busybox');
    assert.equal(byPath.get('bin/busybox')?.header.mode, 0o755);
    assert.equal(archive.bytesRead(), archive.compressedSize);
  });
}
