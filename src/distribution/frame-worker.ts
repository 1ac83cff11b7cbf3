/**
 * Worker thread of `pull -o`: zstd frames in, their bytes out. zstd-napi is synchronous; on the
 * main thread it stalls downloads and writes, here it runs beside them.
 *
 * Frames and their output live in two SharedArrayBuffers made once per pull (workerData): slot s
 * of `input` holds a compressed frame, slot s of `output` receives its bytes. Messages carry slot
 * numbers only: nothing is allocated or transferred per frame (transfers count as fresh external
 * memory for V8, which then runs a full garbage collection every few dozen megabytes).
 *
 *   in:  { id, slot, length, need }   length: of the compressed frame; need: bytes the frame
 *                                     must hold at least (the end of the chunks taken from it)
 *   out: { id, slot, length }         the frame's bytes are in output slot `slot`
 *        { id, error, kind: 'zstd' | 'size' }
 *
 * A frame bigger than a slot (a later version taking a few chunks from an old, larger frame) is
 * decompressed into a scratch buffer of its own and the part needed copied into the slot.
 */
import { parentPort, workerData } from 'node:worker_threads';
import zstd from 'zstd-napi/binding.js';

export interface FrameWorkerData {
  input: SharedArrayBuffer;
  inputSlot: number;
  output: SharedArrayBuffer;
  outputSlot: number;
  /** Largest decompressed frame accepted, bytes. */
  maxFrame: number;
}

class SizeError extends Error {}

const STREAM_CHUNK = 1 << 20;
const port = parentPort!;
const data = workerData as FrameWorkerData;
const dctx = new zstd.DCtx();
let scratch = Buffer.alloc(0);

/** The whole frame into `dst` when it fits, else into the scratch buffer; returns where and how long. */
function decompressFrame(src: Uint8Array, dst: Uint8Array): { bytes: Uint8Array; length: number } {
  const size = zstd.getFrameContentSize(src);
  if (size === null) return decompressUnsized(src);
  if (size > data.maxFrame) throw new SizeError(`the frame says it holds ${size} bytes, more than ${data.maxFrame}`);
  let into = dst;
  if (size > dst.length) {
    if (scratch.length < size) scratch = Buffer.allocUnsafeSlow(size);
    into = scratch;
  }
  return { bytes: into, length: dctx.decompress(into.subarray(0, size), src) };
}

/** A frame whose header does not say its size (push always writes it): streamed, bounded. */
function decompressUnsized(src: Uint8Array): { bytes: Uint8Array; length: number } {
  dctx.reset(zstd.ResetDirective.sessionOnly);
  const parts: Buffer[] = [];
  let total = 0;
  let rest = src;
  for (;;) {
    const chunk = Buffer.allocUnsafe(STREAM_CHUNK);
    const [ret, produced, consumed] = dctx.decompressStream(chunk, rest);
    rest = rest.subarray(consumed);
    total += produced;
    if (total > data.maxFrame) throw new SizeError(`the frame holds more than ${data.maxFrame} bytes`);
    parts.push(chunk.subarray(0, produced));
    if (ret === 0 && rest.length === 0) break;
    if (consumed === 0 && produced === 0) throw new Error('the frame is truncated');
  }
  return { bytes: Buffer.concat(parts, total), length: total };
}

port.on('message', (m: { id: number; slot: number; length: number; need: number }) => {
  try {
    if (m.need > data.outputSlot) throw new SizeError(`the chunks taken from the frame end at ${m.need}, beyond ${data.outputSlot}`);
    const src = new Uint8Array(data.input, m.slot * data.inputSlot, m.length);
    const dst = new Uint8Array(data.output, m.slot * data.outputSlot, data.outputSlot);
    const { bytes, length } = decompressFrame(src, dst);
    if (length < m.need) throw new SizeError(`the frame holds ${length} bytes, its chunks end at ${m.need}`);
    if (bytes !== dst) dst.set(bytes.subarray(0, m.need));
    port.postMessage({ id: m.id, slot: m.slot, length: Math.min(length, dst.length) });
  } catch (e) {
    port.postMessage({ id: m.id, error: (e as Error).message, kind: e instanceof SizeError ? 'size' : 'zstd' });
  }
});
