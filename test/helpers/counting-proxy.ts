/**
 * A pass-through HTTP proxy in front of a real registry that counts what the registry received:
 * request body bytes and requests per method, and blob GETs (to check what a pull fetched). It
 * can also drop the connection of blob GETs a test picks (an interrupted pull).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AfterHook } from './registry.js';

export interface CountingProxy {
  host: string;
  /** Request body bytes forwarded to the registry. */
  received: number;
  /** Request count by method. */
  requests: Record<string, number>;
  /** Paths of blob GETs answered in full. */
  blobGets: string[];
  /** Blob GETs for which this returns true get their connection dropped before any byte. */
  dropBlobGet: (path: string) => boolean;
  reset(): void;
  stop(): Promise<void>;
}

export async function startCountingProxy(t: AfterHook, upstreamPort: number): Promise<CountingProxy> {
  const proxy: CountingProxy = {
    host: '',
    received: 0,
    requests: {},
    blobGets: [],
    dropBlobGet: () => false,
    reset() {
      proxy.received = 0;
      proxy.requests = {};
      proxy.blobGets = [];
    },
    stop: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    const method = req.method ?? '';
    const path = req.url ?? '/';
    proxy.requests[method] = (proxy.requests[method] ?? 0) + 1;
    const isBlobGet = method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(path);
    if (isBlobGet && proxy.dropBlobGet(path)) {
      req.resume();
      res.socket?.destroy();
      return;
    }
    req.on('data', (b: Buffer) => (proxy.received += b.length));
    const upstream = http.request({ host: '127.0.0.1', port: upstreamPort, method, path, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('end', () => {
        if (isBlobGet && up.statusCode === 200) proxy.blobGets.push(path);
      });
    });
    upstream.on('error', (e) => res.destroy(e));
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  proxy.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(proxy.stop);
  return proxy;
}
