/** Provisioning assets: real files under assets/ in the package, not heredocs in code. */
import { readFileSync } from 'node:fs';

export const ASSETS_DIR = new URL('../../../assets/', import.meta.url).pathname;

const cache = new Map<string, Buffer>();

export function asset(rel: string): Buffer {
  let b = cache.get(rel);
  if (!b) {
    b = readFileSync(ASSETS_DIR + rel);
    cache.set(rel, b);
  }
  return b;
}
