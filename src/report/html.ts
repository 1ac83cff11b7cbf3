/**
 * Renders reports as one self-contained HTML file: styles, d3-hierarchy's UMD build and our
 * treemap script are inlined (read at generation time from assets/report/ and node_modules),
 * the data is embedded as JSON. The page loads nothing from the network.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ASSETS_DIR } from '../provision/assets.js';
import { byteStringToDisplay } from '../util/bytes.js';
import { formatBytes } from '../util/size.js';
import type { ImageDiff } from './diff.js';
import type { ImageReport, SizeNode } from './model.js';

let d3Source: string | undefined;
/** d3-hierarchy's UMD build (defines window.d3), from the installed package. */
export function d3HierarchySource(): string {
  if (d3Source === undefined) {
    const entry = createRequire(import.meta.url).resolve('d3-hierarchy'); // …/dist/d3-hierarchy.mjs
    d3Source = readFileSync(join(dirname(entry), 'd3-hierarchy.min.js'), 'utf8');
  }
  return d3Source;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** JSON safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function inlineScript(src: string): string {
  return `<script>\n${src.replace(/<\/script/gi, '<\\/script')}\n</script>`;
}

const show = (p: string) => escapeHtml(byteStringToDisplay(p));

function displayTree(n: SizeNode): SizeNode {
  return n.c ? { n: byteStringToDisplay(n.n), v: n.v, c: n.c.map(displayTree) } : { n: byteStringToDisplay(n.n), v: n.v };
}

function page(title: string, body: string, scripts = ''): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(title)}</title>
<style>
${readFileSync(join(ASSETS_DIR, 'report/report.css'), 'utf8')}
</style>
</head>
<body>
${body}
${scripts}
</body>
</html>
`;
}

function table(head: string[], rows: string[][], numeric: Set<number>, cls: string): string {
  const th = head.map((h, i) => `<th${numeric.has(i) ? ' class="num"' : ''}>${h}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c, i) => `<td${numeric.has(i) ? ' class="num"' : i === 0 ? ' class="path"' : ''}>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table class="${cls}"><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

export function reportHtml(r: ImageReport, imageName: string): string {
  const fb = formatBytes;
  const data = { byDirectory: displayTree(r.byDirectory), byPackage: displayTree(r.byPackage) };
  const pkgTab = r.packageManager ? `<button data-kind="pkg">By package (${r.packages.length} ${r.packageManager} packages)</button>` : '';
  const body = `<h1>${escapeHtml(imageName)}</h1>
<p class="summary" id="summary" data-content-bytes="${r.contentBytes}" data-used-bytes="${r.usedBytes}">
${fb(r.sizeBytes)} image${r.label ? ` “${escapeHtml(r.label)}”` : ''}, ${fb(r.usedBytes)} used: ${fb(r.contentBytes)} in ${r.entries} files, directories and links
(real blocks, hard links counted once), the rest journal, inode tables and bitmaps.</p>
<div class="tabs"><button data-kind="dir" class="active">By directory</button>${pkgTab}</div>
<div class="crumbs" id="crumbs"></div>
<div id="map"></div>
<p class="note">Click a box with contents to zoom in; the path above zooms out.</p>

<h2>Top-level directories</h2>
${table(['Path', 'Bytes', 'Size'], r.topDirectories.map((d) => [show(d.path), String(d.bytes), fb(d.bytes)]), new Set([1, 2]), 'topdirs')}

<h2>What <code>strip:</code> would save</h2>
${table(['Item', 'Files', 'Size'], r.strip.map((s) => [escapeHtml(s.item), String(s.files), fb(s.bytes)]), new Set([1, 2]), 'strip')}
<p class="note">Total: ${fb(r.strip.reduce((s, x) => s + x.bytes, 0))} (a build spec's <code>strip: [docs, man, locales, caches]</code>).</p>

<h2>Largest files</h2>
${table(['Path', 'Size', 'Package'], r.largestFiles.map((f) => [show(f.path), fb(f.bytes), f.package ? escapeHtml(f.package) : '—']), new Set([1]), 'largest')}
${
  r.packageManager
    ? `<h2>Packages (${r.packages.length}, ${r.packageManager})</h2>
${table(['Package', 'Version', 'Files', 'Size'], r.packages.map((p) => [escapeHtml(p.id), escapeHtml(p.version), String(p.files), fb(p.bytes)]), new Set([2, 3]), 'packages')}`
    : '<p class="note">No dpkg or apk package database in this image.</p>'
}
<script type="application/json" id="rf-data">${scriptJson(data)}</script>`;
  return page(`${imageName} — rootforge report`, body, `${inlineScript(d3HierarchySource())}\n${inlineScript(readFileSync(join(ASSETS_DIR, 'report/report.js'), 'utf8'))}`);
}

/** Directory rows in the diff page: every directory above a big change changes too. */
const DIR_ROWS = 300;

export function diffHtml(d: ImageDiff, nameA: string, nameB: string): string {
  const fb = (n: number) => (n < 0 ? `−${formatBytes(-n)}` : `+${formatBytes(n)}`);
  const list = (title: string, cls: string, rows: string[][], head: string[]) =>
    `<h2 class="${cls}">${title}</h2>\n${rows.length ? table(head, rows, new Set(), cls) : '<p class="note">None.</p>'}`;
  const body = `<h1>${escapeHtml(nameA)} → ${escapeHtml(nameB)}</h1>
<p class="summary">${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed; content ${fb(d.bytesDelta)}.</p>
<h2>Size change by package</h2>
${d.byPackage.length ? table(['Package', 'Before', 'After', 'Change'], d.byPackage.map((x) => [escapeHtml(x.id + (x.versionBefore !== x.versionAfter ? ` (${x.versionBefore ?? 'absent'} → ${x.versionAfter ?? 'absent'})` : '')), formatBytes(x.before), formatBytes(x.after), fb(x.delta)]), new Set([1, 2, 3]), 'bypkg') : '<p class="note">No package changed size.</p>'}
<h2>Size change by directory</h2>
${d.byDirectory.length > DIR_ROWS ? `<p class="note">The ${DIR_ROWS} largest of ${d.byDirectory.length} changes (all of them in <code>--json</code>).</p>` : ''}
${table(['Directory', 'Before', 'After', 'Change'], d.byDirectory.slice(0, DIR_ROWS).map((x) => [show(x.path), formatBytes(x.before), formatBytes(x.after), fb(x.delta)]), new Set([1, 2, 3]), 'bydir')}
${list('Added', 'added', d.added.map((e) => [show(e.path), e.kind, formatBytes(e.bytes)]), ['Path', 'Type', 'Size'])}
${list('Removed', 'removed', d.removed.map((e) => [show(e.path), e.kind, formatBytes(e.bytes)]), ['Path', 'Type', 'Size'])}
${list('Changed', 'changed', d.changed.map((c) => [show(c.path), escapeHtml(c.fields.join(', ')), fb(c.bytesDelta)]), ['Path', 'What changed', 'Size'])}`;
  return page(`${nameA} → ${nameB} — rootforge diff`, body);
}
