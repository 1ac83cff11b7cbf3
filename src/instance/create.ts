/**
 * `rootforge instance create BASE -o DIR`: a sandbox instance of a base image in milliseconds.
 * The base is referenced by path and SHA-256 (hashed once per base file, then remembered:
 * base-hash.ts); the writable disk is a sparse ext4 with only the overlay's two directories.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { fail } from '../errors.js';
import { baseIdentity } from './base-hash.js';
import { checkHostname, checkEnvName, diskPath, DISK_FILE, RECORD_VERSION, writeRecord, type InstanceRecord } from './record.js';
import { writeUpperDisk } from './upper-disk.js';

export const DEFAULT_DISK_BYTES = 4 * 2 ** 30;

export interface CreateInstanceOptions {
  /** Size of the writable disk in bytes (sparse). Default 4 GiB. */
  sizeBytes?: number;
  /** authorized_keys lines for root (the contents of --ssh-key files). */
  sshKeys?: string[];
  /** Default: the directory's name when it is a valid host name, else "sandbox". */
  hostname?: string;
  /** Session environment stored with the instance. */
  env?: Record<string, string>;
  /** Where remembered base hashes live. Default the user's rootforge cache. */
  cacheDir?: string;
}

export interface CreateInstanceResult {
  dir: string;
  record: InstanceRecord;
  /** Bytes the instance takes on the host disk (allocated blocks). */
  diskUsageBytes: number;
  /** The base was hashed now (false: its hash was remembered). */
  hashedBase: boolean;
  timings: Record<string, number>;
}

export async function createInstance(base: string, dir: string, o: CreateInstanceOptions = {}): Promise<CreateInstanceResult> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (name: string, since: number) => (timings[name] = Math.round((performance.now() - since) * 10) / 10);
  const basePath = resolve(base);
  await checkExt4(basePath);
  const sizeBytes = o.sizeBytes ?? DEFAULT_DISK_BYTES;
  const hostname = o.hostname ?? defaultHostname(dir);
  checkHostname(hostname);
  for (const k of Object.keys(o.env ?? {})) checkEnvName(k);
  const keys = (o.sshKeys ?? []).flatMap((k) => k.split('\n')).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const k of keys) if (!/^(ssh-|ecdsa-|sk-)\S+ \S+/.test(k)) fail('OPTION_INVALID', 'add an ssh key', 'not an OpenSSH public key line', k.slice(0, 40));

  const created = await makeEmptyDir(dir);
  try {
    const t1 = performance.now();
    const id = await baseIdentity(basePath, o.cacheDir);
    lap('base identity', t1);
    const record: InstanceRecord = {
      version: RECORD_VERSION,
      base: { path: basePath, sha256: id.sha256, sizeBytes: id.sizeBytes },
      disk: { file: DISK_FILE, sizeBytes },
      config: { hostname, machineId: randomBytes(16).toString('hex'), sshKeys: keys, env: { ...(o.env ?? {}) } },
    };
    const t2 = performance.now();
    await writeUpperDisk(diskPath(dir), sizeBytes);
    lap('write disk', t2);
    await writeRecord(dir, record);
    lap('total', t0);
    return { dir, record, diskUsageBytes: await usage(dir), hashedBase: !id.cached, timings };
  } catch (e) {
    if (created) await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Bytes allocated on the host for the instance's files. */
export async function usage(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(dir)) total += Number((await stat(`${dir}/${f}`)).blocks) * 512;
  return total;
}

function defaultHostname(dir: string): string {
  const name = basename(resolve(dir)).toLowerCase();
  return /^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/.test(name) ? name : 'sandbox';
}

async function checkExt4(path: string): Promise<void> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => fail('SOURCE_NOT_FOUND', `read base image ${path}`, e.code ?? String(e), path, e));
  try {
    const b = Buffer.alloc(2);
    await fh.read(b, 0, 2, 1024 + 0x38);
    if (b.readUInt16LE(0) !== 0xef53) fail('SOURCE_BAD_SPEC', `use ${path} as a base`, 'not an ext4 image', path);
  } finally {
    await fh.close();
  }
}

/** Creates DIR, or accepts an existing empty one; returns whether it created it. */
async function makeEmptyDir(dir: string): Promise<boolean> {
  try {
    await mkdir(dir);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return fail('OUTPUT_FAILED', `create instance ${dir}`, (e as NodeJS.ErrnoException).code ?? String(e), dir, e);
  }
  const st = await stat(dir);
  if (!st.isDirectory() || (await readdir(dir)).length > 0) fail('OUTPUT_EXISTS', `create instance ${dir}`, 'it exists and is not an empty directory', dir);
  return false;
}
