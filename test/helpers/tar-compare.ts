/**
 * Compares what our reader reports with CPython's tarfile (an independent implementation), field
 * by field, and collects archives through the async API (openArchive + readTar).
 */
import assert from 'node:assert/strict';
import type { OpenedArchive } from '../../src/tar/decompress.js';
import { readTar } from '../../src/tar/reader.js';
import type { EntryType, TarParserOptions, TarWarning } from '../../src/tar/types.js';
import { hexToByteString, sha256, sparseSha256, type Collected, type CollectResult, type PyMember } from './tar-collect.js';

const PY_TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  S: 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'chardev',
  '4': 'blockdev',
  '5': 'dir',
  '6': 'fifo',
};

export interface CompareOptions {
  /** Label for assertion messages. */
  label: string;
  /** Also compare xattrs against Python's SCHILY.xattr.* records (default true). */
  xattrs?: boolean;
}

/**
 * Every member, every field. Known, deliberate differences in Python are normalised here:
 * tarfile strips trailing slashes from directory names, keeps the full mode field, and reports
 * times as floats.
 */
export function compareWithPython(ours: Collected[], py: PyMember[], opts: CompareOptions): void {
  assert.equal(ours.length, py.length, `${opts.label}: member count`);
  ours.forEach((e, i) => {
    const p = py[i]!;
    const h = e.header;
    const at = `${opts.label} #${i} ${JSON.stringify(h.path)}`;
    const pyName = hexToByteString(p.name);
    assert.equal(h.type === 'dir' ? h.path.replace(/\/+$/, '') : h.path, pyName, `${at}: name`);
    assert.equal(h.type, PY_TYPES[p.type] ?? 'file', `${at}: type`);
    assert.equal(h.mode, p.mode & 0o7777, `${at}: mode`);
    assert.equal(h.uid, p.uid, `${at}: uid`);
    assert.equal(h.gid, p.gid, `${at}: gid`);
    assert.equal(h.uname, hexToByteString(p.uname), `${at}: uname`);
    assert.equal(h.gname, hexToByteString(p.gname), `${at}: gname`);
    assert.ok(Math.abs(h.mtime.sec + h.mtime.nsec / 1e9 - p.mtime) < 1e-6, `${at}: mtime ${JSON.stringify(h.mtime)} vs ${p.mtime}`);
    assert.ok(h.mtime.nsec >= 0 && h.mtime.nsec < 1e9, `${at}: nsec range`);
    if (h.type === 'symlink' || h.type === 'hardlink') assert.equal(h.linkname, hexToByteString(p.linkname), `${at}: linkname`);
    if (h.type === 'chardev' || h.type === 'blockdev') assert.deepEqual([h.devmajor, h.devminor], [p.devmajor, p.devminor], `${at}: device`);
    if (h.type === 'file') {
      assert.equal(h.size, p.size, `${at}: size`);
      assert.equal(h.sparse === undefined ? sha256(e.body) : sparseSha256(h, e.body), p.sha256, `${at}: content`);
    }
    if (opts.xattrs ?? true) {
      const pyX = new Map<string, string>();
      for (const [k, v] of Object.entries(p.pax)) {
        const key = hexToByteString(k);
        if (key.startsWith('SCHILY.xattr.')) pyX.set(key.slice(13), v);
      }
      for (const [name, value] of pyX) assert.equal(h.xattrs.get(name)?.toString('hex'), value, `${at}: xattr ${name}`);
    }
  });
}

/** Reads an opened archive through readTar, collecting bodies. */
export async function collectAsync(archive: OpenedArchive | AsyncIterable<Buffer>, options: TarParserOptions = {}): Promise<CollectResult> {
  const stream = Symbol.asyncIterator in archive ? archive : archive.stream;
  const warnings: TarWarning[] = [];
  const entries: Collected[] = [];
  for await (const e of readTar(stream, { ...options, onWarning: (w) => warnings.push(w) })) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    const { body: _body, ...header } = e;
    entries.push({ header, body: Buffer.concat(parts), chunks: parts.length });
  }
  return { entries, warnings };
}
