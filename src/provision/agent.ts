/**
 * The guest agent: its binary at /usr/sbin/rootforge-agent and its configuration at
 * /etc/rootforge/agent.json (docs/agent-protocol.md describes both).
 */
import { stat } from 'node:fs/promises';
import { fail } from '../errors.js';
import type { ResolvedSpec } from '../spec/load.js';
import { writeFile, type ProvisionContext } from './context.js';

export const AGENT_PATH = 'usr/sbin/rootforge-agent';
export const AGENT_JSON = 'etc/rootforge/agent.json';
export const DEFAULT_VSOCK_PORT = 1024;
export const SERIAL_PORT_NAME = 'org.rootforge.agent';

/** Where `npm run build` puts the built-in agent for a Go architecture name. */
export function builtinAgentPath(arch: string): string {
  return new URL(`../../agent/linux-${arch}/rootforge-agent`, import.meta.url).pathname;
}

export async function agentBinary(spec: ResolvedSpec, arch: string): Promise<string | null> {
  if (spec.agent === 'none') return null;
  const path = spec.agent === 'builtin' ? builtinAgentPath(arch) : spec.agent;
  const st = await stat(path).catch(() => null);
  if (!st?.isFile()) {
    if (spec.agent === 'builtin') {
      fail('PROVISION_FAILED', `install the built-in agent for linux/${arch}`, 'it is not built (run `npm run build` with Go installed)', path);
    }
    fail('PROVISION_FAILED', 'install the agent', 'no such file', path);
  }
  return path;
}

/** The kernel's init= for this spec (also recorded in agent.json for `rootforge boot`). */
export function initPath(spec: ResolvedSpec): string {
  if (spec.init === 'agent') return '/sbin/init';
  if (spec.init === 'wrapper') return '/sbin/rootforge-init';
  return spec.realInit;
}

export async function installAgent(ctx: ProvisionContext, spec: ResolvedSpec, arch: string, imageBase = false): Promise<void> {
  const bin = await agentBinary(spec, arch);
  if (bin) {
    const size = (await stat(bin)).size;
    ctx.tree.addFile(AGENT_PATH, { mode: 0o755, uid: 0, gid: 0, mtime: ctx.time }, size, { kind: 'hostfile', path: bin });
    ctx.changed.push(AGENT_PATH);
  }
  const user = spec.users.find((u) => u.uid !== 0);
  const config = {
    init: initPath(spec),
    initMode: spec.init,
    // the image's architecture (Go/OCI name): `rootforge boot` picks the VMM and kernel by it
    architecture: arch,
    transports: ['vsock', 'virtio-serial'],
    vsockPort: DEFAULT_VSOCK_PORT,
    serialPortName: SERIAL_PORT_NAME,
    hostname: spec.hostname,
    // an image's own WorkingDir wins unless the spec names a work directory
    ...(imageBase && !spec.explicit.has('workdir') ? {} : { workdir: spec.workdir }),
    user: user ? `${user.uid}:${user.gid}` : '0:0',
    env: Object.fromEntries(Object.keys(spec.env).sort().map((k) => [k, spec.env[k]!])),
    mounts: spec.mounts,
    // a shutdown request powers the VM off in every init mode; by reboot, which both QEMU
    // (-no-reboot) and Firecracker (no ACPI: reboot=k) turn into "the VM exited"
    allowPoweroff: true,
    powerOffMode: 'reboot',
  };
  writeFile(ctx, AGENT_JSON, JSON.stringify(config, null, 2) + '\n');
}
