/**
 * The push half of the OCI distribution API (distribution-spec spec.md, "Push"), beside the
 * pull-only RegistryClient: HEAD a blob, mount it from another repository, upload it (POST an
 * upload session, then PUT the bytes with ?digest=, i.e. a monolithic upload in two requests),
 * PUT a manifest. Credentials, tokens, TLS rules and messages come from the same pieces as pulls
 * (auth.ts, http.ts): try without credentials, answer the 401's challenge, retry.
 *
 * Blobs here are chunks of at most a few hundred KiB, held in memory: a failed upload is simply
 * started again (a new session), which is what makes an interrupted push resumable — the next
 * run finds the chunks already there with HEAD and uploads only the rest.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { fail, isRootforgeError, RootforgeError } from '../errors.js';
import { Authenticator, parseChallenges, type Credentials } from '../oci/auth.js';
import { HttpClient, isCertificateError, isLoopback, isRetriable, networkError as transportError, redact, RETRIABLE_STATUS } from '../util/http.js';
import { registryEndpoint } from '../oci/reference.js';

export interface RegistryWriterOptions {
  creds?: Credentials;
  tlsVerify?: boolean;
  dockerConfigDir?: string;
  /** Socket idle timeout, ms. Default 30 s. */
  timeoutMs?: number;
  /** Attempts per request on network errors and 5xx/429. Default 4. */
  attempts?: number;
  /** First retry delay, ms, doubled each time. Default 250. */
  backoffMs?: number;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface Req {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  url: URL;
  headers?: Record<string, string>;
  body?: Buffer;
}

const MAX_REPLY = 1 << 20;

export class RegistryWriter {
  readonly registry: string;
  /** Bytes of request bodies sent (blob and manifest uploads), for reports. */
  bytesSent = 0;
  private readonly endpoint: string;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly tokenHttp: HttpClient;
  private readonly auth: Authenticator;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private base: Promise<URL> | undefined;

  constructor(registry: string, options: RegistryWriterOptions = {}) {
    this.registry = registry;
    this.endpoint = registryEndpoint(registry);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.attempts = options.attempts ?? 4;
    this.backoffMs = options.backoffMs ?? 250;
    const tlsVerify = options.tlsVerify ?? true;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: tlsVerify });
    this.tokenHttp = new HttpClient({ tlsVerify, timeoutMs: this.timeoutMs });
    const source = { ...(options.creds !== undefined ? { creds: options.creds } : {}), ...(options.dockerConfigDir !== undefined ? { dockerConfigDir: options.dockerConfigDir } : {}) };
    this.auth = new Authenticator(registry, source, this.tokenHttp, { attempts: this.attempts, backoffMs: this.backoffMs });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.tokenHttp.close();
  }

  /** HEAD /v2/<repo>/blobs/<digest>: is the blob in this repository? */
  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const res = await this.call(repo, { method: 'HEAD', url: await this.url(`/v2/${repo}/blobs/${digest}`) }, 'pull,push');
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return this.failStatus(res, `check blob ${digest}`, `${this.registry}/${repo}`);
  }

  /**
   * POST ?mount=<digest>&from=<repo>: true when the registry linked the blob (201). Registries
   * that do not allow it answer 202 with an upload session, which is cancelled here (the caller
   * uploads instead).
   */
  async mountBlob(repo: string, digest: string, from: string): Promise<boolean> {
    const url = await this.url(`/v2/${repo}/blobs/uploads/`);
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', from);
    const res = await this.call(repo, { method: 'POST', url, headers: { 'content-length': '0' } }, 'pull,push', from);
    if (res.status === 201) return true;
    if (res.status === 202) return false;
    return this.failStatus(res, `mount blob ${digest} from ${from}`, `${this.registry}/${repo}`);
  }

  /** Uploads a blob held in memory: POST a session, PUT the bytes with ?digest=. */
  async uploadBlob(repo: string, digest: string, data: Buffer): Promise<void> {
    const what = `upload blob ${digest}`;
    const name = `${this.registry}/${repo}`;
    for (let attempt = 1; ; attempt++) {
      try {
        const start = await this.call(repo, { method: 'POST', url: await this.url(`/v2/${repo}/blobs/uploads/`), headers: { 'content-length': '0' } }, 'pull,push');
        if (start.status !== 202) return this.failStatus(start, what, name);
        const location = header(start.headers['location']);
        if (location === undefined) fail('OCI_REGISTRY_ERROR', what, 'upload session without a Location', name);
        const put = new URL(location, await this.baseUrl());
        put.searchParams.set('digest', digest);
        const res = await this.call(repo, { method: 'PUT', url: put, headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) }, body: data }, 'pull,push', undefined, false);
        if (res.status === 201) return;
        if (RETRIABLE_STATUS.has(res.status) && attempt < this.attempts) {
          await sleep(this.backoffMs * 2 ** (attempt - 1));
          continue;
        }
        return this.failStatus(res, what, name);
      } catch (e) {
        // A broken connection mid-upload: start a new session (the old one expires by itself).
        if (!isRetriable(e) || attempt >= this.attempts) throw e;
        await sleep(this.backoffMs * 2 ** (attempt - 1));
      }
    }
  }

  /** GET /v2/<repo>/tags/list: the repository's tags ([] when it does not exist yet). */
  async listTags(repo: string, limit = 1000): Promise<string[]> {
    const url = await this.url(`/v2/${repo}/tags/list`);
    url.searchParams.set('n', String(limit));
    const res = await this.call(repo, { method: 'GET', url }, 'pull,push');
    if (res.status === 404) return [];
    if (res.status !== 200) return this.failStatus(res, 'list tags', `${this.registry}/${repo}`);
    try {
      const tags = (JSON.parse(res.body.toString('utf8')) as { tags?: unknown }).tags;
      return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string').sort() : [];
    } catch (e) {
      return fail('OCI_REGISTRY_ERROR', 'list tags', 'the registry answered with invalid JSON', `${this.registry}/${repo}`, e);
    }
  }

  /** PUT /v2/<repo>/manifests/<reference>; returns the registry's digest for it. */
  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<string | undefined> {
    const url = await this.url(`/v2/${repo}/manifests/${reference}`);
    const res = await this.call(repo, { method: 'PUT', url, headers: { 'content-type': mediaType, 'content-length': String(bytes.length) }, body: bytes }, 'pull,push');
    if (res.status !== 201 && res.status !== 200) return this.failStatus(res, `push manifest ${reference}`, `${this.registry}/${repo}`);
    return header(res.headers['docker-content-digest']);
  }

  private async url(path: string): Promise<URL> {
    return new URL(path, await this.baseUrl());
  }

  /**
   * One authorized request: sent with a cached Authorization if any; on 401 the challenge is
   * answered for `repository:<repo>:<actions>` (plus pull on `from` when mounting) and the request
   * sent again. `retry` repeats it on network errors and "try later" statuses.
   */
  private async call(repo: string, req: Req, actions: string, from?: string, retry = true): Promise<Reply> {
    const scope = `repository:${repo}:${actions}`;
    const cached = this.auth.cached(scope);
    let res = await this.sendWithRetry(req, cached, retry);
    if (res.status !== 401) return res;
    const challenges = parseChallenges(res.headers['www-authenticate']);
    if (cached !== undefined) this.auth.forget(scope);
    if (challenges.length === 0) fail('OCI_AUTH_FAILED', `${req.method} ${redact(req.url)}`, 'the registry answered 401 without a WWW-Authenticate challenge', this.registry);
    if (from !== undefined) {
      for (const c of challenges) if (c.scheme === 'bearer') c.params['scope'] = [c.params['scope'] ?? '', `repository:${from}:pull`].join(' ').trim();
    }
    res = await this.sendWithRetry(req, await this.auth.authorize(challenges, scope), retry);
    if (res.status === 401) {
      const detail = errorDetail(res.body);
      fail('OCI_AUTH_FAILED', `push to ${this.registry}/${repo}`, `${await this.auth.refusal()}${detail !== '' ? `; the registry said "${detail}"` : ''}`);
    }
    return res;
  }

  private async sendWithRetry(req: Req, authorization: string | undefined, retry: boolean): Promise<Reply> {
    const attempts = retry ? this.attempts : 1;
    for (let attempt = 1; ; attempt++) {
      let res: Reply;
      try {
        res = await this.send(req, authorization);
      } catch (e) {
        if (attempt >= attempts || !isRetriable(e)) throw e;
        await sleep(this.backoffMs * 2 ** (attempt - 1));
        continue;
      }
      if (!RETRIABLE_STATUS.has(res.status) || attempt >= attempts) return res;
      await sleep(this.backoffMs * 2 ** (attempt - 1));
    }
  }

  private send(req: Req, authorization: string | undefined): Promise<Reply> {
    const { url } = req;
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
      fail('OCI_REGISTRY_ERROR', 'push', 'plain HTTP is only used for loopback hosts; other hosts must use HTTPS', redact(url));
    }
    const secure = url.protocol === 'https:';
    const headers: Record<string, string> = { 'user-agent': 'rootforge', ...req.headers };
    if (authorization !== undefined) headers['authorization'] = authorization;
    return new Promise<Reply>((resolve, reject) => {
      const r = (secure ? https : http).request(url, { method: req.method, headers, agent: secure ? this.httpsAgent : this.httpAgent, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n <= MAX_REPLY) chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (e) => reject(networkError(url, e)));
      });
      r.on('timeout', () => r.destroy(Object.assign(new Error(`no data for ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      r.on('error', (e) => reject(networkError(url, e)));
      if (req.body !== undefined) {
        this.bytesSent += req.body.length;
        r.end(req.body);
      } else r.end();
    });
  }

  /** https://host, or for a loopback host whichever of https and http answers (as RegistryClient). */
  private baseUrl(): Promise<URL> {
    this.base ??= (async () => {
      const secure = new URL(`https://${this.endpoint}/`);
      if (!isLoopback(secure.hostname)) return secure;
      try {
        await this.send({ method: 'GET', url: new URL('/v2/', secure) }, undefined);
        return secure;
      } catch (e) {
        if (!isRootforgeError(e, 'OCI_NETWORK') || isCertificateError(e)) throw e;
        return new URL(`http://${this.endpoint}/`);
      }
    })();
    return this.base;
  }

  private failStatus(res: Reply, what: string, name: string): never {
    const detail = errorDetail(res.body);
    const suffix = detail !== '' ? `: ${detail}` : '';
    if (res.status === 404) fail('OCI_NOT_FOUND', what, `not found${suffix}`, name);
    if (res.status === 403) fail('OCI_AUTH_FAILED', what, `access denied by ${this.registry}${suffix}`, name);
    return fail('OCI_REGISTRY_ERROR', what, `registry answered ${res.status}${suffix}`, name);
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function errorDetail(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const json = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(json.errors) && json.errors.length > 0) {
      return json.errors.map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(' ')).join('; ');
    }
  } catch {
    // Not JSON (a proxy's HTML page, or an empty HEAD body): show its start below.
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}

function networkError(url: URL, e: unknown): RootforgeError {
  return transportError(`reach ${url.host}`, e, url);
}
