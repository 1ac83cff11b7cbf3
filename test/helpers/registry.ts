/**
 * Real registries and real images for tests: Debian's `docker-registry` (distribution 2.8)
 * started on 127.0.0.1 with a free port and a temporary storage directory, images built with
 * `umoci` and pushed with `skopeo`. Every registry started here is stopped by the test's
 * `after` hook, and as a last resort when the process exits.
 *
 *   const reg = await startRegistry(t, { auth: { htpasswd: [{ user: 'u', password: 'p' }] } });
 *   const layout = makeImage(dir, 'v1', [{ 'etc/a': 'x\n' }, { 'b': Buffer.alloc(10) }]);
 *   pushImage(layout, 'v1', `${reg.host}/team/app:v1`, { creds: 'u:p' });
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingTool } from './fixtures.js';

/** Anything with an `after` hook: a TestContext, a SuiteContext, or `{ after }` from node:test. */
export interface AfterHook {
  after(fn: () => Promise<void> | void): void;
}

export interface TokenAuthConfig {
  realm: string;
  service: string;
  issuer: string;
  /** PEM file with the certificate(s) the registry trusts to sign tokens. */
  rootCertBundle: string;
}

export interface RegistryOptions {
  /** htpasswd users (Basic auth), or Docker token auth. Default: open, no auth. */
  auth?: { htpasswd: { user: string; password: string }[] } | { token: TokenAuthConfig };
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
}

export interface RegistryServer {
  /** "127.0.0.1:PORT", as used in references. */
  host: string;
  port: number;
  /** http(s)://127.0.0.1:PORT */
  url: string;
  /** The registry's storage root (docker/registry/v2/... below it). */
  storage: string;
  /** Path of the data file of a blob in storage (to tamper with it). */
  blobData(digest: string): string;
  /** The registry's log so far (for assertion messages). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * An AfterHook for setup done in a module-level `before` (node:test's `after` called inside
 * `before` fires when that hook ends): register `after(() => hook.run())` at top level.
 * Runs cleanups last-in first-out and reports every failure, not just the first.
 */
export function cleanups(): AfterHook & { run(): Promise<void> } {
  const fns: (() => Promise<void> | void)[] = [];
  return {
    after: (fn) => void fns.push(fn),
    async run() {
      const errors: unknown[] = [];
      for (const fn of fns.splice(0).reverse()) {
        try {
          await fn();
        } catch (e) {
          errors.push(e);
        }
      }
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanups failed`);
    },
  };
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) {
    if (child.exitCode === null && child.pid !== undefined) child.kill('SIGKILL');
  }
});

/** Why the registry tests cannot run here, or undefined when they can. */
export function registryToolsMissing(): string | undefined {
  const missing = missingTool('docker-registry', 'skopeo', 'umoci', 'htpasswd', 'openssl');
  if (missing) return missing;
  if (process.getuid?.() !== 0) return 'umoci unpack/repack needs root';
  return undefined;
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startRegistry(t: AfterHook, options: RegistryOptions = {}): Promise<RegistryServer> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-registry-'));
  const storage = join(dir, 'storage');
  mkdirSync(storage);
  // The port can be taken between freePort() and the registry's bind: try a few.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const configPath = join(dir, 'config.yml');
    writeFileSync(configPath, registryConfig(dir, storage, port, options));
    const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let log = '';
    child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const scheme = options.tls ? 'https' : 'http';
    const server: RegistryServer = {
      host: `127.0.0.1:${port}`,
      port,
      url: `${scheme}://127.0.0.1:${port}`,
      storage,
      blobData: (digest) => join(storage, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data'),
      log: () => log,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const killed = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
          if (!killed) {
            child.kill('SIGKILL');
            await exited;
          }
        }
        running.delete(child);
        rmSync(dir, { recursive: true, force: true });
      },
    };
    const up = await waitUntilAnswering(server.url, child, 10_000);
    if (up) {
      t.after(() => server.stop());
      return server;
    }
    await server.stop();
    if (attempt >= 2 || !/address already in use/.test(log)) throw new Error(`docker-registry did not start:\n${log}`);
  }
}

function registryConfig(dir: string, storage: string, port: number, options: RegistryOptions): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    // No storage cache (blobdescriptor): a test that rewrites a blob in storage sees it served.
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: rootforge-test-secret',
  ];
  if (options.tls) lines.push('  tls:', `    certificate: ${options.tls.cert}`, `    key: ${options.tls.key}`);
  const auth = options.auth;
  if (auth && 'htpasswd' in auth) {
    const file = join(dir, 'htpasswd');
    const entries = auth.htpasswd.map(({ user, password }) => run('htpasswd', ['-Bbn', user, password]).trim());
    writeFileSync(file, entries.join('\n') + '\n');
    lines.push('auth:', '  htpasswd:', '    realm: rootforge-test', `    path: ${file}`);
  } else if (auth && 'token' in auth) {
    const tk = auth.token;
    lines.push('auth:', '  token:', `    realm: ${tk.realm}`, `    service: ${tk.service}`, `    issuer: ${tk.issuer}`, `    rootcertbundle: ${tk.rootCertBundle}`);
  }
  return lines.join('\n') + '\n';
}

/** Polls GET /v2/ until any HTTP answer (401 counts), the child exits, or the time is up. */
async function waitUntilAnswering(url: string, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const status = await new Promise<number>((resolve) => {
      const get = url.startsWith('https') ? https.get : http.get;
      const req = get(`${url}/v2/`, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      // Not up yet: that is what the loop waits for, not an error.
      req.on('error', () => resolve(0));
    });
    if (status !== 0) return true;
    await sleep(50);
  }
  return false;
}

/** Runs a tool with an argv array; throws with its stderr when it fails. */
export function run(cmd: string, args: string[], options: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/**
 * run() without blocking the event loop: needed when the tool talks to a server in this
 * process (a token server, a fault proxy). Killed after `timeoutMs` (default 60 s).
 */
export function runAsync(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code ?? signal}):\n${err}${out}`));
    });
  });
}

/** File contents per path (relative to the root); a Buffer or a string. */
export type LayerFiles = Record<string, string | Buffer>;

export interface ImageOptions {
  /** Start from this existing tag's image (its layers kept) instead of an empty one. */
  from?: string;
  /** Written to the config (umoci config --architecture). Default: umoci's (the host's). */
  architecture?: string;
  /** Config Cmd. */
  cmd?: string[];
}

/**
 * Adds image `tag` to the OCI layout at `layout` (created if need be): one layer per entry of
 * `layers`, each adding those files, on top of `options.from`'s layers if given. Returns `layout`.
 */
export function makeImage(layout: string, tag: string, layers: LayerFiles[], options: ImageOptions = {}): string {
  if (!existsSync(join(layout, 'oci-layout'))) run('umoci', ['init', '--layout', layout]);
  if (options.from !== undefined) run('umoci', ['tag', '--image', `${layout}:${options.from}`, tag]);
  else run('umoci', ['new', '--image', `${layout}:${tag}`]);
  const bundle = mkdtempSync(join(tmpdir(), 'rf-bundle-'));
  try {
    for (const files of layers) {
      rmSync(bundle, { recursive: true, force: true });
      run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
      for (const [path, content] of Object.entries(files)) {
        const full = join(bundle, 'rootfs', path);
        mkdirSync(dirname(full), { recursive: true });
        writeFileSync(full, content);
        chmodSync(full, 0o644);
      }
      run('umoci', ['repack', '--image', `${layout}:${tag}`, bundle]);
    }
  } finally {
    rmSync(bundle, { recursive: true, force: true });
  }
  const config = ['config', '--image', `${layout}:${tag}`, '--no-history'];
  if (options.architecture) config.push('--architecture', options.architecture);
  for (const c of options.cmd ?? []) config.push('--config.cmd', c);
  if (config.length > 4) run('umoci', config);
  return layout;
}

interface LayoutIndex {
  schemaVersion: 2;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: { os: string; architecture: string; variant?: string } }[];
}

/**
 * Adds to `layout` an image index tagged `tag` over the images tagged `tags`, each entry's
 * platform read from its config. Push it with `pushImage(..., { all: true })`.
 */
export function makeIndex(layout: string, tag: string, tags: string[]): string {
  const indexPath = join(layout, 'index.json');
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as LayoutIndex;
  const blob = (digest: string) => readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)));
  const manifests = tags.map((t) => {
    const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === t);
    if (!entry) throw new Error(`no tag ${t} in ${layout}`);
    const manifest = JSON.parse(blob(entry.digest).toString()) as { config: { digest: string } };
    const config = JSON.parse(blob(manifest.config.digest).toString()) as { os: string; architecture: string };
    return { mediaType: entry.mediaType, digest: entry.digest, size: entry.size, platform: { os: config.os, architecture: config.architecture } };
  });
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
  const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  index.manifests = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] !== tag);
  index.manifests.push({ mediaType: 'application/vnd.oci.image.index.v1+json', digest, size: bytes.length, annotations: { 'org.opencontainers.image.ref.name': tag } });
  writeFileSync(indexPath, JSON.stringify(index));
  return digest;
}

/** The digest of the manifest (or index) tagged `tag` in an OCI layout. */
export function layoutDigest(layout: string, tag: string): string {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as LayoutIndex;
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no tag ${tag} in ${layout}`);
  return entry.digest;
}

/** The manifest tagged `tag` in an OCI layout, parsed. */
export function layoutManifest(layout: string, tag: string): { config: { digest: string; size: number }; layers: { digest: string; size: number }[] } {
  return JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', layoutDigest(layout, tag).slice(7)), 'utf8')) as ReturnType<typeof layoutManifest>;
}

export interface PushOptions {
  /** USER:PASSWORD for the destination. */
  creds?: string;
  /** Copy an index with every image in it (skopeo --all). */
  all?: boolean;
  /** Default false: test registries are plain HTTP or self-signed. */
  tlsVerify?: boolean;
}

/** skopeo copy oci:LAYOUT:TAG docker://DEST (DEST = "127.0.0.1:PORT/repo:tag"). Blocks the event loop. */
export function pushImage(layout: string, tag: string, dest: string, options: PushOptions = {}): void {
  run('skopeo', skopeoArgs(layout, tag, dest, options));
}

/** pushImage() for when the registry's token server or a proxy runs in this process. */
export async function pushImageAsync(layout: string, tag: string, dest: string, options: PushOptions = {}): Promise<void> {
  await runAsync('skopeo', skopeoArgs(layout, tag, dest, options));
}

function skopeoArgs(layout: string, tag: string, dest: string, options: PushOptions): string[] {
  const args = ['copy', '--insecure-policy', '--quiet'];
  if (options.all) args.push('--all');
  args.push(`--dest-tls-verify=${options.tlsVerify ?? false}`);
  if (options.creds) args.push('--dest-creds', options.creds);
  args.push(`oci:${layout}:${tag}`, `docker://${dest}`);
  return args;
}

/** A self-signed certificate and key made with the openssl CLI (EC P-256 unless `rsa`). */
export function makeCert(dir: string, name: string, options: { rsa?: boolean; san?: string } = {}): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const keyArgs = options.rsa ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  const args = ['req', '-x509', ...keyArgs, '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`];
  if (options.san) args.push('-addext', `subjectAltName=${options.san}`);
  run('openssl', args);
  return { cert, key };
}
