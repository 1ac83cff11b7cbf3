/**
 * An image's identity: a digest of everything that determines its bytes (the tree in inode order,
 * with content checksums, and the options from `fingerprintHeader`), from which the filesystem
 * UUID and the htree hash seed are taken. Equal inputs give equal images, different inputs
 * different UUIDs. Also the UUID text helpers the CLI uses.
 */
import { createHash } from 'node:crypto';
import { fail } from '../errors.js';
import { crc32c } from './crc32c.js';
import { fingerprintHeader, type ResolvedExt4Options } from './options.js';
import { dirNames, type TreePlan } from './plan.js';

export interface Identity {
  uuid: Buffer;
  /** s_hash_seed: seeds directory-name hashing. */
  hashSeed: Buffer;
  /** crc32c of the UUID: seeds every metadata checksum. */
  csumSeed: number;
}

/** The UUID (the option's, else from the fingerprint), hash seed and checksum seed. */
export function imageIdentity(plan: TreePlan, o: ResolvedExt4Options): Identity {
  const fingerprint = fingerprintTree(plan, o);
  const uuid = o.uuid ?? uuidFrom(fingerprint.subarray(0, 16));
  return { uuid, hashSeed: Buffer.from(fingerprint.subarray(16, 32)), csumSeed: crc32c(0xffffffff, uuid) };
}

/** sha256 over the options' header and one line per inode (in inode order). */
export function fingerprintTree(plan: TreePlan, o: ResolvedExt4Options): Buffer {
  const h = createHash('sha256');
  h.update(fingerprintHeader(o));
  // One latin1 string per batch of inodes: far fewer hash updates than one per line. Batches
  // stay small: a string built up over thousands of inodes survives young-generation
  // collections and ends up as old-generation garbage (+10 MB at a million entries).
  let batch = '';
  for (let ino = 1; ino <= plan.maxIno; ino++) {
    const n = plan.nodes[ino];
    if (!n) continue;
    const c = n.content && n.content.kind === 'placed' ? n.content : null;
    let line = `${ino} ${n.kind} ${n.mode} ${n.uid} ${n.gid} ${n.mtime.sec}.${n.mtime.nsec} ${n.atime.sec}.${n.atime.nsec} ${n.ctime.sec}.${n.ctime.nsec} ${n.size} ${c ? c.crc : ''}:${c ? c.runs.length : ''} ${n.major}:${n.minor} ${n.target.length}:${n.target}`;
    if (n.xattrs.size > 0) {
      for (const [k, v] of [...n.xattrs].sort((a, b) => (a[0] < b[0] ? -1 : 1))) line += ` ${k.length}:${k}=${v.length}:${v.toString('latin1')}`;
    }
    const dir = n.kind === 'dir' ? plan.dirs.get(ino) : undefined;
    if (dir) {
      let i = 0;
      for (const name of dirNames(n, dir)) line += ` ${dir.inos[i++]}/${name.length}:${name}`;
    }
    batch += line + '\n';
    if (batch.length > 1 << 13) {
      h.update(batch, 'latin1');
      batch = '';
    }
  }
  h.update(batch, 'latin1');
  return h.digest();
}

/** RFC 9562 version 8 (custom) UUID from 16 digest bytes. */
export function uuidFrom(bytes: Buffer): Buffer {
  const u = Buffer.from(bytes);
  u[6] = (u[6]! & 0x0f) | 0x80;
  u[8] = (u[8]! & 0x3f) | 0x80;
  return u;
}

export function formatUuid(u: Buffer): string {
  const h = u.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function parseUuid(s: string): Buffer {
  const hex = s.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) fail('OPTION_INVALID', 'parse UUID', 'expected 32 hex digits', s);
  return Buffer.from(hex, 'hex');
}
