/**
 * Choosing what to install, with apk's semantics where it matters for reproducible images:
 *
 * - a dependency `name[op version]` is met by a package of that name whose version matches, or by
 *   one that provides the name: a versioned provide (`so:libc.musl-x86_64.so.1=1`,
 *   `cmd:sh=1.36`) is compared like a version, an unversioned one (`provides=sh`) meets only
 *   dependencies without a version;
 * - what is installed already stays (it is never up- or downgraded here);
 * - among candidates: a package with the exact name first, then the higher `provider_priority`,
 *   then the higher (provided) version, then the name, so the choice never depends on index order;
 *   a virtual name whose providers are all unversioned and unprioritised must be chosen
 *   explicitly (apk refuses to guess, so do we);
 * - one version per name; `!name` conflicts checked against the final set; `install_if` packages
 *   join once all their conditions are installed, repeatedly until nothing changes.
 * The result is in installation order: dependencies before dependents, ties by name.
 *
 * There is no backtracking: a first choice that a later constraint rules out is an error that
 * names both, rather than a silent search. apk-tools' solver can sometimes find a way out there.
 */
import { fail } from '../../errors.js';
import type { IndexPackage } from './apkindex.js';
import { formatDep, versionMatches, versionOrder, compareVersions, GREATER, type Dep } from './version.js';

export interface Resolution {
  /** Packages to install, in order. */
  install: IndexPackage[];
  /** Every package in the final set (installed ones included), by name. */
  selected: Map<string, IndexPackage>;
}

interface Match {
  pkg: IndexPackage;
  exact: boolean;
  /** The provided version ('' for an unversioned provide, the package version when exact). */
  version: string;
}

function matches(p: IndexPackage, d: Dep): Match | null {
  if (p.name === d.name) return versionMatches(p.version, d) ? { pkg: p, exact: true, version: p.version } : null;
  for (const pr of p.provides) {
    if (pr.name !== d.name) continue;
    if (pr.version === undefined) {
      if (d.version === undefined) return { pkg: p, exact: false, version: '' };
      continue;
    }
    if (versionMatches(pr.version, d)) return { pkg: p, exact: false, version: pr.version };
  }
  return null;
}

export function resolve(world: Dep[], available: IndexPackage[], installed: IndexPackage[]): Resolution {
  const byProvide = new Map<string, IndexPackage[]>();
  for (const p of available) {
    for (const n of [p.name, ...p.provides.map((x) => x.name)]) {
      let l = byProvide.get(n);
      if (!l) byProvide.set(n, (l = []));
      if (!l.includes(p)) l.push(p);
    }
  }
  const selected = new Map<string, IndexPackage>();
  for (const p of installed) selected.set(p.name, p);
  const installedSet = new Set(installed);
  const conflicts: Array<{ dep: Dep; from: string }> = [];
  const why = new Map<string, string>(); // name → who asked for it (for messages)

  const satisfiedBy = (d: Dep): IndexPackage | undefined => {
    for (const p of selected.values()) if (matches(p, d)) return p;
    return undefined;
  };

  const choose = (d: Dep, from: string): IndexPackage => {
    const cands: Match[] = [];
    for (const p of byProvide.get(d.name) ?? []) {
      const m = matches(p, d);
      if (!m) continue;
      const taken = selected.get(p.name);
      if (taken && taken !== p) continue; // another version of that name is in already
      cands.push(m);
    }
    if (cands.length === 0) {
      const other = [...selected.values()].find((p) => p.name === d.name);
      const known = byProvide.get(d.name)?.map((p) => `${p.name}-${p.version}`) ?? [];
      const reason = other
        ? `${other.name}-${other.version} is already chosen${why.get(other.name) ? ` (for ${why.get(other.name)})` : ''} and does not satisfy it`
        : known.length
          ? `no candidate matches (available: ${known.slice(0, 6).join(', ')})`
          : 'no package has or provides that name';
      fail('APK_UNSATISFIABLE', `resolve ${formatDep(d)} (needed by ${from})`, reason, formatDep(d));
    }
    const exact = cands.filter((c) => c.exact);
    let pool = exact.length > 0 ? exact : cands;
    if (exact.length === 0 && pool.every((c) => c.version === '' && c.pkg.providerPriority === 0) && new Set(pool.map((c) => c.pkg.name)).size > 1) {
      fail('APK_UNSATISFIABLE', `resolve ${formatDep(d)} (needed by ${from})`, `it is a virtual name with several providers and no provider_priority; add one of them to packages: ${[...new Set(pool.map((c) => c.pkg.name))].sort().join(', ')}`, d.name);
    }
    pool = [...pool].sort((a, b) => {
      if (a.pkg.providerPriority !== b.pkg.providerPriority) return b.pkg.providerPriority - a.pkg.providerPriority;
      const v = versionOrder(b.version || b.pkg.version, a.version || a.pkg.version);
      if (v !== 0) return v;
      if (a.pkg.name !== b.pkg.name) return a.pkg.name < b.pkg.name ? -1 : 1;
      const pv = versionOrder(b.pkg.version, a.pkg.version);
      if (pv !== 0) return pv;
      return a.pkg.repo - b.pkg.repo; // the first repository wins, as in apk
    });
    return pool[0]!.pkg;
  };

  const queue: Array<{ dep: Dep; from: string }> = world.map((dep) => ({ dep, from: 'world' }));
  // what is installed keeps its conflicts: a new package may not break them
  for (const p of installed) for (const dep of p.depends) if (dep.conflict) conflicts.push({ dep, from: `${p.name}-${p.version}` });
  const add = (p: IndexPackage, from: string) => {
    selected.set(p.name, p);
    why.set(p.name, from);
    for (const dep of p.depends) queue.push({ dep, from: `${p.name}-${p.version}` });
  };
  // Names only providers have (virtuals, so:, cmd:) are decided last: by then the world and
  // the dependencies that name packages may have brought in a provider already.
  const later: Array<{ dep: Dep; from: string }> = [];
  const isVirtual = (d: Dep) => !(byProvide.get(d.name) ?? []).some((p) => p.name === d.name);
  const drain = () => {
    for (;;) {
      const item = queue.shift() ?? later.shift();
      if (!item) return;
      const { dep, from } = item;
      if (dep.conflict) {
        conflicts.push({ dep, from });
        continue;
      }
      if (satisfiedBy(dep)) continue;
      if (queue.length > 0 && isVirtual(dep) && !later.includes(item)) {
        later.push(item);
        continue;
      }
      add(choose(dep, from), from);
    }
  };
  drain();
  // install_if: a package joins when every condition is met by the set (checked to a fixpoint)
  for (let changed = true; changed; ) {
    changed = false;
    const names = [...new Set(available.filter((p) => p.installIf.length > 0 && !selected.has(p.name)).map((p) => p.name))].sort();
    for (const name of names) {
      const versions = available.filter((p) => p.name === name && p.installIf.length > 0).sort((a, b) => versionOrder(b.version, a.version));
      const p = versions.find((v) => v.installIf.every((d) => (d.conflict ? !satisfiedBy({ ...d, conflict: false }) : satisfiedBy(d))));
      if (!p) continue;
      add(p, `install_if ${p.installIf.map(formatDep).join(' ')}`);
      drain();
      changed = true;
    }
  }
  for (const { dep, from } of conflicts) {
    for (const p of selected.values()) {
      if (`${p.name}-${p.version}` === from) continue; // a package never conflicts with itself
      if (matches(p, { ...dep, conflict: false })) {
        fail('APK_CONFLICT', `install ${p.name}-${p.version}`, `${from} conflicts with it (${formatDep(dep)})`, p.name);
      }
    }
  }
  const install = order([...selected.values()].filter((p) => !installedSet.has(p)), selected);
  return { install, selected };
}

/** Dependencies first (depth-first over sorted names), so scripts and triggers see their deps. */
function order(pkgs: IndexPackage[], selected: Map<string, IndexPackage>): IndexPackage[] {
  const wanted = new Set(pkgs);
  const out: IndexPackage[] = [];
  const state = new Map<IndexPackage, 1 | 2>();
  const all = [...selected.values()];
  const visit = (p: IndexPackage) => {
    if (state.has(p)) return; // done, or a cycle (broken here)
    state.set(p, 1);
    const deps = p.depends.filter((d) => !d.conflict).map((d) => all.find((q) => matches(q, d))).filter((q): q is IndexPackage => q !== undefined);
    deps.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const q of deps) visit(q);
    state.set(p, 2);
    if (wanted.has(p)) out.push(p);
  };
  for (const p of [...pkgs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) visit(p);
  return out;
}

/** True when a is newer than b (for messages and locks). */
export function newer(a: string, b: string): boolean {
  return compareVersions(a, b) === GREATER;
}
