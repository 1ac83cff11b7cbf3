/**
 * Kernel modules: what a module needs (from its own .modinfo section) and the order to load a
 * set of them in.
 *
 * Distribution packages do not ship modules.dep (depmod writes it when the package is
 * installed), so dependencies come from where depmod's own come from in practice: modpost
 * records every module a module takes symbols from as `depends=` in the module's .modinfo
 * ELF section. Soft dependencies (`softdep=pre: …`) are loaded first when they exist as modules.
 * When a modules.dep is present it is used instead.
 *
 *   .modinfo section: NUL-separated "key=value" strings (name=, depends=a,b, softdep=pre: x post: y,
 *   alias=…, license=…, vermagic=…)
 *   ELF64 relocatable: 0x28 8 e_shoff  0x3a 2 e_shentsize  0x3c 2 e_shnum  0x3e 2 e_shstrndx
 *   (read with the one ELF reader, src/verify/elf.ts)
 *   Shdr64: 0x00 4 sh_name  0x18 8 sh_offset  0x20 8 sh_size
 */
import { fail } from '../errors.js';
import { decodeEhdr, decodeIdent, decodeShdr, isElf } from '../verify/elf.js';
import { EHDR64_SIZE, SHDR64_SIZE } from '../verify/elf-format.js';

export interface ModuleInfo {
  /** The kernel's name: "virtio_pci_modern_dev" ('-' in file names becomes '_'). */
  name: string;
  /** Path relative to /lib/modules/<release>/, e.g. "kernel/drivers/virtio/virtio.ko". */
  path: string;
  /** Direct dependencies (module names). */
  depends: string[];
  /** Modules to load before this one if they exist (softdep pre:). */
  softPre: string[];
}

/** The kernel's name for a module file. */
export function moduleNameOf(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const i = base.indexOf('.ko');
  return (i >= 0 ? base.slice(0, i) : base).replace(/-/g, '_');
}

/** The key=value pairs of a module's .modinfo section (keys may repeat: alias, softdep). */
export function parseModinfo(ko: Buffer, what: string): Map<string, string[]> {
  if (!isElf(ko) || ko[4] !== 2 || (ko[5] !== 1 && ko[5] !== 2)) fail('KERNEL_BAD_IMAGE', what, 'not a 64-bit ELF module');
  if (ko.length < EHDR64_SIZE) fail('KERNEL_BAD_IMAGE', what, 'section headers outside the file');
  const ident = decodeIdent(ko);
  if (ident === null) return fail('KERNEL_BAD_IMAGE', what, 'not a 64-bit ELF module');
  const { shoff, shentsize, shnum, shstrndx } = decodeEhdr(ko, ident);
  if (shentsize < SHDR64_SIZE || !(shoff + shnum * shentsize <= ko.length) || shstrndx >= shnum) fail('KERNEL_BAD_IMAGE', what, 'section headers outside the file');
  const sec = (i: number): { name: number; offset: number; size: number } => decodeShdr(ko, shoff + i * shentsize, ident);
  const strtab = sec(shstrndx);
  const out = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    const nameAt = strtab.offset + s.name;
    const end = ko.indexOf(0, nameAt);
    if (end < 0 || ko.toString('latin1', nameAt, end) !== '.modinfo') continue;
    if (!(s.offset + s.size <= ko.length)) fail('KERNEL_BAD_IMAGE', what, '.modinfo outside the file');
    for (const kv of ko.toString('latin1', s.offset, s.offset + s.size).split('\0')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) continue;
      const k = kv.slice(0, eq);
      const list = out.get(k) ?? [];
      list.push(kv.slice(eq + 1));
      out.set(k, list);
    }
    return out;
  }
  return out;
}

/** ModuleInfo from a module's bytes and its path under /lib/modules/<release>/. */
export function moduleInfo(path: string, ko: Buffer): ModuleInfo {
  const mi = parseModinfo(ko, `read module ${path}`);
  const depends = (mi.get('depends')?.[0] ?? '')
    .split(',')
    .map((d) => d.trim().replace(/-/g, '_'))
    .filter((d) => d !== '');
  const softPre: string[] = [];
  for (const sd of mi.get('softdep') ?? []) {
    // "pre: crc32c post: foo" — names after "pre:" up to the next "post:"
    const m = /pre:\s*([^:]*?)(?:\s+post:|$)/.exec(sd);
    if (m) softPre.push(...m[1]!.split(/\s+/).filter((n) => n !== '').map((n) => n.replace(/-/g, '_')));
  }
  return { name: mi.get('name')?.[0]?.replace(/-/g, '_') ?? moduleNameOf(path), path, depends, softPre };
}

/** Names of built-in modules from modules.builtin ("kernel/fs/ext4/ext4.ko" per line). */
export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .map(moduleNameOf),
  );
}

/**
 * modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko" per line) as ModuleInfo by name (paths
 * of the dependencies give their names).
 */
export function parseModulesDep(text: string): Map<string, ModuleInfo> {
  const out = new Map<string, ModuleInfo>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const path = line.slice(0, i).trim();
    const deps = line
      .slice(i + 1)
      .trim()
      .split(/\s+/)
      .filter((d) => d !== '');
    out.set(moduleNameOf(path), { name: moduleNameOf(path), path, depends: deps.map(moduleNameOf), softPre: [] });
  }
  return out;
}

export interface LoadPlan {
  /** Modules to load, each after everything it depends on. */
  order: ModuleInfo[];
  /** Wanted (or needed) modules that are built into the kernel: nothing to load. */
  builtin: string[];
  /** Wanted modules that are neither built in nor in the package. */
  missing: string[];
}

/**
 * The load order for `wanted` and everything they depend on: a depth-first walk, dependencies
 * first, in the order they are listed, each module once. Deterministic for a given index. A
 * dependency that is neither a module nor built in is reported in `missing` (its dependant would
 * fail to load); a soft dependency that is not there is skipped, as modprobe does.
 */
export function planModuleLoad(wanted: readonly string[], index: ReadonlyMap<string, ModuleInfo>, builtin: ReadonlySet<string>): LoadPlan {
  const order: ModuleInfo[] = [];
  const builtinHit = new Set<string>();
  const missing = new Set<string>();
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, soft: boolean, chain: string[]): void => {
    const st = state.get(name);
    if (st === 'done') return;
    if (st === 'visiting') fail('KERNEL_BAD_IMAGE', 'order kernel modules', 'dependency cycle', [...chain, name].join(' -> '));
    if (builtin.has(name)) {
      builtinHit.add(name);
      state.set(name, 'done');
      return;
    }
    const m = index.get(name);
    if (m === undefined) {
      if (!soft) missing.add(name);
      state.set(name, 'done');
      return;
    }
    state.set(name, 'visiting');
    for (const s of m.softPre) visit(s, true, [...chain, name]);
    for (const d of m.depends) visit(d, false, [...chain, name]);
    state.set(name, 'done');
    order.push(m);
  };
  for (const w of wanted) visit(w.replace(/-/g, '_'), false, []);
  return { order, builtin: [...builtinHit].sort(), missing: [...missing].sort() };
}

/** modules.dep lines for the modules of a plan (paths relative to /lib/modules/<release>/). */
export function formatModulesDep(plan: LoadPlan, index: ReadonlyMap<string, ModuleInfo>): string {
  const lines: string[] = [];
  for (const m of plan.order) {
    // depmod lists the full transitive closure, nearest first
    const deps: string[] = [];
    const seen = new Set<string>();
    const walk = (n: string): void => {
      const d = index.get(n);
      if (d === undefined) return;
      for (const x of d.depends) {
        if (seen.has(x) || !index.has(x)) continue;
        seen.add(x);
        deps.push(index.get(x)!.path);
        walk(x);
      }
    };
    walk(m.name);
    lines.push(`${m.path}:${deps.map((d) => ' ' + d).join('')}`);
  }
  return lines.join('\n') + (lines.length > 0 ? '\n' : '');
}
