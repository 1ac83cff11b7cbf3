/**
 * The shared HTTP transport (src/util/http.ts) with the NET_* codes kernel downloads use, against
 * real servers on 127.0.0.1: refused, silent, too slow, and an error status through
 * downloadVerified (src/kernel/download.ts). The registry's OCI_* codes are tested in test/oci/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpClient, isRetriable, isTransferError } from '../../src/util/http.js';
import { downloadVerified } from '../../src/kernel/download.js';
import { isRootforgeError } from '../../src/errors.js';

async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}` };
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
}

test('nothing listening: NET_CONNECT (retriable); with registry codes the same failure is OCI_NETWORK', async () => {
  const { server, url } = await serve(() => undefined);
  await stop(server); // the port is now closed
  const net = new HttpClient({ codes: 'net' });
  const oci = new HttpClient();
  try {
    await assert.rejects(net.request({ url: new URL(url) }), (e: unknown) => isRootforgeError(e, 'NET_CONNECT') && /ECONNREFUSED/.test((e as Error).message) && isRetriable(e) && isTransferError(e));
    await assert.rejects(oci.request({ url: new URL(url) }), (e: unknown) => isRootforgeError(e, 'OCI_NETWORK') && isRetriable(e));
  } finally {
    net.close();
    oci.close();
  }
});

test('a server that never answers: NET_TIMEOUT after the idle timeout', async (t) => {
  const { server, url } = await serve(() => undefined); // accepts, never responds
  t.after(() => stop(server));
  const http = new HttpClient({ codes: 'net', timeoutMs: 300 });
  t.after(() => http.close());
  await assert.rejects(http.request({ url: new URL(url) }), (e: unknown) => isRootforgeError(e, 'NET_TIMEOUT') && /ETIMEDOUT/.test((e as Error).message));
});

test('a body dripping below the rate floor: NET_TOO_SLOW', { timeout: 20_000 }, async (t) => {
  const timers = new Set<NodeJS.Timeout>();
  const { server, url } = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': '100000' });
    const tick = setInterval(() => res.write('x'), 50);
    timers.add(tick);
    res.on('close', () => clearInterval(tick));
  });
  t.after(async () => {
    for (const x of timers) clearInterval(x);
    await stop(server);
  });
  const http = new HttpClient({ codes: 'net', minBytesPerSecond: 1000, rateWindowMs: 500 });
  t.after(() => http.close());
  const res = await http.request({ url: new URL(url) });
  await assert.rejects(res.read(1 << 20), (e: unknown) => isRootforgeError(e, 'NET_TOO_SLOW') && !isTransferError(e));
});

test('a kernel download answered 404 is NET_HTTP_STATUS and no file appears at its destination', async (t) => {
  const { server, url } = await serve((_req, res) => {
    res.writeHead(404);
    res.end('no');
  });
  t.after(() => stop(server));
  const dir = mkdtempSync(join(tmpdir(), 'rf-net-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dest = join(dir, 'vmlinux');
  await assert.rejects(
    downloadVerified({ url: new URL(`${url}/vmlinux`), dest, sha256: 'a'.repeat(64), backoffMs: 1 }),
    (e: unknown) => isRootforgeError(e, 'NET_HTTP_STATUS') && /HTTP 404/.test((e as Error).message),
  );
  assert.equal(existsSync(dest), false);
});
