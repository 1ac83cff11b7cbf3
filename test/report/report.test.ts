/**
 * The HTML content report in a real headless Chromium (Debian's /usr/bin/chromium over the
 * DevTools protocol): the report of the Alpine minirootfs and of a Debian minbase loads with no
 * console errors and no requests but its own file, its top directories carry the sizes an
 * independent walk with our reader finds (and the kernel's `du` on a loop mount, as root), a
 * click zooms into a directory, the package view partitions the same bytes, and a screenshot is
 * not blank.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ext4Image } from '../../src/ext4/reader.js';
import { rootforge } from '../helpers/cli.js';
import { ALPINE_X86, debianMinbase, NO_SHARED, skipOrFail } from '../helpers/fixtures.js';
import { canMount, run, withMount } from '../helpers/image.js';
import { Browser, chromiumMissing, distinctColours, type Page } from '../helpers/chromium.js';

const work = mkdtempSync(join(tmpdir(), 'rf-report-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** Recursive bytes (i_blocks × 512, each inode once) of every path, by a plain walk. */
async function independentTotals(img: string): Promise<Map<string, number>> {
  const image = await Ext4Image.open(img);
  const totals = new Map<string, number>();
  const seen = new Set<number>();
  try {
    for await (const [p, st] of image.walk('')) {
      if (seen.has(st.ino)) continue;
      seen.add(st.ino);
      const bytes = st.blocks512 * 512;
      const parts = p === '/' ? [] : p.slice(1).split('/');
      for (let i = 0; i <= parts.length; i++) {
        const key = '/' + parts.slice(0, i).join('/');
        totals.set(key, (totals.get(key) ?? 0) + bytes);
      }
    }
  } finally {
    await image.close();
  }
  return totals;
}

type Cell = { path: string; bytes: number; x: number; y: number; w: number; h: number; zoom: boolean };
const CELLS = `[...document.querySelectorAll('#map .cell.d1')].map((e) => { const r = e.getBoundingClientRect();
  return { path: e.dataset.path, bytes: +e.dataset.bytes, x: r.x, y: r.y, w: r.width, h: r.height, zoom: e.classList.contains('zoom') }; })`;

async function waitForMap(page: Page, path: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await page.eval<string>(`document.getElementById('map').dataset.path`)) === path) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`the treemap did not zoom to ${path}`);
}

async function checkReport(t: { diagnostic: (m: string) => void }, name: string, tarPath: string, expectPackages: boolean): Promise<void> {
  const img = join(work, `${name}.ext4`);
  const html = join(work, `${name}.html`);
  let r = rootforge(['convert', `tar:${tarPath}`, '-o', img, '-q']);
  assert.equal(r.code, 0, r.stderr);
  r = rootforge(['inspect', img, '--html', html]);
  assert.equal(r.code, 0, r.stderr);
  const text = readFileSync(html, 'utf8');
  assert.doesNotMatch(text, /<(link|img|iframe)\b|\b(src|href)\s*=|url\(|@import|\bfetch\(|XMLHttpRequest/i, 'self-contained: no external resources');
  assert.match(text, /treemapSquarify/, 'd3-hierarchy is inlined');
  const totals = await independentTotals(img);

  const browser = await Browser.launch();
  try {
    const page = await browser.open(pathToFileURL(html).href);
    assert.deepEqual(page.errors(), [], 'no console errors');
    assert.deepEqual(page.requests(), [pathToFileURL(html).href], 'the page loads nothing but itself');

    // ---- the top directories, drawn and tabulated, with the walk's sizes
    const rootBytes = Number(await page.eval<string>(`document.getElementById('map').dataset.bytes`));
    assert.equal(rootBytes, totals.get('/'));
    const cells = await page.eval<Cell[]>(CELLS);
    assert.ok(cells.length >= 3, `top-level boxes drawn (${cells.length})`);
    for (const c of cells) assert.equal(c.bytes, totals.get(c.path), c.path);
    const biggest = [...totals].filter(([p]) => /^\/[^/]+$/.test(p)).sort((a, b) => b[1] - a[1]).slice(0, 3);
    for (const [p] of biggest) assert.ok(cells.some((c) => c.path === p), `${p} is drawn`);
    const table = await page.eval<[string, number][]>(`[...document.querySelectorAll('table.topdirs tbody tr')].map((tr) => [tr.cells[0].textContent, +tr.cells[1].textContent])`);
    assert.deepEqual(table.sort(), [...totals].filter(([p]) => /^\/[^/]+$/.test(p)).sort());
    if (canMount()) {
      const dirs = biggest.map(([p]) => p);
      const du = withMount(img, (mnt) => run('du', ['-s', '-B1', ...dirs.map((d) => mnt + d)]).stdout.toString());
      const kernel = du.trim().split('\n').map((l) => Number(l.split('\t')[0]));
      assert.deepEqual(cells.filter((c) => dirs.includes(c.path)).sort((a, b) => dirs.indexOf(a.path) - dirs.indexOf(b.path)).map((c) => c.bytes), kernel, 'du on a kernel mount agrees');
    } else t.diagnostic('no loop mount here: du comparison left out');

    // ---- the screenshot is a picture, not a blank page
    const png = await page.screenshot();
    writeFileSync(join(work, `${name}.png`), png);
    assert.ok(distinctColours(png) > 50, `screenshot has colours (${distinctColours(png)})`);

    // ---- a click on a directory's header zooms into it
    const target = cells.filter((c) => c.zoom).sort((a, b) => b.bytes - a.bytes)[0]!;
    await page.click(target.x + 6, target.y + 6);
    await waitForMap(page, target.path);
    const inner = await page.eval<Cell[]>(CELLS);
    assert.ok(inner.length > 0);
    for (const c of inner) {
      assert.ok(c.path.startsWith(target.path + '/'), `${c.path} is inside ${target.path}`);
      assert.equal(c.bytes, totals.get(c.path), c.path);
    }
    assert.match(await page.eval<string>(`document.getElementById('crumbs').textContent`), new RegExp(target.path.slice(1)));
    assert.ok(distinctColours(await page.screenshot()) > 20);
    // and the breadcrumb's first link zooms back out
    const back = await page.eval<{ x: number; y: number }>(`(() => { const r = document.querySelector('#crumbs a').getBoundingClientRect(); return { x: r.x + 2, y: r.y + r.height / 2 }; })()`);
    await page.click(back.x, back.y);
    await waitForMap(page, '/');

    // ---- the package view: the same bytes, split by package
    if (expectPackages) {
      const btn = await page.eval<{ x: number; y: number } | null>(`(() => { const b = document.querySelector('button[data-kind=pkg]'); if (!b) return null; const r = b.getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()`);
      assert.ok(btn, 'a package tab');
      await page.click(btn.x, btn.y);
      for (let i = 0; i < 100 && !(await page.eval<boolean>(`document.querySelector('button[data-kind=pkg]').classList.contains('active')`)); i++) await new Promise((res) => setTimeout(res, 50));
      assert.equal(Number(await page.eval<string>(`document.getElementById('map').dataset.bytes`)), totals.get('/'), 'packages + unowned + directories = everything');
      const pkgs = await page.eval<Cell[]>(CELLS);
      const firstRow = await page.eval<string>(`document.querySelector('table.packages tbody tr').cells[0].textContent`);
      assert.equal(pkgs.sort((a, b) => b.bytes - a.bytes)[0]!.path, firstRow, 'the largest box is the largest package');
    }
    assert.deepEqual(page.errors(), [], 'no console errors after clicking around');
  } finally {
    await browser.close();
  }
}

test('report of the Alpine minirootfs in headless Chromium', async (t) => {
  const missing = chromiumMissing();
  if (missing) return skipOrFail(t, missing);
  if (!existsSync(ALPINE_X86)) return t.skip(NO_SHARED);
  await checkReport(t, 'alpine', ALPINE_X86, true);
});

test('report of a Debian minbase in headless Chromium', async (t) => {
  const missing = chromiumMissing();
  if (missing) return skipOrFail(t, missing);
  const deb = debianMinbase();
  if ('skip' in deb) return skipOrFail(t, deb.skip);
  await checkReport(t, 'debian', deb.path, true);
});

test('hostile and non-UTF-8 file names are shown as text, never run; the report is deterministic', async (t) => {
  const { tarEntries } = await import('../helpers/tar-writer.js');
  // no '/' in a name: a script end tag cannot be one; JSON escapes every '<' anyway
  const evil = '<img src=x onerror="window.injected=1"><script>window.injected=2<';
  const tar = join(work, 'names.tar');
  writeFileSync(
    tar,
    tarEntries([
      { path: `data/${evil}`, content: Buffer.alloc(50000, 7) },
      { path: 'data/a&b"c\'d', content: 'x' },
      { path: Buffer.concat([Buffer.from('data/latin1-'), Buffer.from([0xe9, 0xff])]), content: Buffer.alloc(9000, 1) },
      { path: 'etc/x', content: 'y' },
    ]),
  );
  const img = join(work, 'names.ext4');
  assert.equal(rootforge(['convert', `tar:${tar}`, '-o', img, '-q']).code, 0);
  const html = join(work, 'names.html');
  assert.equal(rootforge(['inspect', img, '--html', html]).code, 0);
  const again = join(work, 'names2.html');
  assert.equal(rootforge(['inspect', img, '--html', again]).code, 0);
  assert.ok(readFileSync(html).equals(readFileSync(again)), 'same image, same report bytes');
  assert.ok(!readFileSync(html, 'utf8').includes(evil), 'the name never appears unescaped');

  const missing = chromiumMissing();
  if (missing) return skipOrFail(t, missing);
  const browser = await Browser.launch();
  try {
    const page = await browser.open(pathToFileURL(html).href);
    assert.deepEqual(page.errors(), []);
    const data = await page.eval<Cell[]>(CELLS);
    const d = data.find((c) => c.path === '/data')!;
    await page.click(d.x + 6, d.y + 6);
    await waitForMap(page, '/data');
    const names = await page.eval<string[]>(`[...document.querySelectorAll('#map .cell.d1')].map((e) => e.dataset.path)`);
    assert.ok(names.includes(`/data/${evil}`), 'the hostile name is a path, as text');
    assert.ok(names.includes('/data/a&b"c\'d'));
    assert.ok(names.includes('/data/latin1-\u00e9\u00ff'), 'non-UTF-8 bytes shown one character per byte');
    const largest = await page.eval<string>(`document.querySelector('table.largest tbody tr').cells[0].textContent`);
    assert.equal(largest, `/data/${evil}`);
    assert.equal(await page.eval<unknown>('window.injected'), undefined, 'nothing injected ran');
    assert.deepEqual(page.errors(), []);
  } finally {
    await browser.close();
  }
});

test('"what strip would save" is what a build with strip leaves out (Debian minbase)', async (t) => {
  const deb = debianMinbase();
  if ('skip' in deb) return skipOrFail(t, deb.skip);
  const { buildImage } = await import('../../src/build-image.js');
  const { resolveSpec } = await import('../../src/spec/load.js');
  const { buildReport } = await import('../../src/report/model.js');
  const { diffImageFiles } = await import('../../src/report/write.js');
  const build = async (name: string, strip: string[]) => {
    const spec = resolveSpec({ from: `tar:${deb.path}`, agent: 'none', init: 'wrapper', readOnly: true, strip }, work, name);
    spec.output = join(work, `${name}.ext4`);
    await buildImage(spec);
    return spec.output;
  };
  const full = await build('full', []);
  const stripped = await build('stripped', ['docs', 'man', 'locales', 'caches']);
  const image = await Ext4Image.open(full);
  let report;
  try {
    report = await buildReport(image);
  } finally {
    await image.close();
  }
  const d = await diffImageFiles(full, stripped);
  assert.deepEqual(d.added, []);
  const removed = d.removed.reduce((s, e) => s + e.bytes, 0);
  for (const s of report.strip) assert.ok(s.bytes > 0 && s.files > 0, `${s.item} saves something in a minbase`);
  assert.equal(report.strip.reduce((s, x) => s + x.bytes, 0), removed, 'bytes saved = bytes of the entries the build left out');
  assert.equal(report.strip.reduce((s, x) => s + x.files, 0), d.removed.filter((e) => e.kind !== 'dir').length);
  assert.ok(d.removed.length > 1000);
});
