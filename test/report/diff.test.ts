/**
 * `rootforge diff`: two images built from archives that differ by known entries report exactly
 * those (added, removed, and which attribute changed), nothing for a changed mtime, the size
 * change by directory and by package (a dpkg database in both), and the same through --json,
 * the text output and --html (loaded in headless Chromium when it is installed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { rootforge } from '../helpers/cli.js';
import { tarEntries, type WriterEntry } from '../helpers/tar-writer.js';
import { Browser, chromiumMissing } from '../helpers/chromium.js';

const work = mkdtempSync(join(tmpdir(), 'rf-diff-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const status = (version: string) =>
  `Package: tool\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${version}\nInstalled-Size: 20\n\nPackage: docs\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n`;

function base(): WriterEntry[] {
  return [
    { path: 'etc/', type: 'dir' },
    { path: 'etc/motd', content: 'hello world\n' },
    { path: 'etc/hostname', content: 'box\n', mtime: 100 },
    { path: 'usr/bin/tool', content: Buffer.alloc(10000, 1), mode: 0o755 },
    { path: 'usr/bin/same', content: 'unchanged\n', mode: 0o755 },
    { path: 'usr/share/doc/old.txt', content: Buffer.alloc(6000, 2) },
    { path: 'home/u/file', content: 'mine\n', uid: 1000, gid: 1000 },
    { path: 'var/log/log', content: 'a\n' },
    { path: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { path: 'opt/thing', content: 'file\n' },
    { path: 'var/lib/dpkg/status', content: status('1.0') },
    { path: 'var/lib/dpkg/info/tool.list', content: '/.\n/usr\n/usr/bin\n/usr/bin/tool\n' },
    { path: 'var/lib/dpkg/info/docs.list', content: '/usr/share/doc/old.txt\n' },
  ];
}

function variant(): WriterEntry[] {
  const out: WriterEntry[] = [];
  for (const e of base()) {
    switch (e.path) {
      case 'etc/motd': out.push({ ...e, content: 'hello World\n' }); break; // same size, other bytes
      case 'etc/hostname': out.push({ ...e, mtime: 200 }); break; // only the time: not a change
      case 'usr/bin/tool': out.push({ ...e, content: Buffer.alloc(30000, 1), mode: 0o700 }); break;
      case 'usr/share/doc/old.txt': out.push({ path: 'usr/share/doc/', type: 'dir' }); break; // removed, its directory stays
      case 'home/u/file': out.push({ ...e, uid: 1001 }); break;
      case 'var/log/log': out.push({ ...e, content: 'a\nb\n' }); break;
      case 'bin/sh': out.push({ ...e, linkname: 'dash' }); break;
      case 'opt/thing': out.push({ path: 'opt/thing', type: 'symlink', linkname: '/etc/motd' }); break;
      case 'var/lib/dpkg/status': out.push({ ...e, content: status('1.1') }); break;
      default: out.push(e);
    }
  }
  out.push({ path: 'etc/new.conf', content: 'new\n' });
  return out;
}

function image(name: string, entries: WriterEntry[]): string {
  const tar = join(work, `${name}.tar`);
  writeFileSync(tar, tarEntries(entries));
  const img = join(work, `${name}.ext4`);
  const r = rootforge(['convert', `tar:${tar}`, '-o', img, '-q', '--read-only']);
  assert.equal(r.code, 0, r.stderr);
  return img;
}

test('diff of two images reports exactly the entries that differ', async (t) => {
  const a = image('a', base());
  const b = image('b', variant());
  const html = join(work, 'diff.html');
  const r = rootforge(['diff', a, b, '--json', '--html', html]);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout.toString());
  assert.deepEqual(d.added.map((e: { path: string }) => e.path), ['/etc/new.conf']);
  assert.deepEqual(d.removed.map((e: { path: string }) => e.path), ['/usr/share/doc/old.txt']);
  const changed = Object.fromEntries(d.changed.map((c: { path: string; fields: string[] }) => [c.path, c.fields]));
  assert.deepEqual(changed, {
    '/bin/sh': ['target'],
    '/etc/motd': ['content'],
    '/home/u/file': ['owner'],
    '/opt/thing': ['type'],
    '/usr/bin/tool': ['mode', 'size'],
    '/var/lib/dpkg/status': ['content'],
    '/var/log/log': ['size'],
  });
  const motd = d.changed.find((c: { path: string }) => c.path === '/etc/motd');
  assert.notEqual(motd.before.sha256, motd.after.sha256);
  assert.match(motd.after.sha256, /^[0-9a-f]{64}$/);

  // space: tool grew from 3 to 8 blocks, the doc file (2 blocks) went, new.conf (1 block) came
  const dir = Object.fromEntries(d.byDirectory.map((x: { path: string; delta: number }) => [x.path, x.delta]));
  assert.equal(dir['/usr/bin'], 5 * 4096);
  assert.equal(dir['/usr/share/doc'], -2 * 4096);
  assert.equal(dir['/etc'], 4096);
  assert.equal(d.bytesDelta, dir['/']);
  const pkg = Object.fromEntries(d.byPackage.map((x: { id: string }) => [x.id, x]));
  assert.deepEqual(pkg['tool'], { id: 'tool', before: 3 * 4096, after: 8 * 4096, delta: 5 * 4096, versionBefore: '1.0', versionAfter: '1.1' });
  assert.deepEqual(pkg['docs'], { id: 'docs', before: 2 * 4096, after: 0, delta: -2 * 4096, versionBefore: '1', versionAfter: '1' });

  // an image against itself: nothing
  const same = JSON.parse(rootforge(['diff', a, a, '--json']).stdout.toString());
  assert.deepEqual([same.added, same.removed, same.changed, same.byDirectory, same.byPackage, same.bytesDelta], [[], [], [], [], [], 0]);

  const text = rootforge(['diff', a, b]).stdout.toString();
  assert.match(text, /^\+ \/etc\/new\.conf$/m);
  assert.match(text, /^- \/usr\/share\/doc\/old\.txt$/m);
  assert.match(text, /^~ \/usr\/bin\/tool \(mode, size\)$/m);
  assert.match(text, /1 added, 1 removed, 7 changed/);
  assert.match(text, /tool \+20\.0 KiB \(1\.0 → 1\.1\)/);

  const page = readFileSync(html, 'utf8');
  for (const p of ['/etc/new.conf', '/usr/share/doc/old.txt', '/usr/bin/tool']) assert.ok(page.includes(p), p);
  const missing = chromiumMissing();
  if (missing) return t.diagnostic(`${missing}: the diff page is not loaded in a browser`);
  const browser = await Browser.launch();
  try {
    const pg = await browser.open(pathToFileURL(html).href);
    assert.deepEqual(pg.errors(), []);
    assert.equal(await pg.eval<number>(`document.querySelectorAll('table.changed tbody tr').length`), 7);
  } finally {
    await browser.close();
  }
});

test('diff: bad input is a typed error and no HTML file', () => {
  const a = join(work, 'missing.ext4');
  const html = join(work, 'none.html');
  const r = rootforge(['diff', a, a, '--html', html]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Cannot open image .*missing\.ext4.*\[EXT4_NOT_FOUND\]/);
  assert.throws(() => readFileSync(html));
  const u = rootforge(['diff', a]);
  assert.equal(u.code, 2);
});
