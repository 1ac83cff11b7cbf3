/**
 * Session environment hooks (the SBX seed's design): the host rewrites one managed file,
 * /etc/rootforge/session-env.sh, at sandbox start; login shells (profile.d) and ssh sessions
 * (/root/.ssh/rc) source it.
 */
import { asset } from './assets.js';
import { ensureDir, writeFile, type ProvisionContext } from './context.js';

export function installSessionHooks(ctx: ProvisionContext): void {
  writeFile(ctx, 'etc/rootforge/session-env.sh', asset('session/session-env.sh'));
  writeFile(ctx, 'etc/profile.d/rootforge-session-env.sh', asset('session/rootforge-session-env.sh'));
  ensureDir(ctx, 'root/.ssh', 0o700);
  writeFile(ctx, 'root/.ssh/rc', asset('session/ssh-rc'), 0o644);
}
