/**
 * The reassembly pipeline of `pull -o` (src/distribution/assemble.ts: decoder and hasher
 * threads) and the blob store handing back the bytes it downloaded. The failure paths it adds
 * each fail typed and leave no output: a frame that is not zstd, a chunk map that asks a frame
 * for more bytes than it holds, a chunk map whose image digest is wrong, a thread that dies.
 * Artifacts are crafted by hand (valid packs, bad contents) and served by a real docker-registry.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compress } from 'zstd-napi';
import zstd from 'zstd-napi/binding.js';
import { ARTIFACT_TYPE, checkArtifactManifest, CHUNKMAP_MEDIA_TYPE, encodeChunkMap, MAX_FRAME_BYTES, MAX_PACK_BYTES, OCI_MANIFEST, PACK_MEDIA_TYPE, type ChunkEntry, type ChunkMap } from '../../src/distribution/artifact.js';
import { planJobs, reassemble, type ReassembleOptions } from '../../src/distribution/assemble.js';
import { pullArtifact } from '../../src/distribution/pull.js';
import { pushArtifact } from '../../src/distribution/push.js';
import { RegistryWriter } from '../../src/distribution/registry-writer.js';
import { isRootforgeError } from '../../src/errors.js';
import { BlobStore } from '../../src/oci/blobstore.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { parseDockerReference } from '../../src/oci/reference.js';
import { writeAtomically } from '../../src/util/atomic.js';
import { halfTextBytes } from '../helpers/bytes.js';
import { skipOrFail } from '../helpers/fixtures.js';
import { cleanups, startRegistry, type RegistryServer } from '../helpers/registry.js';

const missing = ['docker-registry'].find((tool) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0);
const work = mkdtempSync(join(tmpdir(), 'rf-reassemble-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const servers = cleanups();
after(() => servers.run());
let reg: RegistryServer;
before(async () => {
  if (!missing) reg = await startRegistry(servers);
});

/** Reassembles `map`, all of whose frames are in `pack`, into `out` (as pull -o does: a temporary file renamed on success); the image's digest. */
function reassembleTo(out: string, map: ChunkMap, pack: Buffer, opts: Partial<ReassembleOptions> = {}): Promise<string> {
  return writeAtomically(out, async (fh) => {
    await fh.truncate(map.size);
    return reassemble(fh, map, planJobs(map), async () => pack, { name: 'test', ...opts });
  });
}

/** Deterministic bytes that compress somewhat. */
const bytes = (seed: number, n: number): Buffer => halfTextBytes(seed, n, 256);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Pushes a hand-made artifact: one pack, the given chunk map. */
async function pushCrafted(tag: string, pack: Buffer, map: Omit<ChunkMap, 'packs'>): Promise<void> {
  const writer = new RegistryWriter(reg.host);
  try {
    const packDigest = sha256Digest(pack);
    const mapBytes = encodeChunkMap({ ...map, packs: [packDigest] });
    const mapDigest = sha256Digest(mapBytes);
    await writer.uploadBlob('team/crafted', packDigest, pack);
    await writer.uploadBlob('team/crafted', mapDigest, mapBytes);
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: ARTIFACT_TYPE,
      config: { mediaType: CHUNKMAP_MEDIA_TYPE, digest: mapDigest, size: mapBytes.length },
      layers: [{ mediaType: PACK_MEDIA_TYPE, digest: packDigest, size: pack.length }],
      annotations: {},
    };
    await writer.putManifest('team/crafted', tag, Buffer.from(JSON.stringify(manifest)), OCI_MANIFEST);
  } finally {
    writer.close();
  }
}

/**
 * A small image: a 64 KiB piece, a 64 KiB hole, a 96 KiB piece made of two chunks of one frame.
 * Returns the image, its pack (two frames) and the chunk map.
 */
function craftedImage(): { image: Buffer; pack: Buffer; chunks: ChunkEntry[] } {
  const a = bytes(1, 64 << 10);
  const b = bytes(2, 96 << 10);
  const image = Buffer.concat([a, Buffer.alloc(64 << 10), b]);
  const fa = compress(a);
  const fb = compress(b);
  const pack = Buffer.concat([fa, fb]);
  const chunks: ChunkEntry[] = [
    [0, a.length, 0, 0, fa.length, 0, sha(a)],
    [128 << 10, 32 << 10, 0, fa.length, fb.length, 0, sha(b.subarray(0, 32 << 10))],
    [160 << 10, 64 << 10, 0, fa.length, fb.length, 32 << 10, sha(b.subarray(32 << 10))],
  ];
  return { image, pack, chunks };
}

/** Asserts the pull fails with `code` and leaves its output directory empty. */
async function pullFails(tag: string, code: string, name: string): Promise<void> {
  const dir = join(work, name);
  mkdirSync(dir);
  await assert.rejects(
    pullArtifact(parseDockerReference(`${reg.host}/team/crafted:${tag}`), join(dir, 'out.ext4'), { cacheDir: join(work, `cache-${name}`) }),
    (e: unknown) => isRootforgeError(e) && e.code === code,
  );
  assert.deepEqual(readdirSync(dir), [], 'no output and no temporary file');
}

test('planJobs: one job per run of chunks from one frame, a frame used again later is a new job', () => {
  const map: ChunkMap = {
    size: 1000,
    digest: `sha256:${'0'.repeat(64)}`,
    packs: [`sha256:${'1'.repeat(64)}`, `sha256:${'2'.repeat(64)}`],
    chunks: [
      [0, 100, 0, 0, 50, 0, 'a'.repeat(64)],
      [100, 100, 0, 0, 50, 100, 'b'.repeat(64)],
      [300, 100, 1, 0, 40, 0, 'c'.repeat(64)],
      [400, 50, 0, 0, 50, 200, 'd'.repeat(64)],
    ],
  };
  const jobs = planJobs(map);
  assert.equal(jobs.length, 3);
  assert.deepEqual([...jobs[0]!.pieces], [0, 100, 0, 100, 100, 100]);
  assert.deepEqual([jobs[0]!.need, jobs[0]!.span], [200, 200]);
  assert.deepEqual([...jobs[1]!.pieces], [300, 100, 0]);
  assert.deepEqual([jobs[1]!.pack, jobs[1]!.need, jobs[1]!.span], [1, 100, 200], 'the 100 zeros before it count');
  assert.deepEqual([...jobs[2]!.pieces], [400, 50, 200]);
  assert.deepEqual([jobs[2]!.need, jobs[2]!.span], [250, 50]);
});

test('BlobStore.fetch keepBytes: the downloaded bytes come back, fresh and resumed from a partial', async () => {
  const store = new BlobStore(join(work, 'keep-store'));
  const blob = bytes(7, 3 << 20);
  const digest = sha256Digest(blob);
  const opener = async (offset: number) =>
    (async function* () {
      for (let i = offset; i < blob.length; i += 100_000) yield blob.subarray(i, Math.min(i + 100_000, blob.length));
    })();
  const fresh = await store.fetch(digest, blob.length, opener, { keepBytes: true });
  assert.equal(fresh.fetched, true);
  assert.ok(fresh.bytes !== undefined && fresh.bytes.equals(blob), 'the bytes handed back are the blob');
  assert.ok(readFileSync(fresh.path).equals(blob), 'and the cache holds it');
  const again = await store.fetch(digest, blob.length, opener, { keepBytes: true });
  assert.equal(again.fetched, false);
  assert.equal(again.bytes, undefined, 'a cached blob is read by the caller, not handed back');

  await store.remove(digest);
  writeFileSync(store.partialPath(digest), blob.subarray(0, 1_234_567));
  const resumed = await store.fetch(digest, blob.length, opener, { keepBytes: true });
  assert.ok(resumed.bytes !== undefined && resumed.bytes.equals(blob), 'resumed: the partial part and the rest');
});

test('a crafted artifact pulls byte for byte, the hole stays a hole', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const { image, pack, chunks } = craftedImage();
  await pushCrafted('good', pack, { size: image.length, digest: `sha256:${sha(image)}`, chunks });
  const out = join(work, 'good.ext4');
  const r = await pullArtifact(parseDockerReference(`${reg.host}/team/crafted:good`), out, { cacheDir: join(work, 'cache-good'), decoders: 2 });
  assert.ok(readFileSync(out).equals(image));
  assert.equal(r.chunks, 3);
  assert.ok(statSync(out).blocks * 512 < image.length, `the 64 KiB of zeros are a hole (${statSync(out).blocks} blocks)`);
});

test('a frame that is not zstd (in a pack whose digest is right) fails OCI_LAYER_INVALID, no output', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const { image, pack, chunks } = craftedImage();
  const fa = chunks[0]![4];
  const bad = Buffer.concat([pack.subarray(0, fa), Buffer.from('not a zstd frame at all, just text'.repeat(20))]);
  const badChunks = chunks.map((c, i): ChunkEntry => (i === 0 ? c : [c[0], c[1], 0, fa, bad.length - fa, c[5], c[6]]));
  await pushCrafted('not-zstd', bad, { size: image.length, digest: `sha256:${sha(image)}`, chunks: badChunks });
  await pullFails('not-zstd', 'OCI_LAYER_INVALID', 'not-zstd');
});

test('a chunk map asking a frame for more than it holds fails OCI_BAD_MANIFEST, no output', async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const { image, pack, chunks } = craftedImage();
  // The last chunk starts 1 KiB further into its frame than the frame goes.
  const c = chunks[2]!;
  const badChunks: ChunkEntry[] = [chunks[0]!, chunks[1]!, [c[0], c[1], c[2], c[3], c[4], c[5] + 1024, c[6]]];
  await pushCrafted('too-far', pack, { size: image.length, digest: `sha256:${sha(image)}`, chunks: badChunks });
  await pullFails('too-far', 'OCI_BAD_MANIFEST', 'too-far');
});

test("a chunk map whose image digest is not the reassembled image's fails OCI_DIGEST_MISMATCH, no output", async (t) => {
  if (missing) return skipOrFail(t, `${missing} is not installed`);
  const { image, pack, chunks } = craftedImage();
  const other = Buffer.from(image);
  other[100_000] = 1; // a byte in the hole
  await pushCrafted('wrong-digest', pack, { size: image.length, digest: `sha256:${sha(other)}`, chunks });
  await pullFails('wrong-digest', 'OCI_DIGEST_MISMATCH', 'wrong-digest');
});

test('a decoder or hasher thread that dies fails WORKER_FAILED, the output is not kept', async () => {
  const { image, pack, chunks } = craftedImage();
  const map: ChunkMap = { size: image.length, digest: `sha256:${sha(image)}`, packs: [sha256Digest(pack)], chunks };
  const dying = join(work, 'dying-worker.mjs');
  writeFileSync(dying, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => process.exit(3));\n");
  for (const role of ['decoder', 'hasher'] as const) {
    const dir = join(work, `dies-${role}`);
    mkdirSync(dir);
    await assert.rejects(
      reassembleTo(join(dir, 'out.ext4'), map, pack, { workerScripts: { [role]: pathToFileURL(dying) } }),
      (e: unknown) => isRootforgeError(e, 'WORKER_FAILED') && /exit code 3/.test(e.message),
    );
    assert.deepEqual(readdirSync(dir), [], `${role}: no output and no temporary file`);
  }
  // The same call with the real threads works: what failed above was the thread, not the input.
  const out = join(work, 'reassembled.ext4');
  const digest = await reassembleTo(out, map, pack);
  assert.equal(digest, map.digest);
  assert.ok(readFileSync(out).equals(image));
});

test('frames bigger than a slot (a few chunks taken from a large old frame) and frames without a size in their header', async () => {
  // A 3 MiB frame (slots are 1 MiB when the chunks used need no more) of which two pieces are
  // used, and the same bytes as a streamed frame whose header does not give its size.
  const big = bytes(9, 3 << 20);
  const sized = compress(big);
  const cctx = new zstd.CCtx();
  const dst = Buffer.alloc(zstd.compressBound(big.length));
  const [, p1] = cctx.compressStream2(dst, big.subarray(0, 1 << 20), zstd.EndDirective.continue);
  const [, p2] = cctx.compressStream2(dst.subarray(p1), big.subarray(1 << 20), zstd.EndDirective.end);
  const unsized = Buffer.from(dst.subarray(0, p1 + p2));
  assert.equal(zstd.getFrameContentSize(unsized), null, 'the streamed frame has no size in its header');
  const pack = Buffer.concat([sized, unsized]);
  // image: [0, 64K) from the sized frame at 100K; hole; [256K, 320K) from the unsized frame at 900K
  const image = Buffer.alloc(320 << 10);
  big.copy(image, 0, 100 << 10, 164 << 10);
  big.copy(image, 256 << 10, 900 << 10, 964 << 10);
  const chunks: ChunkEntry[] = [
    [0, 64 << 10, 0, 0, sized.length, 100 << 10, sha(image.subarray(0, 64 << 10))],
    [256 << 10, 64 << 10, 0, sized.length, unsized.length, 900 << 10, sha(image.subarray(256 << 10))],
  ];
  const map: ChunkMap = { size: image.length, digest: `sha256:${sha(image)}`, packs: [sha256Digest(pack)], chunks };
  const out = join(work, 'big-frames.ext4');
  const digest = await reassembleTo(out, map, pack);
  assert.equal(digest, map.digest);
  assert.ok(readFileSync(out).equals(image));
  // A frame that says it holds more than the limit is refused before it is decompressed (the
  // compressed frames, ≈2.4 MiB, are under it).
  const limit = 2816 << 10;
  assert.ok(sized.length < limit && unsized.length < limit);
  const dir = join(work, 'too-big');
  mkdirSync(dir);
  await assert.rejects(
    reassembleTo(join(dir, 'out.ext4'), map, pack, { maxFrameBytes: limit }),
    (e: unknown) => isRootforgeError(e, 'OCI_BAD_MANIFEST') && e.message.includes(`more than ${limit}`),
  );
  assert.deepEqual(readdirSync(dir), []);
});

test('what a registry serves cannot decide how much a pull holds: big packs are refused, push keeps within the limits', async () => {
  const digest = (c: string) => `sha256:${c.repeat(64)}`;
  const manifest = (packSize: number) => ({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: ARTIFACT_TYPE,
    config: { mediaType: CHUNKMAP_MEDIA_TYPE, digest: digest('a'), size: 100 },
    layers: [{ mediaType: PACK_MEDIA_TYPE, digest: digest('b'), size: packSize }],
    annotations: {},
  });
  assert.equal(checkArtifactManifest(manifest(MAX_PACK_BYTES), 'x').layers.length, 1);
  assert.throws(() => checkArtifactManifest(manifest(MAX_PACK_BYTES + 1), 'x'), (e: unknown) => isRootforgeError(e, 'OCI_BAD_MANIFEST'));
  // push refuses settings whose packs or frames a pull would refuse (before it reads the image)
  const ref = parseDockerReference('127.0.0.1:1/limits/x:v1');
  await assert.rejects(pushArtifact('/nonexistent.ext4', ref, { packBytes: MAX_PACK_BYTES }), (e: unknown) => isRootforgeError(e, 'OPTION_INVALID'));
  await assert.rejects(pushArtifact('/nonexistent.ext4', ref, { frameBytes: MAX_FRAME_BYTES }), (e: unknown) => isRootforgeError(e, 'OPTION_INVALID'));
  await assert.rejects(pushArtifact('/nonexistent.ext4', ref, { frameBytes: 1 << 20 }), (e: unknown) => isRootforgeError(e, 'SOURCE_NOT_FOUND'));
});
