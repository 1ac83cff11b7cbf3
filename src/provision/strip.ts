/**
 * What `strip:` leaves out of the base, as path prefixes (the Bouvet size list). Excluded
 * entries are skipped while the base is read, so their bytes are never written; the
 * directories themselves stay (empty).
 */
import type { StripItem } from '../spec/types.js';

const PREFIXES: Record<StripItem, string[]> = {
  docs: ['usr/share/doc/', 'usr/share/gtk-doc/', 'usr/share/lintian/', 'usr/share/linda/'],
  man: ['usr/share/man/', 'usr/share/info/', 'usr/share/groff/'],
  locales: ['usr/share/locale/'],
  caches: ['var/cache/apt/', 'var/lib/apt/lists/', 'var/cache/apk/', 'var/cache/debconf/', 'var/cache/man/', 'root/.cache/'],
};

/** A predicate on normalized paths (no leading slash) that says what to leave out. */
export function stripFilter(items: StripItem[]): ((path: string) => boolean) | undefined {
  if (items.length === 0) return undefined;
  const prefixes = items.flatMap((i) => PREFIXES[i]);
  // keep what tools need to run: apt's lists/partial and cache dirs, the locale alias file
  const keep = new Set(['var/lib/apt/lists/partial', 'var/cache/apt/archives', 'var/cache/apt/archives/partial', 'usr/share/locale/locale.alias']);
  return (path: string) => !keep.has(path) && prefixes.some((p) => path.startsWith(p));
}

/** Every item `strip:` knows, in the order reports list them. */
export const STRIP_ITEMS = Object.keys(PREFIXES) as StripItem[];
