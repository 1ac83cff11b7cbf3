/**
 * The reassembly half of `pull -o`: frames of verified packs → the image file, and the image's
 * SHA-256, on three threads at once:
 *
 *   main          a frame's bytes copied from its pack into a free slot ──▶ a decoder
 *   decoder(s)    zstd -d into the slot's output (frame-worker.ts) ──▶ main
 *   main          pwrite of the chunks' bytes at their offsets (gaps stay holes), and at the
 *                 same time, in image order ──▶ hasher
 *   hasher        sha256 over the image, gaps as zeros (hash-worker.ts) ──▶ main
 *   main          written and hashed: the slot is free for the next frame
 *
 * Slots are fixed pieces of two SharedArrayBuffers made once (compressed in, decompressed out):
 * nothing is allocated, copied or transferred per frame but the frame's compressed bytes, and
 * memory is bounded by slots × (largest frame + its compressed size). Writing and hashing only
 * read a slot, so they run at once. Jobs are frames in the order the image needs them: a run of
 * chunks from one frame is one job (a frame used again further on, as a later version may, is a
 * second job).
 */
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../util/worker.js';
import type { FileHandle } from 'node:fs/promises';
import { fail, RootforgeError } from '../errors.js';
import { MAX_FRAME_BYTES, type ChunkMap } from './artifact.js';
import type { FrameWorkerData } from './frame-worker.js';

/** One frame's worth of work: where it is, and the pieces of the image it gives. */
export interface FrameJob {
  pack: number;
  frameOffset: number;
  frameLength: number;
  /**
   * Triples [image offset, length, offset in the decompressed frame], in image order. Typed, so
   * the garbage collector does not walk tens of thousands of little arrays at every collection.
   */
  pieces: Float64Array;
  /** Bytes the frame must hold: the end of its last piece in it. */
  need: number;
  /** Image bytes this job accounts for: its pieces and the zeros before them. */
  span: number;
}

/** The chunk map as frame jobs in image order. */
export function planJobs(map: ChunkMap): FrameJob[] {
  const all = new Float64Array(map.chunks.length * 3);
  const jobs: FrameJob[] = [];
  let last: FrameJob | undefined;
  let first = 0;
  let pos = 0;
  map.chunks.forEach(([offset, length, pack, frameOffset, frameLength, skip], i) => {
    if (last === undefined || last.pack !== pack || last.frameOffset !== frameOffset || last.frameLength !== frameLength) {
      if (last !== undefined) last.pieces = all.subarray(first * 3, i * 3);
      first = i;
      last = { pack, frameOffset, frameLength, pieces: all.subarray(0, 0), need: 0, span: 0 };
      jobs.push(last);
    }
    all.set([offset, length, skip], i * 3);
    last.need = Math.max(last.need, skip + length);
    last.span += offset + length - pos;
    pos = offset + length;
  });
  if (last !== undefined) last.pieces = all.subarray(first * 3);
  return jobs;
}

export interface ReassembleOptions {
  /** "docker://…", for messages. */
  name: string;
  /** Threads decompressing frames. Default 1. */
  decoders?: number;
  /** Memory for frames between the pack and the disk, bytes (at least 4 slots). Default 48 MiB. */
  slotBytes?: number;
  /** Largest decompressed frame accepted, bytes. Default MAX_FRAME_BYTES (16 MiB). */
  maxFrameBytes?: number;
  /** Image bytes done (written, or known to be zeros). */
  onProgress?: (done: number) => void;
  /** For tests: other scripts to run as the decoder or hasher thread (how a thread that dies is simulated). */
  workerScripts?: { decoder?: URL; hasher?: URL };
}

const round = (n: number, to: number) => Math.ceil(Math.max(n, 1) / to) * to;

/**
 * Writes every job's pieces into `fh` (already sized to the image) and returns the sha256 of
 * the whole image. `packBytes` gives a pack's verified bytes. All workers are gone when this
 * returns or throws.
 */
export async function reassemble(fh: FileHandle, map: ChunkMap, jobs: FrameJob[], packBytes: (pack: number) => Promise<Buffer>, opts: ReassembleOptions): Promise<string> {
  const name = opts.name;
  const nDecoders = opts.decoders ?? 1;
  if (!Number.isSafeInteger(nDecoders) || nDecoders < 1) fail('OPTION_INVALID', `reassemble ${name}`, 'decoders must be a positive integer', nDecoders);
  const maxFrame = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
  // Slots as big as the biggest frame (compressed, and the part of it used), 1 MiB at least.
  let inputSlot = 64 << 10;
  let outputSlot = 1 << 20;
  for (const job of jobs) {
    if (job.frameLength > maxFrame || job.need > maxFrame) fail('OCI_BAD_MANIFEST', `reassemble ${name}`, `a frame larger than ${maxFrame} bytes`, map.packs[job.pack]);
    inputSlot = Math.max(inputSlot, job.frameLength);
    outputSlot = Math.max(outputSlot, job.need);
  }
  inputSlot = round(inputSlot, 64 << 10);
  outputSlot = round(outputSlot, 64 << 10);
  const slots = Math.max(4, Math.min(64, Math.floor((opts.slotBytes ?? 48 << 20) / (inputSlot + outputSlot))));
  const data: FrameWorkerData = { input: new SharedArrayBuffer(slots * inputSlot), inputSlot, output: new SharedArrayBuffer(slots * outputSlot), outputSlot, maxFrame };
  const input = Buffer.from(data.input);
  const output = Buffer.from(data.output);

  let failure: unknown;
  /** Image writes still running (each settles: its failure goes to `failure`). */
  const writes = new Set<Promise<void>>();
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const setFailure = (e: unknown) => {
    failure ??= e;
    notify();
  };
  const waitForEvent = () => new Promise<void>((resolve) => (wake = resolve));
  let stopping = false;
  const workerDied = (which: string) => (e: unknown) => {
    if (stopping) return;
    setFailure(new RootforgeError('WORKER_FAILED', `Cannot reassemble ${name}: the ${which} thread failed: ${e instanceof Error ? e.message : `exit code ${String(e)}`}`, { cause: e }));
  };

  const free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  /** Per job in flight: its slot and what is still to happen to it (write, hash). */
  const slotOf = new Map<number, number>();
  const pending = new Map<number, number>();
  const decoded = new Set<number>();
  let nextHash = 0;
  let hashPos = 0;
  let finished = 0;
  let done = 0;
  let digest: string | undefined;
  const release = (id: number) => {
    const left = pending.get(id)! - 1;
    if (left > 0) return void pending.set(id, left);
    pending.delete(id);
    free.push(slotOf.get(id)!);
    slotOf.delete(id);
    finished++;
    done += jobs[id]!.span;
    opts.onProgress?.(done);
    notify();
  };

  const workerOptions = { workerData: data, stdout: false, stderr: false };
  const decoderScript = opts.workerScripts?.decoder ?? new URL('./frame-worker.js', import.meta.url);
  const decoders: Worker[] = [];
  let hasher: Worker | undefined;
  try {
    // started here: a thread that cannot start must not leave the others running
    for (let i = 0; i < nDecoders; i++) decoders.push(startWorker(decoderScript, workerOptions));
    hasher = startWorker(opts.workerScripts?.hasher ?? new URL('./hash-worker.js', import.meta.url), workerOptions);
    // decoded frames, in whatever order the decoders finish → the hasher, in image order
    const toHasher = () => {
      for (; decoded.has(nextHash); nextHash++) {
        decoded.delete(nextHash);
        const base = slotOf.get(nextHash)! * outputSlot;
        const pieces = jobs[nextHash]!.pieces;
        const triples: number[] = [];
        for (let i = 0; i < pieces.length; i += 3) {
          triples.push(pieces[i]! - hashPos, base + pieces[i + 2]!, pieces[i + 1]!);
          hashPos = pieces[i]! + pieces[i + 1]!;
        }
        hasher!.postMessage({ id: nextHash, pieces: triples });
      }
    };
    for (const decoder of decoders) {
      decoder.on('message', (m: { id: number; slot?: number; error?: string; kind?: string }) => {
        if (m.error !== undefined) {
          const job = jobs[m.id]!;
          const where = `chunk at ${job.pieces[0]!}`;
          if (m.kind === 'size') setFailure(new RootforgeError('OCI_BAD_MANIFEST', `Cannot reassemble ${name}: ${where}: ${m.error} (${map.packs[job.pack]!})`));
          else setFailure(new RootforgeError('OCI_LAYER_INVALID', `Cannot decompress ${where} of ${name}: ${m.error} (${map.packs[job.pack]!})`));
          return;
        }
        const write = writePieces(fh, output, m.slot! * outputSlot, jobs[m.id]!.pieces).then(
          () => release(m.id),
          (e: unknown) => setFailure(e instanceof RootforgeError ? e : new RootforgeError('OUTPUT_FAILED', `Cannot write the image of ${name}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e })),
        );
        writes.add(write);
        void write.finally(() => writes.delete(write));
        decoded.add(m.id);
        toHasher();
      });
      decoder.on('error', workerDied('decompression'));
      decoder.on('exit', workerDied('decompression'));
    }
    hasher.on('message', (m: { id?: number; digest?: string }) => {
      if (m.digest !== undefined) {
        digest = m.digest;
        notify();
      } else release(m.id!);
    });
    hasher.on('error', workerDied('hashing'));
    hasher.on('exit', workerDied('hashing'));

    for (let j = 0; j < jobs.length; j++) {
      while (failure === undefined && free.length === 0) await waitForEvent();
      if (failure !== undefined) throw failure;
      const job = jobs[j]!;
      const pack = await packBytes(job.pack);
      if (failure !== undefined) throw failure;
      if (job.frameOffset + job.frameLength > pack.length) fail('OCI_BAD_MANIFEST', `reassemble ${name}`, `chunk at ${job.pieces[0]!} lies outside its pack`, map.packs[job.pack]);
      const slot = free.pop()!;
      pack.copy(input, slot * inputSlot, job.frameOffset, job.frameOffset + job.frameLength);
      slotOf.set(j, slot);
      pending.set(j, 2); // written, hashed
      decoders[j % nDecoders]!.postMessage({ id: j, slot, length: job.frameLength, need: job.need });
    }
    while (failure === undefined && finished < jobs.length) await waitForEvent();
    if (failure !== undefined) throw failure;
    hasher.postMessage({ end: map.size - hashPos });
    while (failure === undefined && digest === undefined) await waitForEvent();
    if (failure !== undefined) throw failure;
    return digest!;
  } finally {
    stopping = true;
    await Promise.all([...decoders, ...(hasher ? [hasher] : [])].map((w) => w.terminate()));
    // no write may outlive the call (the caller removes the file on failure)
    await Promise.allSettled([...writes]);
  }
}

/** The pieces of one frame (at `base` in `buf`), runs adjacent in the image and the frame written at once. */
async function writePieces(fh: FileHandle, buf: Buffer, base: number, pieces: Float64Array): Promise<void> {
  for (let i = 0; i < pieces.length; ) {
    const offset = pieces[i]!;
    const skip = base + pieces[i + 2]!;
    let length = pieces[i + 1]!;
    i += 3;
    while (i < pieces.length && pieces[i] === offset + length && base + pieces[i + 2]! === skip + length) {
      length += pieces[i + 1]!;
      i += 3;
    }
    for (let written = 0; written < length; ) written += (await fh.write(buf, skip + written, length - written, offset + written)).bytesWritten;
  }
}
