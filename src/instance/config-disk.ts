/**
 * The config disk: what one boot of an instance writes into its root, as a ustar archive on a
 * small read-only disk (the guest's initramfs reads it: initrd/overlay.go). It is rebuilt at
 * every boot from the instance record and the boot's own --env/--share, so nothing is rebuilt
 * and nothing secret goes on the kernel command line.
 *
 *   etc/hostname                    the hostname (the initramfs also sets it)
 *   etc/machine-id                  the instance's machine id
 *   root/.ssh/authorized_keys       the --ssh-key lines (only when there are keys)
 *   etc/rootforge/session-env.sh    `export K='V'` lines: login shells (profile.d) and ssh
 *                                   sessions (~/.ssh/rc) source it; readable by every user in
 *                                   the guest, like an environment
 *   etc/rootforge/instance.json     hostname, env, shares for the agent (root only)
 *   etc/ssh/sshd_config.d/rootforge-session-env.conf   SetEnv lines, when the base's sshd
 *                                   takes them (ssh.ts; root only)
 *
 * Deterministic: same inputs ⇒ same bytes (mtime 0, sorted keys).
 */
import type { InstanceConfig } from './record.js';
import { SSHD_DROP_IN, sshdSetEnvConf } from './ssh.js';

export interface GuestMount {
  tag: string;
  target: string;
  type: 'virtiofs' | 'ext4';
  readOnly: boolean;
}

export interface ConfigFileEntry {
  path: string;
  mode: number;
  dir?: boolean;
  data?: Buffer;
}

/** One boot's settings: the record's config with the boot's env over it, and its shares. */
export function configEntries(config: InstanceConfig, env: Record<string, string>, mounts: GuestMount[], o: { sshdSetEnv?: boolean } = {}): ConfigFileEntry[] {
  const keys = Object.keys(env).sort();
  const sessionEnv = ['# Session environment of this sandbox, written by `rootforge boot` at each start.', ...keys.map((k) => `export ${k}=${shellQuote(env[k]!)}`)].join('\n') + '\n';
  const instance = { hostname: config.hostname, env: Object.fromEntries(keys.map((k) => [k, env[k]!])), mounts };
  const out: ConfigFileEntry[] = [
    { path: 'etc/hostname', mode: 0o644, data: Buffer.from(`${config.hostname}\n`) },
    { path: 'etc/machine-id', mode: 0o444, data: Buffer.from(`${config.machineId}\n`) },
    { path: 'etc/rootforge', mode: 0o755, dir: true },
    { path: 'etc/rootforge/session-env.sh', mode: 0o644, data: Buffer.from(sessionEnv) },
    { path: 'etc/rootforge/instance.json', mode: 0o600, data: Buffer.from(JSON.stringify(instance) + '\n') },
  ];
  if (o.sshdSetEnv) out.push({ path: SSHD_DROP_IN, mode: 0o600, data: Buffer.from(sshdSetEnvConf(env)) });
  if (config.sshKeys.length > 0) {
    out.push({ path: 'root/.ssh', mode: 0o700, dir: true });
    out.push({ path: 'root/.ssh/authorized_keys', mode: 0o600, data: Buffer.from(config.sshKeys.map((k) => k.trim()).join('\n') + '\n') });
  }
  return out;
}

/** 'it'\''s' — safe inside `export K=...` for sh, dash, bash and busybox ash. */
export function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/** A ustar archive of the entries (root-owned, mtime 0), padded to a 4 KiB multiple for a disk. */
export function ustar(entries: ConfigFileEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.dir ? Buffer.alloc(0) : (e.data ?? Buffer.alloc(0));
    parts.push(ustarHeader(e.dir ? `${e.path}/` : e.path, e.mode, data.length, e.dir ? '5' : '0'));
    parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  const body = Buffer.concat(parts);
  return Buffer.concat([body, Buffer.alloc((4096 - (body.length % 4096)) % 4096)]);
}

//   0 100 name   100 8 mode   108 8 uid   116 8 gid   124 12 size   136 12 mtime
// 148 8 chksum   156 1 type   257 6 magic "ustar\0"   263 2 version "00"   345 155 prefix
function ustarHeader(path: string, mode: number, size: number, type: string): Buffer {
  const h = Buffer.alloc(512);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = path.lastIndexOf('/', path.length - 2);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
    if (cut <= 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`internal: path too long for ustar (${path})`);
  }
  h.write(name, 0, 100, 'utf8');
  const oct = (v: number, off: number, len: number) => h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
  oct(mode & 0o7777, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(0, 136, 12);
  h.write(type, 156, 1, 'latin1');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  h.write(prefix, 345, 155, 'utf8');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}
