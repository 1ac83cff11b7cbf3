/**
 * Where rootforge keeps what it downloads and builds (blobs, images, kernels, instances' base
 * hashes): $XDG_CACHE_HOME/rootforge, else ~/.cache/rootforge. Every cache user takes it from
 * here; `--cache-dir` overrides it per command.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function defaultCacheDir(): string {
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'rootforge');
}
