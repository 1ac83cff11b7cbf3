/**
 * The flags bounding what an untrusted image may make a run do (README, "Untrusted images and
 * registries"): shared by convert and pull.
 */
import { fail } from '../errors.js';
import { parseBytes } from '../util/size.js';

export const LIMIT_FLAGS = {
  'max-size': { type: 'string' },
  'max-layers': { type: 'string' },
  'min-rate': { type: 'string' },
} as const;

export const LIMIT_USAGE = `  --max-layers N        image sources: refuse images of more than N layers (default 1000)
  --min-rate RATE       registries: abandon a download slower than RATE bytes/s over 60 s
                        (default 1K; 0 turns the floor off)`;

export const MAX_SIZE_USAGE = `  --max-size SIZE       stop before the image grows past SIZE (a small compressed input can
                        expand a lot); the disk always keeps max(1 GiB, 5 %) free`;

export interface LimitValues {
  'max-size'?: string | boolean;
  'max-layers'?: string | boolean;
  'min-rate'?: string | boolean;
}

export function limitOptions(v: LimitValues): { maxSize?: number; maxLayers?: number; minBytesPerSecond?: number } {
  const out: { maxSize?: number; maxLayers?: number; minBytesPerSecond?: number } = {};
  if (typeof v['max-size'] === 'string') {
    out.maxSize = parseBytes(v['max-size']);
    if (out.maxSize <= 0) fail('OPTION_INVALID', 'use --max-size', 'expected a size above 0', v['max-size']);
  }
  if (typeof v['max-layers'] === 'string') {
    if (!/^\d+$/.test(v['max-layers']) || Number(v['max-layers']) < 1) fail('OPTION_INVALID', 'use --max-layers', 'expected a whole number ≥ 1', v['max-layers']);
    out.maxLayers = Number(v['max-layers']);
  }
  if (typeof v['min-rate'] === 'string') out.minBytesPerSecond = parseBytes(v['min-rate'].replace(/\/s$/, ''));
  return out;
}
