/**
 * The registry benchmark: registry → ext4 for the layered devbox image (layered.ts), ours
 * against skopeo + umoci + mke2fs -d (C) and the decompress-only floor, in the same run.
 *
 *   ensure the layered OCI layout (cached) → start docker-registry → skopeo copy the layout in
 *   (untimed) → runPipelines (grouped + warm-up, or interleaved) → compare ours' and C's file
 *   listings (from their first runs) → rebuild on a cache hit (rebuild.ts) → stop the registry,
 *   remove its storage
 *
 * The registry is stopped on every path out: success, failure and Ctrl-C (its stop is on the
 * cleanup stack the signal handler unwinds).
 */
import { withCleanups } from './cleanup.js';
import { exec, findTool, requireTool } from './exec.js';
import { ensureLayeredImage, LAYERED_TAG } from './layered.js';
import { compareListings, listImage, type Listing } from './listing.js';
import type { Pipeline, PipelineId } from './pipelines.js';
import { startRegistry } from './registry.js';
import { decompressBaselines, oursRegistry, pipelineC } from './registry-pipelines.js';
import { benchRebuild, rebuildCheck, rebuildTargets } from './rebuild.js';
import { summarize, type CheckResult, type InputResult } from './report.js';
import { log, runPipelines } from './runner.js';
import type { TarStats } from './tarstats.js';

export const REGISTRY_INPUT = 'devbox-registry';
const REPOSITORY = 'devbox';

/** Why the registry benchmark cannot run here at all, or undefined. */
function toolsMissing(): string | undefined {
  const absent = ['docker-registry', 'skopeo', 'umoci'].filter((t) => findTool(t) === undefined);
  return absent.length > 0 ? `missing ${absent.join(', ')}` : undefined;
}

/** Runs the registry benchmark on the layered image cut from `tarPath` (whose stats are `stats`). */
export async function benchRegistry(
  tarPath: string,
  stats: TarStats,
  ids: readonly PipelineId[],
  runs: number,
  order: 'grouped' | 'interleaved',
): Promise<InputResult> {
  const result: InputResult = { input: REGISTRY_INPUT, kind: 'registry', path: tarPath, stats, pipelines: [], targets: [], checks: [] };
  const missing = toolsMissing();
  if (missing !== undefined) {
    log(`${REGISTRY_INPUT}: skipped: ${missing}`);
    result.pipelines = [oursRegistry, pipelineC].filter((p) => ids.includes(p.id)).map((p) => ({ id: p.id, title: p.title, status: 'skipped', note: missing, runs: [] }));
    return result;
  }
  const image = await ensureLayeredImage(tarPath, log);
  const selected: Pipeline[] = [oursRegistry, pipelineC, ...decompressBaselines(image)].filter((p) => ids.includes(p.id));
  return withCleanups(async (cleanups) => {
    const registry = await startRegistry(cleanups);
    const ref = `${registry.host}/${REPOSITORY}:${LAYERED_TAG}`;
    const push = await exec(requireTool('skopeo'), ['copy', '--insecure-policy', '--quiet', '--dest-tls-verify=false', `oci:${image.layout}:${LAYERED_TAG}`, `docker://${ref}`]);
    log(`${REGISTRY_INPUT}: pushed ${image.layout} to docker://${ref} in ${push.seconds.toFixed(1)} s (untimed)`);
    result.registry = {
      reference: `docker://${ref}`,
      layout: image.layout,
      manifestDigest: image.manifestDigest,
      layers: image.layers.map(({ path: _path, ...l }) => l),
      pushSeconds: push.seconds,
    };
    // Listings of ours' and C's first images (root: loop mounts), compared after all runs.
    const listings = new Map<PipelineId, Listing>();
    const compare = process.getuid?.() === 0 && ids.includes('ours') && ids.includes('C');
    result.pipelines = await runPipelines(REGISTRY_INPUT, ref, stats, selected, runs, order, {
      async afterRun(p, img, { dir, cleanups: runCleanups }) {
        if (!compare || (p.id !== 'ours' && p.id !== 'C') || listings.has(p.id)) return;
        listings.set(p.id, await listImage(img, dir, 'listing-mnt', runCleanups));
      },
    });
    if (compare) result.checks!.push(sameFiles(listings));
    // Issue 14: a rebuild with the same spec and inputs, on a cache hit (rebuild.ts).
    const rebuild = ids.includes('ours') ? await benchRebuild(ref, runs, (m) => log(`${REGISTRY_INPUT}: ${m}`)) : undefined;
    if (rebuild) {
      result.rebuild = rebuild;
      result.checks!.push(rebuildCheck(rebuild));
    }
    summarize(result);
    if (rebuild) result.targets.push(...rebuildTargets(rebuild));
    return result;
  });
}

function sameFiles(listings: Map<PipelineId, Listing>): CheckResult {
  const what = "ours' and C's images hold the same files (type, mode, owner, size, links, target)";
  const ours = listings.get('ours');
  const c = listings.get('C');
  if (!ours || !c) return { what, ok: false, detail: `not compared: no image from ${!ours ? 'ours' : 'C'} (it failed)` };
  const d = compareListings(ours, 'ours', c, 'C');
  if (d.count === 0) return { what, ok: true, detail: `${d.paths} paths, no difference (lost+found and /etc/rootforge left out)` };
  const more = d.count > d.differences.length ? `\n… and ${d.count - d.differences.length} more` : '';
  return { what, ok: false, detail: `${d.count} of ${d.paths} paths differ:\n${d.differences.join('\n')}${more}` };
}
