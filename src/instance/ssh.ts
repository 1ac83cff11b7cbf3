/**
 * The session env for ssh sessions. `~/.ssh/rc` (the hook every built image has) runs in its own
 * shell before the session: what it exports does not reach `ssh host CMD` (checked against a real
 * sshd). Login shells get the env through /etc/profile.d; for everything else an instance whose
 * base has an sshd that knows `SetEnv` (OpenSSH ≥ 8.7) and reads /etc/ssh/sshd_config.d/ gets a
 * drop-in there with `SetEnv` lines, written by the initramfs before sshd starts.
 */
import { isRootforgeError } from '../errors.js';
import { Ext4Image } from '../ext4/reader.js';

export const SSHD_DROP_IN = 'etc/ssh/sshd_config.d/rootforge-session-env.conf';
const SSHD_BINARIES = ['/usr/sbin/sshd', '/usr/sbin/sshd-session'];

/** Whether the base's sshd would accept the drop-in (an sshd older than 8.7 refuses SetEnv). */
export async function baseSshdTakesSetEnv(base: string): Promise<boolean> {
  const img = await Ext4Image.open(base);
  try {
    const config = await readOrNull(img, '/etc/ssh/sshd_config', 1 << 20);
    if (config === null || !/^\s*Include\s+\/etc\/ssh\/sshd_config\.d\/\*\.conf\s*$/im.test(config.toString('latin1'))) return false;
    const st = await img.resolve('/etc/ssh/sshd_config.d').catch((e: unknown) => (isRootforgeError(e, 'EXT4_NOT_FOUND') ? null : Promise.reject(e)));
    if (st?.kind !== 'dir') return false;
    for (const bin of SSHD_BINARIES) {
      const b = await readOrNull(img, bin, 64 << 20);
      const m = b === null ? null : /OpenSSH_(\d+)\.(\d+)/.exec(b.toString('latin1'));
      if (m) return Number(m[1]) > 8 || (Number(m[1]) === 8 && Number(m[2]) >= 7);
    }
    return false;
  } finally {
    await img.close();
  }
}

async function readOrNull(img: Ext4Image, path: string, max: number): Promise<Buffer | null> {
  try {
    const st = await img.resolve(path);
    if (st.kind !== 'file' || st.size > max) return null;
    return await img.readData(st);
  } catch (e) {
    if (isRootforgeError(e, 'EXT4_NOT_FOUND')) return null;
    throw e;
  }
}

/**
 * `SetEnv "K=V"` lines. sshd_config cannot hold every byte: values with a double quote, a
 * backslash or a control character are left out (named in a comment; they still reach execs and
 * login shells).
 */
export function sshdSetEnvConf(env: Record<string, string>): string {
  const lines = ['# Session environment of this sandbox for ssh sessions, written by `rootforge boot` at each start.'];
  const pairs: string[] = [];
  for (const k of Object.keys(env).sort()) {
    const v = env[k]!;
    // eslint-disable-next-line no-control-regex
    if (/["\\\x00-\x1f\x7f]/.test(v)) lines.push(`# ${k}: left out (a double quote, backslash or control character cannot be written here)`);
    else pairs.push(`"${k}=${v}"`);
  }
  // one line: sshd keeps only the first SetEnv directive it reads
  if (pairs.length > 0) lines.push(`SetEnv ${pairs.join(' ')}`);
  return lines.join('\n') + '\n';
}
