/**
 * The `init` and `agent` checks: can the kernel (init) or init (the agent) execute this path of
 * the image? Resolved through the image's symlinks, it must be a regular file with an x bit and
 * either an ELF program of the image's architecture whose interpreter and libraries resolve, or
 * (init only) a #! script whose interpreter passes the same test — as binfmt_script does, up to
 * its nesting limit.
 */
import { describeMachine } from './arch.js';
import type { DepChecker, DepProblem } from './deps.js';
import { describeProblem, modeString } from './deps.js';
import { elfKey } from './elf.js';
import { ET_DYN, ET_EXEC } from './elf-format.js';
import type { ElfFiles } from './elf-files.js';
import type { ImageFs } from './image-fs.js';
import type { VerifyCheck } from './types.js';

export interface ProgramContext {
  fs: ImageFs;
  elfs: ElfFiles;
  deps: DepChecker;
  /** The image's ELF kind (elfKey) and its description; no key when it is unknown. */
  arch: { key?: string; name: string; source: string };
}

type Exam = { ok: true; summary: string } | { ok: false; reason: string; problems?: DepProblem[] };

/** binfmt_script reads this much of a file for the #! line (BINPRM_BUF_SIZE). */
const SHEBANG_BYTES = 256;
/** Interpreter nesting binfmt_script allows (script → script → … → ELF). */
const MAX_SCRIPT_DEPTH = 4;

export async function checkInit(ctx: ProgramContext, path: string, from: string): Promise<VerifyCheck> {
  const r = await examine(ctx, path, 'init', 0);
  if (r.ok) return { id: 'init', ok: true, severity: 'error', message: r.summary, details: { path, from } };
  return { id: 'init', ok: false, severity: 'error', message: r.reason, details: { path, from, ...(r.problems ? { problems: r.problems } : {}) } };
}

export async function checkAgent(ctx: ProgramContext, path: string | undefined, from: string): Promise<VerifyCheck> {
  if (path === undefined) return { id: 'agent', ok: true, severity: 'error', skipped: true, message: `skipped: ${from}` };
  const r = await examine(ctx, path, 'agent', 0);
  if (r.ok) return { id: 'agent', ok: true, severity: 'error', message: r.summary, details: { path, from } };
  return { id: 'agent', ok: false, severity: 'error', message: r.reason, details: { path, from, ...(r.problems ? { problems: r.problems } : {}) } };
}

async function examine(ctx: ProgramContext, path: string, role: 'init' | 'agent', depth: number): Promise<Exam> {
  const look = await ctx.fs.resolve(path);
  if (!look.ok) return { ok: false, reason: `${path}: ${look.reason}${look.via.length > 0 && look.code !== 'ELOOP' ? ` (via ${look.via.join(', ')})` : ''}` };
  const shown = look.path === path ? path : `${path} -> ${look.path}`;
  const { st } = look;
  if (st.kind !== 'file') return { ok: false, reason: `${shown} is not a regular file (${st.kind})` };
  if ((st.perm & 0o111) === 0) return { ok: false, reason: `${shown} is not executable (mode ${modeString(st.perm)})` };
  const r = await ctx.elfs.read(st);
  if (r.kind === 'bad') return { ok: false, reason: `${shown}: ${r.error}` };
  if (r.kind === 'elf') {
    const { elf } = r;
    const machine = describeMachine(elf.machine, elf.elfClass, elf.data);
    if (elf.type !== ET_EXEC && elf.type !== ET_DYN) return { ok: false, reason: `${shown} is an ELF file but not a program (e_type ${elf.type})` };
    if (ctx.arch.key !== undefined && elfKey(elf) !== ctx.arch.key) {
      return { ok: false, reason: `${shown} is ${machine}, but the image is ${ctx.arch.name} (${ctx.arch.source})` };
    }
    const problems = await ctx.deps.closure({ path: look.path, st, elf, isProgram: true });
    if (problems.length > 0) {
      const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
      return { ok: false, reason: `${shown} cannot be loaded: ${describeProblem(problems[0]!)}${more}`, problems };
    }
    const linking = elf.interp !== undefined ? `dynamic (interpreter ${elf.interp}, ${elf.needed.length} needed)` : 'static';
    return { ok: true, summary: `${shown}: ELF ${machine}, ${linking}` };
  }
  if (role === 'agent') return { ok: false, reason: `${shown} is not an ELF file` };
  const head = await ctx.fs.img.readRange(st, 0, SHEBANG_BYTES);
  if (head[0] !== 0x23 || head[1] !== 0x21) return { ok: false, reason: `${shown} is neither an ELF program nor a #! script` };
  const nl = head.indexOf(0x0a);
  const line = head.subarray(2, nl < 0 ? head.length : nl).toString('latin1');
  const interp = /^[ \t]*([^ \t\0]*)/.exec(line)![1]!;
  if (interp === '') return { ok: false, reason: `${shown} has an empty #! line` };
  if (depth >= MAX_SCRIPT_DEPTH) return { ok: false, reason: `${shown}: too many levels of #! interpreters` };
  const sub = await examine(ctx, interp, role, depth + 1);
  if (!sub.ok) return { ok: false, reason: `${shown} is a #! script for ${interp}: ${sub.reason}`, ...(sub.problems ? { problems: sub.problems } : {}) };
  return { ok: true, summary: `${shown}: #! script for ${sub.summary}` };
}
