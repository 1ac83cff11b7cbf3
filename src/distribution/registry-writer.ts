/**
 * The push half of the OCI distribution API (distribution-spec spec.md, "Push"), beside the
 * pull-only RegistryClient: HEAD a blob, mount it from another repository, upload it (POST an
 * upload session, then PUT the bytes with ?digest=, i.e. a monolithic upload in two requests),
 * PUT a manifest. Requests, credentials, tokens, TLS rules and status errors are the pull
 * client's own (registry-client.ts authorizedRequest / apiBase / failStatus over util/http.ts):
 * try without credentials, answer the 401's challenge, retry.
 *
 * Blobs here are chunks of at most a few hundred KiB, held in memory: a failed upload is simply
 * started again (a new session), which is what makes an interrupted push resumable — the next
 * run finds the chunks already there with HEAD and uploads only the rest.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fail } from '../errors.js';
import { Authenticator } from '../oci/auth.js';
import { apiBase, authorizedRequest, failStatus, headerValue, type RegistryClientOptions, type RegistrySession } from '../oci/registry-client.js';
import { HttpClient, isRetriable, RETRIABLE_STATUS, type HttpRequest, type HttpResponse, type RetryPolicy } from '../util/http.js';
import { registryEndpoint } from '../oci/reference.js';

/** As for pulls; `attempts` defaults to 4 here (an upload is worth one more try). */
export type RegistryWriterOptions = Pick<RegistryClientOptions, 'creds' | 'tlsVerify' | 'dockerConfigDir' | 'timeoutMs' | 'attempts' | 'backoffMs'>;

/** Largest reply body read (tag lists, error details). */
const MAX_REPLY = 1 << 20;

export class RegistryWriter {
  readonly registry: string;
  /** Bytes of request bodies sent (blob and manifest uploads), for reports. */
  bytesSent = 0;
  private readonly endpoint: string;
  private readonly session: RegistrySession;
  private readonly retry: RetryPolicy;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private base: Promise<URL> | undefined;

  constructor(registry: string, options: RegistryWriterOptions = {}) {
    this.registry = registry;
    this.endpoint = registryEndpoint(registry);
    this.attempts = options.attempts ?? 4;
    this.backoffMs = options.backoffMs ?? 250;
    this.retry = { attempts: this.attempts, backoffMs: this.backoffMs };
    const http = new HttpClient({ tlsVerify: options.tlsVerify ?? true, timeoutMs: options.timeoutMs ?? 30_000 });
    const source = { ...(options.creds !== undefined ? { creds: options.creds } : {}), ...(options.dockerConfigDir !== undefined ? { dockerConfigDir: options.dockerConfigDir } : {}) };
    this.session = { registry, http, auth: new Authenticator(registry, source, http, this.retry) };
  }

  close(): void {
    this.session.http.close();
  }

  /** HEAD /v2/<repo>/blobs/<digest>: is the blob in this repository? */
  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const res = await this.call(repo, { method: 'HEAD', url: await this.url(`/v2/${repo}/blobs/${digest}`) });
    if (res.status === 200 || res.status === 404) {
      res.discard();
      return res.status === 200;
    }
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
    const res = await this.call(repo, { method: 'POST', url, headers: { 'content-length': '0' } }, { extraScope: `repository:${from}:pull` });
    if (res.status === 201 || res.status === 202) {
      res.discard();
      return res.status === 201;
    }
    return this.failStatus(res, `mount blob ${digest} from ${from}`, `${this.registry}/${repo}`);
  }

  /** Uploads a blob held in memory: POST a session, PUT the bytes with ?digest=. */
  async uploadBlob(repo: string, digest: string, data: Buffer): Promise<void> {
    const what = `upload blob ${digest}`;
    const name = `${this.registry}/${repo}`;
    for (let attempt = 1; ; attempt++) {
      try {
        const start = await this.call(repo, { method: 'POST', url: await this.url(`/v2/${repo}/blobs/uploads/`), headers: { 'content-length': '0' } });
        if (start.status !== 202) return this.failStatus(start, what, name);
        start.discard();
        const location = headerValue(start.headers['location']);
        if (location === undefined) fail('OCI_REGISTRY_ERROR', what, 'upload session without a Location', name);
        const put = new URL(location, await this.baseUrl());
        put.searchParams.set('digest', digest);
        // One attempt per session: a retry starts a new session (the old one expires by itself).
        const res = await this.call(repo, { method: 'PUT', url: put, headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) }, body: data }, { once: true });
        if (res.status === 201) {
          res.discard();
          return;
        }
        if (RETRIABLE_STATUS.has(res.status) && attempt < this.attempts) {
          res.discard();
          await sleep(this.backoffMs * 2 ** (attempt - 1));
          continue;
        }
        return this.failStatus(res, what, name);
      } catch (e) {
        // A broken connection mid-upload: start a new session.
        if (!isRetriable(e) || attempt >= this.attempts) throw e;
        await sleep(this.backoffMs * 2 ** (attempt - 1));
      }
    }
  }

  /** GET /v2/<repo>/tags/list: the repository's tags ([] when it does not exist yet). */
  async listTags(repo: string, limit = 1000): Promise<string[]> {
    const url = await this.url(`/v2/${repo}/tags/list`);
    url.searchParams.set('n', String(limit));
    const res = await this.call(repo, { method: 'GET', url });
    if (res.status === 404) {
      res.discard();
      return [];
    }
    if (res.status !== 200) return this.failStatus(res, 'list tags', `${this.registry}/${repo}`);
    const body = await res.read(MAX_REPLY);
    try {
      const tags = (JSON.parse(body.toString('utf8')) as { tags?: unknown }).tags;
      return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string').sort() : [];
    } catch (e) {
      return fail('OCI_REGISTRY_ERROR', 'list tags', 'the registry answered with invalid JSON', `${this.registry}/${repo}`, e);
    }
  }

  /** PUT /v2/<repo>/manifests/<reference>; returns the registry's digest for it. */
  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<string | undefined> {
    const url = await this.url(`/v2/${repo}/manifests/${reference}`);
    const res = await this.call(repo, { method: 'PUT', url, headers: { 'content-type': mediaType, 'content-length': String(bytes.length) }, body: bytes });
    if (res.status !== 201 && res.status !== 200) return this.failStatus(res, `push manifest ${reference}`, `${this.registry}/${repo}`);
    res.discard();
    return headerValue(res.headers['docker-content-digest']);
  }

  private async url(path: string): Promise<URL> {
    return new URL(path, await this.baseUrl());
  }

  /** One request authorized for `repository:<repo>:pull,push`; retried unless `once`. */
  private call(repo: string, req: HttpRequest, o: { extraScope?: string; once?: boolean } = {}): Promise<HttpResponse> {
    if (req.body !== undefined) this.bytesSent += req.body.length;
    return authorizedRequest(this.session, req, {
      scope: `repository:${repo}:pull,push`,
      action: `push to ${this.registry}/${repo}`,
      retry: o.once ? { attempts: 1 } : this.retry,
      ...(o.extraScope !== undefined ? { extraScope: o.extraScope } : {}),
    });
  }

  private baseUrl(): Promise<URL> {
    this.base ??= apiBase(this.session.http, this.endpoint);
    return this.base;
  }

  private failStatus(res: HttpResponse, what: string, name: string): Promise<never> {
    return failStatus(res, this.registry, what, name);
  }
}
