/**
 * The human form of a verify report: one line per check, the findings of failed checks under it
 * (at most `maxItems` each; the JSON report has them all), and a summary line.
 */
import { describeProblem, type DepProblem } from './deps.js';
import type { VerifyCheck, VerifyReport } from './types.js';

export interface RenderOptions {
  /** Findings listed per failed check. Default 10. */
  maxItems?: number;
}

export function formatReport(report: VerifyReport, options: RenderOptions = {}): string {
  const max = options.maxItems ?? 10;
  const width = Math.max(...report.checks.map((c) => c.id.length));
  const out: string[] = [];
  for (const c of report.checks) {
    out.push(`${mark(c)} ${c.id.padEnd(width)}  ${c.message}`);
    if (c.ok) continue;
    let items = findings(c);
    if (items.length === 1 && c.message.includes(items[0]!)) items = []; // the message says it already
    const indent = ' '.repeat(width + 4);
    for (const line of items.slice(0, max)) out.push(indent + line);
    if (items.length > max) out.push(`${indent}… and ${items.length - max} more (--json lists all)`);
  }
  const failed = report.checks.filter((c) => !c.ok && c.severity === 'error').length;
  const warned = report.checks.filter((c) => !c.ok && c.severity === 'warning').length;
  const s = report.stats;
  const counts = [`${report.checks.length} checks`, failed > 0 ? `${failed} failed` : '', warned > 0 ? `${warned} warning${warned === 1 ? '' : 's'}` : ''].filter(Boolean).join(', ');
  out.push('');
  out.push(
    `${report.ok ? 'OK' : 'FAILED'}: ${report.image} — ${counts}; ${report.architecture.name} (${report.architecture.source}); ` +
      `${s.programs} program${s.programs === 1 ? '' : 's'}, ${s.libraries} librar${s.libraries === 1 ? 'y' : 'ies'}; ${(s.durationMs / 1000).toFixed(2)} s`,
  );
  return out.join('\n') + '\n';
}

function mark(c: VerifyCheck): string {
  if (c.skipped) return '-';
  if (c.ok) return '✓';
  return c.severity === 'error' ? '✗' : '!';
}

/** The list under a failed check: its problems, foreign programs or e2fsck's output. */
function findings(c: VerifyCheck): string[] {
  const d = c.details ?? {};
  if (Array.isArray(d['problems'])) {
    const list = d['problems'] as unknown[];
    // elf-deps, init, agent carry DepProblems; config and dirs carry strings already in the message.
    if (list.length > 0 && typeof list[0] === 'object') return (list as DepProblem[]).map(describeProblem);
    return [];
  }
  if (Array.isArray(d['programs'])) return (d['programs'] as { path: string; machine: string }[]).map((p) => `${p.path}: ${p.machine}`);
  if (typeof d['output'] === 'string') {
    // e2fsck's findings, without its banner and pass headings.
    return d['output'].split('\n').filter((l) => l.trim() !== '' && !/^(e2fsck \d|Pass \d+[A-Z]?: )/.test(l));
  }
  return [];
}
