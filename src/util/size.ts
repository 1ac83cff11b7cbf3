/** Parses sizes like "auto", "2G", "512MiB", "+512M", "1073741824". Binary units (K = 1024). */
import { fail } from '../errors.js';
import type { SizeSpec } from '../ext4/options.js';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) return fail('OPTION_INVALID', 'parse size', 'expected a number with an optional K/M/G/T suffix', text);
  const n = Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(n)) fail('OPTION_INVALID', 'parse size', 'too large', text);
  return n;
}

export function parseSize(text: string): SizeSpec {
  const t = text.trim();
  if (t === '' || t === 'auto') return { mode: 'auto' };
  if (t.startsWith('+')) return { mode: 'plus', bytes: parseBytes(t.slice(1)) };
  return { mode: 'fixed', bytes: parseBytes(t) };
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
