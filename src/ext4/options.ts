/**
 * The ext4 writer's options: what they mean, their defaults, their validation, and the one list
 * of the options that change an image's bytes (`imageOptions`). The finished-image cache key
 * (convert.ts) and the writer's fingerprint (identity.ts) both come from that list, so an option
 * cannot reach one and be forgotten by the other.
 */
import { fail } from '../errors.js';
import { BLOCK_SIZE } from './format.js';

/** How big the image is. */
export type SizeSpec =
  | { mode: 'auto' }
  | { mode: 'fixed'; bytes: number }
  | { mode: 'plus'; bytes: number };

export interface Ext4Options {
  /** Default `{ mode: 'auto' }`: the contents plus the headroom below. */
  size?: SizeSpec;
  /** No journal, no headroom. Default false. */
  readOnly?: boolean;
  /** Volume label, at most 16 bytes of UTF-8. Default ''. */
  label?: string;
  /** Filesystem UUID (16 bytes). Default: derived from the contents and options. */
  uuid?: Buffer;
  /** Journal size in 4 KiB blocks (≥ 1024). Default: defaultJournalBlocks(). */
  journalBlocks?: number;
  /** A writable image without a journal (saves ≥ 4 MiB on tiny images). Default true. */
  journal?: boolean;
  /** Seconds since the epoch stamped on the superblock (mkfs/write time) and on lost+found. Default 0. */
  timestamp?: number;
}

/** Ext4Options with the defaults filled in. */
export type ResolvedExt4Options = Required<Omit<Ext4Options, 'uuid' | 'journalBlocks'>> & Pick<Ext4Options, 'uuid' | 'journalBlocks'>;

/** Free space and inodes left for the guest in an `auto`-sized writable image. */
export const HEADROOM = {
  /** Free blocks: this fraction of the used blocks ... */
  blocksFraction: 0.01,
  /** ... plus this many (1 MiB). */
  blocksMin: 256,
  /** Free inodes: this fraction of the used inodes ... */
  inodesFraction: 0.01,
  /** ... plus this many. */
  inodesMin: 64,
  /** Bytes per inode for the space a fixed or `+N` size adds (mke2fs's default ratio). */
  bytesPerInode: 16384,
} as const;

/**
 * Free blocks promised to the guest on top of `usedBlocks`: the auto headroom of a writable
 * image plus what `+N` adds. Auto and `+N` images are made this much bigger than the kernel's own
 * reserve (reservedClusters), so `df` in the guest shows at least this much available.
 */
export function promisedFreeBlocks(usedBlocks: number, o: Pick<ResolvedExt4Options, 'size' | 'readOnly'>): number {
  if (o.readOnly || o.size.mode === 'fixed') return 0;
  const headroom = Math.ceil(usedBlocks * HEADROOM.blocksFraction) + HEADROOM.blocksMin;
  const extra = o.size.mode === 'plus' ? Math.ceil(o.size.bytes / BLOCK_SIZE) : 0;
  return headroom + extra;
}

/**
 * Blocks the kernel keeps back on a mounted ext4 filesystem of `totalBlocks` (4 KiB clusters):
 * min(2 % of the blocks, 4096) — fs/ext4/super.c ext4_calculate_resv_clusters. Nobody can write
 * them (not even root): `df` shows free space minus this as available.
 */
export function reservedClusters(totalBlocks: number): number {
  return Math.min(Math.floor(totalBlocks / 50), 4096);
}

/** Fills in defaults and checks every option; throws OPTION_INVALID. */
export function resolveExt4Options(options: Ext4Options = {}): ResolvedExt4Options {
  const o: ResolvedExt4Options = {
    size: options.size ?? { mode: 'auto' },
    readOnly: options.readOnly ?? false,
    label: options.label ?? '',
    uuid: options.uuid,
    journalBlocks: options.journalBlocks,
    journal: options.journal ?? true,
    timestamp: options.timestamp ?? 0,
  };
  if (Buffer.byteLength(o.label, 'utf8') > 16) fail('OPTION_INVALID', 'set label', 'longer than 16 bytes', o.label);
  if (o.uuid && o.uuid.length !== 16) fail('OPTION_INVALID', 'set UUID', 'must be 16 bytes', o.uuid.toString('hex'));
  if (o.journalBlocks !== undefined && (!Number.isInteger(o.journalBlocks) || o.journalBlocks < 1024 || o.journalBlocks > 262144)) {
    fail('OPTION_INVALID', 'set journal size', 'must be 1024..262144 blocks', o.journalBlocks);
  }
  if (o.size.mode !== 'auto' && (!Number.isFinite(o.size.bytes) || o.size.bytes < 0)) fail('OPTION_INVALID', 'set size', 'not a byte count', o.size.bytes);
  if (o.size.mode === 'fixed' && o.size.bytes < 64 * BLOCK_SIZE) fail('OPTION_INVALID', 'set size', 'smaller than 256 KiB', o.size.bytes);
  if (!Number.isInteger(o.timestamp)) fail('OPTION_INVALID', 'set timestamp', 'not whole seconds', o.timestamp);
  return o;
}

/**
 * How each writer option reaches the image's bytes. `fingerprint`: hashed into the fingerprint
 * (which gives the UUID and the htree hash seed), as this text. `null`: written into the image
 * directly instead (uuid is the UUID itself; timestamp is stamped on the superblock and on
 * lost+found, and reaches the fingerprint through the tree's times).
 * The mapped type makes an option added to Ext4Options without an entry here a compile error.
 */
const IMAGE_OPTIONS: { [K in keyof Required<Ext4Options>]: { cacheKey: (o: ResolvedExt4Options) => unknown; fingerprint: ((o: ResolvedExt4Options) => string) | null } } = {
  size: { cacheKey: (o) => o.size, fingerprint: (o) => JSON.stringify(o.size) },
  readOnly: { cacheKey: (o) => o.readOnly, fingerprint: (o) => String(o.readOnly) },
  label: { cacheKey: (o) => o.label, fingerprint: (o) => o.label },
  uuid: { cacheKey: (o) => o.uuid?.toString('hex') ?? null, fingerprint: null },
  journalBlocks: { cacheKey: (o) => o.journalBlocks ?? null, fingerprint: (o) => String(o.journalBlocks ?? '') },
  journal: { cacheKey: (o) => o.journal, fingerprint: (o) => (o.journal ? '' : 'nojournal') },
  timestamp: { cacheKey: (o) => o.timestamp, fingerprint: null },
};

/** The names of every option that changes the image's bytes. */
export const IMAGE_OPTION_NAMES = Object.keys(IMAGE_OPTIONS) as (keyof Ext4Options)[];

/** Every writer option that changes the image's bytes, normalized: part of the image cache key. */
export function imageOptions(options: Ext4Options): Record<keyof Ext4Options, unknown> {
  const o = resolveExt4Options(options);
  const out = {} as Record<keyof Ext4Options, unknown>;
  for (const k of IMAGE_OPTION_NAMES) out[k] = IMAGE_OPTIONS[k].cacheKey(o);
  return out;
}

/** The options' part of the writer's fingerprint: the first bytes hashed. */
export function fingerprintHeader(o: ResolvedExt4Options): string {
  let s = 'rootforge-ext4-v1\0';
  for (const k of IMAGE_OPTION_NAMES) {
    const f = IMAGE_OPTIONS[k].fingerprint;
    if (f) s += `${f(o)}\0`;
  }
  return s;
}
