/**
 * virtiofsd: the host daemon behind a virtio-fs share under QEMU, one per shared directory,
 * reached by QEMU through a vhost-user Unix socket. Two implementations exist and both are
 * supported, found in this order:
 *
 *   Rust (virtiofsd package, Debian 13+)   /usr/libexec/virtiofsd, /usr/lib/virtiofsd, PATH
 *       --socket-path S --shared-dir DIR --cache auto [--readonly when it knows it]
 *   C (QEMU's, qemu-system-common ≤ 7.2, Debian 12)   /usr/lib/qemu/virtiofsd
 *       --socket-path=S -o source=DIR -o cache=auto   (root only: it sandboxes with namespaces)
 *
 * Which one a binary is comes from its --help text (the Rust one has --shared-dir). Read-only
 * shares are always mounted read-only by the guest; the Rust daemon also refuses writes itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fail } from '../errors.js';

export interface Virtiofsd {
  path: string;
  kind: 'rust' | 'c';
  /** The daemon enforces read-only shares itself (Rust --readonly). */
  readonlyFlag: boolean;
}

const CANDIDATES = ['/usr/libexec/virtiofsd', '/usr/lib/virtiofsd', '/usr/lib/qemu/virtiofsd'];

/** Finds a virtiofsd (ROOTFORGE_VIRTIOFSD overrides), or null. */
export function findVirtiofsd(): Virtiofsd | null {
  const env = process.env['ROOTFORGE_VIRTIOFSD'];
  const paths = env ? [env] : [...CANDIDATES];
  if (!env) {
    const w = spawnSync('which', ['virtiofsd'], { encoding: 'utf8' });
    if (w.status === 0 && w.stdout.trim()) paths.splice(2, 0, w.stdout.trim());
  }
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const r = spawnSync(p, ['--help'], { encoding: 'utf8', timeout: 10_000 });
    const help = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    if (help.includes('--shared-dir')) return { path: p, kind: 'rust', readonlyFlag: help.includes('--readonly') };
    if (help.includes('-o source=')) return { path: p, kind: 'c', readonlyFlag: false };
  }
  return null;
}

export function virtiofsdArgv(d: Virtiofsd, socket: string, dir: string, readOnly: boolean): string[] {
  if (d.kind === 'rust') {
    const argv = ['--socket-path', socket, '--shared-dir', dir, '--cache', 'auto'];
    if (readOnly && d.readonlyFlag) argv.push('--readonly');
    if (process.getuid?.() !== 0) argv.push('--sandbox', 'none');
    return argv;
  }
  return [`--socket-path=${socket}`, '-o', `source=${dir}`, '-o', 'cache=auto'];
}

export interface RunningVirtiofsd {
  child: ChildProcess;
  socket: string;
  log(): string;
  stop(): Promise<void>;
}

/** Starts a virtiofsd for `dir` and waits (bounded) until its socket exists. */
export async function startVirtiofsd(d: Virtiofsd, socket: string, dir: string, readOnly: boolean, timeoutMs = 10_000): Promise<RunningVirtiofsd> {
  if (d.kind === 'c' && process.getuid?.() !== 0) fail('INSTANCE_SHARE_FAILED', `share ${dir}`, `QEMU's C virtiofsd runs as root only; install the Rust virtiofsd to share as a user`, d.path);
  const child = spawn(d.path, virtiofsdArgv(d, socket, dir, readOnly), { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (e) => {
      log += e.message;
      resolve();
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
      const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000).unref())]);
      if (!done) process.kill(-child.pid, 'SIGKILL');
      await exited;
    }
  };
  const deadline = performance.now() + timeoutMs;
  while (!existsSync(socket)) {
    if (child.exitCode !== null || child.signalCode !== null || performance.now() > deadline) {
      await stop();
      return fail('INSTANCE_SHARE_FAILED', `share ${dir}`, `virtiofsd did not open its socket: ${log.trim().split('\n').slice(-3).join(' / ') || 'no output'}`, d.path);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, socket, log: () => log, stop };
}
