/**
 * A tar archive and an image layer take an entry's attributes and its strip decision from one
 * function (src/sources/entry.ts): both leave out a hard link to a stripped path, and both say so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ext4Writer } from '../../src/ext4/writer.js';
import { LayerMerger } from '../../src/oci/merge.js';
import type { Layer } from '../../src/oci/types.js';
import { ingestTar } from '../../src/sources/tar.js';
import type { IngestContext, Warning } from '../../src/sources/types.js';
import { FsTree } from '../../src/tree/tree.js';
import { tarEntries } from '../helpers/tar-writer.js';

const ARCHIVE = tarEntries([
  { path: 'usr/share/doc/a/README', content: 'docs\n' },
  { path: 'usr/bin/tool', content: 'tool\n', uid: 7, gid: 8 },
  { path: 'usr/bin/readme-link', type: 'hardlink', linkname: 'usr/share/doc/a/README' },
  { path: 'usr/share/doc/.wh.gone', content: '' },
]);

async function ingest(kind: 'tar' | 'layer', dir: string): Promise<{ tree: FsTree; warnings: Warning[] }> {
  const fh = await open(join(dir, `${kind}.img`), 'w+');
  try {
    const writer = new Ext4Writer(fh);
    const warnings: Warning[] = [];
    const tree = new FsTree({ onRelease: (c) => writer.release(c) });
    const ctx: IngestContext = {
      tree,
      writer,
      defaultTime: { sec: 0, nsec: 0 },
      owner: { uid: 0, gid: 0 },
      exclude: (p) => p.startsWith('usr/share/doc/'),
      onWarning: (w) => warnings.push(w),
    };
    if (kind === 'tar') {
      const path = join(dir, 'in.tar');
      writeFileSync(path, ARCHIVE);
      await ingestTar(path, ctx);
    } else {
      const layer: Layer = {
        descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${'0'.repeat(64)}`, size: ARCHIVE.length },
        open: async () => (async function* () { yield ARCHIVE; })(),
      };
      await new LayerMerger(ctx).apply([layer]);
    }
    await writer.finish(tree);
    return { tree, warnings };
  } finally {
    await fh.close();
  }
}

test('tar and layer sources leave out a hard link to a stripped path, with STRIP_LINK_DROPPED', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-entry-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const kind of ['tar', 'layer'] as const) {
    const { tree, warnings } = await ingest(kind, dir);
    assert.equal(tree.get('usr/share/doc/a/README'), undefined, `${kind}: stripped file kept`);
    assert.equal(tree.get('usr/bin/readme-link'), undefined, `${kind}: link to a stripped file kept`);
    const tool = tree.get('usr/bin/tool');
    assert.ok(tool, `${kind}: kept file missing`);
    assert.deepEqual([tool.uid, tool.gid], [0, 0], `${kind}: owner not mapped`);
    const dropped = warnings.filter((w) => w.code === 'STRIP_LINK_DROPPED');
    assert.equal(dropped.length, 1, `${kind}: warnings ${JSON.stringify(warnings)}`);
    assert.match(dropped[0]!.message, /usr\/bin\/readme-link/);
  }
});
