/**
 * Worker threads for our own scripts. A worker inherits the process's Node options by default,
 * and Node refuses many of them for a worker: V8 options (`--max-old-space-size`,
 * `--max-semi-space-size`, `--stack-size`, `--expose-gc`), process options (`--title`), and
 * `--input-type`/`-e` for a worker started from a file. Any of those on the host process (a user
 * giving Node more heap for a big image, an embedding host, a test) made every worker fail to
 * start. Our workers are our own compiled scripts and need none of the host's options: V8's
 * flags are process-wide anyway, and the host's loaders or preloads are not for them. So they
 * start with none.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { fail } from '../errors.js';

/** A Worker running `script`, without the host process's Node options. */
export function startWorker(script: URL | string, options: WorkerOptions = {}): Worker {
  try {
    return new Worker(script, { execArgv: [], ...options });
  } catch (e) {
    return fail('WORKER_FAILED', 'start a worker thread', (e as NodeJS.ErrnoException).code ?? String(e), String(script), e);
  }
}
