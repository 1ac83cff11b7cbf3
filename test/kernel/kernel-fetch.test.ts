/**
 * `kernel fetch` against a local HTTP server (these machines cannot reach GitHub or S3): a lock
 * file of our own whose URLs the download base (ROOTFORGE_DOWNLOAD_BASE) points at the server.
 * Idempotent second run (no request at all), corrupted download (typed error, nothing kept),
 * interrupted download (resumed with a Range request in the same run; or failed with the partial
 * kept and resumed by the next run), corrupted archive member, unpinned versions, the CLI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelFetch } from '../../src/kernel/kernel-fetch.js';
import { KernelCache } from '../../src/kernel/kernel-cache.js';
import { loadKernelLock, DEFAULT_LOCK_PATH } from '../../src/kernel/kernel-lock.js';
import { isRootforgeError } from '../../src/errors.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A minimal x86-64 ELF header and 3 MiB of payload: enough for kernelImageInfo and a real transfer. */
function fakeVmlinux(): Buffer {
  const b = Buffer.concat([Buffer.alloc(64), randomBytes(3 << 20)]);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(2, 0x10); // ET_EXEC
  b.writeUInt16LE(62, 0x12); // EM_X86_64
  b.writeUInt32LE(1, 0x14);
  b.writeUInt16LE(64, 0x34); // e_ehsize
  b.writeUInt16LE(56, 0x36); // e_phentsize, e_phnum 0
  return b;
}

function fakeRelease(version: string, fc: Buffer, jailer: Buffer): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'rf-fcrel-'));
  try {
    const rel = `release-v${version}-x86_64`;
    mkdirSync(join(dir, rel));
    writeFileSync(join(dir, rel, `firecracker-v${version}-x86_64`), fc, { mode: 0o755 });
    writeFileSync(join(dir, rel, `jailer-v${version}-x86_64`), jailer, { mode: 0o755 });
    writeFileSync(join(dir, rel, 'SHA256SUMS'), `${sha(fc)}  firecracker-v${version}-x86_64\n`);
    const r = spawnSync('tar', ['-czf', '-', rel], { cwd: dir, maxBuffer: 1 << 28 });
    assert.equal(r.status, 0, r.stderr?.toString());
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Served {
  body: Buffer;
  /** Responses that send half the body and drop the connection. */
  drops: number;
  /** Ignore Range headers (always 200 from byte 0). */
  noRange?: boolean;
}

const files = new Map<string, Served>();
const requests: { path: string; range?: string }[] = [];
let server: http.Server;
let base: string;

before(async () => {
  server = http.createServer((req, res) => {
    const path = req.url ?? '';
    requests.push({ path, ...(req.headers.range !== undefined ? { range: req.headers.range } : {}) });
    const f = files.get(path);
    if (f === undefined) {
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && !f.noRange) {
      start = Number(m[1]);
      if (start >= f.body.length) {
        res.writeHead(416, { 'content-range': `bytes */${f.body.length}` }).end();
        return;
      }
    }
    const body = f.body.subarray(start);
    res.writeHead(start > 0 ? 206 : 200, {
      'content-length': body.length,
      ...(start > 0 ? { 'content-range': `bytes ${start}-${f.body.length - 1}/${f.body.length}` } : {}),
    });
    if (f.drops > 0) {
      f.drops--;
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

const FC = randomBytes(200_000);
const JAILER = randomBytes(100_000);
const TGZ = fakeRelease('9.9.9', FC, JAILER);
const TGZ_OLD = fakeRelease('9.9.8', FC, JAILER);
const VMLINUX = fakeVmlinux();
const VMLINUX_OLD = fakeVmlinux();

function writeLock(dir: string, over: { fcMember?: string } = {}): string {
  const rel = (v: string, tgz: Buffer): object => ({
    x86_64: {
      url: `https://upstream.invalid/fc/v${v}/firecracker-v${v}-x86_64.tgz`,
      sha256: sha(tgz),
      files: {
        firecracker: { member: `release-v${v}-x86_64/firecracker-v${v}-x86_64`, sha256: over.fcMember ?? sha(FC) },
        jailer: { member: `release-v${v}-x86_64/jailer-v${v}-x86_64`, sha256: sha(JAILER) },
      },
    },
  });
  const lock = {
    schema: 1,
    firecracker: { default: '9.9.9', versions: { '9.9.9': rel('9.9.9', TGZ), '9.9.8': rel('9.9.8', TGZ_OLD) } },
    kernels: {
      default: '6.6.6',
      versions: {
        '6.6.6': { x86_64: { url: 'https://upstream.invalid/ci/x86_64/vmlinux-6.6.6', sha256: sha(VMLINUX), size: VMLINUX.length } },
        '6.6.5': { x86_64: { url: 'https://upstream.invalid/ci/x86_64/vmlinux-6.6.5', sha256: sha(VMLINUX_OLD) } },
      },
    },
  };
  const p = join(dir, 'lock.json');
  writeFileSync(p, JSON.stringify(lock));
  return p;
}

function serve(): void {
  files.clear();
  files.set('/fc/v9.9.9/firecracker-v9.9.9-x86_64.tgz', { body: TGZ, drops: 0 });
  files.set('/fc/v9.9.8/firecracker-v9.9.8-x86_64.tgz', { body: TGZ_OLD, drops: 0 });
  files.set('/ci/x86_64/vmlinux-6.6.6', { body: VMLINUX, drops: 0 });
  files.set('/ci/x86_64/vmlinux-6.6.5', { body: VMLINUX_OLD, drops: 0 });
  requests.length = 0;
}

function setup(): { dir: string; lockPath: string; opts: Parameters<typeof kernelFetch>[0] } {
  serve();
  const dir = mkdtempSync(join(tmpdir(), 'rf-fetch-'));
  const lockPath = writeLock(dir);
  return { dir, lockPath, opts: { cacheDir: join(dir, 'cache'), lockPath, arch: 'x86_64', downloadBase: base, backoffMs: 1 } };
}

/** Everything under the cache's download area (partials, leftovers). */
function downloads(dir: string): string[] {
  const d = join(dir, 'cache', 'kernels', '.downloads');
  return existsSync(d) ? readdirSync(d) : [];
}

test('the shipped kernels.lock.json is valid and pins Firecracker and a CI kernel for both arches', () => {
  const lock = loadKernelLock(DEFAULT_LOCK_PATH);
  for (const arch of ['x86_64', 'aarch64'] as const) {
    assert.ok(lock.firecracker.versions[lock.firecracker.default]![arch]);
    assert.ok(lock.kernels.versions[lock.kernels.default]![arch]);
  }
});

test('fetch downloads, verifies and installs; a second run downloads nothing', async () => {
  const { dir, opts } = setup();
  try {
    const r = await kernelFetch(opts);
    assert.equal(r.firecracker!.fetched, true);
    assert.deepEqual(readFileSync(r.firecracker!.firecracker), FC);
    assert.deepEqual(readFileSync(r.firecracker!.jailer), JAILER);
    assert.equal(statSync(r.firecracker!.firecracker).mode & 0o777, 0o755);
    assert.equal(r.kernel!.fetched, true);
    assert.equal(r.kernel!.entry.name, 'fc-6.6.6-x86_64');
    assert.deepEqual(readFileSync(r.kernel!.entry.vmlinux), VMLINUX);
    assert.equal(r.kernel!.madeDefault, true);
    assert.equal(await new KernelCache(opts!.cacheDir!).getDefault(), 'fc-6.6.6-x86_64');
    assert.deepEqual(downloads(dir), [], 'the tarball and download leftovers are gone');
    assert.equal(requests.length, 2);

    requests.length = 0;
    const again = await kernelFetch(opts);
    assert.equal(again.firecracker!.fetched, false);
    assert.equal(again.kernel!.fetched, false);
    assert.equal(requests.length, 0, 'a correct file is not downloaded again');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupted download is KERNEL_CHECKSUM_MISMATCH and nothing is kept', async () => {
  const { dir, opts } = setup();
  try {
    const bad = Buffer.from(VMLINUX);
    bad[1000] = bad[1000]! ^ 1;
    files.get('/ci/x86_64/vmlinux-6.6.6')!.body = bad;
    await assert.rejects(kernelFetch({ ...opts, firecracker: false }), (e: unknown) => isRootforgeError(e, 'KERNEL_CHECKSUM_MISMATCH') && /nothing was kept/.test((e as Error).message));
    assert.deepEqual(downloads(dir), []);
    assert.equal(await new KernelCache(opts!.cacheDir!).get('fc-6.6.6-x86_64'), undefined);

    const badTgz = Buffer.from(TGZ);
    badTgz[badTgz.length - 20] = badTgz[badTgz.length - 20]! ^ 0xff;
    files.get('/fc/v9.9.9/firecracker-v9.9.9-x86_64.tgz')!.body = badTgz;
    await assert.rejects(kernelFetch({ ...opts, kernel: false }), (e: unknown) => isRootforgeError(e, 'KERNEL_CHECKSUM_MISMATCH'));
    assert.deepEqual(downloads(dir), []);
    assert.equal(existsSync(join(opts!.cacheDir!, 'firecracker', 'v9.9.9-x86_64')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a wrong binary inside a correct archive is KERNEL_CHECKSUM_MISMATCH and nothing is kept', async () => {
  const { dir, opts } = setup();
  try {
    const lockPath = writeLock(dir, { fcMember: 'ab'.repeat(32) });
    await assert.rejects(kernelFetch({ ...opts, lockPath, kernel: false }), (e: unknown) => isRootforgeError(e, 'KERNEL_CHECKSUM_MISMATCH') && /firecracker/.test((e as Error).message));
    assert.deepEqual(downloads(dir), []);
    assert.deepEqual(readdirSync(join(opts!.cacheDir!, 'firecracker')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an interrupted download resumes with a Range request and succeeds', async () => {
  const { dir, opts } = setup();
  try {
    files.get('/ci/x86_64/vmlinux-6.6.6')!.drops = 2;
    const r = await kernelFetch({ ...opts, firecracker: false });
    assert.equal(r.kernel!.fetched, true);
    assert.deepEqual(readFileSync(r.kernel!.entry.vmlinux), VMLINUX);
    const ranges = requests.filter((q) => q.path === '/ci/x86_64/vmlinux-6.6.6').map((q) => q.range);
    // 1st: whole file, dropped at half; 2nd: from there, dropped at half of the rest; 3rd: the rest
    const half = Math.floor(VMLINUX.length / 2);
    assert.deepEqual(ranges, [undefined, `bytes=${half}-`, `bytes=${half + Math.floor((VMLINUX.length - half) / 2)}-`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a download that keeps failing is KERNEL_DOWNLOAD_FAILED with the partial kept; the next run resumes it', async () => {
  const { dir, opts } = setup();
  try {
    // a server that ignores Range and always drops halfway: no attempt makes progress past half
    Object.assign(files.get('/ci/x86_64/vmlinux-6.6.6')!, { drops: 1000, noRange: true });
    await assert.rejects(kernelFetch({ ...opts, firecracker: false, attempts: 2 }), (e: unknown) => isRootforgeError(e, 'KERNEL_DOWNLOAD_FAILED') && /kept in .*\.partial for the next run/.test((e as Error).message));
    const partial = downloads(dir);
    assert.equal(partial.length, 1);
    assert.match(partial[0]!, /\.partial$/);
    const kept = statSync(join(dir, 'cache', 'kernels', '.downloads', partial[0]!)).size;
    assert.ok(kept > 0 && kept < VMLINUX.length, String(kept));

    Object.assign(files.get('/ci/x86_64/vmlinux-6.6.6')!, { drops: 0, noRange: false });
    requests.length = 0;
    const r = await kernelFetch({ ...opts, firecracker: false });
    assert.equal(r.kernel!.fetched, true);
    assert.deepEqual(readFileSync(r.kernel!.entry.vmlinux), VMLINUX);
    assert.deepEqual(requests.map((q) => q.range), [`bytes=${kept}-`], 'the next run asked only for the rest');
    assert.deepEqual(downloads(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('FIRECRACKER_VERSION / KERNEL_VERSION pick other pinned entries; unpinned ones are KERNEL_NOT_PINNED', async () => {
  const { dir, opts } = setup();
  const saved = { fc: process.env['FIRECRACKER_VERSION'], k: process.env['KERNEL_VERSION'] };
  try {
    process.env['FIRECRACKER_VERSION'] = 'v9.9.8';
    process.env['KERNEL_VERSION'] = '6.6.5';
    const r = await kernelFetch(opts);
    assert.equal(r.firecracker!.version, '9.9.8');
    assert.equal(r.kernel!.entry.name, 'fc-6.6.5-x86_64');
    process.env['KERNEL_VERSION'] = '7.0.0';
    await assert.rejects(kernelFetch({ ...opts, firecracker: false }), (e: unknown) => isRootforgeError(e, 'KERNEL_NOT_PINNED') && /6\.6\.6, 6\.6\.5/.test((e as Error).message));
    await assert.rejects(kernelFetch({ ...opts, arch: 'aarch64', firecracker: false, kernelVersion: '6.6.6' }), (e: unknown) => isRootforgeError(e, 'KERNEL_NOT_PINNED'));
    await assert.rejects(kernelFetch({ ...opts, kernel: false, firecrackerVersion: '1.0.0' }), (e: unknown) => isRootforgeError(e, 'KERNEL_NOT_PINNED'));
  } finally {
    if (saved.fc === undefined) delete process.env['FIRECRACKER_VERSION'];
    else process.env['FIRECRACKER_VERSION'] = saved.fc;
    if (saved.k === undefined) delete process.env['KERNEL_VERSION'];
    else process.env['KERNEL_VERSION'] = saved.k;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an invalid lock file is KERNEL_LOCK_INVALID', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-lock-'));
  try {
    const p = join(dir, 'lock.json');
    for (const bad of ['{', '{"schema":2}', JSON.stringify({ schema: 1, firecracker: { default: 'x', versions: {} }, kernels: { default: 'y', versions: {} } })]) {
      writeFileSync(p, bad);
      assert.throws(() => loadKernelLock(p), (e: unknown) => isRootforgeError(e, 'KERNEL_LOCK_INVALID'));
    }
    const lock = JSON.parse(readFileSync(writeLock(dir), 'utf8'));
    lock.kernels.versions['6.6.6'].x86_64.sha256 = 'ABC';
    writeFileSync(p, JSON.stringify(lock));
    assert.throws(() => loadKernelLock(p), (e: unknown) => isRootforgeError(e, 'KERNEL_LOCK_INVALID') && /sha256/.test((e as Error).message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: kernel fetch --json with ROOTFORGE_DOWNLOAD_BASE, then kernel ls', async () => {
  const { dir, lockPath, opts } = setup();
  try {
    const cli = new URL('../../src/cli/kernel.js', import.meta.url).href;
    const run = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', `import { kernelCommand } from ${JSON.stringify(cli)}; process.exitCode = await kernelCommand(JSON.parse(process.argv[1]));`, JSON.stringify(args)], {
          env: { ...process.env, ROOTFORGE_DOWNLOAD_BASE: base },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => (stdout += b));
        child.stderr.on('data', (b: Buffer) => (stderr += b));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const r = await run(['fetch', '--lock', lockPath, '--cache-dir', opts!.cacheDir!, '--arch', 'x86_64', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.firecracker.version, '9.9.9');
    assert.equal(j.kernel.name, 'fc-6.6.6-x86_64');
    const ls = await run(['ls', '--cache-dir', opts!.cacheDir!, '--json']);
    const k = JSON.parse(ls.stdout);
    assert.equal(k.default, 'fc-6.6.6-x86_64');
    assert.deepEqual(k.kernels.map((x: { name: string; default: boolean; size: number }) => [x.name, x.default, x.size]), [['fc-6.6.6-x86_64', true, VMLINUX.length]]);
    const bad = await run(['fetch', '--lock', lockPath, '--cache-dir', opts!.cacheDir!, '--only', 'nothing']);
    // (main.ts turns this UsageError into exit 2; run bare here, it is an uncaught error)
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--only takes firecracker or kernel/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
