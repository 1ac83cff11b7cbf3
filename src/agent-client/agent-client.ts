/**
 * AgentClient talks to a rootforge guest agent over any duplex byte stream: a Unix socket
 * (local agent, QEMU virtio-serial chardev) or a Firecracker vsock relay (agent-connect.ts).
 *
 * Requests are multiplexed by id: execs stream while files move. Every wait has a deadline:
 * requests time out with AGENT_TIMEOUT, a dropped connection fails everything pending with
 * AGENT_DISCONNECTED at once, and a malformed frame closes the connection with AGENT_PROTOCOL.
 *
 *   const c = new AgentClient(await connectUnix(path));
 *   await c.waitReady({ timeoutMs: 10_000 });
 *   const r = await c.exec(['sh', '-c', 'echo hi'], { timeoutMs: 5000 });
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { Duplex, Readable } from 'node:stream';
import { fail, RootforgeError } from '../errors.js';
import { encodeFrame, FrameDecoder, MAX_DATA, PROTOCOL_VERSION, remoteError, toReadyInfo, type AgentMessage, type ReadyInfo } from './agent-protocol.js';

export { AgentRemoteError, type ReadyInfo } from './agent-protocol.js';
export { connectFirecrackerVsock, connectUnix, type ConnectOptions } from './agent-connect.js';

export interface AgentClientOptions {
  /** Deadline for hello, file, signal and shutdown requests, in milliseconds. Default 30000. */
  requestTimeoutMs?: number;
  /** Exec timeout sent to the agent when a call gives none, in milliseconds. Default 600000. */
  execTimeoutMs?: number;
  /** How long past an exec's timeout the client waits for its exit event, in ms. Default 15000. */
  exitGraceMs?: number;
}

export interface WaitReadyOptions {
  /** Give up after this long, in milliseconds. Default 30000. */
  timeoutMs?: number;
  /** Resend hello this often while nothing answers (a virtio-serial port drops data the guest
   *  has not opened yet), in milliseconds. Default 250. */
  pollMs?: number;
}

export interface ExecOptions {
  /** Merged over the image's environment (image.json Env, then agent.json env). */
  env?: Record<string, string>;
  /** Use `env` alone, without the image's environment. */
  clearEnv?: boolean;
  /** Working directory; default agent.json workdir, else the image's WorkingDir, else "/". */
  cwd?: string;
  /** User as in a Dockerfile ("node", "1000:1000"); default the image's User. */
  user?: string;
  uid?: number;
  gid?: number;
  /** Input streamed to the process, then EOF. Without it the process reads EOF at once. */
  stdin?: Buffer | string | Readable;
  /** The agent SIGKILLs the process group after this many milliseconds. Default
   *  AgentClientOptions.execTimeoutMs. */
  timeoutMs?: number;
  /** Output as it arrives, in order. A stream with a callback is not collected. */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Collected bytes kept per stream; the rest is dropped and flagged. Default 64 MiB. */
  maxOutputBytes?: number;
}

export interface ExecResult {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  /** "SIGKILL" etc. when a signal ended the process. */
  signal: string | null;
  /** The agent killed the process group because timeoutMs passed. */
  timedOut: boolean;
  pid: number;
  /** Collected output (absent for a stream given a callback). */
  stdout?: Buffer;
  stderr?: Buffer;
  /** Output beyond maxOutputBytes was dropped. */
  truncated?: boolean;
}

export interface WriteFileOptions {
  /** Permission bits (07777); default the replaced file's, else 0644. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Append instead of replacing atomically. */
  append?: boolean;
  /** Create missing parent directories (0755). */
  mkdirs?: boolean;
  timeoutMs?: number;
}

export interface ReadFileOptions {
  offset?: number;
  /** Bytes to read; default to the end of the file. */
  length?: number;
  /** Refuse files larger than this (AGENT_TOO_LARGE). Default 256 MiB. */
  maxBytes?: number;
  timeoutMs?: number;
}

export interface AgentFile {
  data: Buffer;
  /** Permission bits (07777). */
  mode: number;
  /** File size when read. */
  size: number;
}

/** What a pending request does with its messages; returns true when it is finished. */
interface Pending {
  onMessage(m: AgentMessage): boolean;
  onClose(err: RootforgeError): void;
}

/** A running exec: its id, its pid once started, and its result. */
export class ExecHandle {
  constructor(
    readonly id: number,
    readonly started: Promise<number>,
    readonly done: Promise<ExecResult>,
    private readonly client: AgentClient,
  ) {}

  /** Sends a signal to the exec's process group (or, with group: false, the process only). */
  signal(sig: string | number = 'SIGTERM', opts: { group?: boolean; timeoutMs?: number } = {}): Promise<void> {
    return this.client.signal(this.id, sig, opts);
  }
}

const STDIN_CHUNK = 1 << 20;

export class AgentClient {
  private readonly stream: Duplex;
  private readonly decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private readonly readyWaiters = new Set<(info: ReadyInfo) => void>();
  private readonly requestTimeoutMs: number;
  private readonly execTimeoutMs: number;
  private readonly exitGraceMs: number;
  /** Ids start at a random point: after a virtio-serial host reconnects, a frame still in
   *  flight from the old session must not match a new request. */
  private nextIdValue = randomInt(1, 2 ** 31);
  /** Sent with every hello: on a virtio-serial port, where the agent cannot see a host detach
   *  and another attach, a new token tells it the previous host's execs are orphans. */
  private readonly sessionToken = randomUUID();
  private closedWith: RootforgeError | null = null;
  private lastStreamError: Error | undefined;
  /** The most recent ready frame, solicited or not. */
  lastReady: ReadyInfo | undefined;
  /** Resolves when the connection has ended, for whatever reason. */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;

  constructor(stream: Duplex, opts: AgentClientOptions = {}) {
    this.stream = stream;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.execTimeoutMs = opts.execTimeoutMs ?? 600_000;
    this.exitGraceMs = opts.exitGraceMs ?? 15_000;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (e: Error) => (this.lastStreamError = e));
    stream.on('end', () => this.shutdownConnection(this.disconnected('the agent closed the connection')));
    stream.on('close', () => this.shutdownConnection(this.disconnected('the connection closed')));
    stream.resume();
  }

  /** Sends hello every pollMs until a ready frame arrives; returns the agent's ready info. */
  waitReady(opts: WaitReadyOptions = {}): Promise<ReadyInfo> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const pollMs = opts.pollMs ?? 250;
    return new Promise<ReadyInfo>((resolve, reject) => {
      const ids: number[] = [];
      let settled = false;
      const finish = (err: RootforgeError | null, info?: ReadyInfo) => {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        clearTimeout(timer);
        this.readyWaiters.delete(onReady);
        for (const id of ids) this.pending.delete(id);
        if (err) reject(err);
        else resolve(info!);
      };
      // An agent speaking another protocol version would misread our requests: refuse it here,
      // before anything is sent but hello.
      const onReady = (info: ReadyInfo) =>
        info.protocol === PROTOCOL_VERSION
          ? finish(null, info)
          : finish(new RootforgeError('AGENT_PROTOCOL_MISMATCH', `Cannot talk to agent ${info.version}: it speaks protocol ${info.protocol}, this host speaks ${PROTOCOL_VERSION} (use matching rootforge and rootforge-agent versions)`));
      const hello = () => {
        if (this.closedWith) return finish(this.closedWith);
        const id = this.allocId();
        ids.push(id);
        this.pending.set(id, {
          onMessage: (m) => {
            if (m.type === 'error') finish(remoteError(m));
            // ready frames reach every waiter through onReadyFrame
            return true;
          },
          onClose: (err) => finish(err),
        });
        this.write(encodeFrame({ id, type: 'hello', session: this.sessionToken }));
      };
      const poll = setInterval(hello, pollMs);
      const timer = setTimeout(
        () => finish(new RootforgeError('AGENT_TIMEOUT', `Cannot reach agent: no ready message within ${timeoutMs} ms (${ids.length} hello sent)`)),
        timeoutMs,
      );
      this.readyWaiters.add(onReady);
      hello();
    });
  }

  /** Runs a program and resolves with its exit; see startExec for a handle to signal it. */
  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.startExec(argv, opts).done;
  }

  /** Starts a program; the handle's `done` resolves on its exit event. */
  startExec(argv: string[], opts: ExecOptions = {}): ExecHandle {
    if (argv.length === 0) fail('OPTION_INVALID', 'exec in the guest', 'argv is empty');
    const id = this.allocId();
    const timeoutMs = opts.timeoutMs ?? this.execTimeoutMs;
    const maxOut = opts.maxOutputBytes ?? 64 << 20;
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], stdoutBytes: 0, stderrBytes: 0, truncated: false };
    let pid = 0;
    let settle!: { resolve: (r: ExecResult) => void; reject: (e: RootforgeError) => void };
    let startedSettle!: { resolve: (pid: number) => void; reject: (e: RootforgeError) => void };
    const started = new Promise<number>((resolve, reject) => (startedSettle = { resolve, reject }));
    started.catch(() => undefined); // the same failure rejects `done`, which callers await
    let finished = false;
    const done = new Promise<ExecResult>((resolve, reject) => (settle = { resolve, reject }));
    const timer = setTimeout(() => {
      this.killQuietly(id);
      finish(new RootforgeError('AGENT_TIMEOUT', `Cannot run ${argv[0]} in the guest: no exit event ${timeoutMs + this.exitGraceMs} ms after start (exec ${id})`));
    }, timeoutMs + this.exitGraceMs);
    const finish = (err: RootforgeError | null, r?: ExecResult) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      this.pending.delete(id);
      if (err) {
        startedSettle.reject(err);
        settle.reject(err);
      } else {
        startedSettle.resolve(pid);
        settle.resolve(r!);
      }
    };
    const collect = (stream: 'stdout' | 'stderr', data: Buffer) => {
      const cb = stream === 'stdout' ? opts.onStdout : opts.onStderr;
      if (cb) {
        try {
          cb(data);
        } catch (e) {
          // A throwing callback must not escape into the socket's data handler.
          this.killQuietly(id);
          finish(new RootforgeError('IO_FAILED', `Cannot deliver ${stream} of ${argv[0]}: the callback threw: ${(e as Error).message}`, { cause: e }));
        }
        return;
      }
      const key = stream === 'stdout' ? 'stdoutBytes' : 'stderrBytes';
      const room = maxOut - out[key];
      if (data.length > room) out.truncated = true;
      if (room > 0) {
        out[stream].push(room >= data.length ? data : data.subarray(0, room));
        out[key] += Math.min(room, data.length);
      }
    };
    this.pending.set(id, {
      onMessage: (m) => {
        switch (m.type) {
          case 'started':
            pid = typeof m.pid === 'number' ? m.pid : 0;
            startedSettle.resolve(pid);
            return false;
          case 'stdout':
          case 'stderr':
            collect(m.type, Buffer.from(String(m.data ?? ''), 'base64'));
            return false;
          case 'exit': {
            const r: ExecResult = { code: typeof m.code === 'number' ? m.code : null, signal: typeof m.signal === 'string' ? m.signal : null, timedOut: m.timedOut === true, pid };
            if (!opts.onStdout) r.stdout = Buffer.concat(out.stdout, out.stdoutBytes);
            if (!opts.onStderr) r.stderr = Buffer.concat(out.stderr, out.stderrBytes);
            if (out.truncated) r.truncated = true;
            finish(null, r);
            return true;
          }
          case 'error':
            finish(remoteError(m));
            return true;
          default:
            finish(new RootforgeError('AGENT_PROTOCOL', `Cannot run ${argv[0]} in the guest: unexpected message type (${m.type})`));
            return true;
        }
      },
      onClose: (err) => finish(err),
    });
    const req: Record<string, unknown> = { id, type: 'exec', argv, timeoutMs };
    if (opts.env) req.env = opts.env;
    if (opts.clearEnv) req.clearEnv = true;
    if (opts.cwd !== undefined) req.cwd = opts.cwd;
    if (opts.user !== undefined) req.user = opts.user;
    if (opts.uid !== undefined) req.uid = opts.uid;
    if (opts.gid !== undefined) req.gid = opts.gid;
    if (opts.stdin !== undefined) req.stdin = true;
    if (this.closedWith) {
      finish(this.closedWith);
    } else {
      this.write(encodeFrame(req));
      if (opts.stdin !== undefined) {
        this.pumpStdin(id, opts.stdin, () => finished).catch((e: unknown) => {
          this.killQuietly(id);
          finish(e instanceof RootforgeError ? e : new RootforgeError('IO_FAILED', `Cannot stream stdin to ${argv[0]} in the guest: ${(e as Error).message}`, { cause: e }));
        });
      }
    }
    return new ExecHandle(id, started, done, this);
  }

  /** Sends a signal to a running exec. */
  async signal(execId: number, sig: string | number = 'SIGTERM', opts: { group?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const msg: Record<string, unknown> = { type: 'signal', target: execId, signal: sig };
    if (opts.group === false) msg.group = false;
    await this.request(msg, opts.timeoutMs, 'ok');
  }

  /** Reads a whole file (in parts of at most 8 MiB). */
  async readFile(path: string, opts: ReadFileOptions = {}): Promise<Buffer> {
    return (await this.readFileInfo(path, opts)).data;
  }

  /** Reads a file with its mode and size. */
  async readFileInfo(path: string, opts: ReadFileOptions = {}): Promise<AgentFile> {
    const maxBytes = opts.maxBytes ?? 256 << 20;
    let offset = opts.offset ?? 0;
    let left = opts.length ?? Infinity;
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const length = Math.min(left, MAX_DATA);
      const m = await this.request({ type: 'read_file', path, offset, length }, opts.timeoutMs, 'file');
      const data = Buffer.from(String(m.data ?? ''), 'base64');
      parts.push(data);
      total += data.length;
      offset += data.length;
      left -= data.length;
      if (total > maxBytes) fail('AGENT_TOO_LARGE', `read ${path} from the guest`, `over the ${maxBytes}-byte limit`, total);
      if (m.eof === true || left <= 0 || data.length === 0) {
        return { data: Buffer.concat(parts, total), mode: Number(m.mode ?? 0), size: Number(m.size ?? total) };
      }
    }
  }

  /**
   * Writes a file. Up to 8 MiB it replaces the file atomically; larger data is written as a
   * first part and appended parts, so a reader may see it partly written.
   */
  async writeFile(path: string, data: Buffer | string, opts: WriteFileOptions = {}): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off === 0 || off < buf.length; off += MAX_DATA) {
      const msg: Record<string, unknown> = { type: 'write_file', path, data: buf.subarray(off, off + MAX_DATA).toString('base64') };
      if (opts.mode !== undefined) msg.mode = opts.mode;
      if (opts.uid !== undefined) msg.uid = opts.uid;
      if (opts.gid !== undefined) msg.gid = opts.gid;
      if (opts.mkdirs) msg.mkdirs = true;
      if (opts.append || off > 0) msg.append = true;
      await this.request(msg, opts.timeoutMs, 'ok');
    }
  }

  /**
   * Asks the agent to stop: as PID 1 it powers the VM off (or reboots), as a service it exits
   * (and powers off only when its config allows). Resolves once the agent has acknowledged.
   */
  async shutdown(opts: { reboot?: boolean; timeoutMs?: number } = {}): Promise<void> {
    await this.request({ type: 'shutdown', reboot: opts.reboot === true }, opts.timeoutMs, 'ok');
  }

  /** Closes the connection; anything pending fails with AGENT_DISCONNECTED. */
  close(): void {
    this.shutdownConnection(new RootforgeError('AGENT_DISCONNECTED', 'Cannot complete agent request: the client closed the connection'));
  }

  private allocId(): number {
    return this.nextIdValue++;
  }

  private request(msg: Record<string, unknown>, timeoutMs: number | undefined, expect: string): Promise<AgentMessage> {
    const id = this.allocId();
    const ms = timeoutMs ?? this.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      if (this.closedWith) return reject(this.closedWith);
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RootforgeError('AGENT_TIMEOUT', `Cannot complete agent ${String(msg.type)} request: no answer within ${ms} ms (id ${id})`));
      }, ms);
      this.pending.set(id, {
        onMessage: (m) => {
          clearTimeout(timer);
          if (m.type === expect) resolve(m);
          else if (m.type === 'error') reject(remoteError(m));
          else reject(new RootforgeError('AGENT_PROTOCOL', `Cannot complete agent ${String(msg.type)} request: unexpected answer type (${m.type})`));
          return true;
        },
        onClose: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.write(encodeFrame({ id, ...msg }));
    });
  }

  /** Streams stdin frames, waiting for the socket to drain (back-pressure), then EOF. */
  private async pumpStdin(id: number, src: Buffer | string | Readable, finished: () => boolean): Promise<void> {
    const send = async (chunk: Buffer) => {
      for (let off = 0; off < chunk.length; off += STDIN_CHUNK) {
        if (finished() || this.closedWith) return;
        await this.writeAndDrain(encodeFrame({ id, type: 'stdin', data: chunk.subarray(off, off + STDIN_CHUNK).toString('base64') }));
      }
    };
    if (typeof src === 'string' || Buffer.isBuffer(src)) {
      await send(typeof src === 'string' ? Buffer.from(src, 'utf8') : src);
    } else {
      for await (const chunk of src) {
        if (finished() || this.closedWith) break; // leaving the loop destroys src
        await send(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, 'utf8'));
      }
    }
    if (!finished() && !this.closedWith) this.write(encodeFrame({ id, type: 'stdin', eof: true }));
  }

  private write(frame: Buffer): boolean {
    if (this.closedWith) return false;
    return this.stream.write(frame);
  }

  private writeAndDrain(frame: Buffer): Promise<void> {
    if (this.write(frame) || this.closedWith) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.once('drain', done);
      this.stream.once('close', done);
    });
  }

  /** Best-effort SIGKILL after a client-side timeout; its answer is not awaited. */
  private killQuietly(execId: number): void {
    if (this.closedWith) return;
    const id = this.allocId();
    this.pending.set(id, { onMessage: () => true, onClose: () => undefined });
    setTimeout(() => this.pending.delete(id), this.requestTimeoutMs).unref();
    this.write(encodeFrame({ id, type: 'signal', target: execId, signal: 'SIGKILL' }));
  }

  private onData(chunk: Buffer): void {
    let msgs: AgentMessage[];
    try {
      msgs = this.decoder.push(chunk);
    } catch (e) {
      const err = e instanceof RootforgeError ? e : new RootforgeError('AGENT_PROTOCOL', `Cannot read agent frame: ${(e as Error).message}`, { cause: e });
      this.shutdownConnection(err);
      return;
    }
    for (const m of msgs) this.dispatch(m);
  }

  private dispatch(m: AgentMessage): void {
    if (m.type === 'ready') {
      let info: ReadyInfo;
      try {
        info = toReadyInfo(m);
      } catch (e) {
        this.shutdownConnection(e as RootforgeError);
        return;
      }
      this.lastReady = info;
      for (const w of [...this.readyWaiters]) w(info);
    }
    const p = this.pending.get(m.id);
    if (p === undefined) return; // unsolicited ready, or an answer after its request timed out
    if (p.onMessage(m)) this.pending.delete(m.id);
  }

  private disconnected(reason: string): RootforgeError {
    const cause = this.lastStreamError;
    const detail = cause ? `${reason}: ${cause.message}` : reason;
    return new RootforgeError('AGENT_DISCONNECTED', `Cannot complete agent request: ${detail}`, cause ? { cause } : undefined);
  }

  private shutdownConnection(err: RootforgeError): void {
    if (this.closedWith) return;
    this.closedWith = err;
    this.stream.destroy();
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.onClose(err);
    this.resolveClosed();
  }
}
