/**
 * Results: the per-run records, their medians and ratios, the project's targets, a table for
 * the terminal and JSON files under bench/results/ (one per input, plus latest.json for the
 * whole run). A missed target is reported, not failed: this is a measurement, not a test.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MachineInfo } from './machine.js';
import type { PipelineId } from './pipelines.js';
import type { TarStats } from './tarstats.js';

/** Targets from the project's issue. */
export const TARGETS = {
  /** ours at least this many times faster than pipeline A (fakeroot + mke2fs -d + shrink). */
  speedupVsA: 10,
  /** ours at least this many times faster than pipeline B (root: loop mount + tar -x + shrink). */
  speedupVsB: 3,
  /** Image at most this × the tar's regular-file bytes, each rounded up to 4 KiB. */
  imageRatio: 1.06,
  /** Peak RSS of ours, in MiB. */
  peakRssMiB: 256,
} as const;

export interface RunRecord {
  seconds: number;
  steps: Record<string, number>;
  imageBytes: number;
  /** Host bytes allocated for the image (it may be sparse). */
  imageDiskBytes: number;
  peakRssMiB?: number;
  details?: Record<string, unknown>;
}

export interface PipelineSummary {
  medianSeconds: number;
  minSeconds: number;
  maxSeconds: number;
  /** Median image size in bytes. */
  imageBytes: number;
  /** imageBytes / the tar's fileBytes4k. */
  imageRatio: number;
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

export interface InputResult {
  input: string;
  path: string;
  stats: TarStats;
  pipelines: PipelineResult[];
  targets: TargetCheck[];
}

export interface BenchReport {
  startedAt: string;
  options: { runs: number; order: string; quick: boolean; pipelines: PipelineId[] };
  machine: MachineInfo;
  inputs: InputResult[];
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
    const imageBytes = median(p.runs.map((r) => r.imageBytes));
    const rss = p.runs.flatMap((r) => (r.peakRssMiB === undefined ? [] : [r.peakRssMiB]));
    p.summary = {
      medianSeconds: median(secs),
      minSeconds: Math.min(...secs),
      maxSeconds: Math.max(...secs),
      imageBytes,
      imageRatio: imageBytes / result.stats.fileBytes4k,
      ...(rss.length > 0 ? { peakRssMiB: Math.max(...rss) } : {}),
    };
  }
  const ours = result.pipelines.find((p) => p.id === 'ours')?.summary;
  for (const p of result.pipelines) {
    if (ours && p.summary) p.summary.oursSpeedup = p.summary.medianSeconds / ours.medianSeconds;
  }
  const speedup = (id: PipelineId) => result.pipelines.find((p) => p.id === id)?.summary?.oursSpeedup;
  result.targets = [
    check('ours vs pipeline A (speedup)', `≥ ${TARGETS.speedupVsA}×`, speedup('A'), (v) => v >= TARGETS.speedupVsA),
    check('ours vs pipeline B (speedup)', `≥ ${TARGETS.speedupVsB}×`, speedup('B'), (v) => v >= TARGETS.speedupVsB),
    check('image / file bytes in 4 KiB blocks', `≤ ${TARGETS.imageRatio}×`, ours?.imageRatio, (v) => v <= TARGETS.imageRatio),
    check('peak RSS of ours (MiB)', `≤ ${TARGETS.peakRssMiB}`, ours?.peakRssMiB, (v) => v <= TARGETS.peakRssMiB),
  ];
}

function check(what: string, target: string, value: number | undefined, ok: (v: number) => boolean): TargetCheck {
  return value === undefined ? { what, target, met: null } : { what, target, value, met: ok(value) };
}

const MB = 1e6;

/** The human-readable report for one input. */
export function formatInput(r: InputResult): string {
  const s = r.stats;
  const lines = [
    `${r.input}: ${r.path}`,
    `  ${(s.tarBytes / MB).toFixed(1)} MB tar (${s.compression}), ${s.entries} entries ` +
      `(${Object.entries(s.byType).map(([t, n]) => `${n} ${t}`).join(', ')})`,
    `  regular files: ${(s.fileBytes / MB).toFixed(1)} MB, ${(s.fileBytes4k / MB).toFixed(1)} MB in 4 KiB blocks`,
    '',
  ];
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
      String(m.imageBytes),
      m.imageRatio.toFixed(3),
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
  lines.push('', '  targets:');
  for (const t of r.targets) {
    const verdict = t.met === null ? 'not measured' : t.met ? 'MET' : 'MISSED';
    const value = t.value === undefined ? '' : `${t.value.toFixed(t.value >= 100 ? 0 : 3)} `;
    lines.push(`    ${t.what}: ${value}(target ${t.target}) ${verdict}`);
  }
  return lines.join('\n');
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
  const latest = join(dir, 'latest.json');
  await writeFile(latest, JSON.stringify(report, null, 2) + '\n');
  written.push(latest);
  return written;
}
