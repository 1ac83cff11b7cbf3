/**
 * RFC 822-style stanzas as dpkg's status file and apk's installed database write them.
 * dpkg: "Field: value" with continuation lines starting with a space or tab; apk: "K:value"
 * with one-letter keys that repeat (F:, R:), so apk gets its own line reader in apk.ts.
 */

/** Splits dpkg control text into stanzas of field (lower-cased) → value (first line only). */
export function parseControlStanzas(text: string): Map<string, string>[] {
  const out: Map<string, string>[] = [];
  let cur: Map<string, string> | null = null;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      cur = null;
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) continue; // continuation (Description, Conffiles)
    const i = line.indexOf(':');
    if (i <= 0) continue; // not a field: dpkg would refuse it; we only read what we need
    if (!cur) {
      cur = new Map();
      out.push(cur);
    }
    cur.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  return out;
}
