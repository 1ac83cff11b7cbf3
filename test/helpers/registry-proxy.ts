/**
 * A small HTTP reverse proxy for putting faults between a client and a real registry: cut a
 * blob response after N body bytes (the connection dies mid-download), ignore Range requests
 * (the upstream then answers 200 with the whole blob), or slow blob bodies down. It records
 * every request so a test can check, e.g., that a retry asked for `Range: bytes=N-`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AfterHook } from './registry.js';

export interface BlobFault {
  /** Close the connection after sending this many body bytes. */
  cutAfter?: number;
  /** Drop the Range header before forwarding. */
  ignoreRange?: boolean;
  /** Pause this long before each body chunk, ms. */
  delayMs?: number;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  range: string | undefined;
  status: number;
  /** Body bytes passed to the client. */
  sent: number;
  cut: boolean;
}

export interface FaultProxy {
  host: string;
  port: number;
  requests: ProxiedRequest[];
  /**
   * Sets the fault policy: called with each blob GET's path and n, its 0-based count for that
   * path since this call; undefined passes it through. `inject()` with no argument clears it.
   */
  inject(faults?: (path: string, n: number) => BlobFault | undefined): void;
  stop(): Promise<void>;
}

export async function startFaultProxy(t: AfterHook, upstreamPort: number): Promise<FaultProxy> {
  const requests: ProxiedRequest[] = [];
  const blobGets = new Map<string, number>();
  let faults: (path: string, n: number) => BlobFault | undefined = () => undefined;
  const proxy: FaultProxy = {
    host: '',
    port: 0,
    requests,
    inject(f) {
      faults = f ?? (() => undefined);
      blobGets.clear();
    },
    stop: async () => undefined,
  };

  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:[a-f0-9]{64}$/.test(path);
    const n = isBlob ? (blobGets.get(path) ?? 0) : 0;
    if (isBlob) blobGets.set(path, n + 1);
    const fault = isBlob ? faults(path, n) : undefined;
    const headers = { ...req.headers };
    if (fault?.ignoreRange) delete headers.range;
    const entry: ProxiedRequest = { method: req.method ?? '', path, range: req.headers.range, status: 0, sent: 0, cut: false };
    requests.push(entry);
    const upstream = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path, headers }, async (up) => {
      entry.status = up.statusCode ?? 0;
      // The client went away: stop reading upstream (the loop below then ends with an error).
      res.once('close', () => up.destroy());
      res.writeHead(up.statusCode ?? 502, up.headers);
      try {
        for await (const chunk of up) {
          let buf = chunk as Buffer;
          if (fault?.delayMs) await sleep(fault.delayMs);
          if (fault?.cutAfter !== undefined && entry.sent + buf.length >= fault.cutAfter) {
            buf = buf.subarray(0, fault.cutAfter - entry.sent);
            entry.sent += buf.length;
            entry.cut = true;
            // Flush what is allowed through, then drop the connection mid-body.
            res.write(buf, () => res.socket?.destroy());
            up.destroy();
            return;
          }
          entry.sent += buf.length;
          if (!res.write(buf)) {
            await new Promise((resolve) => {
              res.once('drain', resolve);
              res.once('close', resolve);
            });
          }
        }
        res.end();
      } catch (e) {
        res.destroy(e as Error);
      }
    });
    upstream.on('error', (e) => res.destroy(e));
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  proxy.port = (server.address() as AddressInfo).port;
  proxy.host = `127.0.0.1:${proxy.port}`;
  proxy.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(proxy.stop);
  return proxy;
}
