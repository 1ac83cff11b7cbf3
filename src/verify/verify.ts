/**
 * `verify`: static checks of an image, without booting it. Opens the image with our reader,
 * runs the real `e2fsck -fn` beside it, and answers the questions a failed boot would otherwise
 * answer slowly: are the mount points there, can the kernel run init, can init run the agent,
 * and can every program find its interpreter and libraries (for the right architecture)?
 *
 * Order: config files → scan of the program directories (which also gives the architecture when
 * nothing names it) → dependency closures, init, agent → e2fsck's result.
 */
import { performance } from 'node:perf_hooks';
import { fail, isRootforgeError, printable } from '../errors.js';
import { Ext4Image } from '../ext4/reader.js';
import { utf8ToByteString } from '../util/bytes.js';
import { archByName, archOf, describeMachine, hostArch, type ArchInfo } from './arch.js';
import { readImageConfig, AGENT_JSON_PATH, IMAGE_JSON } from './config.js';
import { DepChecker, describeProblem, type DepProblem } from './deps.js';
import { checkFirstBoot } from './first-boot.js';
import { checkDirs } from './dirs.js';
import { elfKey } from './elf.js';
import { ElfFiles } from './elf-files.js';
import { runFsck } from './fsck.js';
import { ImageFs } from './image-fs.js';
import { LoaderConfig } from './loader.js';
import { mapLimit } from './pool.js';
import { checkAgent, checkInit, type ProgramContext } from './program.js';
import { ARCH_DIRS, scanElfs, type ScanResult } from './scan.js';
import type { ArchSource, VerifyCheck, VerifyOptions, VerifyReport } from './types.js';

export const DEFAULT_INIT = '/sbin/init';
export const DEFAULT_AGENT = '/usr/sbin/rootforge-agent';

const ORDER = ['fsck', 'read', 'config', 'dirs', 'tmp-mode', 'init', 'agent', 'elf-deps', 'elf-arch', 'first-boot'];

export async function verifyImage(path: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const start = performance.now();
  const forced = options.arch !== undefined ? archByName(options.arch) : undefined;
  if (options.arch !== undefined && !forced) fail('OPTION_INVALID', 'use --arch', 'unknown architecture (amd64, arm64, 386, arm, ppc64le, s390x, riscv64, …)', options.arch);
  for (const [name, v] of [['init', options.init], ['agent', options.agent]] as const) {
    if (v !== undefined && v.trim() === '') fail('OPTION_INVALID', `use --${name}`, 'empty path', v);
  }

  const img = await Ext4Image.open(path);
  const abort = new AbortController();
  const fsck: Promise<VerifyCheck> =
    options.fsck === false
      ? Promise.resolve({ id: 'fsck', ok: true, severity: 'error', skipped: true, message: 'skipped (fsck: false)' })
      : runFsck(path, options.e2fsck, abort.signal);
  const checks: VerifyCheck[] = [];
  let stats: Omit<VerifyReport['stats'], 'durationMs'> = { filesScanned: 0, programs: 0, libraries: 0, elfFilesParsed: 0 };
  let arch: ChosenArch = { name: 'unknown', source: 'host' };
  try {
    const fs = new ImageFs(img);
    const elfs = new ElfFiles(img);
    const deps = new DepChecker(fs, elfs, new LoaderConfig(fs));
    const config = await readImageConfig(fs);
    checks.push(config.check);
    checks.push(...(await checkDirs(fs)));

    const scan = await scanElfs(fs, elfs);
    arch = chooseArch(forced, config.architecture, scan, config.architectureFrom);
    checks.push(...(await checkElfs(deps, scan, arch)));

    const ctx: ProgramContext = { fs, elfs, deps, arch: { ...(arch.key !== undefined ? { key: arch.key } : {}), name: arch.name, source: SOURCE_TEXT[arch.source] } };
    const init = options.init !== undefined ? utf8ToByteString(options.init) : (config.init ?? DEFAULT_INIT);
    const initFrom = options.init !== undefined ? '--init' : config.init !== undefined ? AGENT_JSON_PATH : 'default';
    checks.push(await checkInit(ctx, init, initFrom));
    const agent = options.agent !== undefined ? utf8ToByteString(options.agent) : config.agentJson ? DEFAULT_AGENT : undefined;
    const agentFrom = options.agent !== undefined ? '--agent' : config.agentJson ? `default, as ${AGENT_JSON_PATH} exists` : `no agent configured (no --agent, no ${AGENT_JSON_PATH})`;
    checks.push(await checkAgent(ctx, agent, agentFrom));
    const firstBoot = await checkFirstBoot(fs);
    if (firstBoot) checks.push(firstBoot);
    stats = {
      filesScanned: scan.filesOpened,
      programs: scan.elfs.filter((e) => e.isProgram).length,
      libraries: deps.libraries.size,
      elfFilesParsed: elfs.parsed,
    };
  } catch (e) {
    if (isRootforgeError(e, 'EXT4_BAD_IMAGE')) {
      // Our reader met a corrupt structure: say so, and still give e2fsck's account of the damage.
      checks.push({ id: 'read', ok: false, severity: 'error', message: `the image cannot be read, checks after this point were not run: ${e.message}` });
    } else {
      abort.abort(); // e2fsck's answer is moot now; do not leave it running
      await fsck;
      throw e;
    }
  } finally {
    await img.close();
  }
  checks.push(await fsck);
  checks.sort((a, b) => ORDER.indexOf(a.id) - ORDER.indexOf(b.id));
  const shown = checks.map((c) => (c.id === 'fsck' ? c : display(c))); // e2fsck's output is text already
  return {
    image: path,
    ok: shown.every((c) => c.ok || c.severity === 'warning'),
    architecture: { ...(arch.arch !== undefined ? { arch: arch.arch } : {}), name: arch.name, source: arch.source },
    checks: shown,
    stats: { ...stats, durationMs: Math.round(performance.now() - start) },
  };
}

// ---------------------------------------------------------------- architecture

interface ChosenArch {
  key?: string;
  arch?: string;
  name: string;
  source: ArchSource;
}

const SOURCE_TEXT: Record<ArchSource, string> = {
  option: 'from --arch',
  'image.json': `from ${IMAGE_JSON}`,
  'agent.json': 'from /etc/rootforge/agent.json (rootforge build records it)',
  binaries: `from the programs in ${ARCH_DIRS.join(' and ')}`,
  host: "the host's, as nothing in the image says",
};

function fromInfo(a: ArchInfo, source: ArchSource): ChosenArch {
  return { key: elfKey({ elfClass: a.elfClass, data: a.data, machine: a.machine }), arch: a.arch, name: describeMachine(a.machine, a.elfClass, a.data), source };
}

/** --arch, else image.json's, else the most common among the programs in /bin and /usr/bin, else the host's. */
function chooseArch(forced: ArchInfo | undefined, fromConfig: string | undefined, scan: ScanResult, configFile: 'image.json' | 'agent.json' = 'image.json'): ChosenArch {
  if (forced) return fromInfo(forced, 'option');
  const configured = fromConfig !== undefined ? archByName(fromConfig) : undefined;
  if (configured) return fromInfo(configured, configFile);
  const votes = new Map<string, { n: number; sample: ScanResult['elfs'][number] }>();
  for (const e of scan.elfs) {
    if (!e.isProgram || !e.inArchDir) continue;
    const k = elfKey(e.elf);
    const v = votes.get(k);
    if (v) v.n++;
    else votes.set(k, { n: 1, sample: e });
  }
  const best = [...votes.entries()].sort((a, b) => b[1].n - a[1].n || (a[0] < b[0] ? -1 : 1))[0];
  if (best) {
    const { elf } = best[1].sample;
    const info = archOf(elf.machine, elf.elfClass, elf.data);
    if (info) return fromInfo(info, 'binaries');
    return { key: best[0], name: describeMachine(elf.machine, elf.elfClass, elf.data), source: 'binaries' };
  }
  const host = hostArch();
  if (host) return fromInfo(host, 'host');
  return { name: `unknown (${process.arch})`, source: 'host' };
}

// ---------------------------------------------------------------- elf-deps, elf-arch

async function checkElfs(deps: DepChecker, scan: ScanResult, arch: ChosenArch): Promise<VerifyCheck[]> {
  const native = scan.elfs.filter((e) => arch.key === undefined || elfKey(e.elf) === arch.key);
  const foreign = scan.elfs.filter((e) => e.isProgram && arch.key !== undefined && elfKey(e.elf) !== arch.key);
  const found = await mapLimit(native, 8, (e) => deps.closure({ path: e.path, st: e.st, elf: e.elf, isProgram: e.isProgram }));
  // A broken library shows up in the closure of every program using it: report it once, counted.
  const unique = new Map<string, DepProblem>();
  for (const p of found.flat()) {
    const key = `${p.file}\0${p.kind}\0${p.name}\0${p.reason}`;
    const seen = unique.get(key);
    if (seen) seen.programs = (seen.programs ?? 1) + 1;
    else unique.set(key, { ...p });
  }
  const problems: DepProblem[] = [...scan.bad.map((b) => ({ file: b.path, kind: 'elf' as const, name: '', reason: b.error })), ...unique.values()];
  problems.sort((a, b) => cmp(a.file, b.file) || cmp(a.name, b.name));
  const programs = native.filter((e) => e.isProgram).length;
  const others = native.length - programs;
  const what = `${plural(programs, 'program')}${others > 0 ? ` and ${plural(others, 'other ELF file')}` : ''}, ${plural(deps.libraries.size, 'library', 'libraries')} reached`;
  const files = new Set(problems.map((p) => p.file)).size;
  const notes = await deps.loaderNotes();
  const noted = notes.length > 0 ? `; ld.so.conf: ${notes.join('; ')}` : '';
  const elfDeps: VerifyCheck =
    problems.length === 0
      ? { id: 'elf-deps', ok: true, severity: 'error', message: `${what}: every interpreter and needed library found${noted}`, ...(notes.length > 0 ? { details: { ldSoConf: notes } } : {}) }
      : {
          id: 'elf-deps',
          ok: false,
          severity: 'error',
          message:
            problems.length === 1
              ? `${describeProblem(problems[0]!)} (${what})${noted}`
              : `${plural(problems.length, 'problem')} in ${plural(files, 'file')} (${what})${noted}`,
          details: { problems, ...(notes.length > 0 ? { ldSoConf: notes } : {}) },
        };
  const list = foreign.map((e) => ({ path: e.path, machine: describeMachine(e.elf.machine, e.elf.elfClass, e.elf.data) })).sort((a, b) => cmp(a.path, b.path));
  const elfArch: VerifyCheck =
    arch.key === undefined
      ? { id: 'elf-arch', ok: true, severity: 'warning', skipped: true, message: `skipped: the image's architecture is unknown (${arch.name})` }
      : list.length === 0
        ? { id: 'elf-arch', ok: true, severity: 'warning', message: `${programs === 1 ? 'the program is' : `all ${programs} programs are`} ${arch.name}` }
        : {
            id: 'elf-arch',
            ok: false,
            severity: 'warning',
            message:
              list.length === 1
                ? `${list[0]!.path} is ${list[0]!.machine}, not ${arch.name} (its dependencies are not checked)`
                : `${list.length} programs are not ${arch.name} (their dependencies are not checked)`,
            details: { programs: list },
          };
  return [elfDeps, elfArch];
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Paths inside images are byte strings: make every string of a check readable (UTF-8, one line). */
function display(c: VerifyCheck): VerifyCheck {
  const conv = (v: unknown): unknown => {
    if (typeof v === 'string') return printable(v);
    if (Array.isArray(v)) return v.map(conv);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, conv(x)]));
    return v;
  };
  return conv(c) as VerifyCheck;
}
