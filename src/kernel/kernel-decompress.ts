/**
 * Decompression for kernel material: bzImage payloads, .deb members, compressed modules.
 *
 *   gzip   node:zlib (in process)
 *   zstd   zstd-napi (in process)
 *   xz     the `xz` CLI (xz-utils), spawned with an argv array, data through pipes; Node has
 *          no xz and Debian packages and kernels use it. lzma (raw .lzma) goes the same way.
 *   lz4    our legacy-format decoder (lz4.ts): the kernel's LZ4 format
 *   bzip2, lzo: recognised and named in the error (no kernel we target uses them)
 */
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { createGunzip, gunzipSync } from 'node:zlib';
import { DecompressStream } from 'zstd-napi';
import { fail, RootforgeError } from '../errors.js';
import { COMPRESSION_LABEL, detectCompression, type Compression } from '../util/compression.js';
import { decompressLz4Legacy } from './lz4.js';

export { detectCompression, type Compression };

/** Decompresses a buffer held in memory. `expectedSize`, when given, is checked. */
export async function decompressBuffer(kind: Compression, data: Uint8Array, what: string, expectedSize?: number): Promise<Buffer> {
  let out: Buffer;
  try {
    switch (kind) {
      case 'none':
        out = Buffer.from(data.buffer, data.byteOffset, data.length);
        break;
      case 'gzip':
        out = gunzipSync(data);
        break;
      case 'lz4':
        out = decompressLz4Legacy(data, expectedSize === undefined ? {} : { expectedSize });
        break;
      case 'zstd':
        out = await collect(unzstd(single(data)));
        break;
      case 'xz':
      case 'lzma':
        out = await collect(unxz(single(data), kind));
        break;
      default:
        return fail('KERNEL_BAD_IMAGE', what, `${COMPRESSION_LABEL[kind]} compression is not supported (gzip, xz, lzma, zstd and lz4 are)`);
    }
  } catch (e) {
    if (e instanceof RootforgeError) throw e;
    return fail('KERNEL_DECOMPRESS_FAILED', what, `${kind}: ${(e as Error).message}`, undefined, e);
  }
  if (expectedSize !== undefined && out.length !== expectedSize) {
    fail('KERNEL_DECOMPRESS_FAILED', what, `${kind} output is ${out.length} bytes where ${expectedSize} were expected`);
  }
  return out;
}

/** Streams `source` through the decompressor for `kind` (gzip, zstd, xz, lzma, none). */
export function decompressStream(kind: Compression, source: AsyncIterable<Buffer>, what: string): AsyncIterable<Buffer> {
  switch (kind) {
    case 'none':
      return source;
    case 'gzip':
      return wrapErrors(Readable.from(source).pipe(createGunzip({ chunkSize: 1 << 20 })), kind, what);
    case 'zstd':
      return wrapErrors(unzstd(source), kind, what);
    case 'xz':
    case 'lzma':
      return unxz(source, kind);
    default:
      return fail('KERNEL_BAD_IMAGE', what, `${COMPRESSION_LABEL[kind]} compression is not supported here (gzip, xz, zstd are)`);
  }
}

async function* wrapErrors(stream: AsyncIterable<unknown>, kind: string, what: string): AsyncGenerator<Buffer> {
  try {
    for await (const c of stream) yield c as Buffer;
  } catch (e) {
    if (e instanceof RootforgeError) throw e;
    fail('KERNEL_DECOMPRESS_FAILED', what, `${kind}: ${(e as Error).message}`, undefined, e);
  }
}

function unzstd(source: AsyncIterable<Uint8Array>): AsyncIterable<Buffer> {
  return Readable.from(source).pipe(new DecompressStream()) as AsyncIterable<Buffer>;
}

/**
 * `xz -dc` (or `--format=lzma`) as a filter: input written with backpressure, output read as
 * it comes. Leaving the loop early kills xz. A non-zero exit is KERNEL_DECOMPRESS_FAILED with
 * xz's own message.
 */
async function* unxz(source: AsyncIterable<Uint8Array>, kind: 'xz' | 'lzma'): AsyncGenerator<Buffer> {
  const args = kind === 'xz' ? ['-dc', '-T1'] : ['--format=lzma', '-dc'];
  const child = spawn('xz', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    if (stderr.length < 4096) stderr += b.toString();
  });
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.on('error', (error) => resolve({ code: null, error }));
    child.on('close', (code) => resolve({ code }));
  });
  let writeError: unknown;
  const feeding = (async () => {
    try {
      for await (const chunk of source) {
        if (!child.stdin.write(chunk)) await drained(child.stdin);
        if (child.stdin.destroyed) break;
      }
    } catch (e) {
      writeError = e;
    } finally {
      child.stdin.end();
    }
  })();
  child.stdin.on('error', () => {
    // EPIPE when xz stops early on bad data: its exit status says why
  });
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    finished = true;
  } finally {
    if (!finished) child.kill('SIGKILL');
    await feeding;
    const r = await exited;
    if (finished) {
      if (writeError !== undefined) throw writeError;
      if (r.error !== undefined) {
        const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
        fail('KERNEL_DECOMPRESS_FAILED', `decompress ${kind}`, missing ? 'the xz program is not installed (apt-get install xz-utils)' : r.error.message, undefined, r.error);
      }
      if (r.code !== 0) fail('KERNEL_DECOMPRESS_FAILED', `decompress ${kind}`, `xz failed: ${stderr.trim() || `exit ${r.code}`}`);
    }
  }
}

/** Resolves on 'drain' or 'close' (xz gone), removing both listeners. */
function drained(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.removeListener('drain', done);
      stream.removeListener('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

async function* single(data: Uint8Array): AsyncGenerator<Buffer> {
  yield Buffer.from(data.buffer, data.byteOffset, data.length);
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

