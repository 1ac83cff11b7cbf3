/**
 * What the host offers a Debian build: mmdebstrap itself, a mode it can run in (root when root,
 * unshare when unprivileged user namespaces and subordinate ids allow it), emulation for a
 * foreign architecture, the host's apt proxy, and the suite's Release date. Each lack is a typed
 * error that names the fix.
 */
import { ARCHITECTURES, hostArch } from '../../verify/arch.js';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fail } from '../../errors.js';
import { releaseDate } from './records.js';

export type MmdebstrapMode = 'root' | 'unshare';

/** The first executable NAME on PATH, or undefined. */
export function findTool(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    if (dir === '') continue;
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export function requireMmdebstrap(): string {
  const p = findTool('mmdebstrap');
  if (!p) fail('DEBIAN_TOOL_MISSING', 'build a Debian base', 'mmdebstrap is not installed (apt-get install mmdebstrap)', 'mmdebstrap');
  return p;
}

/** root when we are root; unshare when this user may create user namespaces with subordinate ids. */
export function chooseMode(): MmdebstrapMode {
  if (process.getuid?.() === 0) return 'root';
  const problems: string[] = [];
  const clone = readNumber('/proc/sys/kernel/unprivileged_userns_clone');
  if (clone === 0) problems.push('kernel.unprivileged_userns_clone is 0 (sysctl -w kernel.unprivileged_userns_clone=1)');
  const max = readNumber('/proc/sys/user/max_user_namespaces');
  if (max === 0) problems.push('user.max_user_namespaces is 0 (sysctl -w user.max_user_namespaces=10000)');
  const apparmor = readNumber('/proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  if (apparmor === 1) problems.push('AppArmor restricts unprivileged user namespaces (sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)');
  const user = userInfo().username;
  const uid = String(process.getuid?.() ?? '');
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const lines = existsSync(f) ? readFileSync(f, 'utf8').split('\n') : [];
    if (!lines.some((l) => l.startsWith(`${user}:`) || l.startsWith(`${uid}:`))) {
      problems.push(`${f} has no range for ${user} (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user})`);
      break;
    }
  }
  if (!findTool('newuidmap')) problems.push('newuidmap is missing (apt-get install uidmap)');
  if (problems.length > 0) {
    fail('DEBIAN_NO_MODE', 'run mmdebstrap', `not root, and user namespaces are not usable: ${problems.join('; ')}. Run as root, or fix the above for unshare mode`, user);
  }
  return 'unshare';
}

/** The host's Debian architecture (dpkg's name). */
export function hostDebianArch(): string {
  const r = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  return hostArch()?.debian ?? process.arch;
}

/** The qemu-user name for a Debian architecture (armel runs under qemu-arm like armhf). */
function qemuUserName(debianArch: string): string | undefined {
  return ARCHITECTURES.find((a) => a.debian === (debianArch === 'armel' ? 'armhf' : debianArch))?.qemuUser;
}

/**
 * A foreign architecture runs its maintainer scripts under qemu-user through binfmt_misc; check
 * both are there before mmdebstrap spends minutes downloading.
 */
export function checkForeignArch(arch: string, host: string): void {
  if (arch === host || (host === 'amd64' && arch === 'i386')) return;
  const q = qemuUserName(arch);
  if (!q) fail('DEBIAN_FOREIGN_ARCH', `build for ${arch}`, 'no qemu-user emulator is known for this architecture', arch);
  const entry = `/proc/sys/fs/binfmt_misc/qemu-${q}`;
  if (existsSync(entry) && /^enabled/m.test(readFileSync(entry, 'utf8'))) return;
  const haveQemu = !!findTool(`qemu-${q}-static`) || !!findTool(`qemu-${q}`);
  const fix = haveQemu
    ? `binfmt_misc has no enabled qemu-${q} entry (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-${q}, or apt-get install binfmt-support)`
    : `qemu-user-static is not installed (apt-get install qemu-user-static binfmt-support)`;
  fail('DEBIAN_FOREIGN_ARCH', `build for ${arch} on ${host}`, fix, arch);
}

export interface AptProxy {
  http: string | undefined;
  https: string | undefined;
}

/**
 * The host's apt proxy (Acquire::http::Proxy / Acquire::https::Proxy from apt-config): mmdebstrap
 * runs apt with its own configuration, so these are passed on. http_proxy/https_proxy in the
 * environment reach apt directly.
 */
export function hostAptProxy(): AptProxy {
  if (!findTool('apt-config')) return { http: undefined, https: undefined };
  const r = spawnSync('apt-config', ['dump'], { encoding: 'utf8' });
  if (r.status !== 0) return { http: undefined, https: undefined };
  return parseAptProxy(r.stdout);
}

export function parseAptProxy(dump: string): AptProxy {
  const get = (k: string) => {
    const m = new RegExp(`^Acquire::${k}::Proxy "([^"]*)";$`, 'mi').exec(dump);
    return m && m[1] !== '' && m[1] !== 'DIRECT' ? m[1] : undefined;
  };
  return { http: get('http'), https: get('https') };
}

/**
 * The suite's Release date, the default SOURCE_DATE_EPOCH of a build without a lock: fetched with
 * apt's own downloader (so the host's proxy settings apply), from InRelease, else Release.
 */
export async function fetchReleaseDate(mirror: string, suite: string, proxy: AptProxy): Promise<number> {
  const helper = '/usr/lib/apt/apt-helper';
  if (!existsSync(helper)) fail('DEBIAN_TOOL_MISSING', 'read the suite date', 'apt-helper is missing (apt-get install apt)', helper);
  const dir = await mkdtemp(join(tmpdir(), 'rootforge-release-'));
  try {
    const errors: string[] = [];
    for (const name of ['InRelease', 'Release']) {
      const url = `${mirror}/dists/${suite}/${name}`;
      const dest = join(dir, name);
      const opts = [...(proxy.http ? ['-o', `Acquire::http::Proxy=${proxy.http}`] : []), ...(proxy.https ? ['-o', `Acquire::https::Proxy=${proxy.https}`] : [])];
      // apt-helper drops privileges to _apt for the download; the temp dir is ours alone, so it runs unsandboxed
      const r = spawnSync(helper, ['-o', 'APT::Sandbox::User=root', ...opts, 'download-file', url, dest], { encoding: 'utf8', timeout: 120_000 });
      if (r.status === 0 && existsSync(dest)) {
        const date = releaseDate(await readFile(dest, 'utf8'));
        if (date !== undefined) return date;
        errors.push(`${url}: no Date field`);
      } else errors.push(`${url}: ${(r.stderr || r.stdout || String(r.error ?? r.status)).trim().split('\n').pop()}`);
    }
    return fail('DEBIAN_MIRROR_FAILED', `read the Release file of ${suite}`, errors.join('; '), mirror);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function readNumber(path: string): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // absent on this kernel: no such restriction
    throw e;
  }
}
