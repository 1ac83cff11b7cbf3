/**
 * Runs the real guest agent (built from agent/) on the host as a normal process:
 * `rootforge-agent serve --listen unix:<tmp>/agent.sock` with its own config files. No VM.
 *
 * The binary is (re)built by scripts/build-agent.mjs for the host architecture (Go's build
 * cache makes that about a second when nothing changed). Without Go the tests skip, unless
 * CI=true, where that is a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent-client/agent-client.js';
import { connectUnix } from '../../src/agent-client/agent-connect.js';

export const REPO = new URL('../../../', import.meta.url).pathname;
const ARCH = process.arch === 'arm64' ? 'arm64' : 'amd64';
export const AGENT_BIN = join(REPO, 'build', 'agent', `linux-${ARCH}`, 'rootforge-agent');

export function goAvailable(): boolean {
  const r = spawnSync('go', ['version']);
  return !r.error && r.status === 0;
}

let built: string | null | undefined;

/** The agent binary, built now if Go is here; null (with the reason) when it cannot be had. */
export function agentBinary(): { path: string | null; why?: string } {
  if (built === undefined) {
    if (goAvailable()) {
      const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'build-agent.mjs'), '--arch', ARCH, '--quiet'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`building the agent failed: ${r.stderr}`);
    }
    built = existsSync(AGENT_BIN) ? AGENT_BIN : null;
  }
  if (built === null) {
    if (process.env.CI === 'true') throw new Error('no Go toolchain and no prebuilt agent: CI must be able to build agent/');
    return { path: null, why: 'no Go toolchain (apt-get install golang-go) and no build/agent binary' };
  }
  return { path: built };
}

export interface RunningAgent {
  dir: string;
  sock: string;
  proc: ChildProcess;
  /** Everything the agent logged so far. */
  log(): string;
  /** Resolves with the exit code (or signal name) when the agent exits. */
  exited: Promise<number | string>;
  connect(): Promise<AgentClient>;
  /** Kills the agent if it still runs and removes its directory. */
  stop(): Promise<void>;
}

export interface AgentSetup {
  /** agent.json contents. */
  config?: Record<string, unknown>;
  /** image.json contents. */
  image?: Record<string, unknown>;
  args?: string[];
}

export async function startAgent(bin: string, setup: AgentSetup = {}): Promise<RunningAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-agent-'));
  const sock = join(dir, 'agent.sock');
  const configPath = join(dir, 'agent.json');
  const imagePath = join(dir, 'image.json');
  writeFileSync(configPath, JSON.stringify(setup.config ?? {}));
  writeFileSync(imagePath, JSON.stringify(setup.image ?? {}));
  const proc = spawn(bin, ['serve', '--listen', `unix:${sock}`, '--config', configPath, '--image-config', imagePath, ...(setup.args ?? [])], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const agent: RunningAgent = {
    dir,
    sock,
    proc,
    log: () => log,
    exited,
    connect: async () => new AgentClient(await connectUnix(sock, { timeoutMs: 10_000, retryMs: 20 }), { requestTimeoutMs: 20_000 }),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return agent;
}
