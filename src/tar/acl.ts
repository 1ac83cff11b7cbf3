/**
 * POSIX.1e ACLs from their text form (PAX SCHILY.acl.access / SCHILY.acl.default, Solaris 'A'
 * headers) to the Linux VFS xattr value the kernel reads from `system.posix_acl_access` and
 * `system.posix_acl_default`:
 *
 *   off len  field
 *     0   4  a_version = 2 (le32)
 *     4   8  entry: le16 e_tag, le16 e_perm, le32 e_id      (repeated)
 *
 * Tags USER_OBJ=1 USER=2 GROUP_OBJ=4 GROUP=8 MASK=0x10 OTHER=0x20; e_id is 0xffffffff for the
 * tags without a qualifier. The kernel rejects (EINVAL) ACLs not sorted by tag then id, with
 * duplicate qualifiers, or with named entries but no mask, so we sort, check and compute a
 * missing mask the way `acl_calc_mask` does.
 *
 * Text forms accepted: "user::rw-,user:1000:r--,group::r--,mask::r--,other::---" with ',' or
 * newlines between entries; a trailing ":ID" field after the permissions (star, libarchive); a
 * "default:" or Solaris "defaultuser::" prefix; Solaris "mask:r--" / "other:r--"; and "#" comments
 * (getfacl's "#effective:"). A qualifier that is a name can only become an id through a trailing
 * ":ID" field or the caller's resolver: the image's /etc/passwd is not the build machine's.
 */

export const ACL_USER_OBJ = 0x01;
export const ACL_USER = 0x02;
export const ACL_GROUP_OBJ = 0x04;
export const ACL_GROUP = 0x08;
export const ACL_MASK = 0x10;
export const ACL_OTHER = 0x20;
export const ACL_UNDEFINED_ID = 0xffffffff;
const XATTR_VERSION = 2;

export interface AclEntry {
  tag: number;
  perm: number;
  id: number;
}

export type AclNameResolver = (kind: 'user' | 'group', name: string) => number | undefined;

export interface ParsedAcl {
  access: AclEntry[];
  default: AclEntry[];
}

/**
 * Parses ACL text. Entries without a "default" prefix go to `kind`. Returns a reason string when
 * the text is malformed or names a user/group we cannot turn into an id.
 */
export function parseAclText(text: string, kind: 'access' | 'default', resolve?: AclNameResolver): ParsedAcl | string {
  const out: ParsedAcl = { access: [], default: [] };
  for (const raw of text.split(/[,\n]/)) {
    const hash = raw.indexOf('#');
    const entry = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (entry.length === 0) continue;
    let fields = entry.split(':').map((f) => f.trim());
    let target = kind;
    if (fields[0] === 'default' || fields[0] === 'd') {
      target = 'default';
      fields = fields.slice(1);
    } else if (fields[0]!.startsWith('default')) {
      target = 'default';
      fields[0] = fields[0]!.slice('default'.length);
    }
    const tagWord = fields[0];
    let tag: number;
    let qualifier = '';
    let perms: string | undefined;
    let idField: string | undefined;
    if (tagWord === 'user' || tagWord === 'u' || tagWord === 'group' || tagWord === 'g') {
      if (fields.length < 3 || fields.length > 4) return `bad entry "${entry}"`;
      const isUser = tagWord[0] === 'u';
      qualifier = fields[1]!;
      perms = fields[2];
      idField = fields[3];
      tag = qualifier === '' ? (isUser ? ACL_USER_OBJ : ACL_GROUP_OBJ) : isUser ? ACL_USER : ACL_GROUP;
    } else if (tagWord === 'mask' || tagWord === 'm' || tagWord === 'other' || tagWord === 'o') {
      tag = tagWord[0] === 'm' ? ACL_MASK : ACL_OTHER;
      if (fields.length === 2) perms = fields[1];
      else if ((fields.length === 3 || fields.length === 4) && fields[1] === '') perms = fields[2];
      else return `bad entry "${entry}"`;
    } else {
      return `unknown tag in "${entry}"`;
    }
    const perm = parsePerms(perms ?? '');
    if (perm === undefined) return `bad permissions in "${entry}"`;
    let id = ACL_UNDEFINED_ID;
    if (tag === ACL_USER || tag === ACL_GROUP) {
      const kindName = tag === ACL_USER ? 'user' : 'group';
      const resolved = numericId(qualifier) ?? (idField !== undefined ? numericId(idField) : undefined) ?? resolve?.(kindName, qualifier);
      if (resolved === undefined) return `cannot resolve ${kindName} name "${qualifier}" to an id`;
      id = resolved;
    }
    out[target].push({ tag, perm, id });
  }
  return out;
}

function parsePerms(s: string): number | undefined {
  if (s.length === 0 || s.length > 3) return undefined;
  let perm = 0;
  for (const c of s) {
    if (c === 'r') perm |= 4;
    else if (c === 'w') perm |= 2;
    else if (c === 'x') perm |= 1;
    else if (c !== '-') return undefined;
  }
  return perm;
}

function numericId(s: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xfffffffe ? n : undefined;
}

/** True for an access ACL that says nothing beyond the mode bits (the kernel would not store it). */
export function isMinimalAcl(entries: AclEntry[]): boolean {
  return entries.every((e) => e.tag === ACL_USER_OBJ || e.tag === ACL_GROUP_OBJ || e.tag === ACL_OTHER);
}

/**
 * Sorts, validates and encodes entries as the VFS xattr value. Returns a reason string when the
 * ACL is one the kernel would refuse and we cannot repair (missing or repeated base entries,
 * repeated qualifiers).
 */
export function encodeAcl(input: AclEntry[]): Buffer | string {
  const entries = [...input].sort((a, b) => a.tag - b.tag || a.id - b.id);
  const count = (tag: number): number => entries.filter((e) => e.tag === tag).length;
  for (const [tag, name] of [
    [ACL_USER_OBJ, 'user::'],
    [ACL_GROUP_OBJ, 'group::'],
    [ACL_OTHER, 'other::'],
  ] as const) {
    if (count(tag) !== 1) return `needs exactly one ${name} entry`;
  }
  if (count(ACL_MASK) > 1) return 'more than one mask entry';
  for (let i = 1; i < entries.length; i++) {
    const a = entries[i - 1]!;
    const b = entries[i]!;
    if (a.tag === b.tag && (a.tag === ACL_USER || a.tag === ACL_GROUP) && a.id === b.id) return `repeated id ${a.id}`;
  }
  const named = entries.some((e) => e.tag === ACL_USER || e.tag === ACL_GROUP);
  if (named && count(ACL_MASK) === 0) {
    // Like acl_calc_mask: the union of the group class (owning group and every named entry).
    let perm = 0;
    for (const e of entries) if (e.tag === ACL_USER || e.tag === ACL_GROUP || e.tag === ACL_GROUP_OBJ) perm |= e.perm;
    entries.splice(entries.findIndex((e) => e.tag === ACL_OTHER), 0, { tag: ACL_MASK, perm, id: ACL_UNDEFINED_ID });
  }
  const out = Buffer.alloc(4 + 8 * entries.length);
  out.writeUInt32LE(XATTR_VERSION, 0); // 0 4 a_version
  entries.forEach((e, i) => {
    const o = 4 + 8 * i;
    out.writeUInt16LE(e.tag, o); // +0 2 e_tag
    out.writeUInt16LE(e.perm, o + 2); // +2 2 e_perm
    out.writeUInt32LE(e.tag === ACL_USER || e.tag === ACL_GROUP ? e.id : ACL_UNDEFINED_ID, o + 4); // +4 4 e_id
  });
  return out;
}

/**
 * A Solaris 'A' header body: an octal word (type << 18 | entry count), NUL, the ACL text, NUL.
 * Type 01000000 is POSIX.1e (handled); 03000000 is NFSv4 (not representable on ext4).
 */
export function parseSolarisAcl(body: Buffer): { kind: 'posix'; text: string } | { kind: 'nfs4' } | { kind: 'bad'; reason: string } {
  const nul = body.indexOf(0);
  if (nul <= 0) return { kind: 'bad', reason: 'no type word' };
  const word = body.toString('latin1', 0, nul);
  if (!/^[0-7]{1,8}$/.test(word)) return { kind: 'bad', reason: `bad type word "${word}"` };
  const type = parseInt(word, 8) & ~0o777777;
  if (type === 0o3000000) return { kind: 'nfs4' };
  if (type !== 0o1000000) return { kind: 'bad', reason: `unknown type 0${type.toString(8)}` };
  let end = body.indexOf(0, nul + 1);
  if (end < 0) end = body.length;
  return { kind: 'posix', text: body.toString('latin1', nul + 1, end) };
}
