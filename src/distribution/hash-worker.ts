/**
 * Worker thread of `pull -o`: the SHA-256 of the whole image, fed the decompressed frames in
 * image order, so hashing runs beside decompression and writing instead of after them. It reads
 * the frames where the decoder left them (the output SharedArrayBuffer, workerData), while the
 * main thread writes them from there too.
 *
 *   in:  { id, pieces: number[] }   triples [zeros before, start in the shared output, length]:
 *                                   the gap's zeros are hashed, then the bytes
 *        { end: zeros }             the zeros after the last chunk; finish
 *   out: { id }                     hashed: the slot may be reused as far as hashing goes
 *        { digest: 'sha256:…' }
 */
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

const port = parentPort!;
const output = new Uint8Array((workerData as { output: SharedArrayBuffer }).output);
const hash = createHash('sha256');
const zeros = Buffer.alloc(1 << 20);

function hashZeros(n: number): void {
  for (let left = n; left > 0; left -= zeros.length) hash.update(zeros.subarray(0, Math.min(left, zeros.length)));
}

port.on('message', (m: { id: number; pieces: number[] } | { end: number }) => {
  if ('end' in m) {
    hashZeros(m.end);
    port.postMessage({ digest: 'sha256:' + hash.digest('hex') });
    return;
  }
  for (let i = 0; i < m.pieces.length; i += 3) {
    hashZeros(m.pieces[i]!);
    hash.update(output.subarray(m.pieces[i + 1]!, m.pieces[i + 1]! + m.pieces[i + 2]!));
  }
  port.postMessage({ id: m.id });
});
