/**
 * The reference: real apk-tools 2.14.4 from the Alpine minirootfs fixture, run as root in a
 * chroot of the extracted minirootfs. The repository and keys are copied inside the chroot;
 * apk installs into /target with --initdb, never --allow-untrusted. Scripts are not run
 * (--no-scripts): rootforge never runs them on the host either, it queues them for first boot.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsTree } from '../../src/tree/tree.js';
import { Ext4Writer } from '../../src/ext4/writer.js';
import { writeAtomically } from '../../src/util/atomic.js';
import { installApk, type ApkInstallOptions, type ApkInstallResult } from '../../src/sources/alpine/install.js';
import { ALPINE_X86 } from './fixtures.js';
import { ingestTar } from '../../src/sources/tar.js';
import type { TestKey } from './apk-repo.js';

export function oracleAvailable(): string | null {
  if (process.getuid?.() !== 0) return 'the apk-tools oracle needs root (chroot); CI runs as root';
  if (!existsSync(ALPINE_X86)) return `no Alpine minirootfs fixture at ${ALPINE_X86}`;
  if (process.arch !== 'x64') return 'the oracle minirootfs is x86_64';
  return null;
}

export interface Oracle {
  root: string;
  cleanup(): void;
}

/** Extracts the minirootfs once (per test file). */
export function makeOracle(): Oracle {
  const root = mkdtempSync(join(tmpdir(), 'rf-apk-oracle-'));
  const r = spawnSync('tar', ['-xzf', ALPINE_X86, '-C', root]);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** Real apk installs `world` from `repoDir` into a fresh /target; returns its host path. */
export function apkAdd(o: Oracle, repoDir: string, key: TestKey, world: string[], extra: string[] = [], baseTar?: string): { target: string; code: number; output: string } {
  rmSync(join(o.root, 'target'), { recursive: true, force: true });
  rmSync(join(o.root, 'repo'), { recursive: true, force: true });
  rmSync(join(o.root, 'keys'), { recursive: true, force: true });
  mkdirSync(join(o.root, 'target'));
  if (baseTar) {
    const t = spawnSync('tar', ['-xzf', baseTar, '-C', join(o.root, 'target')]);
    if (t.status !== 0) throw new Error(`tar: ${t.stderr}`);
  }
  mkdirSync(join(o.root, 'keys'));
  cpSync(repoDir, join(o.root, 'repo'), { recursive: true });
  writeFileSync(join(o.root, 'keys', key.name), key.publicPem);
  const r = spawnSync('chroot', [o.root, '/sbin/apk', '--root', '/target', '--keys-dir', '/keys', '--repository', '/repo', '--no-scripts', '--no-cache', '--quiet', ...extra, 'add', ...(baseTar ? [] : ['--initdb']), ...world], { encoding: 'utf8' });
  return { target: join(o.root, 'target'), code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** rootforge installs the same world into an empty image (no provisioning: the apk part only). */
export async function rootforgeAdd(out: string, opts: Omit<ApkInstallOptions, 'arch'> & { arch?: string; baseTar?: string }, timestamp = 0): Promise<ApkInstallResult> {
  let result: ApkInstallResult | undefined;
  await writeAtomically(out, async (fh) => {
    const writer = new Ext4Writer(fh, { timestamp });
    const time = { sec: timestamp, nsec: 0 };
    const tree = new FsTree({ defaultTime: time, onRelease: (c) => writer.release(c) });
    if (opts.baseTar) {
      await ingestTar(opts.baseTar, { tree, writer, defaultTime: time });
      tree.followParentLinks = true;
    }
    result = await installApk({ tree, writer, time, onWarning: () => undefined, changed: [] }, { arch: 'x86_64', ...opts });
    return writer.finish(tree);
  });
  return result!;
}
