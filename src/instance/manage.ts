/** instance ls | rm | reset | resize | env, and what `inspect` shows of an instance. */
import { existsSync } from 'node:fs';
import { readdir, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { usage } from './create.js';
import { diskPath, parseEnvAssignment, readRecord, recordPath, writeRecord, type InstanceRecord } from './record.js';
import { checkDiskSize, growDisk, writeUpperDisk } from './upper-disk.js';

export interface InstanceInfo {
  dir: string;
  base: InstanceRecord['base'] & { exists: boolean };
  disk: { path: string; sizeBytes: number; usedOnHostBytes: number };
  config: InstanceRecord['config'];
}

export function isInstanceDir(path: string): boolean {
  return existsSync(recordPath(path));
}

export async function describeInstance(dir: string): Promise<InstanceInfo> {
  const rec = await readRecord(dir);
  const disk = diskPath(dir, rec);
  const st = await stat(disk).catch((e: NodeJS.ErrnoException) => fail('INSTANCE_INVALID', `open instance ${dir}`, `its disk is missing (${e.code})`, disk, e));
  return {
    dir,
    base: { ...rec.base, exists: existsSync(rec.base.path) },
    disk: { path: disk, sizeBytes: st.size, usedOnHostBytes: await usage(dir) },
    config: rec.config,
  };
}

/** DIR itself when it is an instance, else the instances directly inside it (sorted). */
export async function listInstances(dir: string): Promise<InstanceInfo[]> {
  if (isInstanceDir(dir)) return [await describeInstance(dir)];
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => fail('SOURCE_NOT_FOUND', `list instances in ${dir}`, e.code ?? String(e), dir, e));
  const out: InstanceInfo[] = [];
  for (const n of names.sort()) {
    const p = join(dir, n);
    if (isInstanceDir(p)) out.push(await describeInstance(p));
  }
  return out;
}

/** Deletes the instance's files and its directory (refused when it holds anything else). */
export async function removeInstance(dir: string): Promise<void> {
  const rec = await readRecord(dir);
  const extra = (await readdir(dir)).filter((f) => f !== rec.disk.file && f !== 'instance.json');
  if (extra.length > 0) fail('INSTANCE_INVALID', `remove instance ${dir}`, `it holds other files, left alone: ${extra.join(', ')}`, dir);
  await unlink(diskPath(dir, rec)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await unlink(recordPath(dir));
  await rmdir(dir);
}

/** Empties the instance disk (everything the sandbox wrote); the config is kept. */
export async function resetInstance(dir: string): Promise<InstanceInfo> {
  const rec = await readRecord(dir);
  const { size } = await stat(diskPath(dir, rec));
  await writeUpperDisk(diskPath(dir, rec), size);
  return describeInstance(dir);
}

/** Grows the disk; the guest grows its filesystem online at the next boot. */
export async function resizeInstance(dir: string, bytes: number): Promise<InstanceInfo> {
  const rec = await readRecord(dir);
  checkDiskSize(bytes);
  await growDisk(diskPath(dir, rec), bytes);
  rec.disk.sizeBytes = bytes;
  await writeRecord(dir, rec);
  return describeInstance(dir);
}

/** Sets (K=V) or removes (K=, with `unset`) session env values stored with the instance. */
export async function setInstanceEnv(dir: string, assignments: string[], unset: string[] = []): Promise<Record<string, string>> {
  const rec = await readRecord(dir);
  for (const a of assignments) {
    const [k, v] = parseEnvAssignment(a);
    rec.config.env[k] = v;
  }
  for (const k of unset) delete rec.config.env[k];
  await writeRecord(dir, rec);
  return rec.config.env;
}

export function formatInstance(i: InstanceInfo, showEnvValues = false): string {
  const gib = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);
  const env = Object.keys(i.config.env).sort();
  return [
    `instance ${i.dir}`,
    `  base           ${i.base.path}${i.base.exists ? '' : '  (MISSING)'}`,
    `  base sha256    ${i.base.sha256}`,
    `  disk           ${gib(i.disk.sizeBytes)} (sparse), ${gib(i.disk.usedOnHostBytes)} used on the host`,
    `  hostname       ${i.config.hostname}`,
    `  machine-id     ${i.config.machineId}`,
    `  ssh keys       ${i.config.sshKeys.length}${i.config.sshKeys.map((k) => `\n    ${k.split(' ').slice(0, 1)} …${k.split(' ')[1]?.slice(-12) ?? ''} ${k.split(' ').slice(2).join(' ')}`).join('')}`,
    `  session env    ${env.length === 0 ? '(none)' : env.map((k) => (showEnvValues ? `${k}=${i.config.env[k]}` : k)).join(' ')}`,
  ].join('\n');
}
