/** Runs the real CLI (bin/rootforge) as a child process. */
import { spawnSync } from 'node:child_process';

export const BIN = new URL('../../../bin/rootforge', import.meta.url).pathname;

export function rootforge(args: string[], env: Record<string, string> = {}): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}
