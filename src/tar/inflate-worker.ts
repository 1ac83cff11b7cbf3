/**
 * Worker thread that decompresses one gzip or zstd stream into a ring of shared buffers, while
 * the main thread parses the tar and writes the image (decompress.ts `ringDecompress`).
 *
 * Why a ring: a decompressor that hands out a fresh buffer per output chunk (node:zlib streams,
 * a zstd output buffer per call) makes the main thread allocate gigabytes of short-lived external
 * memory for a big layer, and V8 answers external-memory growth with full garbage collections
 * of the whole heap — 2.6 s of a 10 s devbox conversion from gzip layers. The ring is allocated
 * once, on the main thread, and shared: nothing is allocated per chunk on the main thread.
 *
 *   workerData: { format: 'gzip' | 'zstd', ring, slotBytes, inRing, inSlotBytes } (rings are
 *               SharedArrayBuffers cut into slots)
 *   in:  { in: slot, length } compressed bytes in that input slot · { end: true } no more input ·
 *        { free: slot } the main thread is done with that output slot
 *   out: { inFree: slot } that input slot was consumed · { slot, length } an output slot filled
 *        (the last one may be partial) · { done: true, inFrame } all output delivered ·
 *        { error, code }
 *
 * An output slot is the main thread's from its { slot } message until it sends { free }; the
 * worker writes only into free slots, and waits (pausing the decompressor, consuming no input)
 * when none is free. Input slots are the worker's until it sends { inFree }. That is the
 * backpressure both ways, and it bounds the memory in flight to the two rings.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';
import zstd from 'zstd-napi/binding.js';

const { format, ring, slotBytes, inRing, inSlotBytes } = workerData as { format: 'gzip' | 'zstd'; ring: SharedArrayBuffer; slotBytes: number; inRing: SharedArrayBuffer; inSlotBytes: number };
const port = parentPort!;
const slots = ring.byteLength / slotBytes;
const views = Array.from({ length: slots }, (_, i) => Buffer.from(ring, i * slotBytes, slotBytes));
const free: number[] = Array.from({ length: slots }, (_, i) => i);
const inViews = Array.from({ length: inRing.byteLength / inSlotBytes }, (_, i) => Buffer.from(inRing, i * inSlotBytes, inSlotBytes));
/** The slot being filled (-1: none) and how full it is. */
let cur = -1;
let fill = 0;
let failed = false;

function report(e: unknown): void {
  if (failed) return;
  failed = true;
  const err = e as NodeJS.ErrnoException;
  port.postMessage({ error: err.message ?? String(e), code: err.code });
  port.close();
}

/** Takes a free slot as the current one; false when none is free. */
function takeSlot(): boolean {
  if (cur >= 0) return true;
  if (free.length === 0) return false;
  cur = free.shift()!;
  fill = 0;
  return true;
}

function postSlot(): void {
  port.postMessage({ slot: cur, length: fill });
  cur = -1;
}

/** Copies `chunk` into slots; returns what did not fit (no free slot), or null. */
function put(chunk: Buffer): Buffer | null {
  let off = 0;
  while (off < chunk.length) {
    if (!takeSlot()) return chunk.subarray(off);
    const n = chunk.copy(views[cur]!, fill, off);
    fill += n;
    off += n;
    if (fill === slotBytes) postSlot();
  }
  return null;
}

let finished = false;
function finish(inFrame: boolean): void {
  if (finished) return;
  finished = true;
  if (cur >= 0 && fill > 0) postSlot();
  port.postMessage({ done: true, inFrame });
}

type Handlers = { input(slot: number, length: number): void; end(): void; freed(): void };

/** gzip: node:zlib's stream (concatenated members, trailing zeros and garbage as the main thread had them). */
function gzip(): Handlers {
  const gz = createGunzip({ chunkSize: 256 << 10 });
  let held: Buffer | null = null;
  let ended = false;
  gz.on('data', (c: Buffer) => {
    held = put(c);
    if (held) gz.pause();
  });
  // 'end' can come while output waits for a slot: finish once that output is out
  gz.on('end', () => {
    ended = true;
    if (!held) finish(false);
  });
  gz.on('error', report);
  return {
    input(slot, length) {
      // zlib is done with the bytes when the write's callback runs
      gz.write(inViews[slot]!.subarray(0, length), () => port.postMessage({ inFree: slot }));
    },
    end() {
      gz.end();
    },
    freed() {
      if (!held) return;
      held = put(held);
      if (held) return;
      if (ended) finish(false);
      else gz.resume();
    },
  };
}

/** zstd: zstd-napi's streaming context, decompressing straight into the slots. */
function zstdStream(): Handlers {
  const dctx = new zstd.DCtx();
  /** Input slots received, in order; the first is being decompressed (`src` is what is left of it). */
  const queue: number[] = [];
  let src: Buffer | null = null;
  let ended = false;
  let inFrame = false;
  const step = () => {
    try {
      for (;;) {
        if (failed) return;
        if (!src) {
          if (queue.length === 0) return ended ? finish(inFrame) : undefined;
          src = inViews[queue[0]!]!.subarray(0, lengths.shift()!);
        }
        if (!takeSlot()) return;
        const room = slotBytes - fill;
        const [ret, produced, consumed] = dctx.decompressStream(views[cur]!.subarray(fill), src);
        // a call that neither read nor wrote (empty input after a finished frame) says nothing
        // about the frame: its return is the next frame header's size
        if (consumed > 0 || produced > 0) inFrame = ret !== 0;
        fill += produced;
        const rest = src.subarray(consumed);
        // input used up and output not full: the context holds nothing more (zstd's own rule)
        src = rest.length === 0 && produced < room ? null : rest;
        if (src === null) port.postMessage({ inFree: queue.shift()! });
        if (fill === slotBytes) postSlot();
      }
    } catch (e) {
      report(e);
    }
  };
  const lengths: number[] = [];
  return {
    input(slot, length) {
      queue.push(slot);
      lengths.push(length);
      step();
    },
    end() {
      ended = true;
      step();
    },
    freed: step,
  };
}

const h = format === 'gzip' ? gzip() : zstdStream();

port.on('message', (m: { in?: number; length?: number; end?: boolean; free?: number }) => {
  if (failed) return;
  if (m.in !== undefined) h.input(m.in, m.length!);
  else if (m.end) h.end();
  else if (m.free !== undefined) {
    free.push(m.free);
    h.freed();
  }
});
