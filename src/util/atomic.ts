/**
 * Output files appear whole or not at all: the image is written to a temporary file beside the
 * destination and renamed over it only on success. A failed or interrupted run removes its
 * temporary file and leaves whatever was at the destination untouched. A run killed with
 * SIGKILL cannot clean up: the next run to the same output removes temporary files of processes
 * that are gone (`.OUT.rootforge-PID-N.tmp`).
 *
 * Outputs are durable when they appear: the file's data is synced before the rename and the
 * directory after it, so a crash or power loss leaves either the old file or the whole new one,
 * never an empty or partly written image under the final name. Big outputs are synced while
 * they are written (see `flushing`), which costs next to nothing.
 *
 * With limits, the output never fills its filesystem: writes stop with OUTPUT_DISK_FULL before
 * the filesystem would keep less than max(1 GiB, 5 %) free, and with OUTPUT_TOO_LARGE before
 * the output would grow past a maximum size. A small compressed input can expand without bound
 * (a gzip layer of zeros), so this is checked on the bytes written, as they are written.
 */
import { open, readdir, rename, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fail, RootforgeError } from '../errors.js';
import { formatBytes } from './size.js';

const active = new Set<string>();
let counter = 0;

export interface OutputLimits {
  /** Largest the output may be (its length, holes included), bytes. Default: no maximum. */
  maxBytes?: number;
  /** Free space the output's filesystem must keep, bytes. Default max(1 GiB, 5 % of it). */
  minFreeBytes?: number;
  /** Bytes of input the output is made from, for the error message ("expanded from"). */
  inputBytes?: number;
}

/** The free space an output leaves its filesystem unless told otherwise: max(1 GiB, 5 %). */
export function defaultMinFree(filesystemBytes: number): number {
  return Math.max(1 << 30, Math.ceil(filesystemBytes * 0.05));
}

export async function writeAtomically<T>(dest: string, fn: (fh: FileHandle, tmpPath: string) => Promise<T>, limits?: OutputLimits): Promise<T> {
  await removeDeadTempFiles(dest);
  const tmp = join(dirname(dest), `.${basename(dest)}.rootforge-${process.pid}-${counter++}.tmp`);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx+', 0o644);
  } catch (e) {
    return fail('OUTPUT_FAILED', `create ${dest}`, (e as NodeJS.ErrnoException).code ?? String(e), dirname(dest), e);
  }
  active.add(tmp);
  let result: T;
  try {
    const flush = flushing(limits ? await guard(fh, dest, limits) : fh, dest);
    result = await fn(flush.handle, tmp);
    await flush.finish();
    await fh.close();
    await rename(tmp, dest);
    active.delete(tmp);
  } catch (e) {
    const problems: unknown[] = [];
    await fh.close().catch((c: unknown) => problems.push(c));
    await unlink(tmp).catch((u: unknown) => problems.push(u));
    active.delete(tmp);
    if (problems.length > 0 && !(e instanceof RootforgeError)) {
      throw new AggregateError([e, ...problems], `Cannot write ${dest}: ${(e as Error).message}`);
    }
    throw e;
  }
  await syncDir(dirname(dest));
  return result;
}

/** Every this many bytes written, the file's dirty pages are sent to the disk in the background. */
const FLUSH_BYTES = 64 << 20;

/**
 * `fh` whose dirty pages go to the disk while it is still being written: after every FLUSH_BYTES
 * written, an fdatasync runs on libuv's pool (one at a time) while writing goes on. Otherwise
 * the kernel keeps a gigabyte image in the page cache until the final sync, which then takes
 * almost as long as writing it did (devbox: 0.8 s after a 1.7 s conversion; overlapped, the end
 * waits for ≈ 0). `finish()` makes the whole file durable, so the rename that follows never
 * names an image that a crash could leave empty or half written.
 */
function flushing(fh: FileHandle, dest: string): { handle: FileHandle; finish: () => Promise<void> } {
  let since = 0;
  let running: Promise<void> | null = null;
  let failure: unknown = null;
  const note = (n: number) => {
    since += n;
    if (since < FLUSH_BYTES || running) return;
    since = 0;
    running = fh.datasync().then(
      () => void (running = null),
      (e: unknown) => void ((failure ??= e), (running = null)),
    );
  };
  const write = async (...args: unknown[]): Promise<unknown> => {
    const r = await (fh.write as (...x: unknown[]) => Promise<{ bytesWritten: number }>)(...args);
    note(r.bytesWritten);
    return r;
  };
  const writev = async (buffers: NodeJS.ArrayBufferView[], position?: number | null): Promise<unknown> => {
    const r = await fh.writev(buffers, position ?? undefined);
    note(r.bytesWritten);
    return r;
  };
  const finish = async () => {
    await running;
    try {
      if (failure) throw failure;
      await fh.datasync();
    } catch (e) {
      // a filesystem that cannot sync at all (some FUSE ones) keeps the data as well as it can
      if (cannotSync(e)) return;
      fail('OUTPUT_FAILED', `write ${dest}`, `its data could not be made durable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, dest, e);
    }
  };
  return { handle: withOverrides(fh, { write, writev }), finish };
}

/** The errors of a filesystem that does not implement sync, as opposed to one that failed it. */
function cannotSync(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS';
}

/** `fh` with some of its methods replaced; the others bound to it. */
function withOverrides(fh: FileHandle, overrides: Record<string | symbol, unknown>): FileHandle {
  return new Proxy(fh, {
    get(target, prop) {
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop];
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * Makes a rename in `dir` durable, as far as it can: the output is already in place, so a
 * directory that cannot be opened or synced (no read permission, a filesystem without it, an
 * I/O error) leaves it there, its data durable, rather than failing a run whose output exists.
 */
async function syncDir(dir: string): Promise<void> {
  let d: FileHandle | undefined;
  try {
    d = await open(dir, 'r');
    await d.sync();
  } catch {
    // best effort, see above
  } finally {
    await d?.close().catch(() => undefined);
  }
}

/** Removes temporary outputs still being written (for signal handlers). Synchronous on purpose. */
export function removeActiveTempFiles(unlinkSync: (p: string) => void): void {
  for (const tmp of active) {
    try {
      unlinkSync(tmp);
    } catch (e) {
      process.stderr.write(`rootforge: could not remove ${tmp}: ${(e as Error).message}\n`);
    }
  }
  active.clear();
}

/** True while a process with this pid exists on this host (EPERM: it does, someone else's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Deletes `.OUT.rootforge-PID-N.tmp` files beside `dest` whose process is gone. */
export async function removeDeadTempFiles(dest: string): Promise<string[]> {
  const dir = dirname(dest);
  const prefix = `.${basename(dest)}.rootforge-`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    // A missing directory fails when the output is created, with the message for it.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    return fail('OUTPUT_FAILED', `clean up beside ${dest}`, (e as NodeJS.ErrnoException).code ?? String(e), dir, e);
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-\d+\.tmp$/.exec(name.slice(prefix.length));
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    const path = join(dir, name);
    try {
      await unlink(path);
      removed.push(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail('OUTPUT_FAILED', `remove the leftover ${path}`, (e as NodeJS.ErrnoException).code ?? String(e), path, e);
    }
  }
  return removed;
}

/** Free-space re-checks happen at least this often (other processes use the disk too). */
const RECHECK_BYTES = 256 << 20;

/**
 * `fh` with its write, writev and truncate checked against the limits first. Consumption is
 * counted as every byte written (rewrites too: conservative); statfs is asked again when the
 * budget it gave runs out or every RECHECK_BYTES.
 */
async function guard(fh: FileHandle, dest: string, limits: OutputLimits): Promise<FileHandle> {
  const dir = dirname(dest);
  const fs = await statfsOf(dir, dest);
  const reserve = limits.minFreeBytes ?? defaultMinFree(fs.total);
  if (limits.maxBytes !== undefined && !(limits.maxBytes > 0)) fail('OPTION_INVALID', `write ${dest}`, 'the maximum output size must be positive', limits.maxBytes);
  if (!(reserve >= 0)) fail('OPTION_INVALID', `write ${dest}`, 'the free space to keep must be ≥ 0', reserve);
  let written = 0;
  let end = 0;
  let budget = fs.avail - reserve;
  let sinceCheck = 0;
  const expanded = () =>
    limits.inputBytes !== undefined ? `the input (${formatBytes(limits.inputBytes)}) expanded to ${formatBytes(written)} written so far` : `${formatBytes(written)} written so far`;

  const checkEnd = (newEnd: number) => {
    if (limits.maxBytes !== undefined && newEnd > limits.maxBytes) {
      fail('OUTPUT_TOO_LARGE', `write ${dest}`, `the image would grow to ${formatBytes(newEnd)}, past the maximum of ${formatBytes(limits.maxBytes)} (--max-size); ${expanded()}`, newEnd);
    }
    end = Math.max(end, newEnd);
  };
  const checkSpace = async (n: number) => {
    if (n > budget || sinceCheck >= RECHECK_BYTES) {
      const now = await statfsOf(dir, dest);
      budget = now.avail - reserve;
      sinceCheck = 0;
      if (n > budget) {
        fail(
          'OUTPUT_DISK_FULL',
          `write ${dest}`,
          `writing on would leave its filesystem less than ${formatBytes(reserve)} free (${formatBytes(now.avail)} available); ${expanded()}`,
          dir,
        );
      }
    }
    budget -= n;
    sinceCheck += n;
    written += n;
  };

  const write = async (...args: unknown[]): Promise<unknown> => {
    const [data, a, b, c] = args;
    let n: number;
    let position: unknown;
    if (typeof data === 'string') {
      n = Buffer.byteLength(data, typeof b === 'string' ? (b as BufferEncoding) : 'utf8');
      position = a;
    } else if (a !== null && typeof a === 'object') {
      // write(buffer, { offset, length, position })
      const o = a as { offset?: number; length?: number; position?: number | null };
      n = o.length ?? (data as ArrayBufferView).byteLength - (o.offset ?? 0);
      position = o.position;
    } else {
      n = typeof b === 'number' ? b : (data as ArrayBufferView).byteLength - ((a as number | undefined) ?? 0);
      position = c;
    }
    if (typeof position === 'number') checkEnd(position + n);
    await checkSpace(n);
    return (fh.write as (...x: unknown[]) => Promise<unknown>)(...args);
  };
  const writev = async (buffers: NodeJS.ArrayBufferView[], position?: number | null): Promise<unknown> => {
    const n = buffers.reduce((s, x) => s + x.byteLength, 0);
    if (typeof position === 'number') checkEnd(position + n);
    await checkSpace(n);
    return fh.writev(buffers, position ?? undefined);
  };
  const truncate = async (len?: number): Promise<void> => {
    // A longer file is a hole: it takes no space, but it is the image's size.
    checkEnd(len ?? 0);
    return fh.truncate(len);
  };
  const writeFile = async (data: string | Uint8Array): Promise<void> => {
    const n = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    checkEnd(n);
    await checkSpace(n);
    return fh.writeFile(data);
  };
  return withOverrides(fh, { write, writev, truncate, writeFile });
}

async function statfsOf(dir: string, dest: string): Promise<{ total: number; avail: number }> {
  try {
    const s = await statfs(dir);
    return { total: s.blocks * s.bsize, avail: s.bavail * s.bsize };
  } catch (e) {
    return fail('OUTPUT_FAILED', `check free space for ${dest}`, (e as NodeJS.ErrnoException).code ?? String(e), dir, e);
  }
}
