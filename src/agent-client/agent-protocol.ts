/**
 * The host side of the guest agent's wire format (docs/agent-protocol.md):
 *
 *   +----------------------+---------------------------------+
 *   | length: u32 big-end. | UTF-8 JSON object, length bytes |
 *   +----------------------+---------------------------------+
 *
 * Pure framing and message shapes; no I/O. The decoder is a small state machine over whatever
 * chunks the stream delivers, so a frame split across reads (or many frames in one read) is
 * handled the same way.
 */
import { fail, RootforgeError } from '../errors.js';

/** Largest frame body either side accepts (16 MiB), as the agent enforces. */
export const MAX_FRAME = 16 << 20;
/** Largest raw payload in one frame (base64 grows it by 4/3; the JSON must fit MAX_FRAME). */
export const MAX_DATA = 8 << 20;
/** The protocol version this client speaks (the agent's ready frame carries its own). */
export const PROTOCOL_VERSION = 1;

/** A decoded frame: every message has a numeric id and a type. */
export interface AgentMessage {
  id: number;
  type: string;
  [key: string]: unknown;
}

/** The agent's answer to hello, and its greeting when a connection opens (id 0). */
export interface ReadyInfo {
  version: string;
  protocol: number;
  /** True when the agent is the guest's init. */
  pid1: boolean;
  /** Guest time since boot (CLOCK_BOOTTIME) when the frame was sent, in milliseconds. */
  uptimeMs: number;
  /** /proc/sys/kernel/random/boot_id of the guest, when readable. */
  bootId?: string;
}

export function encodeFrame(msg: Record<string, unknown>): Buffer {
  const body = Buffer.from(JSON.stringify(msg), 'utf8');
  if (body.length > MAX_FRAME) fail('AGENT_TOO_LARGE', 'send agent request', `frame over the ${MAX_FRAME}-byte limit`, body.length);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/** Splits a byte stream into messages. Throws AGENT_PROTOCOL on anything not a valid frame. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1; // body length of the frame being read, -1 while reading its header

  push(chunk: Buffer): AgentMessage[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: AgentMessage[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 4) break;
        this.need = this.take(4).readUInt32BE(0);
        if (this.need > MAX_FRAME) fail('AGENT_PROTOCOL', 'read agent frame', `length over the ${MAX_FRAME}-byte limit`, this.need);
      }
      if (this.buffered < this.need) break;
      const body = this.take(this.need);
      this.need = -1;
      out.push(parseMessage(body));
    }
    return out;
  }

  /** Bytes held that do not yet form a frame (a stream ending with some is truncated). */
  get pending(): number {
    return this.buffered + (this.need >= 0 ? 4 : 0);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return head;
  }
}

function parseMessage(body: Buffer): AgentMessage {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (e) {
    return fail('AGENT_PROTOCOL', 'read agent frame', 'body is not JSON', body.subarray(0, 40).toString('latin1'), e);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('AGENT_PROTOCOL', 'read agent frame', 'not a JSON object');
  const m = v as Record<string, unknown>;
  if (typeof m.id !== 'number' || typeof m.type !== 'string') return fail('AGENT_PROTOCOL', 'read agent frame', 'id or type missing', body.subarray(0, 80).toString('latin1'));
  return m as AgentMessage;
}

/** Validates a ready message's fields. */
export function toReadyInfo(m: AgentMessage): ReadyInfo {
  if (typeof m.version !== 'string' || typeof m.uptimeMs !== 'number' || typeof m.pid1 !== 'boolean') {
    return fail('AGENT_PROTOCOL', 'read ready message', 'version, pid1 or uptimeMs missing', JSON.stringify(m));
  }
  const info: ReadyInfo = { version: m.version, protocol: typeof m.protocol === 'number' ? m.protocol : 0, pid1: m.pid1, uptimeMs: m.uptimeMs };
  if (typeof m.bootId === 'string') info.bootId = m.bootId;
  return info;
}

/**
 * An error the agent reported ({type:"error", code, message}). `code` is AGENT_EXEC_FAILED
 * when a program could not be started and AGENT_REMOTE_ERROR otherwise; `remoteCode` is the
 * agent's own code (ENOENT, EACCES, TOO_LARGE, BAD_REQUEST, ... see docs/agent-protocol.md).
 */
export class AgentRemoteError extends RootforgeError {
  readonly remoteCode: string;

  constructor(remoteCode: string, message: string) {
    super(remoteCode === 'EXEC_FAILED' ? 'AGENT_EXEC_FAILED' : 'AGENT_REMOTE_ERROR', message);
    this.name = 'AgentRemoteError';
    this.remoteCode = remoteCode;
  }
}

/** Builds the error for an error message from the agent. */
export function remoteError(m: AgentMessage): AgentRemoteError {
  const code = typeof m.code === 'string' ? m.code : 'UNKNOWN';
  const message = typeof m.message === 'string' && m.message !== '' ? m.message : `Cannot complete agent request: agent error (${code})`;
  return new AgentRemoteError(code, message);
}
