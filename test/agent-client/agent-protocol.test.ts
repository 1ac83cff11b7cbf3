/**
 * The client's framing and failure handling against scripted peers (no agent binary needed):
 * frames split anywhere, oversized or garbage frames, silent peers (every wait times out), and
 * Firecracker's vsock handshake (OK, refusal, silence).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent-client/agent-client.js';
import { connectFirecrackerVsock, connectUnix } from '../../src/agent-client/agent-connect.js';
import { encodeFrame, FrameDecoder, MAX_FRAME, PROTOCOL_VERSION } from '../../src/agent-client/agent-protocol.js';
import { isRootforgeError } from '../../src/errors.js';
import { closeServer, fakeFirecrackerVsock, listen } from '../helpers/agent-fakes.js';

const work = mkdtempSync(join(tmpdir(), 'rf-agentproto-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
let n = 0;
const sockPath = () => join(work, `s${n++}.sock`);

test('frames split at every byte, and many in one chunk, decode the same', () => {
  const msgs = [{ id: 1, type: 'ready', version: 'v', pid1: false, uptimeMs: 5 }, { id: 2, type: 'stdout', data: 'aGk=' }, { id: 3, type: 'exit', code: 0 }];
  const stream = Buffer.concat(msgs.map((m) => encodeFrame(m)));
  const whole = new FrameDecoder().push(stream);
  assert.deepEqual(whole, msgs);
  const d = new FrameDecoder();
  const got = [];
  for (let i = 0; i < stream.length; i++) got.push(...d.push(stream.subarray(i, i + 1)));
  assert.deepEqual(got, msgs);
  assert.equal(d.pending, 0);
  const partial = new FrameDecoder();
  partial.push(stream.subarray(0, 6));
  assert.equal(partial.pending, 6);
});

test('oversized, non-JSON and id-less frames are AGENT_PROTOCOL', () => {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(MAX_FRAME + 1);
  assert.throws(() => new FrameDecoder().push(header), (e: unknown) => isRootforgeError(e, 'AGENT_PROTOCOL'));
  const raw = (s: string) => {
    const b = Buffer.from(s);
    const h = Buffer.alloc(4);
    h.writeUInt32BE(b.length);
    return Buffer.concat([h, b]);
  };
  for (const body of ['not json', '[1]', '{"type":"x"}', '{"id":"1","type":"x"}']) {
    assert.throws(() => new FrameDecoder().push(raw(body)), (e: unknown) => isRootforgeError(e, 'AGENT_PROTOCOL') && /^Cannot /.test((e as Error).message), body);
  }
});

/** A peer that runs `script` on each connection. */
async function peer(script: (s: Socket) => void) {
  const sockets = new Set<Socket>();
  const path = sockPath();
  const server = await listen(path, (s) => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    script(s);
  });
  return { path, close: () => closeServer(server, sockets) };
}

test('a silent peer: waitReady and requests time out (AGENT_TIMEOUT), no hang', async () => {
  const p = await peer(() => undefined);
  try {
    const c = new AgentClient(await connectUnix(p.path), { requestTimeoutMs: 200, exitGraceMs: 200 });
    const t0 = Date.now();
    await assert.rejects(c.waitReady({ timeoutMs: 300, pollMs: 50 }), (e: unknown) => isRootforgeError(e, 'AGENT_TIMEOUT') && /hello sent/.test((e as Error).message));
    await assert.rejects(c.readFile('/x'), (e: unknown) => isRootforgeError(e, 'AGENT_TIMEOUT'));
    await assert.rejects(c.exec(['true'], { timeoutMs: 100 }), (e: unknown) => isRootforgeError(e, 'AGENT_TIMEOUT'));
    assert.ok(Date.now() - t0 < 3000);
    c.close();
    await assert.rejects(c.exec(['true']), (e: unknown) => isRootforgeError(e, 'AGENT_DISCONNECTED'));
  } finally {
    await p.close();
  }
});

test('a peer sending garbage: pending requests fail with AGENT_PROTOCOL and the connection closes', async () => {
  const p = await peer((s) => s.once('data', () => s.write(Buffer.from([0, 0, 0, 3, 0x7b, 0x7b, 0x7b]))));
  try {
    const c = new AgentClient(await connectUnix(p.path));
    await assert.rejects(c.readFile('/etc/hostname'), (e: unknown) => isRootforgeError(e, 'AGENT_PROTOCOL'));
    await c.closed;
  } finally {
    await p.close();
  }
});

test('a peer that hangs up: everything pending fails with AGENT_DISCONNECTED', async () => {
  const p = await peer((s) => s.once('data', () => setTimeout(() => s.destroy(), 20)));
  try {
    const c = new AgentClient(await connectUnix(p.path));
    const results = await Promise.allSettled([c.exec(['sleep', '9']), c.readFile('/x'), c.waitReady({ timeoutMs: 5000 })]);
    for (const r of results) assert.ok(r.status === 'rejected' && isRootforgeError(r.reason, 'AGENT_DISCONNECTED'), String(r.status === 'rejected' ? r.reason : r.value));
  } finally {
    await p.close();
  }
});

test('Firecracker vsock: CONNECT/OK handshake, bytes after OK are kept, refusals retried', async () => {
  const greeting = encodeFrame({ id: 0, type: 'ready', version: 'fake', protocol: 1, pid1: true, uptimeMs: 1234 });
  const path = sockPath();
  const fc = await fakeFirecrackerVsock(path, { refuseFirst: 2, greeting });
  try {
    const sock = await connectFirecrackerVsock(path, 1024, { timeoutMs: 5000, retryMs: 20 });
    assert.deepEqual(fc.connects, ['CONNECT 1024', 'CONNECT 1024', 'CONNECT 1024']);
    const c = new AgentClient(sock);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(c.lastReady, { version: 'fake', protocol: 1, pid1: true, uptimeMs: 1234 });
    c.close();
  } finally {
    await fc.close();
  }
});

test('Firecracker vsock: a guest never listening → AGENT_CONNECT_FAILED; a silent relay → AGENT_TIMEOUT', async () => {
  const refusing = sockPath();
  const fc = await fakeFirecrackerVsock(refusing, { mode: 'refuse' });
  const silentPath = sockPath();
  const silent = await fakeFirecrackerVsock(silentPath, { mode: 'silent' });
  try {
    await assert.rejects(connectFirecrackerVsock(refusing, 1024, { timeoutMs: 300, retryMs: 50 }), (e: unknown) => isRootforgeError(e, 'AGENT_CONNECT_FAILED') && /attempts/.test((e as Error).message));
    assert.ok(fc.connects.length >= 2);
    await assert.rejects(connectFirecrackerVsock(silentPath, 1024, { timeoutMs: 300 }), (e: unknown) => isRootforgeError(e, 'AGENT_TIMEOUT'));
    await assert.rejects(connectFirecrackerVsock(join(work, 'missing.sock'), 1024, { timeoutMs: 200, retryMs: 50 }), (e: unknown) => isRootforgeError(e, 'AGENT_CONNECT_FAILED'));
  } finally {
    await fc.close();
    await silent.close();
  }
});

test('an agent speaking another protocol version is refused on connect (AGENT_PROTOCOL_MISMATCH)', async () => {
  // Answers every hello with a ready frame of protocol PROTOCOL_VERSION + 1.
  const p = await peer((s) => {
    const dec = new FrameDecoder();
    s.on('data', (d: Buffer) => {
      for (const m of dec.push(d)) {
        if (m.type === 'hello') s.write(encodeFrame({ id: m.id, type: 'ready', version: 'future', protocol: PROTOCOL_VERSION + 1, pid1: false, uptimeMs: 5 }));
      }
    });
  });
  try {
    const c = new AgentClient(await connectUnix(p.path));
    await assert.rejects(c.waitReady({ timeoutMs: 3000, pollMs: 50 }), (e: unknown) => isRootforgeError(e, 'AGENT_PROTOCOL_MISMATCH') && /speaks protocol 2/.test((e as Error).message));
    c.close();
  } finally {
    await p.close();
  }
});
