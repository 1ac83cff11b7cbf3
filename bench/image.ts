/**
 * e2fsprogs steps shared by the established pipelines, and the correctness check every image
 * gets (ours and theirs alike), untimed.
 */
import { stat, truncate } from 'node:fs/promises';
import { benchFail } from './errors.js';
import { exec, requireTool } from './exec.js';

const MiB = 1 << 20;

/**
 * How the established pipelines size their image before shrinking it: the content's `du -sb`
 * × 1.5 + 64 MiB, rounded up to a MiB (overallocate, then `resize2fs -M`). Keep in step with
 * fakeroot-mkfs.sh, which does the same sum in bash.
 */
export function overallocBytes(contentBytes: number): number {
  return Math.ceil((contentBytes * 1.5 + 64 * MiB) / MiB) * MiB;
}

/** `e2fsck -fn`: must exit 0 (clean, nothing to fix). Throws BENCH_FSCK_FAILED otherwise. */
export async function fsckClean(img: string): Promise<void> {
  try {
    await exec(requireTool('e2fsck'), ['-fn', img]);
  } catch (e) {
    benchFail('BENCH_FSCK_FAILED', `verify ${img}`, `e2fsck -fn found problems: ${(e as Error).message}`, undefined, e);
  }
}

export interface ShrinkResult {
  /** Wall time of each step, in seconds. */
  steps: Record<string, number>;
  /** e2fsck -fy's exit status: 0 clean, 1 it corrected something. */
  fsckExit: number;
}

/**
 * The shrink tail of both established pipelines: `e2fsck -fy` (resize2fs insists on a fresh
 * check; exit 1 means "errors corrected", which is allowed, as the pipelines allow it), then
 * `resize2fs -M`, then truncate the file to the filesystem's new end.
 */
export async function shrinkImage(img: string): Promise<ShrinkResult> {
  const fsck = await exec(requireTool('e2fsck'), ['-fy', img], { okCodes: [0, 1] });
  const resize = await exec(requireTool('resize2fs'), ['-M', img]);
  // "... is now 123456 (4k) blocks long." or "... is already 123456 (4k) blocks long."
  const m = /(\d+) \((\d+)k\) blocks long/.exec(resize.stdout + resize.stderr);
  if (!m) benchFail('BENCH_BAD_OUTPUT', `read the new size of ${img}`, 'resize2fs printed no block count', (resize.stdout + resize.stderr).trim());
  const t0 = performance.now();
  await truncate(img, Number(m[1]) * Number(m[2]) * 1024);
  return {
    steps: { 'e2fsck -fy': fsck.seconds, 'resize2fs -M': resize.seconds, truncate: (performance.now() - t0) / 1000 },
    fsckExit: fsck.code,
  };
}

export interface ImageSize {
  /** Apparent size of the image file. */
  bytes: number;
  /** Bytes allocated on the host (the file may be sparse). */
  diskBytes: number;
}

export async function imageSize(img: string): Promise<ImageSize> {
  const st = await stat(img);
  return { bytes: st.size, diskBytes: st.blocks * 512 };
}
