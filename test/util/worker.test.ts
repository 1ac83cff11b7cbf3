/**
 * Our worker threads start in any host process: they inherit none of its Node options, many of
 * which Node refuses for a worker. The kernel CLI test found it (a process run as
 * `node --input-type=module -e …` could not decompress a .tar.gz), and so did giving Node's V8
 * options to the CLI (`node --max-old-space-size=… rootforge convert x.tar.gz` failed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { BIN } from '../helpers/cli.js';
import { tarEntries } from '../helpers/tar-writer.js';

test('a .tar.gz decompresses on the worker in a process started with --input-type=module -e', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-worker-'));
  try {
    const data = Buffer.alloc(3 << 20, 'rootforge ');
    const gz = join(dir, 'x.gz');
    writeFileSync(gz, gzipSync(data));
    const mod = new URL('../../src/tar/decompress.js', import.meta.url).href;
    const code = `import { openArchive } from ${JSON.stringify(mod)};
      let n = 0; for await (const c of (await openArchive(process.argv[1])).stream) n += c.length;
      process.stdout.write(String(n));`;
    // gzip data that is not a tar: openArchive only needs the magic
    const r = spawnSync(process.execPath, ['--max-old-space-size=512', '--input-type=module', '-e', code, gz], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, String(data.length));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the CLI converts a .tar.gz when Node is given V8 and process options (a bigger heap, a smaller young generation)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-worker-'));
  try {
    const tgz = join(dir, 'in.tar.gz');
    writeFileSync(tgz, gzipSync(tarEntries([{ type: 'dir', path: 'etc/' }, { type: 'file', path: 'etc/hostname', content: 'worker\n' }])));
    const out = join(dir, 'out.ext4');
    const flags = ['--max-old-space-size=512', '--max-semi-space-size=4', '--stack-size=2000', '--expose-gc', '--title=rootforge-test'];
    const r = spawnSync(process.execPath, [...flags, BIN, 'convert', `tar:${tgz}`, '-o', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const fsck = spawnSync('e2fsck', ['-fn', out], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
    const cat = spawnSync('debugfs', ['-R', 'cat /etc/hostname', out], { encoding: 'utf8' });
    assert.equal(cat.stdout, 'worker\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
