/**
 * convert(): source → tree → ext4 image, in one pass, written atomically.
 */
import { stat } from 'node:fs/promises';
import { fail } from './errors.js';
import { Ext4Writer, type Ext4Options, type ImageSummary } from './ext4/writer.js';
import { ingestDir } from './sources/dir.js';
import { ingestTar } from './sources/tar.js';
import type { IngestContext, Progress, SourceSpec, Warning } from './sources/types.js';
import { FsTree } from './tree/tree.js';
import { writeAtomically } from './util/atomic.js';

export interface ConvertOptions extends Ext4Options {
  /** Map every owner to this uid:gid. Default: keep the source's owners. */
  owner?: { uid: number; gid: number };
  onProgress?: (p: Progress) => void;
  onWarning?: (w: Warning) => void;
}

export interface ConvertResult extends ImageSummary {
  output: string;
  source: SourceSpec;
  warnings: Warning[];
}

const TRANSPORTS = ['tar', 'dir'] as const;

/** Parses "tar:PATH" or "dir:PATH"; a bare path is a directory or an archive by what it is. */
export async function parseSource(spec: string): Promise<SourceSpec> {
  const m = /^([a-z][a-z0-9-]*):(.*)$/s.exec(spec);
  if (m && (TRANSPORTS as readonly string[]).includes(m[1]!)) {
    if (m[2] === '') fail('SOURCE_BAD_SPEC', `use source ${spec}`, 'missing path after the transport', spec);
    return { kind: m[1] as SourceSpec['kind'], path: m[2]! };
  }
  const st = await stat(spec).catch(() => null);
  if (st?.isDirectory()) return { kind: 'dir', path: spec };
  if (st?.isFile()) return { kind: 'tar', path: spec };
  if (m) fail('SOURCE_BAD_SPEC', `use source ${spec}`, `unknown transport "${m[1]}" (known: ${TRANSPORTS.join(', ')})`, spec);
  return fail('SOURCE_NOT_FOUND', `use source ${spec}`, 'no such file or directory', spec);
}

export async function convert(source: string | SourceSpec, output: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const src = typeof source === 'string' ? await parseSource(source) : source;
  const warnings: Warning[] = [];
  const onWarning = (w: Warning) => {
    warnings.push(w);
    options.onWarning?.(w);
  };
  if (src.kind === 'tar' && src.path !== '-') {
    const st = await stat(src.path).catch((e: NodeJS.ErrnoException) =>
      fail('SOURCE_NOT_FOUND', `read archive ${src.path}`, e.code ?? String(e), src.path, e),
    );
    if (!st.isFile()) fail('SOURCE_BAD_SPEC', `read archive ${src.path}`, 'not a regular file', src.path);
  }
  const summary = await writeAtomically(output, async (fh) => {
    const writer = new Ext4Writer(fh, options);
    const defaultTime = { sec: options.timestamp ?? 0, nsec: 0 };
    const tree = new FsTree({ defaultTime, onRelease: (c) => writer.release(c), onWarning });
    const ctx: IngestContext = { tree, writer, owner: options.owner, defaultTime, onProgress: options.onProgress, onWarning };
    const started = performance.now();
    if (src.kind === 'tar') await ingestTar(src.path, ctx);
    else await ingestDir(src.path, ctx);
    const ingestMs = Math.round(performance.now() - started);
    const summary = await writer.finish(tree);
    return { ...summary, timings: { 'read source, stream data': ingestMs, ...summary.timings } };
  });
  return { ...summary, output, source: src, warnings };
}
