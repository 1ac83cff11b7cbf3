/**
 * Property-based round trips: random trees (fast-check) → tar → image. Every image must be
 * e2fsck-clean and read back exactly — by our reader and, as root, by the kernel — as the model
 * the archive was generated from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { convert } from '../../src/convert.js';
import { tarEntries, type WriterEntry } from '../helpers/tar-writer.js';
import { assertFsckClean, assertSameTree, canMount, mountManifest, readerManifest, type ManifestEntry } from '../helpers/image.js';

type Kind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'fifo';
interface Spec {
  kind: Kind;
  name: string;
  mode: number;
  uid: number;
  gid: number;
  sec: number;
  nsec: number;
  size: number;
  fill: number;
  target: string;
  linkTo: number; // index of an earlier file (hardlink)
  xattrs: [string, Buffer][];
  major: number;
  minor: number;
}

const nameArb = fc.stringMatching(/^[a-zA-Z0-9._-]{1,20}$/).filter((n) => n !== '.' && n !== '..');
const sizeArb = fc.oneof(fc.constantFrom(0, 1, 4095, 4096, 4097, 8192, 65536), fc.integer({ min: 0, max: 300000 }));
const specArb: fc.Arbitrary<Spec> = fc.record({
  kind: fc.constantFrom<Kind>('file', 'file', 'file', 'dir', 'dir', 'symlink', 'hardlink', 'chardev', 'fifo'),
  name: nameArb,
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: fc.oneof(fc.constantFrom(0, 1000, 65534), fc.integer({ min: 0, max: 0xfffffffe })),
  gid: fc.oneof(fc.constantFrom(0, 1000), fc.integer({ min: 0, max: 0xfffffffe })),
  sec: fc.integer({ min: -(2 ** 31), max: 2 ** 34 - 2 ** 31 - 1 }),
  nsec: fc.integer({ min: 0, max: 999999999 }),
  size: sizeArb,
  fill: fc.integer({ min: 0, max: 255 }),
  target: fc.stringMatching(/^[a-z/._]{1,120}$/),
  linkTo: fc.nat(),
  xattrs: fc.array(fc.tuple(fc.stringMatching(/^user\.[a-z]{1,12}$/), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a))), { maxLength: 4 }),
  major: fc.integer({ min: 0, max: 4095 }),
  minor: fc.integer({ min: 0, max: 0xfffff }),
});

/** Turns specs into archive entries under unique paths, plus the model of the expected tree. */
function build(specs: Spec[]): { entries: WriterEntry[]; expected: ManifestEntry[] } {
  const entries: WriterEntry[] = [{ path: './', type: 'dir', mode: 0o755, mtime: { sec: 1, nsec: 0 } }];
  const expected: ManifestEntry[] = [{ path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime_ns: '1000000000', ino: 0, nlink: 0, xattrs: {} }];
  const dirs: string[] = [''];
  const files: { path: string; idx: number }[] = [];
  const used = new Set<string>();
  let ino = 1;
  specs.forEach((s, i) => {
    const parent = dirs[i % dirs.length]!;
    const path = (parent ? parent + '/' : '') + s.name;
    if (used.has(path)) return;
    used.add(path);
    const xattrs = Object.fromEntries(s.xattrs);
    const mtime = { sec: s.sec, nsec: s.nsec };
    const base = { path: Buffer.from(path).toString('hex'), uid: s.uid, gid: s.gid, mtime_ns: (BigInt(s.sec) * 1_000_000_000n + BigInt(s.nsec)).toString(), nlink: 1, xattrs: Object.fromEntries(s.xattrs.map(([k, v]) => [k, v.toString('hex')])) };
    switch (s.kind) {
      case 'dir':
        entries.push({ path, type: 'dir', mode: s.mode, uid: s.uid, gid: s.gid, mtime, xattrs });
        expected.push({ ...base, type: 'dir', mode: s.mode, ino: ino++ });
        dirs.push(path);
        break;
      case 'file': {
        const content = Buffer.alloc(s.size, s.fill);
        if (s.size > 0) content[s.size - 1] = (s.fill + 1) & 0xff;
        entries.push({ path, mode: s.mode, uid: s.uid, gid: s.gid, mtime, content, xattrs });
        expected.push({ ...base, type: 'file', mode: s.mode, ino: ino++, size: s.size, sha256: createHash('sha256').update(content).digest('hex') });
        files.push({ path, idx: expected.length - 1 });
        break;
      }
      // user.* xattrs on anything but files and directories are dropped (the kernel hides them)
      case 'symlink':
        entries.push({ path, type: 'symlink', mode: 0o777, uid: s.uid, gid: s.gid, mtime, linkname: s.target, xattrs });
        expected.push({ ...base, xattrs: {}, type: 'symlink', mode: 0o777, ino: ino++, target: Buffer.from(s.target).toString('hex') });
        break;
      case 'hardlink': {
        if (files.length === 0) return;
        const t = files[s.linkTo % files.length]!;
        entries.push({ path, type: 'hardlink', linkname: t.path });
        const target = expected[t.idx]!;
        target.nlink++;
        expected.push({ ...target, path: base.path });
        for (const e of expected) if (e.ino === target.ino) e.nlink = target.nlink;
        break;
      }
      case 'chardev':
        entries.push({ path, type: 'chardev', mode: s.mode, uid: s.uid, gid: s.gid, mtime, devmajor: s.major, devminor: s.minor, xattrs });
        expected.push({ ...base, xattrs: {}, type: 'chardev', mode: s.mode, ino: ino++, major: s.major, minor: s.minor });
        break;
      case 'fifo':
        entries.push({ path, type: 'fifo', mode: s.mode, uid: s.uid, gid: s.gid, mtime, xattrs });
        expected.push({ ...base, xattrs: {}, type: 'fifo', mode: s.mode, ino: ino++ });
        break;
    }
  });
  return { entries, expected };
}

test('random trees round-trip exactly and are e2fsck-clean', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'rf-prop-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const mount = canMount();
  if (!mount) t.diagnostic('kernel read-back skipped (not root); our reader and e2fsck still check every image');
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(specArb, { minLength: 1, maxLength: 60 }), fc.boolean(), async (specs, readOnly) => {
      const { entries, expected } = build(specs);
      const tarPath = join(work, `t${n}.tar`);
      const img = join(work, `t${n++}.img`);
      writeFileSync(tarPath, tarEntries(entries));
      await convert(`tar:${tarPath}`, img, { readOnly });
      assertFsckClean(img);
      const ours = await readerManifest(img);
      assertSameTree(ours, expected);
      if (mount) assertSameTree(mountManifest(img), ours);
      rmSync(img);
      rmSync(tarPath);
    }),
    { numRuns: Number(process.env['ROOTFORGE_PROPERTY_RUNS'] ?? 40), seed: process.env['ROOTFORGE_PROPERTY_SEED'] ? Number(process.env['ROOTFORGE_PROPERTY_SEED']) : undefined },
  );
  assert.ok(n > 0);
});
