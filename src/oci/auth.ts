/**
 * Registry authentication: where credentials come from, reading a 401's WWW-Authenticate
 * challenge, and turning it into an Authorization header — Basic with the credentials, or a
 * Bearer token from the challenge's realm (Docker's token protocol, docs/spec/auth/token.md in
 * distribution). Tokens are cached per scope for the life of the Authenticator (one pull).
 *
 * Credentials are looked up in order: an explicit user:password (--creds), then the `auths`
 * map of $DOCKER_CONFIG/config.json (~/.docker/config.json). Credential helpers (credsStore,
 * credHelpers) are not run; a failure message says so when one is configured for the registry.
 * Passwords never appear in messages.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { HttpClient, isLoopback, redact, type RetryPolicy } from '../util/http.js';
import { DOCKER_HUB, DOCKER_HUB_API } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface Challenge {
  /** Lowercased: "bearer", "basic". */
  scheme: string;
  params: Record<string, string>;
}

export interface CredentialSource {
  /** Explicit credentials; win over the Docker config. */
  creds?: Credentials;
  /** Directory holding config.json. Default $DOCKER_CONFIG, else ~/.docker. */
  dockerConfigDir?: string;
}

export interface FoundCredentials {
  creds?: Credentials;
  /** Set when config.json names a credential helper for this registry (which we do not run). */
  helper?: string;
}

/** Splits "user:password" (the password may contain ':'). */
export function parseCreds(s: string): Credentials {
  const i = s.indexOf(':');
  if (i <= 0) fail('OPTION_INVALID', 'use --creds', 'expected USER:PASSWORD', i < 0 ? '<no colon>' : '<empty user>');
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}

/** Keys config.json may file a registry's entry under, most specific first. */
function configKeys(registry: string): string[] {
  if (registry === DOCKER_HUB) return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', DOCKER_HUB_API, 'https://registry-1.docker.io'];
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
}

export async function findCredentials(registry: string, source: CredentialSource): Promise<FoundCredentials> {
  if (source.creds !== undefined) return { creds: source.creds };
  const dir = source.dockerConfigDir ?? process.env['DOCKER_CONFIG'] ?? join(homedir(), '.docker');
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return fail('OCI_AUTH_FAILED', 'read registry credentials', (e as NodeJS.ErrnoException).code ?? String(e), path, e);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    return fail('OCI_AUTH_FAILED', 'read registry credentials', 'config.json is not valid JSON', path, e);
  }
  if (!isObject(config)) fail('OCI_AUTH_FAILED', 'read registry credentials', 'config.json is not a JSON object', path);
  const keys = configKeys(registry);
  const auths = isObject(config['auths']) ? config['auths'] : {};
  for (const key of keys) {
    const entry = auths[key];
    if (!isObject(entry)) continue;
    const creds = entryCredentials(entry, key, path);
    if (creds !== undefined) return { creds };
  }
  const helpers = isObject(config['credHelpers']) ? config['credHelpers'] : {};
  for (const key of keys) if (typeof helpers[key] === 'string') return { helper: `docker-credential-${helpers[key]}` };
  if (typeof config['credsStore'] === 'string') return { helper: `docker-credential-${config['credsStore']}` };
  return {};
}

function entryCredentials(entry: Record<string, unknown>, key: string, path: string): Credentials | undefined {
  if (typeof entry['auth'] === 'string' && entry['auth'] !== '') {
    const decoded = Buffer.from(entry['auth'], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i <= 0) fail('OCI_AUTH_FAILED', 'read registry credentials', `the "auth" of "${key}" is not base64 of user:password`, path);
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  if (typeof entry['username'] === 'string' && typeof entry['password'] === 'string') {
    return { username: entry['username'], password: entry['password'] };
  }
  return undefined;
}

/**
 * Parses WWW-Authenticate (RFC 7235): one or more `scheme param=value, ...` challenges,
 * values quoted or not. Unknown schemes are kept; the caller picks.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  const token = /[\w!#$%&'*+.^`|~-]+/y;
  let pos = 0;
  const readToken = (): string => {
    token.lastIndex = pos;
    const m = token.exec(text);
    if (m === null) return '';
    pos = token.lastIndex;
    return m[0];
  };
  const skip = (chars: RegExp): void => {
    while (pos < text.length && chars.test(text[pos]!)) pos++;
  };
  while (pos < text.length) {
    skip(/[\s,]/);
    const name = readToken();
    if (name === '') {
      pos++; // not a token character: step over it rather than loop on it
      continue;
    }
    skip(/\s/);
    if (text[pos] !== '=') {
      out.push({ scheme: name.toLowerCase(), params: {} });
      continue;
    }
    pos++;
    skip(/\s/);
    let value = '';
    if (text[pos] === '"') {
      for (pos++; pos < text.length && text[pos] !== '"'; pos++) value += text[pos] === '\\' ? text[++pos] ?? '' : text[pos];
      pos++;
    } else {
      // Not RFC token syntax, but some servers send realm=https://… unquoted.
      while (pos < text.length && !/[\s,]/.test(text[pos]!)) value += text[pos++];
    }
    const current = out.at(-1);
    if (current !== undefined) current.params[name.toLowerCase()] = value;
  }
  return out;
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Produces Authorization headers for one registry; holds the run's token cache. */
export class Authenticator {
  private readonly tokens = new Map<string, CachedToken>();
  private basic: string | undefined;
  private found: Promise<FoundCredentials> | undefined;

  constructor(
    private readonly registry: string,
    private readonly source: CredentialSource,
    private readonly http: HttpClient,
    private readonly retry: RetryPolicy,
  ) {}

  /** A header already known to work for `scope` (a cached token, or Basic once it worked). */
  cached(scope: string): string | undefined {
    const t = this.tokens.get(scope);
    // A token about to expire is dropped now rather than earning a 401 mid-download.
    if (t !== undefined && t.expiresAt > Date.now() + 5_000) return t.header;
    return this.basic;
  }

  /** Forgets a header the registry just refused (an expired token). */
  forget(scope: string): void {
    this.tokens.delete(scope);
  }

  /** Answers a 401's challenge for `scope`: returns the header to retry with. */
  async authorize(challenges: Challenge[], scope: string): Promise<string> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer !== undefined) return this.bearer(bearer, scope);
    if (challenges.some((c) => c.scheme === 'basic')) {
      const creds = await this.credentials();
      this.basic = basicHeader(creds);
      return this.basic;
    }
    const schemes = challenges.map((c) => c.scheme).join(', ') || 'none';
    return fail('OCI_AUTH_FAILED', `authenticate to ${this.registry}`, 'unsupported authentication scheme', schemes);
  }

  /** Message detail for a refused request: who we were, and what else could have been tried. */
  async refusal(): Promise<string> {
    const found = await this.lookup();
    if (found.creds !== undefined) return `credentials for user "${found.creds.username}" were rejected`;
    if (found.helper !== undefined) return `authentication required; config.json names ${found.helper}, which rootforge does not run; pass --creds USER:PASSWORD`;
    return 'authentication required (or no such repository) and no credentials are configured; pass --creds USER:PASSWORD or docker login';
  }

  private lookup(): Promise<FoundCredentials> {
    this.found ??= findCredentials(this.registry, this.source);
    return this.found;
  }

  private async credentials(): Promise<Credentials> {
    const found = await this.lookup();
    if (found.creds === undefined) fail('OCI_AUTH_FAILED', `authenticate to ${this.registry}`, await this.refusal());
    return found.creds;
  }

  private async bearer(challenge: Challenge, scope: string): Promise<string> {
    const what = `get a token for ${this.registry}`;
    const realm = challenge.params['realm'];
    if (realm === undefined || realm === '') fail('OCI_AUTH_FAILED', what, 'Bearer challenge without a realm', this.registry);
    let url: URL;
    try {
      url = new URL(realm);
    } catch (e) {
      return fail('OCI_AUTH_FAILED', what, 'Bearer realm is not a URL', realm, e);
    }
    const service = challenge.params['service'];
    if (service !== undefined) url.searchParams.set('service', service);
    const scopes = new Set([scope, ...(challenge.params['scope'] ?? '').split(' ').filter((s) => s !== '')]);
    for (const s of scopes) url.searchParams.append('scope', s);

    const { creds } = await this.lookup();
    if (creds !== undefined && url.protocol === 'http:' && !isLoopback(url.hostname)) {
      fail('OCI_AUTH_FAILED', what, 'the token realm is plain HTTP; refusing to send credentials over it', redact(url));
    }
    const res = await this.http.requestWithRetry({ url, ...(creds !== undefined ? { authorization: basicHeader(creds) } : {}) }, this.retry);
    if (res.status === 401 || res.status === 403) {
      res.discard();
      fail('OCI_AUTH_FAILED', what, `the token server answered ${res.status}: ${await this.refusal()}`, redact(url));
    }
    if (res.status !== 200) {
      const body = await res.read(64 << 10);
      fail('OCI_REGISTRY_ERROR', what, `token server answered ${res.status}: ${body.toString('utf8', 0, 200).trim()}`, redact(url));
    }
    let json: unknown;
    try {
      json = JSON.parse((await res.read(1 << 20)).toString('utf8'));
    } catch (e) {
      return fail('OCI_REGISTRY_ERROR', what, 'token server answered with invalid JSON', redact(url), e);
    }
    const token = isObject(json) ? (typeof json['token'] === 'string' ? json['token'] : json['access_token']) : undefined;
    if (typeof token !== 'string' || token === '') fail('OCI_REGISTRY_ERROR', what, 'token server answer has no token', redact(url));
    // The spec's default lifetime is 60 s when expires_in is absent.
    const expiresIn = isObject(json) && typeof json['expires_in'] === 'number' && json['expires_in'] > 0 ? json['expires_in'] : 60;
    const header = `Bearer ${token}`;
    this.tokens.set(scope, { header, expiresAt: Date.now() + expiresIn * 1000 });
    return header;
  }
}

function basicHeader(creds: Credentials): string {
  return 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
