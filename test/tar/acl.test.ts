/**
 * Text ACL → VFS xattr. The reference is the real thing: setfacl (libacl) applies the same ACL to
 * a file and getfattr reads back the bytes the kernel keeps in system.posix_acl_*.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { encodeAcl, isMinimalAcl, parseAclText, parseSolarisAcl, type ParsedAcl } from '../../src/tar/acl.js';
import { hasTool, run } from '../helpers/tar-collect.js';

const canSetfacl = hasTool('setfacl') && hasTool('getfattr');
const work = mkdtempSync(join(tmpdir(), 'rf-acl-'));
after(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
/** The xattr value the kernel stores after `setfacl --set TEXT` (setfacl computes a missing mask). */
function kernelAcl(text: string, name: 'system.posix_acl_access' | 'system.posix_acl_default'): Buffer | undefined {
  const path = join(work, `o${n++}`);
  if (name === 'system.posix_acl_default') mkdirSync(path);
  else writeFileSync(path, '');
  run('setfacl', ['--set', text, path]);
  const out = run('getfattr', ['--absolute-names', '-m', '^system\\.posix_acl', '-d', '-e', 'hex', path]).toString();
  const m = new RegExp(`^${name.replace(/\./g, '\\.')}=0x([0-9a-f]+)$`, 'm').exec(out);
  return m === null ? undefined : Buffer.from(m[1]!, 'hex');
}

function ours(text: string, kind: 'access' | 'default' = 'access'): Buffer | string | undefined {
  const parsed = parseAclText(text, kind);
  if (typeof parsed === 'string') return parsed;
  const entries = parsed[kind];
  if (kind === 'access' && isMinimalAcl(entries)) return undefined;
  return encodeAcl(entries);
}

test('access ACLs encode exactly as the kernel stores them', { skip: !canSetfacl && 'setfacl/getfattr not installed' }, () => {
  const cases = [
    'user::rw-,user:1234:rw-,user:65534:--x,group::r--,group:2:r--,mask::rwx,other::r--',
    // out of order, and no mask: libacl computes one (group class union), so must we
    'other::---,group::r-x,user:1000:r--,user::rwx,user:7:-w-',
    'u::rwx,g::---,o::---,g:50:rw-,g:40:r--,m::r--',
    'user::r--,group::r--,other::r--,user:0:rwx',
  ];
  for (const text of cases) assert.deepEqual(ours(text), kernelAcl(text, 'system.posix_acl_access'), text);
  // a minimal ACL is just the mode bits: the kernel stores no xattr, and we produce none
  assert.equal(kernelAcl('u::rw-,g::r--,o::r--', 'system.posix_acl_access'), undefined);
  assert.equal(ours('user::rw-,group::r--,other::r--'), undefined);
});

test('default ACLs encode exactly as the kernel stores them', { skip: !canSetfacl && 'setfacl/getfattr not installed' }, () => {
  const cases = ['u::rwx,g::r-x,o::---,d:u::rwx,d:u:1234:rwx,d:g::r-x,d:m::rwx,d:o::r-x', 'u::rwx,g::r-x,o::r-x,d:u::rwx,d:g::r-x,d:o::---'];
  for (const text of cases) {
    const parsed = parseAclText(text, 'access') as ParsedAcl;
    assert.deepEqual(encodeAcl(parsed.default), kernelAcl(text, 'system.posix_acl_default'), text);
  }
});

test('star/libarchive ":ID" fields, GNU tar newline lists, comments and names', () => {
  const numeric = ours('user::rw-,user:1234:rw-,group::r--,group:2:r--,mask::rwx,other::r--');
  // bsdtar writes names with the id after the permissions
  assert.deepEqual(ours('user::rw-,group::r--,other::r--,user:alice:rw-:1234,group:bin:r--:2,mask::rwx'), numeric);
  // GNU tar writes newline-separated entries with names only: resolved through the caller
  const gnu = 'user::rw-\nuser:alice:rw-\ngroup::r--\ngroup:bin:r--\t#effective:r--\nmask::rwx\nother::r--\n';
  const ids: Record<string, number> = { 'user:alice': 1234, 'group:bin': 2 };
  const resolved = parseAclText(gnu, 'access', (kind, name) => ids[`${kind}:${name}`]) as ParsedAcl;
  assert.deepEqual(encodeAcl(resolved.access), numeric);
  assert.match(parseAclText(gnu, 'access') as string, /cannot resolve user name "alice"/);
});

test('malformed or unrepresentable ACLs are refused with a reason', () => {
  assert.equal(typeof parseAclText('user::rw-,bogus::r--', 'access'), 'string');
  assert.equal(typeof parseAclText('user::rwz', 'access'), 'string');
  assert.equal(typeof parseAclText('user:1:rw-:extra:more', 'access'), 'string');
  const twoOwners = parseAclText('user::rw-,user::r--,group::r--,other::---', 'access') as ParsedAcl;
  assert.match(encodeAcl(twoOwners.access) as string, /exactly one user::/);
  const dup = parseAclText('user::rw-,user:5:r--,user:5:rw-,group::r--,mask::rw-,other::---', 'access') as ParsedAcl;
  assert.match(encodeAcl(dup.access) as string, /repeated id 5/);
  const noOther = parseAclText('user::rw-,group::r--', 'access') as ParsedAcl;
  assert.equal(typeof encodeAcl(noOther.access), 'string');
});

test('Solaris ACL bodies: POSIX type parsed (incl. "defaultuser::" and "mask:r--"), NFSv4 recognised', () => {
  const posix = Buffer.from('1000014\0user::rwx,user:bin:rwx:2,group::r-x,group:sys:r-x:3,mask:r-x,other:---,defaultuser::rwx,defaultuser:bin:rwx:2,defaultgroup::r-x,defaultgroup:sys:r-x:3,defaultmask:rwx,defaultother:---\0', 'latin1');
  const s = parseSolarisAcl(posix);
  assert.equal(s.kind, 'posix');
  const parsed = parseAclText((s as { text: string }).text, 'access') as ParsedAcl;
  assert.deepEqual(encodeAcl(parsed.access), ours('user::rwx,user:2:rwx,group::r-x,group:3:r-x,mask::r-x,other::---'));
  assert.deepEqual(encodeAcl(parsed.default), encodeAcl((parseAclText('user::rwx,user:2:rwx,group::r-x,group:3:r-x,mask::rwx,other::---', 'default') as ParsedAcl).default));
  assert.equal(parseSolarisAcl(Buffer.from('3000006\0owner@:rw-p--aARWcCos:-------:allow\0')).kind, 'nfs4');
  assert.equal(parseSolarisAcl(Buffer.from('junk')).kind, 'bad');
});
