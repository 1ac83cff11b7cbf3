/**
 * Results: the per-run records, their medians and ratios, the project's targets, a table for
 * the terminal and JSON files under bench/results/ (one per input, plus latest.json for the
 * whole run). A missed target is reported, not failed: this is a measurement, not a test. A
 * failed check (the registry input's "same files as C") is a failure of the run.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MachineInfo } from './machine.js';
import type { PipelineId } from './pipelines.js';
import type { TarStats } from './tarstats.js';

/** Targets from the project's issues (issue 14 raised speed and memory ones). */
export const TARGETS = {
  /** ours at least this many times faster than pipeline A (fakeroot + mke2fs -d + shrink). */
  speedupVsA: 13,
  /** ours at least this many times faster than pipeline B (root: loop mount + tar -x + shrink). */
  speedupVsB: 4,
  /** Image at most this × the tar's regular-file bytes, each rounded up to 4 KiB. */
  imageRatio: 1.06,
  /** Peak RSS of ours, in MiB. */
  peakRssMiB: 64,
  /** Registry input: ours at least this many times faster than C (skopeo + umoci + mke2fs -d). */
  speedupVsC: 5,
  /** Registry input: ours at most this × the time `gzip -dc` takes to decompress the layers. */
  oursOverGunzip: 1.1,
} as const;

export interface RunRecord {
  seconds: number;
  steps: Record<string, number>;
  /** Absent for the decompress-only baselines, which make no image. */
  imageBytes?: number;
  /** Host bytes allocated for the image (it may be sparse). */
  imageDiskBytes?: number;
  peakRssMiB?: number;
  /** Pipelines whose images may fail e2fsck (T): whether this one passed `e2fsck -fn`. */
  fsckClean?: boolean;
  details?: Record<string, unknown>;
}

export interface PipelineSummary {
  medianSeconds: number;
  minSeconds: number;
  maxSeconds: number;
  /** Median image size in bytes (pipelines that make one). */
  imageBytes?: number;
  /** imageBytes / the tar's fileBytes4k. */
  imageRatio?: number;
  /** Highest peak RSS over the runs, where measured. */
  peakRssMiB?: number;
  /** This pipeline's median / ours' median: how many times faster ours is. */
  oursSpeedup?: number;
}

export interface PipelineResult {
  id: PipelineId;
  title: string;
  status: 'ok' | 'failed' | 'skipped';
  /** Why it was skipped, or what failed. */
  note?: string;
  runs: RunRecord[];
  summary?: PipelineSummary;
}

export interface TargetCheck {
  what: string;
  target: string;
  value?: number;
  /** null: not measured (pipeline skipped or failed). */
  met: boolean | null;
}

/** A correctness check of the run (not a target): a failed one fails the run. */
export interface CheckResult {
  what: string;
  ok: boolean;
  detail: string;
}

/** The registry input's image and registry. */
export interface RegistryInfo {
  /** docker://127.0.0.1:PORT/REPO:TAG (the port changes from run to run). */
  reference: string;
  /** The OCI layout pushed to the registry. */
  layout: string;
  manifestDigest: string;
  layers: { digest: string; diffId: string; gzipBytes: number; tarBytes: number; entries: number }[];
  /** Untimed `skopeo copy` of the layout into the registry. */
  pushSeconds: number;
}

export interface InputResult {
  input: string;
  /** 'tar' when absent (results written before the registry input existed). */
  kind?: 'tar' | 'registry';
  /** The tar (registry input: the tar the layers were cut from; `stats` are its stats). */
  path: string;
  stats: TarStats;
  registry?: RegistryInfo;
  pipelines: PipelineResult[];
  targets: TargetCheck[];
  checks?: CheckResult[];
  /** Registry input: rebuilds on a cache hit (rebuild.ts). */
  rebuild?: import('./rebuild.js').RebuildResult;
}

export interface BenchReport {
  startedAt: string;
  options: { runs: number; order: string; quick: boolean; pipelines: PipelineId[]; skipRegistry?: boolean; registryOnly?: boolean; skipBoot?: boolean; bootOnly?: boolean };
  machine: MachineInfo;
  inputs: InputResult[];
  /** The boot benchmark (scratch and Alpine examples under QEMU). */
  boot?: import('./boot.js').BootBenchResult;
  /** The instance benchmark (--instances). */
  instances?: import('./instances.js').InstancesBenchResult;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Fills in each pipeline's summary and the input's target checks. */
export function summarize(result: InputResult): void {
  for (const p of result.pipelines) {
    if (p.status !== 'ok' || p.runs.length === 0) continue;
    const secs = p.runs.map((r) => r.seconds);
    const images = p.runs.flatMap((r) => (r.imageBytes === undefined ? [] : [r.imageBytes]));
    const rss = p.runs.flatMap((r) => (r.peakRssMiB === undefined ? [] : [r.peakRssMiB]));
    p.summary = {
      medianSeconds: median(secs),
      minSeconds: Math.min(...secs),
      maxSeconds: Math.max(...secs),
      ...(images.length > 0 ? { imageBytes: median(images), imageRatio: median(images) / result.stats.fileBytes4k } : {}),
      ...(rss.length > 0 ? { peakRssMiB: Math.max(...rss) } : {}),
    };
  }
  const ours = result.pipelines.find((p) => p.id === 'ours')?.summary;
  for (const p of result.pipelines) {
    if (ours && p.summary) p.summary.oursSpeedup = p.summary.medianSeconds / ours.medianSeconds;
  }
  const speedup = (id: PipelineId) => result.pipelines.find((p) => p.id === id)?.summary?.oursSpeedup;
  const common = [
    check('image / file bytes in 4 KiB blocks', `≤ ${TARGETS.imageRatio}×`, ours?.imageRatio, (v) => v <= TARGETS.imageRatio),
    check('peak RSS of ours (MiB)', `≤ ${TARGETS.peakRssMiB}`, ours?.peakRssMiB, (v) => v <= TARGETS.peakRssMiB),
  ];
  if (result.kind === 'registry') {
    const gunzip = speedup('gunzip');
    result.targets = [
      check('ours vs pipeline C (speedup)', `≥ ${TARGETS.speedupVsC}×`, speedup('C'), (v) => v >= TARGETS.speedupVsC),
      check('ours / gzip -dc of the layers', `≤ ${TARGETS.oursOverGunzip}×`, gunzip === undefined ? undefined : 1 / gunzip, (v) => v <= TARGETS.oursOverGunzip),
      ...common,
    ];
    return;
  }
  result.targets = [
    check('ours vs pipeline A (speedup)', `≥ ${TARGETS.speedupVsA}×`, speedup('A'), (v) => v >= TARGETS.speedupVsA),
    check('ours vs pipeline B (speedup)', `≥ ${TARGETS.speedupVsB}×`, speedup('B'), (v) => v >= TARGETS.speedupVsB),
    check('ours vs hcsshim tar2ext4 (speedup)', '≥ 1×', speedup('T'), (v) => v >= 1),
    ...common,
  ];
}

function check(what: string, target: string, value: number | undefined, ok: (v: number) => boolean): TargetCheck {
  return value === undefined ? { what, target, met: null } : { what, target, value, met: ok(value) };
}

const MB = 1e6;

/** The human-readable report for one input. */
export function formatInput(r: InputResult): string {
  const s = r.stats;
  const reg = r.registry;
  const lines = reg
    ? [
        `${r.input}: ${reg.reference} (pushed from ${reg.layout}, untimed ${reg.pushSeconds.toFixed(1)} s)`,
        `  ${reg.layers.length} gzip layers cut from ${r.path}: ` +
          reg.layers.map((l) => `${(l.gzipBytes / MB).toFixed(0)}→${(l.tarBytes / MB).toFixed(0)} MB (${l.entries})`).join(', '),
        `  ${(sum(reg.layers.map((l) => l.gzipBytes)) / MB).toFixed(1)} MB to download, ` +
          `${(sum(reg.layers.map((l) => l.tarBytes)) / MB).toFixed(1)} MB of layer tars, ${s.entries} entries`,
      ]
    : [
        `${r.input}: ${r.path}`,
        `  ${(s.tarBytes / MB).toFixed(1)} MB tar (${s.compression}), ${s.entries} entries ` +
          `(${Object.entries(s.byType).map(([t, n]) => `${n} ${t}`).join(', ')})`,
      ];
  lines.push(`  regular files: ${(s.fileBytes / MB).toFixed(1)} MB, ${(s.fileBytes4k / MB).toFixed(1)} MB in 4 KiB blocks`, '');
  const rows: string[][] = [['pipeline', 'median s', 'min–max s', 'image bytes', 'image/files4k', 'peak RSS MiB', 'X/ours']];
  for (const p of r.pipelines) {
    const m = p.summary;
    if (!m) {
      rows.push([p.id, p.status.toUpperCase(), '', '', '', '', '']);
      continue;
    }
    rows.push([
      p.id,
      m.medianSeconds.toFixed(2),
      `${m.minSeconds.toFixed(2)}–${m.maxSeconds.toFixed(2)}`,
      m.imageBytes === undefined ? '' : String(m.imageBytes),
      m.imageRatio === undefined ? '' : m.imageRatio.toFixed(3),
      m.peakRssMiB === undefined ? '' : m.peakRssMiB.toFixed(0),
      m.oursSpeedup === undefined ? '' : `${m.oursSpeedup.toFixed(2)}×`,
    ]);
  }
  lines.push(...table(rows).map((l) => `  ${l}`));
  lines.push(`  (X/ours: the pipeline's median time ÷ ours', i.e. how many times faster ours is)`);
  for (const p of r.pipelines) {
    const note = p.note ? ` — ${p.note.replace(/\n/g, '\n      ')}` : '';
    lines.push(`  ${p.id}: ${p.title}${note}`);
    if (p.runs.length > 0) {
      const steps = Object.keys(p.runs[0]!.steps).map((k) => `${k} ${median(p.runs.map((x) => x.steps[k] ?? 0)).toFixed(2)}`);
      lines.push(`      median steps (s): ${steps.join(', ')}`);
    }
  }
  if (r.kind === 'registry') lines.push(...oursSplit(r));
  for (const c of r.checks ?? []) lines.push(`  check: ${c.what}: ${c.ok ? 'OK' : 'FAILED'} — ${c.detail.replace(/\n/g, '\n      ')}`);
  lines.push('', '  targets:');
  for (const t of r.targets) {
    const verdict = t.met === null ? 'not measured' : t.met ? 'MET' : 'MISSED';
    const value = t.value === undefined ? '' : `${t.value.toFixed(t.value >= 100 ? 0 : 3)} `;
    lines.push(`    ${t.what}: ${value}(target ${t.target}) ${verdict}`);
  }
  return lines.join('\n');
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/**
 * Registry input: where our time goes, next to the decompress-only floor. convert() reports
 * decompress, parse and write as one phase (they overlap in one stream); the zlib baseline is
 * the decompress share of it (same decompressor, same chunking), the rest parse + write.
 */
function oursSplit(r: InputResult): string[] {
  const ours = r.pipelines.find((p) => p.id === 'ours');
  if (!ours?.summary) return [];
  const step = (k: string) => median(ours.runs.map((x) => x.steps[k] ?? 0));
  const base = (id: PipelineId) => r.pipelines.find((p) => p.id === id)?.summary?.medianSeconds;
  const total = ours.summary.medianSeconds;
  const pct = (v: number) => `${v.toFixed(2)} s (${((100 * v) / total).toFixed(0)}%)`;
  const ingest = step('decompress + parse + write');
  const zlib = base('zlib');
  const gunzip = base('gunzip');
  const lines = [
    '',
    `  our time split (medians of ${ours.runs.length} runs, total ${total.toFixed(2)} s):`,
    `    download not overlapped (manifest, config, waiting for layer blobs) ${pct(step('download'))}`,
    `    decompress + parse + write (one stream per layer)    ${pct(ingest)}`,
  ];
  if (zlib !== undefined) {
    lines.push(`      of which decompress ≈ zlib baseline ${zlib.toFixed(2)} s; parse + write ≈ ${(ingest - zlib).toFixed(2)} s`);
  }
  // The finish phases, from convert()'s timings (ms), slowest first.
  const timings = ours.runs.map((x) => (x.details?.['timingsMs'] ?? {}) as Record<string, number>);
  const phases = Object.keys(timings[0] ?? {})
    .filter((k) => k !== 'resolve image (download)' && k !== 'read source, stream data' && k !== 'of which waiting for layer downloads')
    .map((k) => [k, median(timings.map((t) => (t[k] ?? 0) / 1000))] as const)
    .sort((a, b) => b[1] - a[1]);
  lines.push(
    `    finish (inodes, directories, metadata)                ${pct(step('finish (metadata)'))}`,
    ...(phases.length > 0 ? [`      ${phases.map(([k, v]) => `${k} ${v.toFixed(2)}`).join('; ')}`] : []),
    `    fsync ${pct(step('fsync'))}, node start/exit ${pct(step('node start/exit'))}, rest of convert() ${pct(step('rest of convert()'))}`,
  );
  const floor = [gunzip === undefined ? '' : `gzip -dc ${gunzip.toFixed(2)} s (ours ${(total / gunzip).toFixed(2)}×)`, zlib === undefined ? '' : `node:zlib ${zlib.toFixed(2)} s (ours ${(total / zlib).toFixed(2)}×)`].filter((x) => x !== '');
  if (floor.length > 0) lines.push(`    decompress-only floor: ${floor.join(', ')}`);
  return lines;
}

/** Left-aligned first column, right-aligned numbers. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
}

/** "2025-01-31T120405Z": ISO 8601, UTC, no colons (safe in file names everywhere). */
export function fileStamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '');
}

/** Writes <input>-<stamp>.json for each input and latest.json for the whole run. Returns the paths. */
export async function writeResults(dir: string, report: BenchReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const stamp = fileStamp(new Date(report.startedAt));
  const written: string[] = [];
  for (const input of report.inputs) {
    const p = join(dir, `${input.input}-${stamp}.json`);
    await writeFile(p, JSON.stringify({ ...report, inputs: [input] }, null, 2) + '\n');
    written.push(p);
  }
  if (report.boot) {
    const p = join(dir, `boot-${stamp}.json`);
    await writeFile(p, JSON.stringify({ ...report, inputs: [] }, null, 2) + '\n');
    written.push(p);
  }
  const latest = join(dir, 'latest.json');
  await writeFile(latest, JSON.stringify(report, null, 2) + '\n');
  written.push(latest);
  return written;
}
