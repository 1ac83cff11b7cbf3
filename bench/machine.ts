/**
 * What the numbers were measured on. Load average is recorded because these machines are
 * shared: a busy neighbour explains a noisy run better than guessing does.
 */
import { cpus, loadavg, release, totalmem } from 'node:os';
import { exec, findTool } from './exec.js';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  node: string;
  root: boolean;
  /** 1, 5 and 15 minute load averages when the benchmark started. */
  loadAverage: number[];
  /** First line of each tool's version output. */
  tools: Record<string, string>;
}

const VERSION_ARGS: Record<string, string[]> = {
  mke2fs: ['-V'],
  fakeroot: ['--version'],
  tar: ['--version'],
  mmdebstrap: ['--version'],
  gzip: ['--version'],
  skopeo: ['--version'],
  umoci: ['--version'],
  'docker-registry': ['--version'],
};

export async function machineInfo(): Promise<MachineInfo> {
  const tools: Record<string, string> = {};
  for (const [tool, args] of Object.entries(VERSION_ARGS)) {
    const path = findTool(tool);
    if (path === undefined) {
      tools[tool] = 'not found';
      continue;
    }
    const r = await exec(path, args, { okCodes: [0, 1] });
    tools[tool] = (r.stdout + r.stderr).trim().split('\n')[0] ?? '';
  }
  const cpu = cpus();
  return {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    root: process.getuid?.() === 0,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    tools,
  };
}
