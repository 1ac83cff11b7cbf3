/**
 * Alpine package scripts rootforge queued for the first boot (src/sources/alpine/firstboot.ts):
 * until the image has booted once with init: wrapper they have not run. Listed as a warning;
 * images without a queue get no such check at all.
 */
import type { ImageFs } from './image-fs.js';
import type { VerifyCheck } from './types.js';

const QUEUE = '/var/lib/rootforge/first-boot';

export async function checkFirstBoot(fs: ImageFs): Promise<VerifyCheck | null> {
  const scripts = (await fs.glob(`${QUEUE}/[0-9][0-9][0-9][0-9]-*`)).filter((p) => !p.endsWith('.args')).map((p) => p.slice(QUEUE.length + 6));
  if (scripts.length === 0) return null;
  return {
    id: 'first-boot',
    ok: false,
    severity: 'warning',
    message: `${scripts.length} package script${scripts.length === 1 ? '' : 's'} not run yet (they run once at the first boot, before the agent is ready): ${scripts.join(', ')}`,
    details: { scripts },
  };
}
