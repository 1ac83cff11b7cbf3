/**
 * The `fsck` check: the real `e2fsck -fn` (force a full check, answer no to everything, so the
 * image is never changed). Exit 0 means clean. Runs while the other checks read the image.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { VerifyCheck } from './types.js';

const OUTPUT_TAIL = 8192;

/** e2fsck on PATH, else where Debian puts it (/sbin is often not on a user's PATH). */
export function findE2fsck(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, 'e2fsck');
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** `signal` stops e2fsck (when the rest of verify failed and its answer is no longer wanted). */
export async function runFsck(image: string, e2fsck?: string, signal?: AbortSignal): Promise<VerifyCheck> {
  const tool = e2fsck ?? findE2fsck();
  if (!tool) return { id: 'fsck', ok: false, severity: 'warning', message: 'e2fsck not found (install e2fsprogs); filesystem consistency not checked' };
  const r = await new Promise<{ code: number | null; signal: string | null; output: string; error?: NodeJS.ErrnoException }>((resolve) => {
    const child = spawn(tool, ['-fn', image], { stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
    let output = '';
    const add = (b: Buffer) => {
      output = (output + b.toString('utf8')).slice(-OUTPUT_TAIL);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    child.on('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, output, error }));
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
  if (r.error?.code === 'ENOENT') return { id: 'fsck', ok: false, severity: 'warning', message: `e2fsck not found (${tool}); filesystem consistency not checked` };
  if (r.error) return { id: 'fsck', ok: false, severity: 'error', message: `cannot run ${tool}: ${r.error.message}` };
  if (r.code === 0) return { id: 'fsck', ok: true, severity: 'error', message: 'e2fsck -fn: clean' };
  const lines = r.output.trim().split('\n');
  const first = lines.find((l) => !/^(e2fsck \d|Pass \d|Warning: skipping journal)/.test(l)) ?? lines[0] ?? '';
  const how = r.code === null ? `was killed (${r.signal})` : `exited ${r.code}`;
  return { id: 'fsck', ok: false, severity: 'error', message: `e2fsck -fn ${how}: ${first.trim()}`, details: { exitCode: r.code, output: r.output } };
}
