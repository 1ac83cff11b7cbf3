/**
 * A client for the OCI distribution API (distribution-spec spec.md, "Pull"): manifests by tag or
 * digest and blobs by digest, with authentication on demand (try anonymously, answer the 401's
 * challenge, retry) and retries of idempotent GETs. Manifests are digest-checked here; blob
 * bodies are checked by whoever stores them (BlobStore.fetch), since they stream.
 *
 * Which scheme: HTTPS for every host; a loopback host (localhost, 127/8, ::1) is tried over
 * HTTPS first and then plain HTTP, as Docker does for its default insecure registries.
 */
import { fail, isRootforgeError } from '../errors.js';
import { Authenticator, parseChallenges, type Credentials } from './auth.js';
import { sha256Digest } from './digest.js';
import { HttpClient, isCertificateError, isLoopback, redact, type HttpRequest, type HttpResponse, type RetryPolicy } from '../util/http.js';
import { registryEndpoint } from './reference.js';
import { MEDIA } from './types.js';

export interface RegistryClientOptions {
  /** Explicit credentials (--creds); otherwise looked up in the Docker config. */
  creds?: Credentials;
  /** Verify TLS certificates. Default true. */
  tlsVerify?: boolean;
  /** Directory holding config.json. Default $DOCKER_CONFIG, else ~/.docker. */
  dockerConfigDir?: string;
  /** Socket idle timeout, ms. Default 30 s. */
  timeoutMs?: number;
  /** Attempts per idempotent request (network errors, 5xx, 429). Default 3. */
  attempts?: number;
  /** Delay before the first retry, doubled each time, ms. Default 250. */
  backoffMs?: number;
  /** Slowest accepted transfer, bytes/s, averaged over `rateWindowMs`; 0: no floor. Default 1024. */
  minBytesPerSecond?: number;
  /** Window of the transfer rate floor, ms. Default 60 s. */
  rateWindowMs?: number;
  /** No request is retried later than this after its first attempt, ms. Default 60 s. */
  retryBudgetMs?: number;
}

export interface FetchedManifest {
  /** sha256 of `bytes`, checked against the reference and Docker-Content-Digest. */
  digest: string;
  /** From the JSON's mediaType, else the Content-Type header. */
  mediaType: string;
  bytes: Buffer;
}

export interface BlobStream {
  body: AsyncIterable<Buffer>;
  /** Where the body starts: the offset asked for, or 0 when the registry ignored the Range. */
  offset: number;
  /** The whole blob's size when the registry said (Content-Length or Content-Range). */
  size?: number;
}

/** Every manifest type we can read, most wanted first. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest];
/** Registries limit manifests to 4 MiB; anything much larger is not a manifest. */
const MANIFEST_MAX = 8 << 20;
const ERROR_BODY_MAX = 64 << 10;
const SCHEMA1 = /^application\/vnd\.docker\.distribution\.manifest\.v1\+(prettyjws|json)$/;

export class RegistryClient {
  /** The registry's name as in references ("docker.io"). */
  readonly registry: string;
  private readonly endpoint: string;
  private readonly http: HttpClient;
  private readonly auth: Authenticator;
  private readonly retry: RetryPolicy;
  private base: Promise<URL> | undefined;

  constructor(registry: string, options: RegistryClientOptions = {}) {
    this.registry = registry;
    this.endpoint = registryEndpoint(registry);
    this.http = new HttpClient({
      tlsVerify: options.tlsVerify ?? true,
      timeoutMs: options.timeoutMs ?? 30_000,
      ...(options.minBytesPerSecond !== undefined ? { minBytesPerSecond: options.minBytesPerSecond } : {}),
      ...(options.rateWindowMs !== undefined ? { rateWindowMs: options.rateWindowMs } : {}),
    });
    this.retry = { attempts: options.attempts ?? 3, backoffMs: options.backoffMs ?? 250, budgetMs: options.retryBudgetMs ?? 60_000 };
    const source = { ...(options.creds !== undefined ? { creds: options.creds } : {}), ...(options.dockerConfigDir !== undefined ? { dockerConfigDir: options.dockerConfigDir } : {}) };
    this.auth = new Authenticator(registry, source, this.http, this.retry);
  }

  /** Closes kept-alive connections; the client is not used afterwards. */
  close(): void {
    this.http.close();
  }

  /**
   * GET /v2/<repo>/manifests/<reference>. The bytes must hash to the reference when it is a
   * digest, and to Docker-Content-Digest when the registry sends one.
   */
  async getManifest(repo: string, reference: string, accept: readonly string[] = MANIFEST_ACCEPT): Promise<FetchedManifest> {
    const name = `${this.registry}/${repo}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
    const what = 'get manifest';
    const res = await this.get(repo, `manifests/${reference}`, { accept: accept.join(', ') });
    if (res.status !== 200) return this.failStatus(res, what, name);
    const bytes = await res.read(MANIFEST_MAX);
    const digest = sha256Digest(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) fail('OCI_DIGEST_MISMATCH', what, `content hashes to ${digest}`, name);
    const claimed = headerValue(res.headers['docker-content-digest']);
    if (claimed !== undefined && claimed.startsWith('sha256:') && claimed !== digest) {
      fail('OCI_DIGEST_MISMATCH', what, `content hashes to ${digest}, registry says ${claimed}`, name);
    }
    const mediaType = jsonMediaType(bytes) ?? headerValue(res.headers['content-type'])?.split(';')[0]?.trim() ?? '';
    if (SCHEMA1.test(mediaType)) fail('OCI_UNSUPPORTED_MEDIA_TYPE', what, `a Docker schema 1 manifest (${mediaType}) is not supported; re-push the image with a current tool`, name);
    return { digest, mediaType, bytes };
  }

  /**
   * GET /v2/<repo>/blobs/<digest> from `offset` (a Range request when > 0). The body is not
   * verified here; BlobStore.fetch verifies the whole blob.
   */
  async blobStream(repo: string, digest: string, offset = 0): Promise<BlobStream> {
    const name = `${this.registry}/${repo}@${digest}`;
    const what = 'get blob';
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const res = await this.get(repo, `blobs/${digest}`, headers);
    if (res.status === 200) {
      const length = Number(headerValue(res.headers['content-length']) ?? NaN);
      return { body: res.body, offset: 0, ...(Number.isSafeInteger(length) ? { size: length } : {}) };
    }
    if (res.status === 206 && offset > 0) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(headerValue(res.headers['content-range']) ?? '');
      if (m === null) {
        res.discard();
        return fail('OCI_REGISTRY_ERROR', what, `partial content without a usable Content-Range (${headerValue(res.headers['content-range']) ?? 'none'})`, name);
      }
      return { body: res.body, offset: Number(m[1]), ...(m[2] !== '*' ? { size: Number(m[2]) } : {}) };
    }
    return this.failStatus(res, what, name);
  }

  /** An authorized GET under /v2/<repo>/, retried on network failures and "try later". */
  private async get(repo: string, path: string, headers: Record<string, string>): Promise<HttpResponse> {
    const url = new URL(`/v2/${repo}/${path}`, await this.baseUrl());
    const session: RegistrySession = { registry: this.registry, http: this.http, auth: this.auth };
    return authorizedRequest(session, { url, headers }, { scope: `repository:${repo}:pull`, action: `pull ${this.registry}/${repo}`, retry: this.retry });
  }

  private baseUrl(): Promise<URL> {
    this.base ??= apiBase(this.http, this.endpoint);
    return this.base;
  }

  private failStatus(res: HttpResponse, what: string, name: string): Promise<never> {
    return failStatus(res, this.registry, what, name);
  }
}

/** What an authorized request needs: the registry's name, a transport, its token cache. */
export interface RegistrySession {
  registry: string;
  http: HttpClient;
  auth: Authenticator;
}

export interface AuthorizedRequestOptions {
  /** Token scope asked for on a 401, e.g. `repository:<repo>:pull`. */
  scope: string;
  /** Said when the credentials are refused: "Cannot <action>: …" ("pull docker.io/x"). */
  action: string;
  /** Retries of transport failures and "try later" statuses; `{ attempts: 1 }` for none. */
  retry: RetryPolicy;
  /** More scope for bearer challenges (a cross-repository mount also needs pull on its source). */
  extraScope?: string;
}

/**
 * One request with the registry's authentication on demand: sent with a cached Authorization if
 * any; on 401 the challenge is answered for `scope` and the request sent again. Used by the
 * pulling RegistryClient and the pushing RegistryWriter.
 */
export async function authorizedRequest(s: RegistrySession, req: HttpRequest, o: AuthorizedRequestOptions): Promise<HttpResponse> {
  const { url } = req;
  const send = (authorization: string | undefined) => s.http.requestWithRetry({ ...req, ...(authorization !== undefined ? { authorization } : {}) }, o.retry);
  const cached = s.auth.cached(o.scope);
  let res = await send(cached);
  if (res.status !== 401) return res;
  // Only the registry's own 401 is answered: a host it redirected us to (object storage, or a
  // hostile registry's accomplice) never gets credentials, and its token is never replayed.
  refuseForeignChallenge(res, url);
  const challenges = parseChallenges(res.headers['www-authenticate']);
  res.discard();
  // A cached token can expire mid-run: the 401 then just means "get a new one".
  if (cached !== undefined) s.auth.forget(o.scope);
  if (challenges.length === 0) fail('OCI_AUTH_FAILED', `${(req.method ?? 'GET').toLowerCase()} ${redact(url)}`, 'the registry answered 401 without a WWW-Authenticate challenge', s.registry);
  if (o.extraScope !== undefined) {
    for (const c of challenges) if (c.scheme === 'bearer') c.params['scope'] = [c.params['scope'] ?? '', o.extraScope].join(' ').trim();
  }
  res = await send(await s.auth.authorize(challenges, o.scope));
  if (res.status === 401) {
    refuseForeignChallenge(res, url);
    const detail = await errorDetail(res);
    fail('OCI_AUTH_FAILED', o.action, `${await s.auth.refusal()}${detail !== '' ? `; the registry said "${detail}"` : ''}`);
  }
  return res;
}

/** A 401 that came from another origin than the registry's (after a redirect) fails typed. */
function refuseForeignChallenge(res: HttpResponse, asked: URL): void {
  if (res.url.origin === asked.origin) return;
  res.discard();
  fail(
    'OCI_AUTH_FAILED',
    `get ${redact(asked)}`,
    `the registry redirected to ${res.url.origin}, which asked for authentication; credentials are only sent to ${asked.origin}`,
    redact(res.url),
  );
}

/**
 * Where the API is: https://host, or for a loopback host whichever of https and http
 * answers GET /v2/ (any status: a 401 there still proves the scheme).
 */
export async function apiBase(http: HttpClient, endpoint: string): Promise<URL> {
  const https = new URL(`https://${endpoint}/`);
  if (!isLoopback(https.hostname)) return https;
  try {
    (await http.request({ url: new URL('/v2/', https) })).discard();
    return https;
  } catch (e) {
    // A certificate that does not verify is a TLS server: say so rather than try HTTP.
    if (!isRootforgeError(e, 'OCI_NETWORK') || isCertificateError(e)) throw e;
    return new URL(`http://${endpoint}/`);
  }
}

/** Turns a non-success status into the error it means (the body is read for its detail). */
export async function failStatus(res: HttpResponse, registry: string, what: string, name: string): Promise<never> {
  const detail = await errorDetail(res);
  const suffix = detail !== '' ? `: ${detail}` : '';
  if (res.status === 404) return fail('OCI_NOT_FOUND', what, `not found${suffix}`, name);
  if (res.status === 403) return fail('OCI_AUTH_FAILED', what, `access denied by ${registry}${suffix}`, name);
  return fail('OCI_REGISTRY_ERROR', what, `registry answered ${res.status}${suffix}`, name);
}

/** "CODE message" from a distribution error body ({"errors":[{code,message,detail}]}), else text. */
export async function errorDetail(res: HttpResponse): Promise<string> {
  const body = (await res.read(ERROR_BODY_MAX).catch((e: unknown) => Buffer.from(`(error body unreadable: ${(e as Error).message})`))).toString('utf8');
  try {
    const json = JSON.parse(body) as { errors?: { code?: unknown; message?: unknown }[] };
    if (Array.isArray(json.errors) && json.errors.length > 0) {
      return json.errors.map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(' ')).join('; ');
    }
  } catch {
    // Not JSON: the registry (or a proxy in front of it) sent text or HTML; show its start.
  }
  return body.replace(/\s+/g, ' ').trim().slice(0, 200);
}

function jsonMediaType(bytes: Buffer): string | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; schemaVersion?: unknown };
    if (doc.schemaVersion === 1) return 'application/vnd.docker.distribution.manifest.v1+json';
    return typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  } catch {
    // Invalid JSON is reported by the manifest parser with its own message.
    return undefined;
  }
}

export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
