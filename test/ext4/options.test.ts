/**
 * One list of the options that change an image's bytes (issue 11, item 2): the image cache key
 * and the writer's fingerprint both come from it. Every byte-changing option must change the
 * image, the cache key, and (unless it is written into the image directly) the fingerprint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheOptions, convert, CONVERT_OPTION_ROLES, type ConvertOptions } from '../../src/convert.js';
import { fingerprintHeader, IMAGE_OPTION_NAMES, imageOptions, resolveExt4Options } from '../../src/ext4/options.js';
import { tarEntries } from '../helpers/tar-writer.js';

/** A changed (non-default) value for every option that changes the bytes. */
const CHANGED: Partial<ConvertOptions> = {
  size: { mode: 'plus', bytes: 1 << 20 },
  readOnly: true,
  label: 'changed',
  uuid: Buffer.alloc(16, 0x5a),
  journalBlocks: 2048,
  journal: false,
  timestamp: 1_700_000_000,
  owner: { uid: 1000, gid: 1000 },
};

/** Options written into the image directly rather than through the fingerprint. */
const NOT_FINGERPRINTED = new Set(['uuid', 'timestamp']);

const bytesOptions = Object.entries(CONVERT_OPTION_ROLES)
  .filter(([, role]) => role === 'bytes')
  .map(([k]) => k as keyof ConvertOptions);

test('every byte-changing option has a test value, and the writer list is part of it', () => {
  for (const k of bytesOptions) assert.ok(k in CHANGED, `option ${k} changes the bytes but has no changed value in this test`);
  for (const k of IMAGE_OPTION_NAMES) assert.equal(CONVERT_OPTION_ROLES[k], 'bytes', `writer option ${k} is not in the cache key`);
  assert.deepEqual(Object.keys(cacheOptions({})).sort(), [...bytesOptions].sort());
});

test('each byte-changing option changes the cache key and the fingerprint', () => {
  const base = cacheOptions({});
  const baseHeader = fingerprintHeader(resolveExt4Options({}));
  for (const k of bytesOptions) {
    const changed = { [k]: CHANGED[k] } as ConvertOptions;
    assert.notDeepEqual(cacheOptions(changed), base, `${k} does not change the cache key`);
    if (!(IMAGE_OPTION_NAMES as string[]).includes(k)) continue;
    const header = fingerprintHeader(resolveExt4Options(changed));
    if (NOT_FINGERPRINTED.has(k)) assert.equal(header, baseHeader, `${k} is written directly; it should not be fingerprinted`);
    else assert.notEqual(header, baseHeader, `${k} does not change the fingerprint`);
  }
  // defaults spelled out are the defaults
  assert.deepEqual(imageOptions({ size: { mode: 'auto' }, readOnly: false, label: '', journal: true, timestamp: 0 }), imageOptions({}));
});

test('each byte-changing option changes the image', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-opts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tar = join(dir, 'in.tar');
  writeFileSync(tar, tarEntries([{ path: 'etc/hosts', content: '127.0.0.1 localhost\n', uid: 5, gid: 5 }, { path: 'bin', type: 'dir' }]));
  const image = async (o: ConvertOptions) => {
    const out = join(dir, 'out.img');
    await convert(`tar:${tar}`, out, o);
    return readFileSync(out);
  };
  const base = await image({});
  for (const k of bytesOptions) {
    const changed = await image({ [k]: CHANGED[k] } as ConvertOptions);
    assert.ok(!changed.equals(base), `option ${k} is listed as changing the bytes but the image is identical`);
  }
});
