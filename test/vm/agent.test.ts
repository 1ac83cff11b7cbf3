/**
 * The client against the real agent binary, run on the host as a service
 * (`rootforge-agent serve --listen unix:...`): no VM, so exec, files, timeouts, signals and
 * disconnects are tested on every machine. Each test uses the shared agent unless it kills or
 * shuts down its own.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Duplex, PassThrough } from 'node:stream';
import { AgentClient, AgentRemoteError, connectFirecrackerVsock } from '../../src/agent-client/agent-client.js';
import { isRootforgeError } from '../../src/errors.js';
import { agentBinary, REPO, startAgent, type RunningAgent } from '../helpers/agent.js';
import { fakeFirecrackerVsock } from '../helpers/agent-fakes.js';

const bin = agentBinary();
const skip = bin.path === null ? bin.why! : false;
const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

let agent: RunningAgent;
let client: AgentClient;

before(async () => {
  if (bin.path === null) return;
  agent = await startAgent(bin.path, {
    image: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'FOO=image', 'BAR=image'], WorkingDir: '/', User: null },
    config: { env: { FROM_AGENT_JSON: 'yes' } },
  });
  client = await agent.connect();
});

after(async () => {
  client?.close();
  await agent?.stop();
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic bytes (xorshift), so a failure reproduces. */
function noise(n: number, seed = 2463534242): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

test('ready: version, not PID 1, guest uptime', { skip }, async () => {
  const info = await client.waitReady({ timeoutMs: 5000, pollMs: 100 });
  assert.equal(info.version, version);
  assert.equal(info.pid1, false);
  assert.equal(info.protocol, 1);
  const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  assert.ok(info.uptimeMs > 0 && Math.abs(info.uptimeMs / 1000 - uptimeS) < 5, `uptime ${info.uptimeMs} ms vs ${uptimeS} s`);
  assert.ok(client.lastReady, 'the greeting (id 0) was recorded too');
});

test('exec /bin/echo', { skip }, async () => {
  const r = await client.exec(['/bin/echo', 'hello', 'world'], { timeoutMs: 10_000 });
  assert.deepEqual([r.code, r.signal, r.timedOut, r.stdout!.toString(), r.stderr!.length], [0, null, false, 'hello world\n', 0]);
  assert.ok(r.pid > 0);
});

test("sh -c 'exit 7' → 7, stdout and stderr kept apart", { skip }, async () => {
  assert.equal((await client.exec(['sh', '-c', 'exit 7'])).code, 7);
  const r = await client.exec(['sh', '-c', 'echo out; echo err >&2; echo out2']);
  assert.equal(r.stdout!.toString(), 'out\nout2\n');
  assert.equal(r.stderr!.toString(), 'err\n');
});

test('20 MB through write_file, exec output and read_file, intact', { skip, timeout: 120_000 }, async () => {
  const data = noise(20_000_000);
  const path = join(agent.dir, 'big.bin');
  await client.writeFile(path, data); // 8 MiB parts: the first replaces, the rest append
  assert.equal(sha(readFileSync(path)), sha(data));
  const chunks: number[] = [];
  const r = await client.exec(['cat', path], { timeoutMs: 60_000 });
  assert.equal(r.code, 0);
  assert.equal(r.stdout!.length, data.length);
  assert.equal(sha(r.stdout!), sha(data));
  // Streaming callbacks see the same bytes in order.
  const h = createHash('sha256');
  const s = await client.exec(['sh', '-c', `cat ${path}; cat ${path} >&2`], {
    onStdout: (c) => (h.update(c), chunks.push(c.length)),
    timeoutMs: 60_000,
  });
  assert.equal(h.digest('hex'), sha(data));
  assert.equal(s.stdout, undefined);
  assert.equal(sha(s.stderr!), sha(data));
  assert.ok(chunks.length > 100, `${chunks.length} chunks`);
  assert.equal(sha(await client.readFile(path)), sha(data));
});

test('stdin round trip through cat (Buffer and Readable)', { skip }, async () => {
  const data = noise(3_000_000, 7);
  const r = await client.exec(['cat'], { stdin: data });
  assert.equal(sha(r.stdout!), sha(data));
  const src = new PassThrough();
  const p = client.exec(['sh', '-c', 'cat; echo done >&2'], { stdin: src });
  src.write('line 1\n');
  setTimeout(() => src.end('line 2\n'), 50);
  const r2 = await p;
  assert.equal(r2.stdout!.toString(), 'line 1\nline 2\n');
  assert.equal(r2.stderr!.toString(), 'done\n');
  assert.equal((await client.exec(['cat'])).stdout!.length, 0, 'no stdin: EOF at once');
});

test('timeout kills the process group and says timedOut', { skip }, async () => {
  const t0 = Date.now();
  const r = await client.exec(['sh', '-c', 'sleep 30 & sleep 30'], { timeoutMs: 500 });
  const ms = Date.now() - t0;
  assert.deepEqual([r.code, r.signal, r.timedOut], [null, 'SIGKILL', true]);
  assert.ok(ms >= 450 && ms < 5000, `${ms} ms`);
});

test('signal a running exec', { skip }, async () => {
  const h = client.startExec(['sleep', '30']);
  const pid = await h.started;
  assert.ok(pid > 0);
  await h.signal('SIGTERM');
  const r = await h.done;
  assert.deepEqual([r.code, r.signal, r.timedOut], [null, 'SIGTERM', false]);
  await assert.rejects(h.signal('SIGKILL'), (e: unknown) => e instanceof AgentRemoteError && e.remoteCode === 'NOT_RUNNING');
});

test('env: image.json Env < agent.json env < request env; clearEnv; cwd', { skip }, async () => {
  const r = await client.exec(['sh', '-c', 'echo "$FOO $BAR $FROM_AGENT_JSON"; pwd; echo "$HOME"'], { env: { BAR: 'request' }, cwd: agent.dir });
  const [vars, cwd, home] = r.stdout!.toString().split('\n');
  assert.deepEqual([vars, cwd], ['image request yes', agent.dir]);
  assert.match(home!, /^\//, 'HOME defaults to the user\'s passwd entry');
  const c = await client.exec(['/usr/bin/env'], { env: { ONLY: '1' }, clearEnv: true });
  assert.equal(c.stdout!.toString(), 'ONLY=1\n');
});

test('write_file/read_file: binary data, modes, append, mkdirs', { skip }, async () => {
  const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x0a, 0x0d, 0x80]);
  const path = join(agent.dir, 'sub', 'dir', 'bin.dat');
  await client.writeFile(path, bytes, { mode: 0o640, mkdirs: true });
  assert.deepEqual(readFileSync(path), bytes);
  assert.equal(statSync(path).mode & 0o7777, 0o640);
  const info = await client.readFileInfo(path);
  assert.deepEqual([info.data, info.mode, info.size], [bytes, 0o640, bytes.length]);
  await client.writeFile(path, 'tail', { append: true });
  assert.equal((await client.readFile(path, { offset: 8 })).toString(), 'tail');
  await client.writeFile(path, 'x'); // replacing keeps the mode
  assert.equal(statSync(path).mode & 0o7777, 0o640);
  await client.writeFile(join(agent.dir, 'exe'), '#!/bin/sh\necho ran\n', { mode: 0o755 });
  assert.equal((await client.exec([join(agent.dir, 'exe')])).stdout!.toString(), 'ran\n');
});

test('errors: missing file, missing program, bad cwd, not a directory', { skip }, async () => {
  const isRemote = (code: string, remote: string) => (e: unknown) =>
    isRootforgeError(e, code as never) && e instanceof AgentRemoteError && e.remoteCode === remote && /^Cannot /.test(e.message);
  await assert.rejects(client.readFile(join(agent.dir, 'missing')), isRemote('AGENT_REMOTE_ERROR', 'ENOENT'));
  await assert.rejects(client.readFile(agent.dir), isRemote('AGENT_REMOTE_ERROR', 'EISDIR'));
  await assert.rejects(client.writeFile(join(agent.dir, 'no', 'parent'), 'x'), isRemote('AGENT_REMOTE_ERROR', 'ENOENT'));
  await assert.rejects(client.exec(['no-such-program-rootforge']), isRemote('AGENT_EXEC_FAILED', 'EXEC_FAILED'));
  await assert.rejects(client.exec(['true'], { cwd: join(agent.dir, 'nope') }), isRemote('AGENT_EXEC_FAILED', 'EXEC_FAILED'));
  // The connection is still fine after errors.
  assert.equal((await client.exec(['true'])).code, 0);
});

test('concurrent execs are multiplexed', { skip }, async () => {
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => client.exec(['sh', '-c', `sleep 0.3; echo ${i}`])));
  assert.deepEqual(rs.map((r) => r.stdout!.toString()), Array.from({ length: 10 }, (_, i) => `${i}\n`));
  assert.ok(Date.now() - t0 < 2500, `${Date.now() - t0} ms for 10 × 0.3 s`);
});

test('agent killed mid-exec → AGENT_DISCONNECTED promptly', { skip }, async () => {
  const own = await startAgent(bin.path!);
  try {
    const c = await own.connect();
    await c.waitReady({ timeoutMs: 5000 });
    const h = c.startExec(['sleep', '30']);
    await h.started;
    const t0 = Date.now();
    own.proc.kill('SIGKILL');
    await assert.rejects(h.done, (e: unknown) => isRootforgeError(e, 'AGENT_DISCONNECTED'));
    assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
    await assert.rejects(c.exec(['true']), (e: unknown) => isRootforgeError(e, 'AGENT_DISCONNECTED'));
  } finally {
    await own.stop();
  }
});

test('shutdown makes a serve-mode agent exit', { skip }, async () => {
  const own = await startAgent(bin.path!);
  try {
    const c = await own.connect();
    await c.waitReady({ timeoutMs: 5000 });
    const h = c.startExec(['sleep', '30']);
    await h.started;
    await c.shutdown({ timeoutMs: 5000 });
    const code = await Promise.race([own.exited, new Promise((r) => setTimeout(() => r('still running'), 8000).unref())]);
    assert.equal(code, 0, own.log());
    // The running exec was stopped (SIGTERM) and reported before the connection closed.
    const r = await h.done.catch((e: unknown) => e);
    assert.ok(isRootforgeError(r, 'AGENT_DISCONNECTED') || (r as { signal?: string }).signal === 'SIGTERM', String(r));
    await c.closed;
  } finally {
    await own.stop();
  }
});

test('through a Firecracker-style vsock relay (CONNECT/OK) to the real agent', { skip }, async () => {
  const uds = join(agent.dir, 'fc-vsock.sock');
  const fc = await fakeFirecrackerVsock(uds, { target: agent.sock, refuseFirst: 1 });
  try {
    const c = new AgentClient(await connectFirecrackerVsock(uds, 1024, { timeoutMs: 5000, retryMs: 20 }));
    const info = await c.waitReady({ timeoutMs: 5000 });
    assert.equal(info.version, version);
    assert.equal((await c.exec(['echo', 'via vsock'])).stdout!.toString(), 'via vsock\n');
    c.close();
  } finally {
    await fc.close();
  }
});

test("--stdio: the client over the agent's stdin/stdout; EOF ends the agent", { skip }, async () => {
  const proc = spawn(bin.path!, ['serve', '--stdio', '--config', '/nonexistent', '--image-config', '/nonexistent'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
  const c = new AgentClient(Duplex.from({ readable: proc.stdout!, writable: proc.stdin! }));
  try {
    await c.waitReady({ timeoutMs: 5000 });
    assert.equal((await c.exec(['sh', '-c', 'echo $PATH'])).stdout!.toString().trim(), '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  } finally {
    c.close();
  }
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 5000).unref())]);
  if (code === 'still running') proc.kill('SIGKILL');
  assert.equal(code, 0);
});
