/**
 * Outputs are durable when they appear (src/util/atomic.ts): a big image is fdatasync'ed while
 * it is still being written (so the end does not wait for a gigabyte of writeback), once more
 * before the rename, and its directory is fsync'ed after the rename. Read off the real CLI's
 * system calls with strace: the order is the property, and nothing else shows it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../helpers/cli.js';
import { missingTool, skipOrFail } from '../helpers/fixtures.js';
import { tarEntries } from '../helpers/tar-writer.js';

interface Call {
  name: string;
  path: string;
}

/** strace -y lines → the calls of interest, in order, with the path of their first argument. */
function calls(trace: string): Call[] {
  const out: Call[] = [];
  for (const line of trace.split('\n')) {
    // `[pid N] ` or `N ` prefixes; "<... resumed>" halves carry no arguments: their start counts
    // with -y, AT_FDCWD is shown with its path (`AT_FDCWD</dir>, "…"`): arm64 has no rename(2)
    const m = /\b(fdatasync|fsync|pwritev2?|pwrite64|rename|renameat2?)\((?:\d+<([^>]*)>|AT_FDCWD(?:<[^>]*>)?, "([^"]*)"|"([^"]*)")/.exec(line);
    if (m) out.push({ name: m[1]!, path: m[2] ?? m[3] ?? m[4] ?? '' });
  }
  return out;
}

test('a big image is synced while it is written, again before its rename, and its directory after', (t) => {
  const missing = missingTool('strace');
  if (missing) return skipOrFail(t, missing);
  const dir = mkdtempSync(join(tmpdir(), 'rf-durable-'));
  try {
    const tar = join(dir, 'in.tar');
    // 200 MiB of data: three times the 64 MiB after which a background sync starts
    writeFileSync(tar, tarEntries([{ type: 'dir', path: 'data/' }, { type: 'file', path: 'data/big', content: Buffer.alloc(200 << 20, 'durable ') }]));
    const out = join(dir, 'out.img');
    const tracePath = join(dir, 'trace');
    const r = spawnSync(
      'strace',
      ['-f', '-y', '-qq', '-o', tracePath, '-e', 'trace=fdatasync,fsync,pwritev,pwritev2,pwrite64,rename,renameat,renameat2', process.execPath, BIN, 'convert', `tar:${tar}`, '-o', out, '--quiet'],
      // io_uring would take the file system calls out of strace's sight
      { encoding: 'utf8', env: { ...process.env, UV_USE_IO_URING: '0' } },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.ok(statSync(out).size > 200 << 20);

    const all = calls(readFileSync(tracePath, 'utf8'));
    const isTmp = (c: Call) => c.path.startsWith(join(dir, '.out.img.rootforge-')) && c.path.endsWith('.tmp');
    const writes = all.map((c, i) => ({ c, i })).filter(({ c }) => c.name.startsWith('pwrite') && isTmp(c));
    const syncs = all.map((c, i) => ({ c, i })).filter(({ c }) => c.name === 'fdatasync' && isTmp(c));
    const renameAt = all.findIndex((c) => c.name.startsWith('rename') && isTmp(c));
    assert.ok(writes.length > 10, `${writes.length} writes to the temporary file traced`);
    assert.ok(renameAt > 0, 'the temporary file is renamed into place');
    // how many run while writing depends on the disk's speed (one at a time): at least one does
    assert.ok(syncs.length >= 2, `${syncs.length} fdatasyncs of the temporary file (≥ 1 while writing, 1 at the end)`);
    assert.ok(syncs[0]!.i < writes[writes.length - 1]!.i, 'the first sync started while writing went on');
    assert.ok(syncs[syncs.length - 1]!.i > writes[writes.length - 1]!.i, 'a sync after the last write');
    assert.ok(syncs[syncs.length - 1]!.i < renameAt, '... and before the rename');
    const dirSync = all.findIndex((c, i) => i > renameAt && c.name === 'fsync' && c.path === dir);
    assert.ok(dirSync > renameAt, `the directory is fsync'ed after the rename (${JSON.stringify(all.slice(renameAt))})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
