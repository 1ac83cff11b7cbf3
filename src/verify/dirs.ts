/**
 * Directories the boot needs: the kernel and init mount proc, sysfs, devtmpfs and tmpfs on them
 * (a missing mount point fails the mount), and programs expect /tmp to be world-writable and sticky.
 */
import type { ImageFs } from './image-fs.js';
import { modeString } from './deps.js';
import type { VerifyCheck } from './types.js';

export const REQUIRED_DIRS = ['/proc', '/sys', '/dev', '/tmp', '/run', '/etc'];

export async function checkDirs(fs: ImageFs): Promise<VerifyCheck[]> {
  const problems: string[] = [];
  let tmpPerm: number | undefined;
  for (const d of REQUIRED_DIRS) {
    const look = await fs.resolve(d); // a symlink to a directory works as a mount point
    if (!look.ok) problems.push(`${d}: ${look.reason}`);
    else if (look.st.kind !== 'dir') problems.push(`${d} is not a directory (${look.st.kind})`);
    else if (d === '/tmp') tmpPerm = look.st.perm;
  }
  const dirs: VerifyCheck =
    problems.length > 0
      ? { id: 'dirs', ok: false, severity: 'error', message: problems.join('; '), details: { problems } }
      : { id: 'dirs', ok: true, severity: 'error', message: `${REQUIRED_DIRS.join(' ')} are directories` };
  let tmp: VerifyCheck;
  if (tmpPerm === undefined) tmp = { id: 'tmp-mode', ok: true, severity: 'warning', skipped: true, message: 'skipped: /tmp is not a directory (see dirs)' };
  else if (tmpPerm !== 0o1777) tmp = { id: 'tmp-mode', ok: false, severity: 'warning', message: `/tmp is ${modeString(tmpPerm)}, expected 1777 (world-writable, sticky)`, details: { mode: modeString(tmpPerm) } };
  else tmp = { id: 'tmp-mode', ok: true, severity: 'warning', message: '/tmp is 1777' };
  return [dirs, tmp];
}
