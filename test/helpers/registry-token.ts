/**
 * A Docker token server for tests (distribution docs/spec/auth/token.md): GET /token with
 * `service` and `scope` parameters, optional Basic credentials, answers {token, access_token,
 * expires_in} where the token is a JWT signed ES256 with an `x5c` header carrying a self-signed
 * certificate made with the openssl CLI; the registry trusts it via `rootcertbundle`.
 *
 * Users with a known password get every action they ask for; anonymous requests get a token
 * granting the repository's `anonymous` actions (none by default, as Docker Hub answers for
 * private repositories),
 * or a 401 when `rejectAnonymous` is set. Wrong passwords get a 401.
 */
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCert, type AfterHook, type TokenAuthConfig } from './registry.js';

export interface TokenServerOptions {
  users: Record<string, string>;
  /** Actions granted without credentials, per repository. Default none. */
  anonymous?: Record<string, string[]>;
  /** Answer 401 to requests without credentials instead of an empty token. */
  rejectAnonymous?: boolean;
  /** Token lifetime in seconds, sent as expires_in. Default 300. */
  expiresIn?: number;
}

export interface TokenRequest {
  user: string | undefined;
  scopes: string[];
  service: string | null;
  status: number;
}

export interface TokenServer {
  /** What to put in the registry's `auth: token:` config. */
  auth: TokenAuthConfig;
  /** Every request served, in order. */
  requests: TokenRequest[];
  stop(): Promise<void>;
}

export async function startTokenServer(t: AfterHook, options: TokenServerOptions): Promise<TokenServer> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-token-'));
  const { cert, key } = makeCert(dir, 'rootforge-test-token');
  const privateKey = createPrivateKey(readFileSync(key));
  const x5c = Buffer.from(new X509Certificate(readFileSync(cert)).raw).toString('base64');
  const service = 'rootforge-test-registry';
  const issuer = 'rootforge-test-issuer';
  const requests: TokenRequest[] = [];

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    const scopes = url.searchParams.getAll('scope');
    const user = basicUser(req.headers.authorization);
    const record = (status: number) => requests.push({ user: user?.name, scopes, service: url.searchParams.get('service'), status });
    if (url.pathname !== '/token') {
      record(404);
      res.writeHead(404).end();
      return;
    }
    if ((user !== undefined && options.users[user.name] !== user.password) || (user === undefined && options.rejectAnonymous)) {
      record(401);
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
      return;
    }
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = s.split(':');
      if (type !== 'repository' || !name || actions === undefined) return [];
      const wanted = actions.split(',');
      const granted = user !== undefined ? wanted : wanted.filter((a) => (options.anonymous?.[name] ?? []).includes(a));
      return granted.length > 0 ? [{ type, name, actions: granted }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = options.expiresIn ?? 300;
    const token = jwt(
      { alg: 'ES256', typ: 'JWT', x5c: [x5c] },
      { iss: issuer, sub: user?.name ?? '', aud: service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access },
      privateKey,
    );
    record(200);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;
  const stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  };
  t.after(stop);
  return { auth: { realm: `http://127.0.0.1:${port}/token`, service, issuer, rootCertBundle: cert }, requests, stop };
}

function basicUser(header: string | undefined): { name: string; password: string } | undefined {
  if (header === undefined || !header.startsWith('Basic ')) return undefined;
  const text = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const i = text.indexOf(':');
  return i < 0 ? undefined : { name: text.slice(0, i), password: text.slice(i + 1) };
}

/** A compact JWS: base64url(header).base64url(claims).base64url(r||s) — JOSE wants raw r||s, not DER. */
function jwt(header: object, claims: object, key: ReturnType<typeof createPrivateKey>): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64(header)}.${b64(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}
