/**
 * What every VMM runner (QEMU, Firecracker) does the same way, in one place so both give the
 * same guarantees:
 *  - the VMM runs in its own process group, killed (SIGKILL to the group) on every exit path:
 *    a failed start, kill(), shutdown(), and this Node process exiting (Ctrl-C included);
 *  - its console is captured (log file, last lines in memory, boot moments, panics);
 *  - the wait for the agent fails fast and says why, with the console tail: kernel panic, VM
 *    exited, timeout, agent never ready;
 *  - shutdown asks the agent, waits (bounded) for the VMM to exit, and reports a failed request
 *    when the VM did not go down by itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { RootforgeError } from '../errors.js';
import type { AgentClient } from '../agent-client/agent-client.js';
import { ConsoleLog } from './console.js';
import type { Cleanups } from './steps.js';
import type { BootTimings, VmConfig } from './types.js';

export type VmExit = { code: number | null; signal: NodeJS.Signals | null };

/** Every VMM this process started and has not reaped: killed if the process exits first. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** SIGKILL to the child's process group, unless it is already gone. */
export function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; // already gone is fine
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers run on process.exit() (the CLI's SIGINT/SIGTERM handlers call it) and on a
  // normal end; they must be synchronous, and kill() is.
  process.on('exit', () => {
    for (const c of running) killGroup(c);
  });
}

/** How many VMMs this process has running (tests check that none is left behind). */
export function runningVmmCount(): number {
  return running.size;
}

export interface VmmProcess {
  child: ChildProcess;
  console: ConsoleLog;
  exited: Promise<VmExit>;
  /** The VMM's own stderr, last 4000 characters (QEMU's errors are there, not on the console). */
  stderr(): string;
}

/**
 * Spawns the VMM detached in its own process group, registers the kill and console cleanups,
 * and routes its output: stdout is the serial console; stderr is kept apart (`stderrToConsole`
 * sends it to the console too, as Firecracker logs there).
 */
export function spawnVmm(
  what: string,
  cmd: string,
  args: string[],
  opts: { config: VmConfig; started: number; cleanups: Cleanups; stderrToConsole?: boolean },
): VmmProcess {
  installExitHook();
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stderr = '';
  const exited = new Promise<VmExit>((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (e) => {
      stderr += e.message;
      running.delete(child);
      resolve({ code: -1, signal: null });
    });
  });
  opts.cleanups.add(`kill ${what}`, async () => {
    killGroup(child);
    await exited;
  });
  const console = new ConsoleLog(opts.config.consoleLog ?? null, opts.started, opts.config.onConsole ?? null);
  opts.cleanups.add('close console log', () => console.close());
  child.stdout!.on('data', (c: Buffer) => console.write(c));
  child.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
    if (opts.stderrToConsole) console.write(c);
  });
  void exited.then(({ code }) => {
    if (!opts.stderrToConsole && code !== 0 && stderr && !console.events.kernelAt) console.write(Buffer.from(`[${what}] ${stderr}\n`));
  });
  return { child, console, exited, stderr: () => stderr };
}

type VmFailCode = 'VM_START_FAILED' | 'VM_KERNEL_PANIC' | 'VM_EXITED' | 'VM_BOOT_TIMEOUT' | 'VM_NO_AGENT';

/** Fails with the VM's console tail in the message (after giving the console a moment). */
export async function failFromVm(image: string, vmm: Pick<VmmProcess, 'console' | 'exited'> | undefined, code: VmFailCode, reason: string): Promise<never> {
  if (vmm) await Promise.race([vmm.exited, sleep(300)]);
  const tail = vmm?.console.lastLines(40) ?? '';
  throw new RootforgeError(code, `Cannot boot ${image}: ${reason}\n--- last console lines ---\n${tail || '(no console output)'}`);
}

/**
 * Waits for the agent's ready frame, failing fast on a kernel panic, the VMM exiting, or the
 * deadline. Returns the agent's uptime (guest clock) at ready.
 */
export async function waitAgentReady(image: string, vmm: VmmProcess, agent: AgentClient, timeoutMs: number): Promise<{ uptimeMs: number }> {
  let panicked: () => void = () => {};
  const panic = new Promise<'panic'>((resolve) => {
    panicked = () => resolve('panic');
    vmm.console.whenPanic(() => panicked());
  });
  if (vmm.console.events.panic) panicked();
  const exited = vmm.exited.then(() => 'exited' as const);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    timer.unref();
  });
  const ready = agent.waitReady({ timeoutMs, pollMs: 200 }).then(
    (info) => ({ info }),
    (error: unknown) => ({ error }),
  );
  try {
    const first = await Promise.race([ready, panic, exited, deadline]);
    if (first === 'panic') return await failFromVm(image, vmm, 'VM_KERNEL_PANIC', `the kernel panicked: ${vmm.console.events.panic}`);
    if (first === 'exited') return await failFromVm(image, vmm, 'VM_EXITED', 'the VM stopped before the agent was ready');
    if (first === 'timeout') return await failFromVm(image, vmm, 'VM_BOOT_TIMEOUT', `the agent did not answer within ${timeoutMs / 1000} s`);
    if ('error' in first) {
      if (first.error instanceof RootforgeError && first.error.code === 'AGENT_PROTOCOL_MISMATCH') throw first.error;
      // the connection often breaks because the VM is going down: say that when it is so
      const gone = await Promise.race([vmm.exited.then(() => true), sleep(1000).then(() => false)]);
      if (vmm.console.events.panic) return await failFromVm(image, vmm, 'VM_KERNEL_PANIC', `the kernel panicked: ${vmm.console.events.panic}`);
      if (gone) return await failFromVm(image, vmm, 'VM_EXITED', 'the VM stopped before the agent was ready');
      return await failFromVm(image, vmm, 'VM_NO_AGENT', `the agent did not become ready: ${(first.error as Error).message}`);
    }
    return first.info;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Asks the agent to power off and waits (bounded) for the VMM to exit, then runs the cleanups
 * (which kill whatever is left). A shutdown request that failed while the VM kept running is
 * reported on the console log and makes `clean` false; cleanup failures are thrown together.
 */
export async function shutdownVm(vmm: VmmProcess, agent: AgentClient, cleanups: Cleanups, timeoutMs: number): Promise<{ clean: boolean; error?: Error }> {
  let requestError: Error | undefined;
  try {
    await agent.shutdown({ timeoutMs: Math.min(timeoutMs, 5000) });
  } catch (e) {
    requestError = e as Error; // the agent may close the connection as it powers off
  }
  const clean = await Promise.race([vmm.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (!clean && requestError) vmm.console.write(Buffer.from(`[rootforge] shutdown request failed: ${requestError.message}\n`));
  const failures = await cleanups.run();
  if (failures.length > 0) throw new AggregateError(failures, 'Cannot stop the VM cleanly');
  return !clean && requestError ? { clean, error: requestError } : { clean };
}

/** Boot timings from what the runner measured and what the console saw. */
export function bootTimings(vmm: BootTimings['vmm'], accel: BootTimings['accel'], accelReason: string, console: ConsoleLog, measured: { vmmStartMs: number; readyMs: number; agentUptimeMs: number }): BootTimings {
  const c = console.events;
  return {
    vmm,
    accel,
    accelReason,
    vmmStartMs: measured.vmmStartMs,
    ...(c.kernelAt !== undefined ? { kernelMs: c.kernelAt } : {}),
    ...(c.initAt !== undefined ? { initMs: c.initAt } : {}),
    ...(c.initGuestSec !== undefined ? { initGuestMs: c.initGuestSec * 1000 } : {}),
    readyMs: measured.readyMs,
    agentUptimeMs: measured.agentUptimeMs,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
