/**
 * Install scripts never run on the build host. Each pre-/post-install script of a package this
 * build installed, and each trigger whose directories got new files, is queued in the image:
 *
 *   /var/lib/rootforge/first-boot/0001-busybox-1.36.1-r29.post-install   (the script, 0700)
 *   /var/lib/rootforge/first-boot/0001-busybox-1.36.1-r29.post-install.args   (one arg a line)
 *   /usr/lib/rootforge/apk-first-boot    the runner; the wrapper init calls it before the agent
 *
 * The runner runs them in order, once: each is removed after it ran and its exit status is
 * appended to /var/lib/rootforge/first-boot.log. `rootforge verify` lists what is still queued.
 */
import type { IndexPackage } from './apkindex.js';
import { asset } from '../../provision/assets.js';
import { ensureDir, readTreeFile, writeFile, type ProvisionContext } from '../../provision/context.js';
import { FsTree } from '../../tree/tree.js';

export const FIRST_BOOT_DIR = 'var/lib/rootforge/first-boot';
export const FIRST_BOOT_RUNNER = 'usr/lib/rootforge/apk-first-boot';
export const FIRST_BOOT_LOG = 'var/lib/rootforge/first-boot.log';

export interface PendingScript {
  pkg: IndexPackage;
  script: 'pre-install' | 'post-install' | 'trigger';
  body: Buffer;
  args: string[];
}

export async function queueFirstBoot(ctx: ProvisionContext, pending: PendingScript[], enabled: boolean): Promise<{ queued: string[]; native: string[] }> {
  const queued: string[] = [];
  const native: string[] = [];
  if (pending.some((s) => s.pkg.name === 'busybox' && s.script === 'post-install')) {
    const n = await busyboxLinks(ctx);
    if (n > 0) native.push(`busybox: ${n} applet links`);
  }
  if (!enabled || pending.length === 0) return { queued, native };
  ensureDir(ctx, 'var/lib/rootforge', 0o755);
  ensureDir(ctx, FIRST_BOOT_DIR, 0o700);
  let n = 0;
  for (const s of pending) {
    const id = `${p4(++n)}-${s.pkg.name}-${s.pkg.version}.${s.script}`;
    writeFile(ctx, `${FIRST_BOOT_DIR}/${id}`, s.body, 0o700);
    writeFile(ctx, `${FIRST_BOOT_DIR}/${id}.args`, s.args.map((a) => a + '\n').join(''), 0o600);
    queued.push(`${s.pkg.name}-${s.pkg.version}.${s.script}`);
  }
  writeFile(ctx, FIRST_BOOT_RUNNER, asset('init/apk-first-boot'), 0o755);
  return { queued, native };
}

function p4(n: number): string {
  return String(n).padStart(4, '0');
}

/**
 * What busybox's post-install does first, done at build time (apko's approach): one symlink to
 * /bin/busybox per applet listed in /etc/busybox-paths.d/*, where nothing exists yet — so a shell
 * and its tools are there before the first boot, and on read-only images. The script still runs
 * at the first boot for the rest (its users and groups); `--install -s` leaves these links be.
 * Returns the number of links made.
 */
export async function busyboxLinks(ctx: ProvisionContext): Promise<number> {
  const dir = ctx.tree.get('etc/busybox-paths.d');
  if (dir?.kind !== 'dir' || !ctx.tree.get('bin/busybox')) return 0;
  let made = 0;
  for (const name of [...dir.children!.keys()].sort()) {
    const list = (await readTreeFile(ctx, `etc/busybox-paths.d/${name}`))?.toString('latin1') ?? '';
    for (const line of list.split('\n')) {
      const path = FsTree.split(line.trim()).join('/');
      if (path === '' || ctx.tree.get(path)) continue;
      ctx.tree.addSymlink(path, { mode: 0o777, uid: 0, gid: 0, mtime: ctx.time }, '/bin/busybox');
      made++;
    }
  }
  if (made > 0) ctx.changed.push(`(${made} busybox applet links)`);
  return made;
}
