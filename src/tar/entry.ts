/**
 * From a decoded header block plus the extension headers before it (GNU 'L'/'K', PAX 'x'/'g',
 * Solaris 'A') to the TarHeader we report, and a plan of what follows it in the archive. Pure:
 * the parser state machine (parser.ts) does all the byte moving.
 *
 * Precedence, as GNU tar and libarchive: GNU.sparse.name > PAX path > 'L' > ustar prefix/name;
 * PAX linkpath > 'K' > linkname; PAX (entry 'x' over global 'g') over header numbers.
 */
import { encodeAcl, isMinimalAcl, parseAclText, parseSolarisAcl, type AclEntry, type AclNameResolver } from './acl.js';
import { T, type RawHeader } from './header.js';
import type { PaxAttrs, Warn } from './pax.js';
import { buildSegments } from './sparse.js';
import type { EntryType, TarHeader } from './types.js';
import { fail } from '../errors.js';

/** Extension headers seen since the last entry. */
export interface Extensions {
  /** Offset of the first extension header (for messages). */
  at: number;
  longName?: string;
  longLink?: string;
  pax?: PaxAttrs;
  solarisAcl?: Buffer;
}

/** Old GNU 'S' map, read from the header and its extension blocks. */
export interface OldSparse {
  flat: number[];
  realsize: number;
}

/** What the parser does with the bytes after the header block(s). */
export interface EntryPlan {
  header: TarHeader;
  /** Bytes stored after the header (before padding to 512). */
  stored: number;
  /** GNU sparse 1.0: read the map from the start of the body before reporting the entry. */
  mapInBody: boolean;
  /**
   * A hard link with a non-zero size: 'skip' its body (PAX archives may store one), or 'probe'
   * (plain ustar: old writers put the target's size there with no body; look at the next block).
   */
  linkBody: 'none' | 'skip' | 'probe';
}

export interface PlanContext {
  warn: Warn;
  /** A PAX header has been seen earlier in this archive (libarchive's sticky format guess). */
  sawPax: boolean;
  resolveAclName: AclNameResolver | undefined;
}

/**
 * Builds the entry. `at` is the header block's offset; `pax` is the merged global+local PAX view.
 */
export function planEntry(raw: RawHeader, ext: Extensions | undefined, pax: PaxAttrs | undefined, oldSparse: OldSparse | undefined, at: number, ctx: PlanContext): EntryPlan {
  let type = mapType(raw.typeflag, at, ctx);
  let path = pax?.gnuSparse?.name ?? pax?.path ?? ext?.longName ?? raw.name;
  const stored = pax?.size ?? raw.size;
  if (type === 'file' && path.endsWith('/') && raw.typeflag !== T.GNU_SPARSE) {
    // Old tars mark directories only by the trailing slash; they carry no body (GNU tar, libarchive).
    type = 'dir';
  }
  if (path.length === 0) ctx.warn('TAR_EMPTY_PATH', `Entry at offset ${at} has an empty name`);

  const isDevice = type === 'chardev' || type === 'blockdev';
  const header: TarHeader = {
    path,
    type,
    mode: raw.mode,
    uid: pax?.uid ?? raw.uid,
    gid: pax?.gid ?? raw.gid,
    uname: pax?.uname ?? raw.uname,
    gname: pax?.gname ?? raw.gname,
    size: 0,
    mtime: pax?.mtime ?? { sec: raw.mtime, nsec: 0 },
    atime: pax?.atime ?? (raw.atime !== undefined ? { sec: raw.atime, nsec: 0 } : undefined),
    ctime: pax?.ctime ?? (raw.ctime !== undefined ? { sec: raw.ctime, nsec: 0 } : undefined),
    linkname: type === 'symlink' || type === 'hardlink' ? (pax?.linkpath ?? ext?.longLink ?? raw.linkname) : '',
    devmajor: isDevice ? (pax?.devmajor ?? raw.devmajor) : 0,
    devminor: isDevice ? (pax?.devminor ?? raw.devminor) : 0,
    xattrs: buildXattrs(pax, ext, at, ctx),
    sparse: undefined,
    bodySize: 0,
    offset: 0,
    headerOffset: 0,
  };

  if (pax?.checksums !== undefined) header.checksums = pax.checksums;

  const plan: EntryPlan = { header, stored, mapInBody: false, linkBody: 'none' };
  if (type === 'file') {
    planFileBody(plan, pax, oldSparse, at);
  } else if (type === 'hardlink') {
    if (stored > 0) plan.linkBody = raw.format === 'ustar' ? (ctx.sawPax ? 'skip' : 'probe') : 'none';
    if (plan.linkBody === 'none') plan.stored = 0; // v7 and GNU tar: the size of a link is not a body
  } else if (raw.typeflag !== T.GNU_DUMPDIR) {
    // Directories, symlinks, devices, fifos never have a body (libarchive, Python, GNU tar for dirs).
    if (stored > 0) ctx.warn('TAR_SIZE_IGNORED', `Ignoring the size of ${type} entries (first at offset ${at})`, type);
    plan.stored = 0;
  }
  return plan;
}

function mapType(flag: number, at: number, ctx: PlanContext): EntryType {
  switch (flag) {
    case T.REG:
    case T.AREG:
    case T.CONT:
    case T.GNU_SPARSE:
      return 'file';
    case T.LINK:
      return 'hardlink';
    case T.SYM:
      return 'symlink';
    case T.CHR:
      return 'chardev';
    case T.BLK:
      return 'blockdev';
    case T.DIR:
    case T.GNU_DUMPDIR:
      return 'dir';
    case T.FIFO:
      return 'fifo';
  }
  ctx.warn('TAR_UNKNOWN_TYPE', `Unknown typeflag ${typeflagName(flag)} at offset ${at}: reading it as a regular file`);
  return 'file';
}

export function typeflagName(flag: number): string {
  return flag >= 0x21 && flag < 0x7f ? `'${String.fromCharCode(flag)}'` : `0x${flag.toString(16).padStart(2, '0')}`;
}

/** Size, body and sparse map of a regular file. */
function planFileBody(plan: EntryPlan, pax: PaxAttrs | undefined, oldSparse: OldSparse | undefined, at: number): void {
  const h = plan.header;
  const gs = pax?.gnuSparse;
  let flat: number[] | undefined;
  let realsize: number | undefined;
  if (oldSparse !== undefined) {
    flat = oldSparse.flat;
    realsize = oldSparse.realsize > 0 ? oldSparse.realsize : undefined;
  } else if (gs !== undefined) {
    const versioned = gs.major !== undefined || gs.minor !== undefined;
    if (gs.major === 1 && gs.minor === 0) {
      // 1.0: the map is at the start of the body; the parser reads it, then calls completeSparse().
      plan.mapInBody = true;
      h.size = gs.realsize ?? 0;
      h.sparse = [];
      return;
    }
    if (versioned && gs.major !== 0) {
      fail('TAR_BAD_SPARSE', 'read tar', `unsupported GNU sparse format ${gs.major ?? '?'}.${gs.minor ?? '?'}`, `entry at offset ${at}`);
    }
    if (gs.map !== undefined || gs.v00) {
      flat = gs.map ?? []; // 0.1 (GNU.sparse.map) or 0.0 (offset/numbytes pairs)
      realsize = gs.realsize;
    }
  }
  if (flat === undefined) {
    h.size = plan.stored;
    h.bodySize = plan.stored;
    return;
  }
  const { segments, size, data } = buildSegments(flat, realsize, at);
  if (data > plan.stored) {
    fail('TAR_BAD_SPARSE', 'read tar', `sparse map needs ${data} bytes of data but ${plan.stored} are stored`, `entry at offset ${at}`);
  }
  h.sparse = segments;
  h.size = size;
  h.bodySize = data;
}

/** GNU sparse 1.0, once the map has been read from the body (`mapBytes` incl. its padding). */
export function completeSparse(plan: EntryPlan, flat: number[], mapBytes: number, at: number): void {
  const h = plan.header;
  const { segments, size, data } = buildSegments(flat, h.size > 0 ? h.size : undefined, at);
  const available = plan.stored - mapBytes;
  if (data > available) {
    fail('TAR_BAD_SPARSE', 'read tar', `sparse map needs ${data} bytes of data but ${available} are stored`, `entry at offset ${at}`);
  }
  h.sparse = segments;
  h.size = size;
  h.bodySize = data;
}

/**
 * xattrs from PAX (SCHILY.xattr.*, LIBARCHIVE.xattr.*, RHT.security.selinux) plus ACLs converted
 * to the kernel's binary form. A binary system.posix_acl_* stored by GNU tar --xattrs is exact
 * (numeric ids), so it wins over the text form of the same ACL.
 */
function buildXattrs(pax: PaxAttrs | undefined, ext: Extensions | undefined, at: number, ctx: PlanContext): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>(pax?.xattrs ?? []);
  if (pax?.nfs4Acl) ctx.warn('TAR_ACL_NFS4', `Dropping the NFSv4 ACL of the entry at offset ${at}: ext4 cannot store NFSv4 ACLs`);
  const access: AclEntry[] = [];
  const deflt: AclEntry[] = [];
  let sawText = false;
  const addText = (text: string, kind: 'access' | 'default'): boolean => {
    sawText = true;
    const parsed = parseAclText(text, kind, ctx.resolveAclName);
    if (typeof parsed === 'string') {
      ctx.warn('TAR_ACL_DROPPED', `Dropping the ACL of the entry at offset ${at}: ${parsed}`);
      return false;
    }
    access.push(...parsed.access);
    deflt.push(...parsed.default);
    return true;
  };
  let ok = true;
  if (ext?.solarisAcl !== undefined) {
    const s = parseSolarisAcl(ext.solarisAcl);
    if (s.kind === 'nfs4') ctx.warn('TAR_ACL_NFS4', `Dropping the Solaris NFSv4 ACL of the entry at offset ${at}: ext4 cannot store NFSv4 ACLs`);
    else if (s.kind === 'bad') ctx.warn('TAR_ACL_DROPPED', `Dropping the Solaris ACL of the entry at offset ${at}: ${s.reason}`);
    else ok = addText(s.text, 'access') && ok;
  }
  // GNU tar --xattrs also stores the exact binary form; then its name-based text is redundant.
  if (pax?.aclAccess !== undefined && !xattrs.has('system.posix_acl_access')) ok = addText(pax.aclAccess, 'access') && ok;
  if (pax?.aclDefault !== undefined && !xattrs.has('system.posix_acl_default')) ok = addText(pax.aclDefault, 'default') && ok;
  if (!sawText || !ok) return xattrs;
  setAcl(xattrs, 'system.posix_acl_access', access, true, at, ctx);
  setAcl(xattrs, 'system.posix_acl_default', deflt, false, at, ctx);
  return xattrs;
}

function setAcl(xattrs: Map<string, Buffer>, name: string, entries: AclEntry[], isAccess: boolean, at: number, ctx: PlanContext): void {
  if (entries.length === 0 || xattrs.has(name)) return;
  if (isAccess && isMinimalAcl(entries)) return; // the mode bits already say it all
  const encoded = encodeAcl(entries);
  if (typeof encoded === 'string') {
    ctx.warn('TAR_ACL_DROPPED', `Dropping ${name} of the entry at offset ${at}: ${encoded}`);
    return;
  }
  xattrs.set(name, encoded);
}
