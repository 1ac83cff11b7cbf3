/**
 * apk versions and dependencies.
 *
 * Versions follow the Gentoo-like scheme apk uses: digits separated by dots, an optional letter,
 * suffixes (_alpha _beta _pre _rc sort before the release; _cvs _svn _git _hg _p after), and a
 * `-rN` revision. Components are compared token by token; leading zeros after a dot compare as
 * fractions (1.01 < 1.1), as apk-tools does.
 *
 * Dependencies: `name`, `!name` (conflict), `name<V` `name<=V` `name>V` `name>=V` `name=V`
 * `name~V` (fuzzy: V is a prefix of the version), and `name@tag` (repository pinning; the tag
 * is kept but ignored when resolving, apk ignores unknown tags the same way).
 */

export const LESS = 1;
export const EQUAL = 2;
export const GREATER = 4;
export const FUZZY = 8;
/** A constraint that any version satisfies. */
export const ANY = LESS | EQUAL | GREATER;

const enum T {
  Invalid = -1,
  DigitOrZero = 0,
  Digit = 1,
  Letter = 2,
  Suffix = 3,
  SuffixNo = 4,
  RevisionNo = 5,
  End = 6,
}

const PRE = ['alpha', 'beta', 'pre', 'rc'];
const POST = ['cvs', 'svn', 'git', 'hg', 'p'];

class Tokens {
  pos = 0;
  type: T = T.Digit;
  constructor(private readonly s: string) {}

  private isLower(c: string | undefined): boolean {
    return c !== undefined && c >= 'a' && c <= 'z';
  }
  private isDigit(c: string | undefined): boolean {
    return c !== undefined && c >= '0' && c <= '9';
  }

  /** Decides the type of the token starting at pos (consuming its separator). */
  private advanceType(): void {
    const s = this.s;
    let n: T = T.Invalid;
    const c = s[this.pos];
    if (this.pos >= s.length) n = T.End;
    else if ((this.type === T.Digit || this.type === T.DigitOrZero) && this.isLower(c)) n = T.Letter;
    else if (this.type === T.Letter && this.isDigit(c)) n = T.Digit;
    else if (this.type === T.Suffix && this.isDigit(c)) n = T.SuffixNo;
    else {
      if (c === '.') n = T.DigitOrZero;
      else if (c === '_') n = T.Suffix;
      else if (c === '-' && s[this.pos + 1] === 'r') {
        n = T.RevisionNo;
        this.pos++;
      }
      this.pos++;
    }
    if (n < this.type) {
      const ok = (n === T.DigitOrZero && this.type === T.Digit) || (n === T.Suffix && this.type === T.SuffixNo) || (n === T.Digit && this.type === T.Letter);
      if (!ok) n = T.Invalid;
    }
    this.type = n;
  }

  /** The value of the current token; moves to the next. */
  next(): number {
    const s = this.s;
    if (this.pos >= s.length) {
      this.type = T.End;
      return 0;
    }
    let i = this.pos;
    let v = 0;
    let forced: T | undefined;
    switch (this.type) {
      case T.DigitOrZero:
      case T.Digit:
      case T.SuffixNo:
      case T.RevisionNo: {
        if (this.type === T.DigitOrZero && s[i] === '0') {
          // leading zeros after a dot: 1.01 < 1.1 (each extra zero counts against it)
          let z = 0;
          while (i + 1 < s.length && s[i + 1] === '0') {
            i++;
            z++;
          }
          v = -z; // the last zero stays: it is read again as a digit token
          forced = T.Digit;
          break;
        }
        const start = i;
        while (i < s.length && this.isDigit(s[i])) v = v * 10 + (s.charCodeAt(i++) - 48);
        if (i - start >= 18) return this.invalid();
        break;
      }
      case T.Letter:
        v = s.charCodeAt(i++);
        break;
      case T.Suffix: {
        const rest = s.slice(i);
        const pre = PRE.findIndex((p) => rest.startsWith(p));
        if (pre >= 0) {
          v = pre - PRE.length;
          i += PRE[pre]!.length;
          break;
        }
        const post = POST.findIndex((p) => rest.startsWith(p));
        if (post >= 0) {
          v = post;
          i += POST[post]!.length;
          break;
        }
        return this.invalid();
      }
      default:
        return this.invalid();
    }
    this.pos = i;
    if (this.pos >= s.length) this.type = T.End;
    else if (forced !== undefined) this.type = forced;
    else this.advanceType();
    return v;
  }

  private invalid(): number {
    this.type = T.Invalid;
    return -1;
  }
}

/** LESS, EQUAL or GREATER (or all three when either is missing and not both). */
export function compareVersions(a: string, b: string, fuzzy = false): number {
  const ta = new Tokens(a);
  const tb = new Tokens(b);
  let av = 0;
  let bv = 0;
  while (ta.type === tb.type && ta.type !== T.End && ta.type !== T.Invalid && av === bv) {
    av = ta.next();
    bv = tb.next();
  }
  if (av < bv) return LESS;
  if (av > bv) return GREATER;
  if (ta.type === tb.type || fuzzy) return EQUAL;
  // which side goes on decides: a pre-release suffix makes it older, anything else newer
  // (compared by the token types as they were here, before peeking at a suffix)
  const at = ta.type;
  const bt = tb.type;
  if (at === T.Suffix && ta.next() < 0) return LESS;
  if (bt === T.Suffix && tb.next() < 0) return GREATER;
  if (at > bt) return LESS;
  if (bt > at) return GREATER;
  return EQUAL;
}

export function validVersion(v: string): boolean {
  const t = new Tokens(v);
  while (t.type !== T.End && t.type !== T.Invalid) t.next();
  return t.type === T.End && v.length > 0;
}

/** Sorts versions ascending (a comparator for Array.sort). */
export function versionOrder(a: string, b: string): number {
  const r = compareVersions(a, b);
  return r === LESS ? -1 : r === GREATER ? 1 : 0;
}

export interface Dep {
  name: string;
  /** Satisfied when compareVersions(candidate, version) & mask; ANY without a version. */
  mask: number;
  version?: string | undefined;
  /** `!name`: nothing matching may be installed. */
  conflict: boolean;
  /** `@tag` as written (informational). */
  tag?: string | undefined;
}

const OPS: Array<[string, number]> = [
  ['<=', LESS | EQUAL],
  ['>=', GREATER | EQUAL],
  ['=~', EQUAL | FUZZY],
  ['~=', EQUAL | FUZZY],
  ['><', 0], // checksum pin: not supported, rejected below
  ['<', LESS],
  ['>', GREATER],
  ['=', EQUAL],
  ['~', EQUAL | FUZZY],
];

/** Parses one dependency atom; returns null when it is not one. */
export function parseDep(text: string): Dep | null {
  let s = text.trim();
  if (s === '') return null;
  let conflict = false;
  if (s.startsWith('!')) {
    conflict = true;
    s = s.slice(1);
  }
  let tag: string | undefined;
  const m = /^([^<>=~@\s]+)(@[^<>=~\s]+)?(.*)$/s.exec(s);
  if (!m) return null;
  const name = m[1]!;
  if (m[2]) tag = m[2].slice(1);
  const rest = m[3]!;
  if (rest === '') return { name, mask: ANY, conflict, tag };
  for (const [op, mask] of OPS) {
    if (rest.startsWith(op)) {
      if (mask === 0) return null;
      const version = rest.slice(op.length);
      if (!validVersion(version)) return null;
      return { name, mask, version, conflict, tag };
    }
  }
  return null;
}

/** Space-separated dependency list (D:, p:, i:, r: and world lines). */
export function parseDeps(text: string | undefined): Dep[] {
  if (!text) return [];
  const out: Dep[] = [];
  for (const word of text.split(/\s+/)) {
    if (word === '') continue;
    const d = parseDep(word);
    if (d) out.push(d);
  }
  return out;
}

export function formatDep(d: Dep): string {
  let s = (d.conflict ? '!' : '') + d.name + (d.tag ? `@${d.tag}` : '');
  if (d.version !== undefined) s += opString(d.mask) + d.version;
  return s;
}

function opString(mask: number): string {
  if (mask & FUZZY) return '~';
  switch (mask) {
    case LESS:
      return '<';
    case LESS | EQUAL:
      return '<=';
    case EQUAL:
      return '=';
    case GREATER | EQUAL:
      return '>=';
    case GREATER:
      return '>';
    default:
      return '?';
  }
}

/** Whether `version` satisfies the constraint part of `dep`. */
export function versionMatches(version: string, dep: Dep): boolean {
  if (dep.version === undefined) return true;
  const r = compareVersions(version, dep.version, (dep.mask & FUZZY) !== 0);
  return (r & dep.mask) !== 0;
}
