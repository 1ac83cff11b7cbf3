/**
 * Where the dynamic loaders look for libraries, read from the image: glibc's ld.so.conf (with
 * `include` globs; ld.so really reads ld.so.cache, which ldconfig builds from these files, so a
 * stale cache is not caught) and default directories, musl's /etc/ld-musl-<arch>.path and
 * defaults, and the expansion of $ORIGIN, $LIB and $PLATFORM in DT_RPATH / DT_RUNPATH.
 *
 * Search order, which deps.ts applies per object (glibc elf/dl-load.c, musl ldso/dynlink.c):
 *   glibc: DT_RPATH of the object and of each object that loaded it up to the program (only
 *          when the object has no DT_RUNPATH), [LD_LIBRARY_PATH: not set at boot], DT_RUNPATH
 *          of the object, ld.so.conf directories, default directories.
 *   musl:  DT_RUNPATH (else DT_RPATH) of the object and of each object that loaded it,
 *          [LD_LIBRARY_PATH], the .path file's directories, else /lib:/usr/local/lib:/usr/lib.
 * Not modelled: glibc-hwcaps subdirectories (a library must also exist in the plain directory,
 * as every distribution installs it), DF_1_NODEFLIB, LD_PRELOAD and /etc/ld.so.preload.
 */
import { archOf, type ArchInfo } from './arch.js';
import { ELFCLASS64 } from './elf-format.js';
import type { ElfInfo } from './elf.js';
import { normalize, type ImageFs } from './image-fs.js';

export type Flavor = { libc: 'glibc' } | { libc: 'musl'; arch: string };

const MUSL_INTERP = /^ld-musl-(.+)\.so\.1$/;

/** The C library a program uses, from its interpreter's name (musl's is ld-musl-<arch>.so.1). */
export function flavorOfInterp(interp: string): Flavor {
  const m = MUSL_INTERP.exec(interp.slice(interp.lastIndexOf('/') + 1));
  return m ? { libc: 'musl', arch: m[1]! } : { libc: 'glibc' };
}

/** For an object checked on its own (a library in a bin directory): musl if it needs musl's libc. */
export function flavorOfNeeded(needed: string[]): Flavor {
  for (const n of needed) {
    const m = /^libc\.musl-(.+)\.so\.1$/.exec(n);
    if (m) return { libc: 'musl', arch: m[1]! };
  }
  return { libc: 'glibc' };
}

/**
 * musl's loader answers for its own libraries: a needed name "lib" + one of these + anything
 * (libc.so, libc.musl-x86_64.so.1, libpthread.so.0, libm.so.6, …) is the loader itself.
 */
const MUSL_RESERVED = ['c.', 'pthread.', 'rt.', 'm.', 'dl.', 'util.', 'xnet.'];

export function muslProvides(name: string): boolean {
  return name.startsWith('lib') && MUSL_RESERVED.some((r) => name.startsWith(r, 3));
}

export class LoaderConfig {
  private conf?: Promise<{ dirs: string[]; notes: string[] }>;
  private readonly musl = new Map<string, Promise<string[]>>();

  constructor(private readonly fs: ImageFs) {}

  /** Directories from /etc/ld.so.conf and what it includes, in file order, plus any notes on problems. */
  glibcConf(): Promise<{ dirs: string[]; notes: string[] }> {
    this.conf ??= this.readConf();
    return this.conf;
  }

  private async readConf(): Promise<{ dirs: string[]; notes: string[] }> {
    const dirs: string[] = [];
    const notes: string[] = [];
    const seen = new Set<string>();
    const parse = async (file: string, depth: number): Promise<void> => {
      if (seen.has(file)) return; // an include cycle: ldconfig would loop; reading once is enough here
      seen.add(file);
      if (depth > 16) {
        notes.push(`includes nested too deeply (${file})`);
        return;
      }
      const look = await this.fs.resolve(file);
      if (!look.ok) {
        if (depth > 0) notes.push(`cannot read ${file}: ${look.reason}`);
        return;
      }
      if (look.st.kind !== 'file') {
        notes.push(`not a regular file (${file})`);
        return;
      }
      const text = (await this.fs.readSmall(look.st)).toString('latin1');
      for (const raw of text.split('\n')) {
        const line = raw.replace(/#.*/, '').trim();
        if (line === '') continue;
        const inc = /^include\s+(.*)$/.exec(line);
        if (inc) {
          for (let pattern of inc[1]!.split(/\s+/)) {
            // ldconfig: a relative pattern is relative to the directory of the including file.
            if (!pattern.startsWith('/')) pattern = `${file.slice(0, file.lastIndexOf('/'))}/${pattern}`;
            for (const f of await this.fs.glob(pattern)) await parse(f, depth + 1);
          }
          continue;
        }
        if (/^hwcap\s/.test(line)) continue; // obsolete, ignored by ldconfig
        const dir = line.replace(/=.*$/, '').trim(); // "DIR=TYPE" is an old way to give a library type
        if (dir !== '') dirs.push(normalize(dir));
      }
    };
    await parse('/etc/ld.so.conf', 0);
    return { dirs, notes };
  }

  /** musl's system path: /etc/ld-musl-<arch>.path if it exists (colon or newline separated), else the default. */
  muslPath(arch: string): Promise<string[]> {
    let p = this.musl.get(arch);
    if (!p) {
      p = (async () => {
        const look = await this.fs.resolve(`/etc/ld-musl-${arch}.path`);
        if (!look.ok || look.st.kind !== 'file') return ['/lib', '/usr/local/lib', '/usr/lib'];
        // An empty file means an empty path (musl does not fall back to the default then).
        const text = (await this.fs.readSmall(look.st)).toString('latin1');
        return text.split(/[:\n]/).map((d) => d.trim()).filter((d) => d !== '').map(normalize);
      })();
      this.musl.set(arch, p);
    }
    return p;
  }
}

/** glibc's built-in directories (Debian's multiarch ones first), for an object of this class/machine. */
export function glibcDefaultDirs(elf: ElfInfo): string[] {
  const arch = archOf(elf.machine, elf.elfClass, elf.data);
  const multi = (arch?.triplets ?? []).flatMap((t) => [`/lib/${t}`, `/usr/lib/${t}`]);
  const wide = elf.elfClass === ELFCLASS64 ? ['/lib64', '/usr/lib64'] : ['/lib32', '/usr/lib32'];
  return [...multi, ...wide, '/lib', '/usr/lib'];
}

/**
 * Splits a DT_RPATH/DT_RUNPATH value into directories, expanding $ORIGIN (the directory of the
 * object), $LIB and $PLATFORM (each to every value the loader may use on this architecture).
 * Empty elements (the current directory) are dropped: at boot it is "/", which holds no libraries.
 */
export function expandRunPath(value: string, origin: string, elf: ElfInfo): string[] {
  const arch: ArchInfo | undefined = archOf(elf.machine, elf.elfClass, elf.data);
  const libs = elf.elfClass === ELFCLASS64 ? ['lib64', 'lib'] : ['lib', 'lib32'];
  for (const t of arch?.triplets ?? []) libs.push(`lib/${t}`);
  const values: Record<string, string[]> = {
    ORIGIN: [origin],
    LIB: libs,
    PLATFORM: arch?.platforms ?? [],
  };
  const out: string[] = [];
  for (const item of value.split(':')) {
    if (item === '') continue;
    let expansions = [item];
    const token = /\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))/;
    // Bounded: a value could contain a token again (a directory named "$ORIGIN"…).
    for (let round = 0; round < 8 && expansions.some((e) => token.test(e)); round++) {
      expansions = expansions.flatMap((e) => {
        const m = token.exec(e);
        if (!m) return [e];
        const name = (m[1] ?? m[2])!;
        return values[name]!.map((v) => e.slice(0, m.index) + v + e.slice(m.index + m[0].length));
      });
    }
    for (const e of expansions) out.push(normalize(e.startsWith('/') ? e : `/${e}`));
  }
  return out;
}

export function usesOrigin(elf: ElfInfo): boolean {
  return /\$\{?ORIGIN/.test(`${elf.rpath ?? ''}:${elf.runpath ?? ''}`);
}
