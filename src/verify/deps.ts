/**
 * Dependency closure of programs, as the loaders would resolve it at boot: the program
 * interpreter (PT_INTERP) and every DT_NEEDED library, recursively, searched in the order
 * loader.ts describes, each candidate checked to be an ELF of the same class, byte order and
 * machine as the object that needs it (ld.so skips other ones and keeps searching).
 *
 * Work is shared between programs: each object's search path (decided by its $ORIGIN when it
 * uses one, the run paths inherited from its loaders and the C library) is computed once, and
 * each search (name × directories × ELF kind) is done once, however many programs need it.
 */
import type { Stat } from '../ext4/reader.js';
import { describeMachine } from './arch.js';
import { elfKey, type ElfInfo } from './elf.js';
import { ET_DYN, ET_EXEC } from './elf-format.js';
import type { ElfFiles } from './elf-files.js';
import { dirname, normalize, type ImageFs } from './image-fs.js';
import {
  expandRunPath,
  flavorOfInterp,
  flavorOfNeeded,
  glibcDefaultDirs,
  muslProvides,
  usesOrigin,
  type Flavor,
  type LoaderConfig,
} from './loader.js';

export interface DepProblem {
  /** The file (program or library) whose interpreter or library is missing or unusable. */
  file: string;
  kind: 'interpreter' | 'library' | 'elf';
  /** The interpreter path or the needed library name ('' for kind 'elf'). */
  name: string;
  /** What is wrong: not found, another architecture, corrupt, not executable, … */
  reason: string;
  /** The program whose closure led to `file`, when `file` is a library (the first one met). */
  program?: string;
  /** How many programs met this problem (elf-deps reports each problem once). */
  programs?: number;
  /** The directories searched for a library that was not found. */
  searched?: string[];
}

/** An ELF to check: a program, or a library found for one. */
export interface ElfObject {
  /** For programs the real path; for libraries the path they were found at (their $ORIGIN). */
  path: string;
  st: Stat;
  elf: ElfInfo;
  /** Programs have their interpreter checked; libraries are loaded by someone else's. */
  isProgram: boolean;
}

interface Loaded extends ElfObject {
  /** Where the file really is (reported), when `path` reaches it through symlinks. */
  real: string;
  flavor: Flavor;
  /** Run-path directories inherited from the objects that loaded this one, nearest first. */
  chain: string[];
}

interface Prepared {
  dirs: string[];
  childChain: string[];
}

type Search = { found: true; path: string; real: string; st: Stat; elf: ElfInfo } | { found: false; reason: string; searched?: string[] };
type Interp = { ok: true; soname?: string } | { ok: false; reason: string };

export class DepChecker {
  private readonly prepared = new Map<string, Promise<Prepared>>();
  private readonly searches = new Map<string, Promise<Search>>();
  private readonly interps = new Map<string, Promise<Interp>>();
  /** Inodes of the libraries the closures reached (for statistics). */
  readonly libraries = new Set<number>();

  /** What was wrong in ld.so.conf and its includes (ldconfig warns and goes on; so do we). */
  async loaderNotes(): Promise<string[]> {
    return (await this.loader.glibcConf()).notes;
  }

  constructor(
    private readonly fs: ImageFs,
    private readonly elfs: ElfFiles,
    private readonly loader: LoaderConfig,
  ) {}

  /**
   * Problems in the closure of `root`, loaded the way ld.so does it: breadth first, and a
   * needed name that an object already loaded answers to (the name it was loaded by, or for
   * glibc its DT_SONAME; the interpreter is loaded first) is not searched again — systemd's
   * private libraries need each other without a run path and are found only that way.
   * Searches are shared between calls; the walk is per program because what is loaded differs.
   */
  async closure(root: ElfObject): Promise<DepProblem[]> {
    const flavor = root.elf.interp !== undefined ? flavorOfInterp(root.elf.interp) : flavorOfNeeded(root.elf.needed);
    const glibc = flavor.libc === 'glibc';
    const problems: DepProblem[] = [];
    const byName = new Set<string>();
    const byIno = new Set<number>([root.st.ino]);
    if (glibc && root.elf.soname !== undefined) byName.add(root.elf.soname);
    if (root.isProgram) {
      if (root.elf.interp !== undefined) {
        const r = await this.interpreter(root.elf.interp, root.elf);
        if (!r.ok) problems.push({ file: root.path, kind: 'interpreter', name: root.elf.interp, reason: r.reason });
        else {
          byName.add(root.elf.interp);
          if (glibc && r.soname !== undefined) byName.add(r.soname);
        }
      } else if (root.elf.needed.length > 0) {
        problems.push({ file: root.path, kind: 'interpreter', name: '', reason: 'needs shared libraries but has no program interpreter (PT_INTERP)' });
      }
    }
    const first: Loaded = { ...root, real: root.path, flavor, chain: [] };
    const queue = [first];
    while (queue.length > 0) {
      const obj = queue.shift()!;
      const { dirs, childChain } = await this.prepare(obj);
      for (const name of obj.elf.needed) {
        if (!glibc && muslProvides(name)) continue; // the loader is that library
        if (byName.has(name)) continue;
        const r = await this.search(name, obj.elf, dirs);
        if (!r.found) {
          const p: DepProblem = { file: obj.real, kind: 'library', name, reason: r.reason, ...(r.searched ? { searched: r.searched } : {}) };
          problems.push(obj === first ? p : { ...p, program: root.path });
          continue;
        }
        byName.add(name);
        if (byIno.has(r.st.ino)) continue; // the same file under another name: loaded once
        byIno.add(r.st.ino);
        this.libraries.add(r.st.ino);
        if (glibc && r.elf.soname !== undefined) byName.add(r.elf.soname);
        queue.push({ path: r.path, real: r.real, st: r.st, elf: r.elf, isProgram: false, flavor, chain: childChain });
      }
    }
    return problems;
  }

  private prepare(obj: Loaded): Promise<Prepared> {
    const key = objectKey(obj);
    let p = this.prepared.get(key);
    if (!p) {
      p = this.searchPath(obj);
      this.prepared.set(key, p);
    }
    return p;
  }

  /** The directories to search for `obj`'s needed libraries, and the run paths its own libraries inherit. */
  private async searchPath(obj: Loaded): Promise<{ dirs: string[]; childChain: string[] }> {
    const { elf } = obj;
    const origin = dirname(obj.path);
    if (obj.flavor.libc === 'musl') {
      const own = elf.runpath ?? elf.rpath;
      const mine = own === undefined ? [] : expandRunPath(own, origin, elf);
      const childChain = [...mine, ...obj.chain];
      return { dirs: unique([...childChain, ...(await this.loader.muslPath(obj.flavor.arch))]), childChain };
    }
    // glibc ignores DT_RPATH, and the loaders' run paths, when the object has DT_RUNPATH.
    const rpath = elf.runpath === undefined && elf.rpath !== undefined ? expandRunPath(elf.rpath, origin, elf) : [];
    const childChain = [...rpath, ...obj.chain];
    const runpath = elf.runpath !== undefined ? expandRunPath(elf.runpath, origin, elf) : [];
    const first = elf.runpath === undefined ? childChain : [];
    const conf = (await this.loader.glibcConf()).dirs;
    return { dirs: unique([...first, ...runpath, ...conf, ...glibcDefaultDirs(elf)]), childChain };
  }

  private search(name: string, elf: ElfInfo, dirs: string[]): Promise<Search> {
    const key = `${elfKey(elf)}|${name}|${dirs.join(':')}`;
    let p = this.searches.get(key);
    if (!p) {
      p = this.doSearch(name, elf, dirs);
      this.searches.set(key, p);
    }
    return p;
  }

  private async doSearch(name: string, elf: ElfInfo, dirs: string[]): Promise<Search> {
    // A name with a slash is a path (relative to the working directory, "/" at boot), not searched.
    const candidates = name.includes('/') ? [normalize(name)] : dirs.map((d) => normalize(`${d}/${name}`));
    const others: string[] = [];
    const otherInos = new Set<number>();
    for (const path of candidates) {
      const look = await this.fs.resolve(path);
      if (!look.ok || look.st.kind !== 'file') continue; // open() fails: the loader tries the next directory
      const r = await this.elfs.read(look.st);
      // A file that opens but is not a loadable ELF stops the loader with an error.
      if (r.kind === 'bad') return { found: false, reason: `${path} is unreadable: ${r.error}` };
      if (r.kind === 'other') return { found: false, reason: `${path} is not an ELF file` };
      if (elfKey(r.elf) !== elfKey(elf)) {
        // The same file reached through two directories (/lib -> usr/lib) is named once.
        if (!otherInos.has(look.st.ino)) others.push(`${path} is ${describeMachine(r.elf.machine, r.elf.elfClass, r.elf.data)}`);
        otherInos.add(look.st.ino);
        continue;
      }
      if (r.elf.type !== ET_DYN && r.elf.type !== ET_EXEC) return { found: false, reason: `${path} is not a shared object (e_type ${r.elf.type})` };
      return { found: true, path, real: look.path, st: look.st, elf: r.elf };
    }
    const want = describeMachine(elf.machine, elf.elfClass, elf.data);
    if (others.length > 0) return { found: false, reason: `not found for ${want}; only another architecture: ${others.join(', ')}`, searched: candidates };
    return { found: false, reason: 'not found', searched: name.includes('/') ? candidates : dirs };
  }

  /** Whether the interpreter can load `elf` (resolved through symlinks in the image), and its soname. */
  private interpreter(interp: string, elf: ElfInfo): Promise<Interp> {
    const key = `${interp}|${elfKey(elf)}`;
    let p = this.interps.get(key);
    if (!p) {
      p = (async (): Promise<Interp> => {
        const no = (reason: string): Interp => ({ ok: false, reason });
        const look = await this.fs.resolve(interp);
        if (!look.ok) return no(look.via.length > 0 && look.code !== 'ELOOP' ? `${look.reason} (via ${look.via.join(', ')})` : look.reason);
        if (look.st.kind !== 'file') return no(`${look.path} is not a regular file (${look.st.kind})`);
        if ((look.st.perm & 0o111) === 0) return no(`${look.path} is not executable (mode ${modeString(look.st.perm)})`);
        const r = await this.elfs.read(look.st);
        if (r.kind === 'bad') return no(`${look.path} is unreadable: ${r.error}`);
        if (r.kind === 'other') return no(`${look.path} is not an ELF file`);
        if (elfKey(r.elf) !== elfKey(elf)) {
          return no(`${look.path} is ${describeMachine(r.elf.machine, r.elf.elfClass, r.elf.data)}, the program is ${describeMachine(elf.machine, elf.elfClass, elf.data)}`);
        }
        return r.elf.soname !== undefined ? { ok: true, soname: r.elf.soname } : { ok: true };
      })();
      this.interps.set(key, p);
    }
    return p;
  }
}

/** One line for a problem: "/usr/bin/ls: library libselinux.so.1: not found". */
export function describeProblem(p: DepProblem): string {
  const what = p.kind === 'interpreter' ? (p.name ? `program interpreter ${p.name}: ` : '') : p.kind === 'library' ? `library ${p.name}: ` : '';
  const others = (p.programs ?? 1) > 1 ? ` and ${p.programs! - 1} other program${p.programs === 2 ? '' : 's'}` : '';
  const via = p.program !== undefined && p.program !== p.file ? ` (needed for ${p.program}${others})` : '';
  return `${p.file}: ${what}${p.reason}${via}`;
}

export function modeString(perm: number): string {
  return perm.toString(8).padStart(4, '0');
}

function objectKey(o: Loaded): string {
  const origin = usesOrigin(o.elf) ? dirname(o.path) : '';
  const libc = o.flavor.libc === 'musl' ? `musl-${o.flavor.arch}` : 'glibc';
  return `${o.isProgram ? 'P' : 'L'}${o.st.ino}|${origin}|${libc}|${o.chain.join(':')}`;
}

function unique(dirs: string[]): string[] {
  return [...new Set(dirs)];
}
