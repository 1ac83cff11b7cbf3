/**
 * Stand-ins for the host side of a VMM, for client tests without a VM:
 * - fakeFirecrackerVsock: Firecracker's vsock Unix socket. It answers "CONNECT <port>\n" with
 *   "OK <n>\n" and then relays bytes to `target` (e.g. a real agent's Unix socket), or, per
 *   `mode`, refuses (closes) or stays silent, the two ways a guest that is not listening yet
 *   looks from the host.
 * - fakePeer: a Unix socket server that hands each connection to a script.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface FakeVsock {
  server: Server;
  connects: string[];
  close(): Promise<void>;
}

export function listen(path: string, onConn: (s: Socket) => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(onConn);
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

export function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

export async function fakeFirecrackerVsock(
  path: string,
  opts: { target?: string; mode?: 'relay' | 'refuse' | 'silent'; refuseFirst?: number; greeting?: Buffer },
): Promise<FakeVsock> {
  const connects: string[] = [];
  const sockets = new Set<Socket>();
  let refused = 0;
  const server = await listen(path, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = '';
    const onData = (b: Buffer) => {
      buf += b.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      sock.off('data', onData);
      connects.push(buf.slice(0, nl));
      const mode = opts.mode ?? 'relay';
      if (mode === 'silent') return;
      if (mode === 'refuse' || refused < (opts.refuseFirst ?? 0)) {
        refused++;
        sock.destroy();
        return;
      }
      const reply = Buffer.from('OK 1073741824\n');
      if (opts.target === undefined) {
        sock.write(opts.greeting ? Buffer.concat([reply, opts.greeting]) : reply);
        return;
      }
      const up = createConnection({ path: opts.target });
      sockets.add(up);
      up.on('error', () => sock.destroy());
      up.once('connect', () => {
        sock.write(reply);
        const rest = Buffer.from(buf.slice(nl + 1), 'latin1');
        if (rest.length > 0) up.write(rest);
        sock.pipe(up);
        up.pipe(sock);
      });
      up.on('close', () => sock.destroy());
      sock.on('close', () => up.destroy());
    };
    sock.on('data', onData);
  });
  return { server, connects, close: () => closeServer(server, sockets) };
}
