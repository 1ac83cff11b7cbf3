/**
 * Worker threads for our own scripts. A worker inherits the process's Node options by default,
 * and some are refused for a worker started from a file: `--input-type` (a process started with
 * `node --input-type=module -e …`, as an embedding host or a test may be) makes every such worker
 * fail with ERR_INPUT_TYPE_NOT_ALLOWED. So those options are left out; the rest are inherited.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** Node options a worker started from a file refuses. */
const NOT_FOR_WORKERS = ['--input-type', '--eval', '-e', '--print', '-p'];

export function workerExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    const name = a.split('=')[0]!;
    if (!NOT_FOR_WORKERS.includes(name)) {
      out.push(a);
      continue;
    }
    // the value came as the next argument (`--input-type module`, `-e CODE`)
    if (!a.includes('=') && name !== '-p' && name !== '--print') i++;
  }
  return out;
}

/** A Worker running `script`, with the process's Node options a worker accepts. */
export function startWorker(script: URL | string, options: WorkerOptions = {}): Worker {
  return new Worker(script, { execArgv: workerExecArgv(), ...options });
}
