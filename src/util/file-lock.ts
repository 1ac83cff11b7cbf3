/**
 * A cross-process lock on one file being made (a blob, a kernel download), shared by every
 * process that uses the same directory:
 *
 *   <target>.lock                  "<pid> <hostname>\n" of the holder; taken with link(2), which
 *                                  like O_EXCL fails if it exists, but never shows it half-written
 *   <target>.lock.<pid>.<n>        a lock being written, hard-linked to <target>.lock to take it
 *   <target>.lock.stale.<pid>.<n>  a stale lock moved aside while being taken over
 *
 * The holder touches its lock every few seconds (`heartbeat`). A lock is stale when its pid is
 * gone on this host (kill(pid, 0) → ESRCH) or when it has not been touched for a minute (a pid
 * reused by an unrelated process, or a holder on another host sharing the directory). Taking a
 * stale lock over renames it aside and checks that what was moved is the lock judged stale, so
 * two waiters cannot both take over the same stale lock.
 *
 * Used by the OCI blob store (src/oci/blobstore.ts) and kernel downloads (src/kernel/download.ts).
 * Failures are CACHE_IO; waiting longer than `waitMs` is CACHE_LOCKED.
 */
import { link, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail } from '../errors.js';
import { pidAlive } from './atomic.js';

export interface FileLockOptions {
  /** How long acquire() waits for another process's lock before CACHE_LOCKED, in ms. Default 10 min. */
  waitMs?: number;
  /** A lock not touched for this long is stale, in ms. Default 60 s. */
  staleMs?: number;
  /** How often a holder touches its lock, in ms. Default 5 s. */
  heartbeatMs?: number;
  /** The noun in messages: "lock blob sha256:…", "read blob lock". Default 'file'. */
  noun?: string;
}

export type LockState = { kind: 'gone' } | { kind: 'live' | 'stale'; content: string };

export const HOST = hostname();
let counter = 0;

/** A unique suffix for this process's temporary names: "<pid>.<n>". */
export function privateSuffix(): string {
  return `${process.pid}.${counter++}`;
}

export class FileLock {
  /** The lock file: `<target>.lock`. */
  readonly path: string;
  private readonly waitMs: number;
  private readonly staleMs: number;
  private readonly heartbeatMs: number;
  private readonly noun: string;

  /** `target` is the file being made; `name` names it in messages (a digest, a URL). */
  constructor(
    target: string,
    private readonly name: string,
    options: FileLockOptions = {},
  ) {
    this.path = `${target}.lock`;
    this.waitMs = options.waitMs ?? 10 * 60_000;
    this.staleMs = options.staleMs ?? 60_000;
    this.heartbeatMs = options.heartbeatMs ?? 5_000;
    this.noun = options.noun ?? 'file';
  }

  /**
   * Takes the lock, or returns 'done' as soon as `done()` says the target exists (someone else
   * made it). The lock file is written whole under a private name and hard-linked into place.
   */
  async acquire(done: () => Promise<boolean>): Promise<'locked' | 'done'> {
    const mine = `${this.path}.${privateSuffix()}`;
    const what = `lock ${this.noun} ${this.name}`;
    try {
      await writeFile(mine, `${process.pid} ${HOST}\n`, { flag: 'wx', mode: 0o644 });
    } catch (e) {
      fail('CACHE_IO', what, errnoOf(e), mine, e);
    }
    const deadline = Date.now() + this.waitMs;
    let delay = 25;
    try {
      for (;;) {
        try {
          await link(mine, this.path);
          return 'locked';
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') fail('CACHE_IO', what, errnoOf(e), this.path, e);
        }
        if (await done()) return 'done';
        const state = await this.state();
        if (state.kind === 'stale') {
          await this.breakStale(state.content);
          continue;
        }
        if (state.kind === 'gone') continue;
        if (Date.now() >= deadline) {
          fail('CACHE_LOCKED', `fetch ${this.noun} ${this.name}`, `still being fetched by ${state.content.trim()} after ${Math.round(this.waitMs / 1000)} s`, this.path);
        }
        await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
        delay = Math.min(delay * 2, 1000);
      }
    } finally {
      await unlinkIfPresent(mine, what);
    }
  }

  /** Touches the lock every heartbeatMs while held; call the returned function to stop. */
  heartbeat(): () => void {
    const timer = setInterval(() => {
      const now = new Date();
      utimes(this.path, now, now).catch((e: unknown) => {
        process.stderr.write(`rootforge: cannot refresh lock ${this.path}: ${errnoOf(e)}\n`);
      });
    }, this.heartbeatMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Gives the lock up. */
  async release(): Promise<void> {
    await unlinkIfPresent(this.path, `unlock ${this.noun} ${this.name}`);
  }

  async state(): Promise<LockState> {
    let content: string;
    let mtimeMs: number;
    try {
      content = await readFile(this.path, 'utf8');
      mtimeMs = (await stat(this.path)).mtimeMs;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'gone' };
      return fail('CACHE_IO', `read ${this.noun} lock`, errnoOf(e), this.path, e);
    }
    if (Date.now() - mtimeMs > this.staleMs) return { kind: 'stale', content };
    const m = /^(\d+) (\S+)\n$/.exec(content);
    // Unparsable content: not ours to judge by pid, the age rule above still applies.
    if (m === null || m[2] !== HOST) return { kind: 'live', content };
    return { kind: pidAlive(Number(m[1])) ? 'live' : 'stale', content };
  }

  /** "pid host" of a live holder, or undefined when unlocked or stale. */
  async liveHolder(): Promise<string | undefined> {
    const state = await this.state();
    return state.kind === 'live' ? state.content.trim() : undefined;
  }

  /**
   * Moves a stale lock aside under a private name, then checks it is the lock that was judged
   * stale; if another waiter replaced it meanwhile with its own live lock, puts that back.
   */
  private async breakStale(staleContent: string): Promise<void> {
    const aside = `${this.path}.stale.${privateSuffix()}`;
    try {
      await rename(this.path, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      fail('CACHE_IO', `take over stale ${this.noun} lock`, errnoOf(e), this.path, e);
    }
    const moved = await readFile(aside, 'utf8');
    if (moved !== staleContent) {
      try {
        await link(aside, this.path);
      } catch (e) {
        // EEXIST: a third process has locked meanwhile; the one we moved keeps working unlocked,
        // which the hash check before rename still makes safe (at worst a spurious mismatch).
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') fail('CACHE_IO', `restore ${this.noun} lock`, errnoOf(e), this.path, e);
      }
    }
    await unlinkIfPresent(aside, `take over stale ${this.noun} lock`);
  }
}

export { pidAlive };

/** unlink(2) that treats a file already gone as done; other failures are CACHE_IO. */
export async function unlinkIfPresent(path: string, what: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail('CACHE_IO', what, errnoOf(e), path, e);
  }
}

/** The errno code of a failed fs call (its message when it has none). */
export function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message ?? String(e);
}
