/**
 * Init modes — how the agent gets started:
 *   agent    /sbin/init → the agent (PID 1: it mounts, reaps and powers off itself)
 *   wrapper  /sbin/rootforge-init prepares mounts, starts the agent, execs the real init
 *   systemd  a unit with Restart=always, enabled through multi-user.target.wants
 *   openrc   an openrc-run service in the default runlevel, supervised
 */
import type { ResolvedSpec } from '../spec/load.js';
import { AGENT_PATH } from './agent.js';
import { asset } from './assets.js';
import { ensureSymlink, writeFile, type ProvisionContext } from './context.js';

const SYSTEMD_UNIT = 'etc/systemd/system/rootforge-agent.service';
const OPENRC_SERVICE = 'etc/init.d/rootforge-agent';

/** Whether the real init is systemd or OpenRC-driven (both clean /tmp at boot). */
function cleansTmp(ctx: ProvisionContext, realInit: string): boolean {
  const node = ctx.tree.get(realInit); // the last component is not followed: a symlink shows its target
  const target = node?.kind === 'symlink' ? (node.target ?? '') : realInit;
  return /systemd/.test(target) || !!ctx.tree.get('sbin/openrc') || !!ctx.tree.get('usr/sbin/openrc');
}

export function installInit(ctx: ProvisionContext, spec: ResolvedSpec): void {
  const { tree } = ctx;
  switch (spec.init) {
    case 'agent':
      ensureSymlink(ctx, 'sbin/init', `/${AGENT_PATH}`);
      break;
    case 'wrapper':
      writeFile(ctx, 'sbin/rootforge-init', asset('init/rootforge-init'), 0o755);
      writeFile(ctx, 'etc/rootforge/real-init', spec.realInit + '\n');
      if (!tree.get(spec.realInit)) {
        ctx.onWarning({ code: 'INIT_MISSING', message: `init: wrapper hands over to ${spec.realInit}, which the base does not have` });
      } else if (cleansTmp(ctx, spec.realInit)) {
        // the wrapper starts the agent before the real init: its /tmp setup would come after the first commands
        ctx.onWarning({ code: 'INIT_TMP_RACE', message: `init: wrapper starts the agent before ${spec.realInit} (systemd or OpenRC) sets up /tmp, which may empty it under the first commands; use init: systemd or init: openrc` });
      }
      break;
    case 'systemd':
      writeFile(ctx, SYSTEMD_UNIT, asset('systemd/rootforge-agent.service'));
      ensureSymlink(ctx, 'etc/systemd/system/multi-user.target.wants/rootforge-agent.service', `/${SYSTEMD_UNIT}`);
      if (!tree.get('lib/systemd/systemd') && !tree.get('usr/lib/systemd/systemd')) {
        ctx.onWarning({ code: 'INIT_MISSING', message: 'init: systemd, but the base has no /lib/systemd/systemd' });
      }
      break;
    case 'openrc':
      writeFile(ctx, OPENRC_SERVICE, asset('openrc/rootforge-agent'), 0o755);
      ensureSymlink(ctx, 'etc/runlevels/default/rootforge-agent', `/${OPENRC_SERVICE}`);
      if (!tree.get('sbin/openrc-run') && !tree.get('usr/sbin/openrc-run')) {
        ctx.onWarning({ code: 'INIT_MISSING', message: 'init: openrc, but the base has no /sbin/openrc-run (apk add openrc)' });
      }
      break;
  }
}
