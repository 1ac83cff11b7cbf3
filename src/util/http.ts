/**
 * The HTTP layer under the registry client, on node:http/node:https rather than global fetch:
 * we need `rejectUnauthorized: false` for --tls-verify=false, bodies streamed to disk, Range
 * requests, and redirects we follow ourselves so Authorization never reaches another host
 * (registries redirect blob GETs to object storage that rejects or logs foreign credentials).
 *
 * Plain HTTP is only for loopback hosts (Docker's convention); a redirect from HTTPS to plain
 * HTTP elsewhere is refused. Transport failures become typed errors, including those that happen
 * while a body is being read, so callers can retry or resume. Which codes depends on the user
 * (`codes`): the registry client keeps the OCI_* codes its callers know (OCI_NETWORK,
 * OCI_TRANSFER_TOO_SLOW); other downloads (kernels, Firecracker) get NET_CONNECT, NET_TIMEOUT and
 * NET_TOO_SLOW, and report an unexpected status as NET_HTTP_STATUS.
 *
 * This is the one HTTP transport: the registry client (src/oci/registry-client.ts, auth.ts), the
 * registry writer (src/distribution/) and kernel downloads (src/kernel/download.ts) all use it.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { cannot, fail, isRootforgeError, RootforgeError } from '../errors.js';

export interface HttpClientOptions {
  /** Verify TLS certificates. Default true. */
  tlsVerify?: boolean;
  /** Socket idle timeout (connecting, waiting for headers, between body chunks), ms. Default 30 s. */
  timeoutMs?: number;
  /** Redirects followed per request. Default 5. */
  maxRedirects?: number;
  /** Sent as User-Agent. */
  userAgent?: string;
  /**
   * The slowest a response body may arrive, bytes/s, averaged over `rateWindowMs` of waiting
   * for it (time the reader spends elsewhere does not count). Slower: OCI_TRANSFER_TOO_SLOW.
   * 0 turns the floor off. Default 1024 (1 KiB/s).
   */
  minBytesPerSecond?: number;
  /** The window the floor is averaged over, ms. Default 60 s. */
  rateWindowMs?: number;
  /**
   * Error codes for transport failures: 'oci' (OCI_NETWORK, OCI_TRANSFER_TOO_SLOW; registry
   * operations) or 'net' (NET_CONNECT, NET_TIMEOUT, NET_TOO_SLOW). Default 'oci'.
   */
  codes?: ErrorCodes;
}

export type ErrorCodes = 'oci' | 'net';

/** True for a transport failure of either code family (worth resuming a download after). */
export function isTransferError(e: unknown): e is RootforgeError {
  return isRootforgeError(e, 'OCI_NETWORK') || isRootforgeError(e, 'NET_CONNECT') || isRootforgeError(e, 'NET_TIMEOUT');
}

/** A floor on body transfer rates (HttpClientOptions.minBytesPerSecond). */
export interface RateFloor {
  bytesPerSecond: number;
  windowMs: number;
}

export interface HttpRequest {
  url: URL;
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT';
  headers?: Record<string, string>;
  /** Request body (POST, PUT), sent whole; a retry sends it again. Redirects are not followed then. */
  body?: Buffer;
  /** The Authorization header, sent to `url`'s origin only, never after a redirect elsewhere. */
  authorization?: string;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The URL that answered, after redirects. */
  url: URL;
  /** The body; transport errors while reading surface as OCI_NETWORK. Read it or discard() it. */
  body: AsyncIterable<Buffer>;
  /** Reads the whole body, failing with `code` when it exceeds `maxBytes`. */
  read(maxBytes: number): Promise<Buffer>;
  /** Drops the body and its connection. */
  discard(): void;
}

export interface RetryPolicy {
  /** Attempts in all, the first included. Default 3. */
  attempts?: number;
  /** Delay before the second attempt, doubled after each, ms. Default 250. */
  backoffMs?: number;
  /** No retry starts later than this after the first attempt, ms. Default 60 s. */
  budgetMs?: number;
}

/** Errors worth another attempt: the network, not the peer's certificate. */
const RETRIABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ECONNABORTED']);
const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/;
/** Statuses that say "try again later" rather than "no". */
export const RETRIABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export class HttpClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;
  private readonly userAgent: string;
  private readonly floor: RateFloor;
  private readonly codes: ErrorCodes;

  constructor(options: HttpClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.floor = { bytesPerSecond: options.minBytesPerSecond ?? 1024, windowMs: options.rateWindowMs ?? 60_000 };
    if (!(this.floor.bytesPerSecond >= 0) || !(this.floor.windowMs > 0)) fail('OPTION_INVALID', 'set the transfer rate floor', 'expected a rate ≥ 0 and a window > 0', `${this.floor.bytesPerSecond} B/s over ${this.floor.windowMs} ms`);
    this.codes = options.codes ?? 'oci';
    this.maxRedirects = options.maxRedirects ?? 5;
    this.userAgent = options.userAgent ?? 'rootforge';
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: options.tlsVerify ?? true });
  }

  /** Closes idle kept-alive connections. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** One request, following redirects. Any HTTP status resolves; transport failures throw OCI_NETWORK (or NET_*). */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const origin = req.url.origin;
    let url = req.url;
    for (let hop = 0; ; hop++) {
      checkScheme(url);
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
      if (req.authorization !== undefined && url.origin === origin) headers['authorization'] = req.authorization;
      const res = await this.once(url, req.method ?? 'GET', headers, req.body);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      const follows = req.method === undefined || req.method === 'GET' || req.method === 'HEAD';
      if (!follows || ![301, 302, 303, 307, 308].includes(status) || location === undefined) return wrap(res, url, this.floor, this.codes);
      res.resume();
      if (hop >= this.maxRedirects) fail('OCI_REGISTRY_ERROR', `get ${redact(req.url)}`, `more than ${this.maxRedirects} redirects`, redact(url));
      url = new URL(location, url);
    }
  }

  /** request() with retries of transport failures and "try later" statuses, for idempotent requests. */
  async requestWithRetry(req: HttpRequest, policy: RetryPolicy = {}): Promise<HttpResponse> {
    const attempts = policy.attempts ?? 3;
    const backoffMs = policy.backoffMs ?? 250;
    // Each attempt against a silent server can take the idle timeout: bound the whole.
    const deadline = performance.now() + (policy.budgetMs ?? 60_000);
    for (let attempt = 1; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.request(req);
      } catch (e) {
        const delay = backoffMs * 2 ** (attempt - 1);
        if (attempt >= attempts || !isRetriable(e) || performance.now() + delay > deadline) throw e;
        await sleep(delay);
        continue;
      }
      const delay = retryAfterMs(res.headers) ?? backoffMs * 2 ** (attempt - 1);
      if (!RETRIABLE_STATUS.has(res.status) || attempt >= attempts || performance.now() + delay > deadline) return res;
      res.discard();
      await sleep(delay);
    }
  }

  private once(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined): Promise<IncomingMessage> {
    const secure = url.protocol === 'https:';
    const options: https.RequestOptions = { method, headers, agent: secure ? this.httpsAgent : this.httpAgent, timeout: this.timeoutMs };
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, options, resolve);
      req.on('timeout', () => {
        const e = Object.assign(new Error(`no data for ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' });
        req.destroy(e);
      });
      req.on('error', (e) => reject(networkError(`reach ${url.host}`, e, url, this.codes)));
      req.end(body);
    });
  }
}

/** True for loopback names and addresses, the only hosts plain HTTP is used for. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1' || h === '0:0:0:0:0:0:0:1';
}

/** A TLS certificate that did not verify (as opposed to a connection or protocol failure). */
export function isCertificateError(e: unknown): boolean {
  const code = ((e as { cause?: NodeJS.ErrnoException }).cause?.code) ?? '';
  return CERT_ERROR.test(code);
}

export function isRetriable(e: unknown): boolean {
  if (!isTransferError(e)) return false;
  const code = (e.cause as NodeJS.ErrnoException | undefined)?.code;
  return code === undefined || RETRIABLE_ERRNO.has(code);
}

/** A URL for messages: no credentials or query (signed storage URLs carry secrets there). */
export function redact(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function checkScheme(url: URL): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && isLoopback(url.hostname)) return;
  fail('OCI_REGISTRY_ERROR', 'follow registry URL', 'plain HTTP is only used for loopback hosts; other hosts must use HTTPS', redact(url));
}

function wrap(res: IncomingMessage, url: URL, floor: RateFloor, codes: ErrorCodes): HttpResponse {
  const what = `download from ${url.host}`;
  async function* body(): AsyncGenerator<Buffer> {
    // The rate is measured over time spent waiting for the server only, so a slow reader (or a
    // paused one) is never blamed on the server.
    let waited = 0;
    let bytes = 0;
    try {
      const it = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      for (;;) {
        const t0 = performance.now();
        let r: IteratorResult<Buffer>;
        try {
          r = await it.next();
        } catch (e) {
          throw networkError(what, e, url, codes);
        }
        if (r.done) return;
        waited += performance.now() - t0;
        bytes += r.value.length;
        if (floor.bytesPerSecond > 0 && waited >= floor.windowMs) {
          if (bytes < (floor.bytesPerSecond * waited) / 1000) {
            fail(codes === 'net' ? 'NET_TOO_SLOW' : 'OCI_TRANSFER_TOO_SLOW', what, `${bytes} bytes in ${(waited / 1000).toFixed(1)} s, below the floor of ${floor.bytesPerSecond} bytes/s (see --min-rate)`, redact(url));
          }
          waited = 0;
          bytes = 0;
        }
        yield r.value;
      }
    } finally {
      // Stopped early (an error downstream): the rest of the body is not wanted, free the socket.
      if (!res.complete) res.destroy();
    }
  }
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    url,
    body: body(),
    async read(maxBytes: number): Promise<Buffer> {
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const chunk of body()) {
        n += chunk.length;
        if (n > maxBytes) {
          res.destroy();
          fail('OCI_REGISTRY_ERROR', what, `response larger than ${maxBytes} bytes`, redact(url));
        }
        chunks.push(chunk);
      }
      return Buffer.concat(chunks);
    },
    discard(): void {
      if (!res.complete) res.destroy();
      else res.resume();
    },
  };
}

/**
 * A transport failure as a typed error: "Cannot reach host: connect ECONNREFUSED 127.0.0.1:5000
 * (http://…)". Also used by the registry writer's upload requests (src/distribution/).
 */
export function networkError(what: string, e: unknown, url: URL, codes: ErrorCodes = 'oci'): RootforgeError {
  if (e instanceof RootforgeError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err.code ?? '';
  let reason = code !== '' && !err.message.includes(code) ? `${err.message} [${code}]` : err.message;
  if (CERT_ERROR.test(code)) reason += '; use --tls-verify=false to accept this certificate';
  const typed = codes === 'oci' ? 'OCI_NETWORK' : code === 'ETIMEDOUT' ? 'NET_TIMEOUT' : 'NET_CONNECT';
  return new RootforgeError(typed, cannot(what, reason, redact(url)), { cause: e });
}

function retryAfterMs(headers: IncomingHttpHeaders): number | undefined {
  const v = headers['retry-after'];
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  // Bounded: a registry asking for minutes is better answered by failing now.
  return Math.min(Number(v) * 1000, 10_000);
}
