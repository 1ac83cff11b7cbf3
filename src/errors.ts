import { isUtf8 } from 'node:buffer';

/**
 * Typed errors. Every failure a user can cause carries a stable `code` and a message of the
 * form "Cannot X: reason (value)". The CLI prints the message and exits non-zero; `--debug`
 * adds the stack. `cause` keeps the underlying error when there is one.
 */

export type ErrorCode =
  // tar reader
  | 'TAR_BAD_CHECKSUM'
  | 'TAR_TRUNCATED'
  | 'TAR_BAD_HEADER'
  | 'TAR_BAD_PAX'
  | 'TAR_BAD_SPARSE'
  | 'TAR_UNSUPPORTED_TYPE'
  | 'TAR_UNSUPPORTED_COMPRESSION'
  | 'TAR_BAD_COMPRESSION'
  | 'TAR_NOT_TAR'
  // tree
  | 'TAR_HARDLINK_TARGET'
  | 'TREE_BAD_PATH'
  | 'TREE_NOT_DIRECTORY'
  // ext4
  | 'EXT4_NAME_TOO_LONG'
  | 'EXT4_NO_SPACE'
  | 'EXT4_TOO_MANY_INODES'
  | 'EXT4_FILE_TOO_LARGE'
  | 'EXT4_XATTR_TOO_LARGE'
  | 'EXT4_XATTR_INVALID'
  | 'EXT4_SYMLINK_TOO_LONG'
  | 'EXT4_BAD_IMAGE'
  | 'EXT4_NOT_FOUND'
  // OCI images, registries and the cache
  | 'OCI_BAD_REFERENCE'
  | 'OCI_BAD_LAYOUT'
  | 'OCI_BAD_MANIFEST'
  | 'OCI_NOT_FOUND'
  | 'OCI_NO_PLATFORM'
  | 'OCI_UNSUPPORTED_MEDIA_TYPE'
  | 'OCI_DIGEST_MISMATCH'
  | 'OCI_AUTH_FAILED'
  | 'OCI_REGISTRY_ERROR'
  | 'OCI_NETWORK'
  | 'OCI_LAYER_INVALID'
  | 'OCI_TOO_MANY_LAYERS'
  | 'OCI_TRANSFER_TOO_SLOW'
  | 'CACHE_LOCKED'
  | 'CACHE_IO'
  // HTTP transport (src/util/http.ts) for downloads that are not registry operations
  | 'NET_CONNECT'
  | 'NET_TIMEOUT'
  | 'NET_HTTP_STATUS'
  | 'NET_TOO_SLOW'
  // build specs and provisioning
  | 'SPEC_INVALID'
  | 'SPEC_NOT_FOUND'
  | 'PROVISION_FAILED'
  // Debian package sources (src/sources/debian/) and lock files
  | 'DEBIAN_TOOL_MISSING'
  | 'DEBIAN_NO_MODE'
  | 'DEBIAN_FOREIGN_ARCH'
  | 'DEBIAN_MMDEBSTRAP_FAILED'
  | 'DEBIAN_MIRROR_FAILED'
  | 'LOCK_INVALID'
  | 'LOCK_STALE'
  | 'LOCK_UNAVAILABLE'
  | 'LOCK_MISMATCH'
  // booting
  | 'VM_VMM_MISSING'
  | 'VM_START_FAILED'
  | 'VM_BOOT_TIMEOUT'
  | 'VM_EXITED'
  | 'VM_KERNEL_PANIC'
  | 'VM_NO_AGENT'
  | 'VM_CHECK_FAILED'
  | 'VM_ARCH_MISMATCH'
  // sources, options and I/O
  | 'SOURCE_BAD_SPEC'
  | 'SOURCE_NOT_FOUND'
  | 'SOURCE_UNREADABLE'
  | 'SOURCE_PLATFORM_MISMATCH'
  | 'OPTION_INVALID'
  | 'OUTPUT_EXISTS'
  | 'OUTPUT_FAILED'
  | 'OUTPUT_TOO_LARGE'
  | 'OUTPUT_DISK_FULL'
  | 'IO_FAILED'
  | 'WORKER_FAILED'
  // the guest agent client (src/agent-client/)
  | 'AGENT_CONNECT_FAILED'
  | 'AGENT_TIMEOUT'
  | 'AGENT_PROTOCOL'
  | 'AGENT_PROTOCOL_MISMATCH'
  | 'AGENT_DISCONNECTED'
  | 'AGENT_EXEC_FAILED'
  | 'AGENT_REMOTE_ERROR'
  | 'AGENT_TOO_LARGE'
  // sandbox instances (src/instance/)
  | 'INSTANCE_INVALID'
  | 'INSTANCE_BASE_CHANGED'
  | 'INSTANCE_SHARE_FAILED'
  // verify (static checks of an image)
  | 'VERIFY_BAD_ELF'
  | 'VERIFY_BAD_CONFIG'
  // kernels, initramfs and VMM downloads (src/kernel/)
  | 'KERNEL_NOT_FOUND'
  | 'KERNEL_BAD_IMAGE'
  | 'KERNEL_DECOMPRESS_FAILED'
  | 'KERNEL_BAD_DEB'
  | 'KERNEL_APT_FAILED'
  | 'KERNEL_MODULE_MISSING'
  | 'KERNEL_INIT_MISSING'
  | 'KERNEL_LOCK_INVALID'
  | 'KERNEL_NOT_PINNED'
  | 'KERNEL_CHECKSUM_MISMATCH'
  | 'KERNEL_DOWNLOAD_FAILED'
  | 'KERNEL_CACHE_IO'
  // Alpine packages (src/sources/alpine/)
  | 'APK_BAD_KEY'
  | 'APK_UNTRUSTED'
  | 'APK_BAD_SIGNATURE'
  | 'APK_BAD_INDEX'
  | 'APK_BAD_PACKAGE'
  | 'APK_CHECKSUM_MISMATCH'
  | 'APK_UNSATISFIABLE'
  | 'APK_CONFLICT'
  | 'APK_FILE_CONFLICT'
  | 'APK_FETCH_FAILED'
  | 'APK_LOCK_MISMATCH';

export class RootforgeError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RootforgeError';
    this.code = code;
  }
}

/** Builds the canonical message "Cannot X: reason (value)". */
export function cannot(what: string, reason: string, value?: unknown): string {
  if (value === undefined) return `Cannot ${what}: ${reason}`;
  return `Cannot ${what}: ${reason} (${formatValue(value)})`;
}

export function fail(code: ErrorCode, what: string, reason: string, value?: unknown, cause?: unknown): never {
  throw new RootforgeError(code, cannot(what, reason, value), cause === undefined ? undefined : { cause });
}

export function isRootforgeError(e: unknown, code?: ErrorCode): e is RootforgeError {
  return e instanceof RootforgeError && (code === undefined || e.code === code);
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return printable(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return printable(Buffer.from(value).toString('latin1'));
  return String(value);
}

/**
 * Paths inside images are byte strings (one char per byte, see util/bytes.ts). Shown to a user
 * they are decoded as UTF-8 when valid, with control bytes escaped so a message stays one line.
 */
export function printable(s: string): string {
  const bytes = Buffer.from(s, 'latin1');
  const text = isUtf8(bytes) ? bytes.toString('utf8') : s;
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
