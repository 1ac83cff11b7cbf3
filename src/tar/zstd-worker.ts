/**
 * Worker thread for zstd decompression (zstd-napi is synchronous: on the main thread it would
 * stall tar parsing and image writes). Message driven, so it stays responsive:
 *   in:  { input: Uint8Array } a compressed chunk · { end: true } no more input · { ack: true } one
 *        output chunk consumed
 *   out: { out: ArrayBuffer, length } (transferred) · { need: true } send the next input ·
 *        { done: true, inFrame } all input decompressed · { error: message }
 * At most MAX_OUTSTANDING output chunks are unacknowledged, which bounds the memory in flight.
 */
import { parentPort } from 'node:worker_threads';
import zstd from 'zstd-napi/binding.js';

const OUT_CHUNK = 1 << 20;
const MAX_OUTSTANDING = 4;

const port = parentPort!;
const dctx = new zstd.DCtx();
let src: Buffer | null = null;
let ended = false;
let inFrame = false;
let outstanding = 0;
let waitingForInput = false;

function step(): void {
  try {
    while (outstanding < MAX_OUTSTANDING) {
      if (!src) {
        if (ended) {
          port.postMessage({ done: true, inFrame });
          return;
        }
        if (!waitingForInput) {
          waitingForInput = true;
          port.postMessage({ need: true });
        }
        return;
      }
      const out = Buffer.allocUnsafeSlow(OUT_CHUNK);
      const [ret, produced, consumed] = dctx.decompressStream(out, src);
      // a call that neither read nor wrote (empty input after a finished frame) says nothing
      // about the frame: its return is the next frame header's size
      if (consumed > 0 || produced > 0) inFrame = ret !== 0;
      const rest = src.subarray(consumed);
      // input used up and output not full: the context holds nothing more (zstd's own rule)
      src = rest.length === 0 && produced < OUT_CHUNK ? null : rest;
      if (produced > 0) {
        outstanding++;
        port.postMessage({ out: out.buffer, length: produced }, [out.buffer]);
      }
    }
  } catch (e) {
    port.postMessage({ error: (e as Error).message });
    port.close();
  }
}

port.on('message', (m: { input?: Uint8Array; end?: boolean; ack?: boolean }) => {
  if (m.input) {
    waitingForInput = false;
    src = Buffer.from(m.input.buffer, m.input.byteOffset, m.input.byteLength);
  } else if (m.end) {
    waitingForInput = false;
    ended = true;
  } else if (m.ack) {
    outstanding--;
  }
  step();
});

step(); // ask for the first input
