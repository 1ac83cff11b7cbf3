/**
 * Opening a byte stream to a guest agent:
 *
 * - connectUnix: a Unix socket (a local `rootforge-agent serve --listen unix:PATH`, or QEMU's
 *   virtio-serial chardev socket).
 * - connectFirecrackerVsock: Firecracker relays a guest vsock port through a Unix socket on the
 *   host; a connection speaks "CONNECT <port>\n" and gets "OK <host port>\n" back once the guest
 *   accepted. Until the agent listens, Firecracker closes the connection instead, so this
 *   retries until its deadline.
 */
import { createConnection, type Socket } from 'node:net';
import { fail, RootforgeError } from '../errors.js';

export interface ConnectOptions {
  /** Give up after this long, in milliseconds. Default 10000. */
  timeoutMs?: number;
  /** Pause between attempts while the peer is not accepting yet, in milliseconds. Default 100. */
  retryMs?: number;
}

/** Connects to a Unix socket, retrying while it does not exist or refuses. */
export async function connectUnix(path: string, opts: ConnectOptions = {}): Promise<Socket> {
  return withRetries(`connect to agent socket`, path, opts, () => openUnix(path));
}

/** Connects to a guest vsock port through Firecracker's host-side Unix socket. */
export async function connectFirecrackerVsock(udsPath: string, port: number, opts: ConnectOptions = {}): Promise<Socket> {
  if (!Number.isInteger(port) || port < 1 || port > 0xfffffffe) fail('OPTION_INVALID', 'connect to guest vsock', 'port must be an integer from 1 to 4294967294', port);
  return withRetries(`connect to guest vsock port ${port}`, udsPath, opts, async () => {
    const sock = await openUnix(udsPath);
    try {
      await handshake(sock, port);
      return sock;
    } catch (e) {
      sock.destroy();
      throw e;
    }
  });
}

async function withRetries(what: string, path: string, opts: ConnectOptions, attempt: () => Promise<Socket>): Promise<Socket> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const retryMs = opts.retryMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let tries = 1; ; tries++) {
    try {
      return await withDeadline(attempt(), deadline, what, path);
    } catch (e) {
      last = e;
      if (e instanceof RootforgeError && e.code === 'AGENT_TIMEOUT') throw e;
    }
    if (Date.now() + retryMs >= deadline) {
      const reason = last instanceof Error ? last.message : String(last);
      return fail('AGENT_CONNECT_FAILED', what, `no connection after ${tries} attempts in ${timeoutMs} ms, last: ${reason}`, path, last);
    }
    await new Promise((r) => setTimeout(r, retryMs));
  }
}

/** Races an attempt against the overall deadline; a late socket is destroyed, not leaked. */
function withDeadline(p: Promise<Socket>, deadline: number, what: string, path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      p.then((s) => s.destroy(), () => undefined);
      reject(new RootforgeError('AGENT_TIMEOUT', `Cannot ${what}: no answer before the deadline (${path})`));
    }, Math.max(0, deadline - Date.now()));
    p.then(
      (s) => {
        clearTimeout(timer);
        resolve(s);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function openUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    const onError = (e: Error) => {
      sock.destroy();
      reject(e);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

/** Sends CONNECT and reads the reply line; bytes after it go back into the socket. */
function handshake(sock: Socket, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = () => {
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.off('error', onError);
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('closed before OK (is the guest listening on that port?)'));
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > 64) onError(new Error(`reply line too long: ${JSON.stringify(buf.toString('latin1'))}`));
        return;
      }
      cleanup();
      const line = buf.subarray(0, nl).toString('latin1');
      if (!/^OK \d+$/.test(line)) {
        reject(new Error(`unexpected reply ${JSON.stringify(line)}`));
        return;
      }
      sock.pause();
      const rest = buf.subarray(nl + 1);
      if (rest.length > 0) sock.unshift(rest);
      resolve();
    };
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.once('error', onError);
    sock.write(`CONNECT ${port}\n`);
  });
}
