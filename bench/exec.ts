/**
 * Running external tools: always an argv array (never `sh -c` with paths in a string), timed,
 * with output collected for error messages. Each child gets its own process group so that an
 * interrupted benchmark can stop a whole pipeline (fakeroot + faked + tar, say) before it
 * unmounts and deletes what the pipeline was writing into.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { benchError, benchFail } from './errors.js';

export interface ExecResult {
  /** Exit status (never null: a child killed by a signal is an error). */
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in seconds. */
  seconds: number;
}

export interface ExecOptions {
  /** Exit codes that count as success. Default [0]. */
  okCodes?: number[];
  /** Environment for the child. Default: ours, with the sbin directories added to PATH. */
  env?: NodeJS.ProcessEnv;
  /** Send the child's stdout to /dev/null instead of collecting it (for GB-sized output). */
  discardStdout?: boolean;
}

/** Children still running, by process-group leader. */
const running = new Set<ChildProcess>();

/** Where tools are looked for: PATH, then the sbin directories a non-root PATH often lacks. */
export const TOOL_PATH = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  .filter((d, i, all) => d !== '' && all.indexOf(d) === i)
  .join(delimiter);

/** Absolute path of an executable on TOOL_PATH, or undefined. */
export function findTool(name: string): string | undefined {
  for (const dir of TOOL_PATH.split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not in this directory: try the next one (absence is the expected case here)
    }
  }
  return undefined;
}

/** Like findTool, but a missing tool is an error. */
export function requireTool(name: string): string {
  return findTool(name) ?? benchFail('BENCH_TOOL_MISSING', `run ${name}`, 'not found on PATH or in the sbin directories');
}

/** Runs `cmd args...` to completion. Throws BENCH_COMMAND_FAILED on a bad exit code or a signal. */
export function exec(cmd: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  const okCodes = options.okCodes ?? [0];
  const env = options.env ?? { ...process.env, PATH: TOOL_PATH };
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', options.discardStdout ? 'ignore' : 'pipe', 'pipe'], detached: true, env });
    running.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      running.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      running.delete(child);
      const res: ExecResult = {
        code: code ?? -1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        seconds: (performance.now() - started) / 1000,
      };
      if (signal !== null || !okCodes.includes(res.code)) {
        const why = signal !== null ? `killed by ${signal}` : `exit ${res.code}`;
        const tail = (res.stderr + res.stdout).trim().split('\n').slice(-15).join('\n');
        reject(benchError('BENCH_COMMAND_FAILED', `run ${[cmd, ...args].join(' ')}`, `${why}${tail ? `:\n${tail}` : ''}`));
        return;
      }
      resolve(res);
    });
  });
}

/**
 * Stops every running child's process group: SIGINT first, as a terminal's Ctrl-C would (fakeroot
 * traps INT, not TERM, to stop its faked daemon, which lives outside the group), then SIGKILL
 * for what is still there after `graceMs`. Resolves when all have exited.
 */
export async function stopRunningChildren(graceMs = 5000): Promise<void> {
  const signalGroup = (child: ChildProcess, sig: NodeJS.Signals): void => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, sig);
    } catch (e) {
      // ESRCH: the group is already gone; anything else is worth saying
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') process.stderr.write(`bench: could not signal ${child.pid}: ${(e as Error).message}\n`);
    }
  };
  const waits = [...running].map(
    (child) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
        child.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        signalGroup(child, 'SIGINT');
      }),
  );
  await Promise.all(waits);
}
