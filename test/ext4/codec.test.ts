/** Codec-level checks against independent references: known CRC vectors, debugfs's own hash. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '../../src/ext4/crc32c.js';
import { decodeTime, encodeTime, TIME_MAX, TIME_MIN } from '../../src/ext4/codec.js';
import { halfMd4Hash } from '../../src/ext4/htree.js';
import { ext4AclToVfs, vfsAclToExt4, aclChmod } from '../../src/ext4/xattr.js';
import { run } from '../helpers/image.js';

test('crc32c matches the standard check value and chains', () => {
  // CRC-32C("123456789") = 0xE3069283 (RFC 3720 / iSCSI)
  assert.equal(~crc32c(0xffffffff, Buffer.from('123456789')) >>> 0, 0xe3069283);
  const a = Buffer.from('hello ');
  const b = Buffer.from('world');
  assert.equal(crc32c(crc32c(0xffffffff, a), b), crc32c(0xffffffff, Buffer.concat([a, b])));
});

test('timestamps: epoch bits and nanoseconds round-trip across the whole ext4 range', () => {
  for (const sec of [TIME_MIN, -1, 0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 33 + 5, TIME_MAX]) {
    for (const nsec of [0, 1, 999999999]) {
      const { lo, extra } = encodeTime(sec, nsec);
      assert.deepEqual(decodeTime(lo, extra), { sec, nsec }, `${sec}.${nsec}`);
    }
  }
});

test('half-MD4 directory hash equals debugfs dx_hash (signed variant, seeded and default)', (t) => {
  const work = mkdtempSync(join(tmpdir(), 'rf-hash-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const img = join(work, 'ref.img');
  run('mke2fs', ['-q', '-t', 'ext4', '-F', img, '8M']);
  const seedText = '12345678-1234-1234-1234-123456789abc';
  const seed = Buffer.from(seedText.replace(/-/g, ''), 'hex');
  for (const name of ['a', 'abc', 'héllo', 'ünïcødé-日本語', 'x'.repeat(100), 'entry-00042']) {
    for (const [args, s] of [[['-s', seedText], seed], [[], Buffer.alloc(16)]] as const) {
      const out = run('debugfs', ['-R', `dx_hash -h half_md4 ${args.join(' ')} ${name}`, img]).stdout.toString();
      const m = /is (0x[0-9a-f]+) \(minor (0x[0-9a-f]+)\)/.exec(out);
      assert.ok(m, out);
      const ours = halfMd4Hash(Buffer.from(name), s, false);
      assert.equal(ours.hash, Number(m[1]), `hash of ${name}`);
      assert.equal(ours.minor, Number(m[2]), `minor hash of ${name}`);
    }
  }
  // the unsigned variant differs only for bytes ≥ 0x80
  assert.equal(halfMd4Hash(Buffer.from('abc'), seed, true).hash, halfMd4Hash(Buffer.from('abc'), seed, false).hash);
  assert.notEqual(halfMd4Hash(Buffer.from('héllo'), seed, true).hash, halfMd4Hash(Buffer.from('héllo'), seed, false).hash);
});

test('POSIX ACL: VFS ⇄ ext4 encodings, short entries for *_OBJ/MASK/OTHER', () => {
  const vfs = Buffer.alloc(4 + 8 * 4);
  vfs.writeUInt32LE(2, 0);
  const entries: [number, number, number][] = [[1, 7, 0xffffffff], [2, 5, 1000], [4, 5, 0xffffffff], [0x20, 4, 0xffffffff]];
  entries.forEach(([tag, perm, id], i) => {
    vfs.writeUInt16LE(tag, 4 + i * 8);
    vfs.writeUInt16LE(perm, 6 + i * 8);
    vfs.writeUInt32LE(id, 8 + i * 8);
  });
  const ext = vfsAclToExt4(vfs, 'system.posix_acl_access');
  assert.equal(ext.length, 4 + 4 + 8 + 4 + 4);
  assert.equal(ext.readUInt32LE(0), 1);
  assert.ok(ext4AclToVfs(ext).equals(vfs));
  const chmodded = aclChmod(vfs, 0o640, 'x');
  assert.equal(chmodded.readUInt16LE(6), 6); // USER_OBJ ← owner bits
  assert.equal(chmodded.readUInt16LE(6 + 16), 4); // GROUP_OBJ (no mask) ← group bits
  assert.equal(chmodded.readUInt16LE(6 + 24), 0); // OTHER ← other bits
});
