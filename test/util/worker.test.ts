/**
 * Our worker threads start in any host process: Node options a worker started from a file
 * refuses (`--input-type`, `-e`) are left out of what it inherits. The kernel CLI test found it:
 * a process run as `node --input-type=module -e …` could not decompress a .tar.gz.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { workerExecArgv } from '../../src/util/worker.js';

test('workerExecArgv drops the options a file worker refuses, in both spellings, and keeps the rest', () => {
  assert.deepEqual(workerExecArgv(['--input-type=module', '--max-old-space-size=512', '-e', 'code', '--enable-source-maps']), ['--max-old-space-size=512', '--enable-source-maps']);
  assert.deepEqual(workerExecArgv(['--input-type', 'module', '--eval', 'x', '-p', '--trace-warnings']), ['--trace-warnings']);
  assert.deepEqual(workerExecArgv([]), []);
});

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
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, gz], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, String(data.length));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
