/**
 * A small programmable OCI registry on 127.0.0.1, for hostile behaviour a real registry will not
 * show on demand (redirects to hosts that ask for credentials, drip-fed bodies, absurd manifests,
 * connections that stall mid-blob). It serves images built in memory — GET /v2/, manifests by tag
 * or digest, blobs with Range — and lets a test take over any request first.
 *
 * Also: in-memory images (gzip layers from tar bytes), OCI layouts on disk, and gzip bombs.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createGzip, gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { cacheDir } from './fixtures.js';
import type { AfterHook } from './registry.js';

export interface Blob {
  digest: string;
  bytes: Buffer;
}

export interface FakeImage {
  manifest: Buffer;
  manifestDigest: string;
  config: Blob;
  layers: Blob[];
}

export function blob(bytes: Buffer): Blob {
  return { digest: sha256(bytes), bytes };
}

export function sha256(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/** An image of gzip layers (given as compressed blobs), OCI media types, linux/amd64 config. */
export function fakeImage(layers: Blob[], extra: { layerDescriptors?: { digest: string; size: number }[] } = {}): FakeImage {
  const config = blob(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } })),
  );
  const descriptors = extra.layerDescriptors ?? layers.map((l) => ({ digest: l.digest, size: l.bytes.length }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
      layers: descriptors.map((d) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...d })),
    }),
  );
  return { manifest, manifestDigest: sha256(manifest), config, layers };
}

export function gzipLayer(tar: Buffer): Blob {
  return blob(gzipSync(tar));
}

/**
 * A gzip'd tar holding one file of `size` zero bytes: a few hundred KiB per GiB, streamed
 * through zlib (never the whole expansion in memory).
 */
export async function gzipBomb(size: number, name = 'zeros'): Promise<Blob> {
  // Compressing a GiB of zeros takes seconds: made once, kept in the test cache.
  const cached = join(cacheDir(), `gzip-bomb-${name}-${size}.tar.gz`);
  if (existsSync(cached)) return blob(readFileSync(cached));
  const made = await makeGzipBomb(size, name);
  const tmp = `${cached}.${process.pid}.tmp`;
  writeFileSync(tmp, made.bytes);
  renameSync(tmp, cached);
  return made;
}

async function makeGzipBomb(size: number, name: string): Promise<Blob> {
  const header = Buffer.alloc(512);
  header.write(name, 0, 'latin1');
  header.write('0000644\0', 100, 'latin1');
  header.write('0000000\0', 108, 'latin1');
  header.write('0000000\0', 116, 'latin1');
  header.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  header.write('00000000000\0', 136, 'latin1');
  header.write('0', 156, 'latin1');
  header.write('ustar\x0000', 257, 'latin1');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const padded = Math.ceil(size / 512) * 512;
  async function* tar(): AsyncGenerator<Buffer> {
    yield header;
    const zeros = Buffer.alloc(1 << 20);
    for (let left = padded; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
    yield Buffer.alloc(1024);
  }
  const chunks: Buffer[] = [];
  for await (const c of Readable.from(tar()).pipe(createGzip({ level: 9 }))) chunks.push(c as Buffer);
  return blob(Buffer.concat(chunks));
}

/** Writes `image` as an OCI layout at `dir` (tag "v1"); returns the blob path of each layer. */
export function writeLayout(dir: string, image: FakeImage): string[] {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (b: Blob) => {
    const p = join(blobs, b.digest.slice(7));
    writeFileSync(p, b.bytes);
    return p;
  };
  put(image.config);
  put({ digest: image.manifestDigest, bytes: image.manifest });
  const paths = image.layers.map(put);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: image.manifestDigest,
          size: image.manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': 'v1' },
        },
      ],
    }),
  );
  return paths;
}

export interface SeenRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

export interface FakeServer {
  port: number;
  host: string;
  requests: SeenRequest[];
}

/** Handles a request itself (true) or leaves it to the registry (false). */
export type Override = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

/** Any HTTP server on 127.0.0.1, stopped after the test. */
export async function serve(t: AfterHook, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<FakeServer> {
  const requests: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = (server.address() as AddressInfo).port;
  return { port, host: `127.0.0.1:${port}`, requests };
}

/** A registry serving `images` ("repo:tag" → image); `override` sees every request first. */
export async function startFakeRegistry(t: AfterHook, images: Record<string, FakeImage>, override?: Override): Promise<FakeServer> {
  const manifests = new Map<string, Buffer>();
  const blobs = new Map<string, Buffer>();
  for (const [name, img] of Object.entries(images)) {
    const [repo, tag] = name.split(':') as [string, string];
    manifests.set(`${repo}/${tag}`, img.manifest);
    manifests.set(`${repo}/${img.manifestDigest}`, img.manifest);
    blobs.set(img.config.digest, img.config.bytes);
    for (const l of img.layers) blobs.set(l.digest, l.bytes);
  }
  return serve(t, (req, res) => {
    if (override?.(req, res)) return;
    const path = req.url ?? '/';
    if (path === '/v2/') {
      res.writeHead(200).end('{}');
      return;
    }
    let m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (m !== null) {
      const body = manifests.get(`${m[1]}/${m[2]}`);
      if (body === undefined) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': sha256(body), 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    m = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path);
    const body = m !== null ? blobs.get(m[2]!) : undefined;
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range !== null) {
      const from = Number(range[1]);
      res.writeHead(206, { 'content-range': `bytes ${from}-${body.length - 1}/${body.length}`, 'content-length': body.length - from });
      res.end(body.subarray(from));
      return;
    }
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
}
