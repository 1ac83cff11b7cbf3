/**
 * An instance directory: one sandbox made from a read-only base image.
 *
 *   DIR/instance.json   this record (base path and SHA-256, disk size, config), mode 0600:
 *                       the session env may hold secrets
 *   DIR/disk.ext4       the instance's writable disk, sparse: the overlay's upper and work
 *                       directories (everything the sandbox writes lives here)
 *
 * The base is only referenced: never written, copied or locked.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { writeAtomically } from '../util/atomic.js';

export const RECORD_FILE = 'instance.json';
export const DISK_FILE = 'disk.ext4';
export const RECORD_VERSION = 1;

export interface InstanceConfig {
  hostname: string;
  /** 32 lowercase hex digits (/etc/machine-id), unique per instance. */
  machineId: string;
  /** authorized_keys lines for root. */
  sshKeys: string[];
  /** Session environment: reaches agent execs, login shells and ssh sessions. */
  env: Record<string, string>;
}

export interface InstanceRecord {
  version: number;
  base: { path: string; sha256: string; sizeBytes: number };
  disk: { file: string; sizeBytes: number };
  config: InstanceConfig;
}

export function recordPath(dir: string): string {
  return join(dir, RECORD_FILE);
}

export function diskPath(dir: string, rec?: InstanceRecord): string {
  return join(dir, rec?.disk.file ?? DISK_FILE);
}

/** Reads and checks DIR/instance.json. */
export async function readRecord(dir: string): Promise<InstanceRecord> {
  let text: string;
  try {
    text = await readFile(recordPath(dir), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail('INSTANCE_INVALID', `open instance ${dir}`, code === 'ENOENT' || code === 'ENOTDIR' ? `no ${RECORD_FILE}: not an instance directory` : String(code ?? e), dir, e);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return fail('INSTANCE_INVALID', `open instance ${dir}`, `${RECORD_FILE} is not JSON`, recordPath(dir), e);
  }
  return checkRecord(doc, dir);
}

function checkRecord(doc: unknown, dir: string): InstanceRecord {
  const bad = (why: string): never => fail('INSTANCE_INVALID', `open instance ${dir}`, why, recordPath(dir));
  if (typeof doc !== 'object' || doc === null) return bad('not a JSON object');
  const r = doc as Partial<InstanceRecord>;
  if (r.version !== RECORD_VERSION) bad(`unsupported version ${String(r.version)}`);
  if (typeof r.base?.path !== 'string' || !/^[0-9a-f]{64}$/.test(String(r.base?.sha256)) || typeof r.base?.sizeBytes !== 'number') bad('base must have path, sha256 and sizeBytes');
  if (typeof r.disk?.file !== 'string' || r.disk.file.includes('/') || typeof r.disk.sizeBytes !== 'number') bad('disk must have file and sizeBytes');
  const c = r.config;
  if (typeof c !== 'object' || c === null) return bad('no config');
  if (typeof c.hostname !== 'string' || !/^[0-9a-f]{32}$/.test(String(c.machineId)) || !Array.isArray(c.sshKeys) || typeof c.env !== 'object' || c.env === null) bad('config must have hostname, machineId, sshKeys and env');
  for (const k of c.sshKeys) if (typeof k !== 'string') bad('sshKeys must be strings');
  for (const [k, v] of Object.entries(c.env)) {
    checkEnvName(k);
    if (typeof v !== 'string') bad(`env ${k} must be a string`);
  }
  return r as InstanceRecord;
}

/** Writes DIR/instance.json whole or not at all, readable by its owner only. */
export async function writeRecord(dir: string, rec: InstanceRecord): Promise<void> {
  await writeAtomically(recordPath(dir), async (fh) => {
    await fh.chmod(0o600);
    await fh.writeFile(JSON.stringify(rec, null, 2) + '\n');
  });
}

/** Environment variable names as POSIX shells accept them. */
export function checkEnvName(k: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) fail('OPTION_INVALID', 'set the session env', 'names are letters, digits and _, not starting with a digit', k);
}

/** Parses K=V (the value may be empty and may contain '='). */
export function parseEnvAssignment(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) return fail('OPTION_INVALID', 'set the session env', 'expected K=V', text);
  const k = text.slice(0, eq);
  const v = text.slice(eq + 1);
  checkEnvName(k);
  if (v.includes('\0')) fail('OPTION_INVALID', 'set the session env', 'a value cannot contain a NUL byte', k);
  return [k, v];
}

/** RFC 1123 host names (what sethostname and /etc/hostname should hold). */
export function checkHostname(h: string): void {
  if (h.length > 64 || !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(h)) {
    fail('OPTION_INVALID', 'set the hostname', 'letters, digits, - and dots, at most 64 characters', h);
  }
}
