/**
 * bzImage → vmlinux on Debian's real cloud kernel (LZ4 payload), read out of the .deb by our own
 * ar + xz + tar path: the result is an x86-64 ELF whose PVH note `readelf -n` sees with the same
 * entry address. Also: our ar listing equals `ar t`, broken bzImages are typed errors, and a
 * bzImage path given to resolveKernel is extracted into the cache once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractVmlinux, parseBzImage } from '../../src/kernel/bzimage.js';
import { listArMembers, readDebData } from '../../src/kernel/deb.js';
import { kernelImageInfo } from '../../src/kernel/kernel-elf.js';
import { resolveKernel } from '../../src/kernel/kernel.js';
import { isRootforgeError } from '../../src/errors.js';
import { debianCloudKernel, skipOrFail, which } from '../helpers/kernel.js';

async function vmlinuzOf(deb: string): Promise<{ name: string; data: Buffer }> {
  for await (const e of readDebData(deb)) {
    if (e.type === 'file' && /^\.\/boot\/vmlinuz-/.test(e.path)) {
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(Buffer.from(c));
      return { name: e.path, data: Buffer.concat(parts) };
    }
  }
  throw new Error('no vmlinuz in the package');
}

test('Debian cloud kernel: bzImage (LZ4) → ELF vmlinux with the PVH note readelf sees', { timeout: 300_000 }, async (t) => {
  const deb = await debianCloudKernel();
  if ('skip' in deb) return skipOrFail(t, deb.skip);

  const members = await listArMembers(deb.path);
  const ar = spawnSync('ar', ['t', deb.path], { encoding: 'utf8' });
  if (ar.status === 0) assert.deepEqual(members.map((m) => m.name), ar.stdout.trim().split('\n'));
  assert.deepEqual(members.map((m) => m.name.split('.')[0]), ['debian-binary', 'control', 'data']);

  const { name, data } = await vmlinuzOf(deb.path);
  const release = name.replace('./boot/vmlinuz-', '');
  const h = parseBzImage(data);
  assert.equal(h.compression, 'lz4', 'MACHINE-NOTES: the Debian cloud kernel is LZ4-compressed');
  assert.ok(Number(h.protocol.split('.')[0]) >= 2);
  assert.ok(h.version?.startsWith(release + ' '), h.version);

  const t0 = Date.now();
  const { vmlinux } = await extractVmlinux(data);
  const ms = Date.now() - t0;
  const info = kernelImageInfo(vmlinux);
  assert.equal(info.format, 'elf');
  assert.equal(info.arch, 'x86_64');
  assert.ok(info.pvhEntry !== undefined, 'PVH note (XEN_ELFNOTE_PHYS32_ENTRY) present');
  assert.ok(vmlinux.length > data.length, `${vmlinux.length} > ${data.length}`);
  t.diagnostic(`vmlinuz ${data.length} B → vmlinux ${vmlinux.length} B in ${ms} ms`);

  if (!which('readelf')) return;
  const dir = mkdtempSync(join(tmpdir(), 'rf-bz-'));
  try {
    const p = join(dir, 'vmlinux');
    writeFileSync(p, vmlinux);
    const r = spawnSync('readelf', ['-h', '-n', p], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Class:\s+ELF64/);
    assert.match(r.stdout, /Machine:\s+Advanced Micro Devices X86-64/);
    // "Xen 0x00000008 Unknown note type: (0x00000012)\n   description data: 50 08 00 01 00 00 00 00"
    const m = /Xen\s+0x0*[48]\s+Unknown note type: \(0x00000012\)\s+description data: ((?:[0-9a-f]{2} ?)+)/.exec(r.stdout);
    assert.ok(m, 'readelf shows the PHYS32_ENTRY (0x12) Xen note');
    assert.equal(Buffer.from(m[1]!.trim().split(' ').map((x) => parseInt(x, 16))).readUInt32LE(0), info.pvhEntry);

    // resolveKernel on a bzImage path: extracted into the cache once, keyed by content
    const bz = join(dir, 'vmlinuz');
    writeFileSync(bz, data);
    const cacheDir = join(dir, 'cache');
    const k = await resolveKernel(bz, { cacheDir });
    assert.match(k.name, /^file-[0-9a-f]{16}$/);
    assert.equal(k.version, release);
    assert.equal(k.pvh, true);
    assert.equal(k.initramfs, undefined);
    const again = await resolveKernel(bz, { cacheDir });
    assert.equal(again.vmlinux, k.vmlinux);
    const direct = await resolveKernel(p, { cacheDir });
    assert.equal(direct.vmlinux, p);
    assert.equal(direct.version, release, 'from the "Linux version …" banner');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('broken bzImages are typed errors', async (t) => {
  const deb = await debianCloudKernel();
  if ('skip' in deb) return skipOrFail(t, deb.skip);
  const { data } = await vmlinuzOf(deb.path);
  const h = parseBzImage(data);
  assert.throws(() => parseBzImage(data.subarray(0, h.payloadStart + (h.payloadLength >> 1))), (e: unknown) => isRootforgeError(e, 'KERNEL_BAD_IMAGE') && /truncated/.test((e as Error).message));
  assert.throws(() => parseBzImage(Buffer.alloc(4096)), (e: unknown) => isRootforgeError(e, 'KERNEL_BAD_IMAGE'));
  const bad = Buffer.from(data);
  for (let i = 0; i < 64; i++) bad[h.payloadStart + 4096 + i * 97] ^= 0x5a; // damage the LZ4 stream
  await assert.rejects(extractVmlinux(bad), (e: unknown) => isRootforgeError(e, 'KERNEL_DECOMPRESS_FAILED') || isRootforgeError(e, 'KERNEL_BAD_IMAGE'));
  assert.throws(() => kernelImageInfo(Buffer.from('hello world, not a kernel at all'.repeat(4))), (e: unknown) => isRootforgeError(e, 'KERNEL_BAD_IMAGE'));
});

/** A minimal x86-64 ELF (header only, then filler) standing in for a vmlinux. */
function tinyElf(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 64; i < n; i++) b[i] = (i * 31) & 0xff ^ (i >> 9);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(2, 0x10);
  b.writeUInt16LE(62, 0x12);
  b.writeUInt16LE(56, 0x36);
  return b;
}

/** A synthetic bzImage: boot sector + 1 setup sector, protected-mode code, then the payload. */
function synthBzImage(payload: Buffer, size: number): Buffer {
  const setupSects = 1;
  const pm = (setupSects + 1) * 512;
  const payloadOffset = 0x80;
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(size);
  const b = Buffer.alloc(pm + payloadOffset + payload.length + 4 + 64);
  b[0x1f1] = setupSects;
  b[0x1fe] = 0x55;
  b[0x1ff] = 0xaa;
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x020f, 0x206);
  b.writeUInt16LE(0x100, 0x20e); // version string at 0x300
  b.write('6.6.6-test (nobody@example) #1 SMP\0', 0x300, 'latin1');
  b.writeUInt32LE(payloadOffset, 0x248);
  b.writeUInt32LE(payload.length + 4, 0x24c);
  payload.copy(b, pm + payloadOffset);
  trailer.copy(b, pm + payloadOffset + payload.length);
  return b;
}

test('bzImage payloads in gzip, xz, lzma, zstd and lz4 all give the vmlinux back', async (t) => {
  const elf = tinyElf(600_000);
  const tools: [string, string[], string][] = [
    ['gzip', ['-9', '-c', '-n'], 'gzip'],
    ['xz', ['--check=crc32', '-c'], 'xz'],
    ['xz', ['--format=lzma', '-c'], 'lzma'],
    ['zstd', ['-19', '-c', '-q'], 'zstd'],
    ['lz4', ['-l', '-9', '-c', '-q'], 'lz4'],
  ];
  for (const [cmd, args, kind] of tools) {
    if (!which(cmd)) {
      skipOrFail(t, `${cmd} is not installed`);
      continue;
    }
    const r = spawnSync(cmd, args, { input: elf, maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
    const bz = synthBzImage(r.stdout, elf.length);
    const h = parseBzImage(bz);
    assert.equal(h.compression, kind);
    assert.equal(h.version, '6.6.6-test (nobody@example) #1 SMP');
    const { vmlinux } = await extractVmlinux(bz);
    assert.ok(vmlinux.equals(elf), `${kind}: same bytes`);
    // a wrong size trailer is caught
    await assert.rejects(extractVmlinux(synthBzImage(r.stdout, elf.length + 1)), (e: unknown) => isRootforgeError(e, 'KERNEL_DECOMPRESS_FAILED'), kind);
  }
});
