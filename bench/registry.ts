/**
 * A local registry for the registry benchmark: Debian's `docker-registry` (distribution 2.8)
 * on 127.0.0.1 with a free port, plain HTTP, no auth, filesystem storage in a temp dir. The
 * caller's cleanup stack stops it (SIGTERM, then SIGKILL) and removes its storage, on success,
 * failure and Ctrl-C alike; a process 'exit' hook kills what is still running as a last resort
 * (a second Ctrl-C exits at once, and the server lives in its own process group).
 *
 * Adapted from test/helpers/registry.ts (bench does not import test code).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cleanups } from './cleanup.js';
import { benchError, benchFail } from './errors.js';
import { TOOL_PATH, requireTool } from './exec.js';

export interface LocalRegistry {
  /** "127.0.0.1:PORT", as used in references. */
  host: string;
  /** The registry's output so far (last 64 KiB), for error messages. */
  log(): string;
}

/** How long the server may take to answer GET /v2/ after it was started. */
const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const LOG_KEEP = 64 * 1024;

const alive = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of alive) signalGroup(child, 'SIGKILL');
});

/** Signals the server's process group; false when it has already exited. */
function signalGroup(child: ChildProcess, sig: NodeJS.Signals): boolean {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  try {
    process.kill(-child.pid, sig);
    return true;
  } catch (e) {
    // ESRCH: it exited between the check and the signal, which is what stopping wants anyway.
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}

/** A TCP port free right now on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function config(storage: string, port: number): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: rootforge-bench',
    '',
  ].join('\n');
}

/** Starts a registry; its stop and the removal of its storage are pushed on `cleanups`. */
export async function startRegistry(cleanups: Cleanups): Promise<LocalRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'rootforge-bench-registry-'));
  cleanups.push(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const storage = join(dir, 'storage');
  await mkdir(storage);
  const configPath = join(dir, 'config.yml');
  // The port can be taken between freePort() and the registry's bind: try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    await writeFile(configPath, config(storage, port));
    let log = '';
    const child = spawn(requireTool('docker-registry'), ['serve', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, PATH: TOOL_PATH },
    });
    alive.add(child);
    const keep = (b: Buffer) => {
      log = (log + b.toString()).slice(-LOG_KEEP);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const stop = async () => {
      if (signalGroup(child, 'SIGTERM')) {
        const done = await Promise.race([exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
        if (!done && signalGroup(child, 'SIGKILL')) await exited;
      }
      alive.delete(child);
    };
    const stopNow = cleanups.push(`stop docker-registry on port ${port}`, stop);
    const up = await Promise.race([waitUntilAnswering(port, child, START_TIMEOUT_MS), spawnError]);
    if (up === true) return { host: `127.0.0.1:${port}`, log: () => log };
    await stopNow();
    if (up instanceof Error) throw benchError('BENCH_COMMAND_FAILED', 'start docker-registry', up.message, undefined, up);
    if (attempt >= 3 || !/address already in use/.test(log)) {
      benchFail('BENCH_COMMAND_FAILED', 'start docker-registry', `no answer on GET /v2/ within ${START_TIMEOUT_MS / 1000} s`, log.trim().split('\n').slice(-15).join('\n'));
    }
  }
}

/** Polls GET /v2/ until any HTTP answer, the child exits, or the time is up. */
async function waitUntilAnswering(port: number, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const status = await new Promise<number>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/v2/', timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      // Refused or reset: not up yet, which is what this loop waits out; status 0 says so.
      req.on('error', () => resolve(0));
    });
    if (status !== 0) return true;
    await sleep(50);
  }
  return false;
}
