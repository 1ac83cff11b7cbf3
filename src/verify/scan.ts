/**
 * Finds the ELF files whose dependencies `verify` checks: every executable ELF under the bin
 * directories and /usr/libexec (programs, and the odd library kept there), and the programs
 * under /usr/lib* (helpers like /usr/lib/openssh/sftp-server; the libraries there are checked
 * only when a program needs them, which keeps a Debian devbox image to ~700 files opened).
 *
 * Only regular files with an x bit are opened (a file nobody can execute is not a program, and
 * Debian's libraries are 0644); symlinks are not followed (their targets are files found on
 * their own, or not programs); a directory reached twice (merged /usr: /bin -> usr/bin) is
 * walked once.
 */
import type { Stat } from '../ext4/reader.js';
import type { ElfInfo } from './elf.js';
import { isProgram } from './elf.js';
import type { ElfFiles } from './elf-files.js';
import type { ImageFs } from './image-fs.js';
import { drain, mapLimit } from './pool.js';

/** Every ELF here is checked. */
export const BIN_DIRS = ['/bin', '/sbin', '/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/usr/libexec'];
/** Where the image's architecture is guessed from when nothing says it. */
export const ARCH_DIRS = ['/bin', '/usr/bin'];
/** Separate debug info: ELF files keeping the program headers of code they do not contain (they would read as truncated). */
const SKIP = new Set(['/usr/lib/debug']);

export interface ScannedElf {
  path: string;
  st: Stat;
  elf: ElfInfo;
  isProgram: boolean;
  /** Found under /bin or /usr/bin (architecture majority). */
  inArchDir: boolean;
}

export interface ScanResult {
  elfs: ScannedElf[];
  /** Files that start like an ELF but cannot be read as one. */
  bad: { path: string; error: string }[];
  /** Executable regular files looked at. */
  filesOpened: number;
}

export async function scanElfs(fs: ImageFs, elfs: ElfFiles): Promise<ScanResult> {
  const result: ScanResult = { elfs: [], bad: [], filesOpened: 0 };
  const seenDirs = new Set<number>();
  const seenFiles = new Set<number>();
  const libDirs = (await fs.glob('/usr/lib*')).filter((p) => !BIN_DIRS.includes(p));
  const roots = [...BIN_DIRS.map((p) => ({ p, all: true })), ...libDirs.map((p) => ({ p, all: false }))];
  const archDirs = new Set<number>();
  for (const d of ARCH_DIRS) {
    const look = await fs.resolve(d);
    if (look.ok && look.st.kind === 'dir') archDirs.add(look.st.ino);
  }
  // Directories are read in parallel: on a cold page cache each read waits for the disk, and
  // overlapping them is what makes a big image quick. Roots are walked in order, so a directory
  // reached from two roots is attributed to the first.
  type Item = { path: string; st: Stat; all: boolean; inArchDir: boolean };
  const items: Item[] = [];
  for (const root of roots) {
    const look = await fs.resolve(root.p);
    if (!look.ok || look.st.kind !== 'dir' || seenDirs.has(look.st.ino)) continue;
    seenDirs.add(look.st.ino);
    items.push({ path: look.path, st: look.st, all: root.all, inArchDir: archDirs.has(look.st.ino) });
  }
  await drain(items, 8, async (dir, push) => {
    if (SKIP.has(dir.path)) return;
    const names = [...(await fs.entries(dir.st))];
    const stats = await fs.img.statMany(names.map(([, ino]) => ino)); // not cached: most are looked at once
    await mapLimit(names, 4, async ([name, ino], i) => {
      const st = stats[i]!;
      const path = `${dir.path === '/' ? '' : dir.path}/${name}`;
      if (st.kind === 'dir') {
        if (!seenDirs.has(ino)) {
          seenDirs.add(ino);
          push({ path, st, all: dir.all, inArchDir: archDirs.has(ino) });
        }
        return;
      }
      if (st.kind !== 'file' || (st.perm & 0o111) === 0 || seenFiles.has(ino)) return;
      seenFiles.add(ino);
      result.filesOpened++;
      const r = await elfs.read(st);
      if (r.kind === 'bad') result.bad.push({ path, error: r.error });
      if (r.kind !== 'elf') return;
      const program = isProgram(r.elf);
      if (program || dir.all) result.elfs.push({ path, st, elf: r.elf, isProgram: program, inArchDir: dir.inArchDir });
    });
  });
  result.elfs.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  result.bad.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return result;
}
