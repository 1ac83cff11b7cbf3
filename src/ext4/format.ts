/**
 * ext4 on-disk format: constants, flags, sizes and field offsets. Nothing here does I/O or
 * holds state (hcsshim's `format.go` habit). Offsets are bytes from the start of the struct;
 * the codecs in codec.ts use them. Reference: the kernel's Documentation/filesystems/ext4/.
 *
 * Image layout rootforge writes (4 KiB blocks, flex_bg + meta_bg, metadata after the data):
 *
 *   block 0         boot area (1 KiB) + primary superblock (1 KiB at byte 1024)
 *   block 1         group descriptors of meta-group 0 (groups 0..63)
 *   block 2 ..      file data, in input order, streamed as the input is read
 *                   (skipping the fixed spots below: superblock backups and meta_bg descriptors)
 *   ...             journal, inode tables, bitmaps, directories, extent-index, symlink and
 *                   xattr blocks: placed after the data once the whole tree is known
 *   ...             free blocks: the headroom left for the guest
 *
 * With meta_bg every descriptor block sits at a fixed place (the first, second and last group of
 * each 64-group meta-group) and with sparse_super every superblock backup too (groups 0, 1 and
 * powers of 3, 5, 7). So data can be written at its final place before the image's size is known.
 */

export const BLOCK_SIZE = 4096;
export const LOG_BLOCK_SIZE = 2; // block size = 1024 << 2
export const BLOCKS_PER_GROUP = BLOCK_SIZE * 8; // one bitmap block per group
export const INODE_SIZE = 256;
export const INODES_PER_BLOCK = BLOCK_SIZE / INODE_SIZE;
export const MAX_INODES_PER_GROUP = BLOCK_SIZE * 8;
export const DESC_SIZE = 64; // 64bit feature
export const DESCS_PER_BLOCK = BLOCK_SIZE / DESC_SIZE;
export const EXTRA_ISIZE = 32; // i_extra_isize: up to and including i_projid
export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const LOG_GROUPS_PER_FLEX = 4;

export const MAGIC = 0xef53;
export const FIRST_INO = 11;
export const ROOT_INO = 2;
export const JOURNAL_INO = 8;
export const LOST_FOUND_INO = 11;
export const LOST_FOUND_BLOCKS = 4; // like mke2fs: room for e2fsck to reconnect without allocating
export const MAX_NAME_LEN = 255;
export const MAX_SYMLINK_LEN = BLOCK_SIZE - 1;
export const FAST_SYMLINK_MAX = 59; // target stored in i_block (60 bytes) when shorter than this
export const MAX_LINKS = 65000; // EXT4_LINK_MAX; dirs beyond it get i_links_count = 1 (dir_nlink)
export const MAX_EXTENT_LEN = 32768; // longest initialized extent, in blocks
export const MAX_FILE_BLOCKS = 2 ** 32 - 1; // 32-bit logical block numbers: 16 TiB files

// ---- superblock (struct ext4_super_block, 1024 bytes) ----
export const SB = {
  inodesCount: 0x0, // 4 s_inodes_count
  blocksCountLo: 0x4, // 4 s_blocks_count_lo
  rBlocksCountLo: 0x8, // 4 s_r_blocks_count_lo
  freeBlocksCountLo: 0xc, // 4 s_free_blocks_count_lo
  freeInodesCount: 0x10, // 4 s_free_inodes_count
  firstDataBlock: 0x14, // 4 s_first_data_block
  logBlockSize: 0x18, // 4 s_log_block_size
  logClusterSize: 0x1c, // 4 s_log_cluster_size
  blocksPerGroup: 0x20, // 4 s_blocks_per_group
  clustersPerGroup: 0x24, // 4 s_clusters_per_group
  inodesPerGroup: 0x28, // 4 s_inodes_per_group
  mtime: 0x2c, // 4 s_mtime
  wtime: 0x30, // 4 s_wtime
  mntCount: 0x34, // 2 s_mnt_count
  maxMntCount: 0x36, // 2 s_max_mnt_count (signed)
  magic: 0x38, // 2 s_magic
  state: 0x3a, // 2 s_state
  errors: 0x3c, // 2 s_errors
  minorRevLevel: 0x3e, // 2 s_minor_rev_level
  lastcheck: 0x40, // 4 s_lastcheck
  checkinterval: 0x44, // 4 s_checkinterval
  creatorOs: 0x48, // 4 s_creator_os
  revLevel: 0x4c, // 4 s_rev_level
  defResuid: 0x50, // 2 s_def_resuid
  defResgid: 0x52, // 2 s_def_resgid
  firstIno: 0x54, // 4 s_first_ino
  inodeSize: 0x58, // 2 s_inode_size
  blockGroupNr: 0x5a, // 2 s_block_group_nr
  featureCompat: 0x5c, // 4 s_feature_compat
  featureIncompat: 0x60, // 4 s_feature_incompat
  featureRoCompat: 0x64, // 4 s_feature_ro_compat
  uuid: 0x68, // 16 s_uuid
  volumeName: 0x78, // 16 s_volume_name
  lastMounted: 0x88, // 64 s_last_mounted
  algorithmUsageBitmap: 0xc8, // 4 s_algorithm_usage_bitmap
  preallocBlocks: 0xcc, // 1 s_prealloc_blocks
  preallocDirBlocks: 0xcd, // 1 s_prealloc_dir_blocks
  reservedGdtBlocks: 0xce, // 2 s_reserved_gdt_blocks
  journalUuid: 0xd0, // 16 s_journal_uuid
  journalInum: 0xe0, // 4 s_journal_inum
  journalDev: 0xe4, // 4 s_journal_dev
  lastOrphan: 0xe8, // 4 s_last_orphan
  hashSeed: 0xec, // 16 s_hash_seed[4]
  defHashVersion: 0xfc, // 1 s_def_hash_version
  jnlBackupType: 0xfd, // 1 s_jnl_backup_type
  descSize: 0xfe, // 2 s_desc_size
  defaultMountOpts: 0x100, // 4 s_default_mount_opts
  firstMetaBg: 0x104, // 4 s_first_meta_bg
  mkfsTime: 0x108, // 4 s_mkfs_time
  jnlBlocks: 0x10c, // 68 s_jnl_blocks[17]
  blocksCountHi: 0x150, // 4 s_blocks_count_hi
  rBlocksCountHi: 0x154, // 4 s_r_blocks_count_hi
  freeBlocksCountHi: 0x158, // 4 s_free_blocks_count_hi
  minExtraIsize: 0x15c, // 2 s_min_extra_isize
  wantExtraIsize: 0x15e, // 2 s_want_extra_isize
  flags: 0x160, // 4 s_flags
  raidStride: 0x164, // 2 s_raid_stride
  mmpInterval: 0x166, // 2 s_mmp_interval
  mmpBlock: 0x168, // 8 s_mmp_block
  raidStripeWidth: 0x170, // 4 s_raid_stripe_width
  logGroupsPerFlex: 0x174, // 1 s_log_groups_per_flex
  checksumType: 0x175, // 1 s_checksum_type
  kbytesWritten: 0x178, // 8 s_kbytes_written
  overheadClusters: 0x248, // 4 s_overhead_clusters
  backupBgs: 0x24c, // 8 s_backup_bgs[2]
  lpfIno: 0x268, // 4 s_lpf_ino
  checksumSeed: 0x270, // 4 s_checksum_seed
  wtimeHi: 0x274, // 1 s_wtime_hi
  mtimeHi: 0x275, // 1 s_mtime_hi
  mkfsTimeHi: 0x276, // 1 s_mkfs_time_hi
  lastcheckHi: 0x277, // 1 s_lastcheck_hi
  checksum: 0x3fc, // 4 s_checksum
} as const;

export const STATE_CLEAN = 1;
export const ERRORS_CONTINUE = 1;
export const OS_LINUX = 0;
export const REV_DYNAMIC = 1;
export const DEFM_XATTR_USER = 0x0004;
export const DEFM_ACL = 0x0008;
export const FLAG_SIGNED_HASH = 0x1;
export const FLAG_UNSIGNED_HASH = 0x2;
export const CHECKSUM_TYPE_CRC32C = 1;
export const JNL_BACKUP_BLOCKS = 1;

export const COMPAT_HAS_JOURNAL = 0x4;
export const COMPAT_EXT_ATTR = 0x8;
export const COMPAT_RESIZE_INODE = 0x10;
export const COMPAT_DIR_INDEX = 0x20;
export const COMPAT_SPARSE_SUPER2 = 0x200;

export const INCOMPAT_FILETYPE = 0x2;
export const INCOMPAT_RECOVER = 0x4;
export const INCOMPAT_JOURNAL_DEV = 0x8;
export const INCOMPAT_META_BG = 0x10;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_64BIT = 0x80;
export const INCOMPAT_MMP = 0x100;
export const INCOMPAT_FLEX_BG = 0x200;
export const INCOMPAT_EA_INODE = 0x400;
export const INCOMPAT_CSUM_SEED = 0x2000;
export const INCOMPAT_LARGEDIR = 0x4000;
export const INCOMPAT_INLINE_DATA = 0x8000;
export const INCOMPAT_ENCRYPT = 0x10000;
export const INCOMPAT_CASEFOLD = 0x20000;

export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_LARGE_FILE = 0x2;
export const RO_COMPAT_HUGE_FILE = 0x8;
export const RO_COMPAT_GDT_CSUM = 0x10;
export const RO_COMPAT_DIR_NLINK = 0x20;
export const RO_COMPAT_EXTRA_ISIZE = 0x40;
export const RO_COMPAT_METADATA_CSUM = 0x400;
export const RO_COMPAT_READONLY = 0x1000;

/** Feature names as e2fsprogs prints them, for `inspect`. [mask, name] per word. */
export const FEATURE_NAMES: {
  compat: [number, string][];
  incompat: [number, string][];
  roCompat: [number, string][];
} = {
  compat: [
    [0x1, 'dir_prealloc'],
    [0x2, 'imagic_inodes'],
    [COMPAT_HAS_JOURNAL, 'has_journal'],
    [COMPAT_EXT_ATTR, 'ext_attr'],
    [COMPAT_RESIZE_INODE, 'resize_inode'],
    [COMPAT_DIR_INDEX, 'dir_index'],
    [0x40, 'lazy_bg'],
    [COMPAT_SPARSE_SUPER2, 'sparse_super2'],
    [0x400, 'fast_commit'],
    [0x800, 'stable_inodes'],
    [0x1000, 'orphan_file'],
  ],
  incompat: [
    [0x1, 'compression'],
    [INCOMPAT_FILETYPE, 'filetype'],
    [INCOMPAT_RECOVER, 'needs_recovery'],
    [INCOMPAT_JOURNAL_DEV, 'journal_dev'],
    [INCOMPAT_META_BG, 'meta_bg'],
    [INCOMPAT_EXTENTS, 'extent'],
    [INCOMPAT_64BIT, '64bit'],
    [INCOMPAT_MMP, 'mmp'],
    [INCOMPAT_FLEX_BG, 'flex_bg'],
    [INCOMPAT_EA_INODE, 'ea_inode'],
    [0x1000, 'dirdata'],
    [INCOMPAT_CSUM_SEED, 'metadata_csum_seed'],
    [INCOMPAT_LARGEDIR, 'large_dir'],
    [INCOMPAT_INLINE_DATA, 'inline_data'],
    [INCOMPAT_ENCRYPT, 'encrypt'],
    [INCOMPAT_CASEFOLD, 'casefold'],
  ],
  roCompat: [
    [RO_COMPAT_SPARSE_SUPER, 'sparse_super'],
    [RO_COMPAT_LARGE_FILE, 'large_file'],
    [0x4, 'btree_dir'],
    [RO_COMPAT_HUGE_FILE, 'huge_file'],
    [RO_COMPAT_GDT_CSUM, 'uninit_bg'],
    [RO_COMPAT_DIR_NLINK, 'dir_nlink'],
    [RO_COMPAT_EXTRA_ISIZE, 'extra_isize'],
    [0x100, 'quota'],
    [0x200, 'bigalloc'],
    [RO_COMPAT_METADATA_CSUM, 'metadata_csum'],
    [RO_COMPAT_READONLY, 'read-only'],
    [0x2000, 'project'],
    [0x8000, 'verity'],
    [0x10000, 'orphan_present'],
  ],
};

// ---- group descriptor (struct ext4_group_desc, 64 bytes with 64bit) ----
export const GD = {
  blockBitmapLo: 0x0, // 4 bg_block_bitmap_lo
  inodeBitmapLo: 0x4, // 4 bg_inode_bitmap_lo
  inodeTableLo: 0x8, // 4 bg_inode_table_lo
  freeBlocksCountLo: 0xc, // 2 bg_free_blocks_count_lo
  freeInodesCountLo: 0xe, // 2 bg_free_inodes_count_lo
  usedDirsCountLo: 0x10, // 2 bg_used_dirs_count_lo
  flags: 0x12, // 2 bg_flags
  excludeBitmapLo: 0x14, // 4 bg_exclude_bitmap_lo
  blockBitmapCsumLo: 0x18, // 2 bg_block_bitmap_csum_lo
  inodeBitmapCsumLo: 0x1a, // 2 bg_inode_bitmap_csum_lo
  itableUnusedLo: 0x1c, // 2 bg_itable_unused_lo
  checksum: 0x1e, // 2 bg_checksum
  blockBitmapHi: 0x20, // 4 bg_block_bitmap_hi
  inodeBitmapHi: 0x24, // 4 bg_inode_bitmap_hi
  inodeTableHi: 0x28, // 4 bg_inode_table_hi
  freeBlocksCountHi: 0x2c, // 2 bg_free_blocks_count_hi
  freeInodesCountHi: 0x2e, // 2 bg_free_inodes_count_hi
  usedDirsCountHi: 0x30, // 2 bg_used_dirs_count_hi
  itableUnusedHi: 0x32, // 2 bg_itable_unused_hi
  excludeBitmapHi: 0x34, // 4 bg_exclude_bitmap_hi
  blockBitmapCsumHi: 0x38, // 2 bg_block_bitmap_csum_hi
  inodeBitmapCsumHi: 0x3a, // 2 bg_inode_bitmap_csum_hi
  // 0x3c 4 bg_reserved
} as const;

export const BG_INODE_UNINIT = 0x1;
export const BG_BLOCK_UNINIT = 0x2;
export const BG_INODE_ZEROED = 0x4;

// ---- inode (struct ext4_inode, 256 bytes) ----
export const INO = {
  mode: 0x0, // 2 i_mode
  uidLo: 0x2, // 2 i_uid
  sizeLo: 0x4, // 4 i_size_lo
  atime: 0x8, // 4 i_atime
  ctime: 0xc, // 4 i_ctime
  mtime: 0x10, // 4 i_mtime
  dtime: 0x14, // 4 i_dtime
  gidLo: 0x18, // 2 i_gid
  linksCount: 0x1a, // 2 i_links_count
  blocksLo: 0x1c, // 4 i_blocks_lo (512-byte units)
  flags: 0x20, // 4 i_flags
  version: 0x24, // 4 osd1.l_i_version
  block: 0x28, // 60 i_block[15]
  generation: 0x64, // 4 i_generation
  fileAclLo: 0x68, // 4 i_file_acl_lo
  sizeHigh: 0x6c, // 4 i_size_high
  obsoFaddr: 0x70, // 4 i_obso_faddr
  blocksHigh: 0x74, // 2 osd2.l_i_blocks_high
  fileAclHigh: 0x76, // 2 osd2.l_i_file_acl_high
  uidHigh: 0x78, // 2 osd2.l_i_uid_high
  gidHigh: 0x7a, // 2 osd2.l_i_gid_high
  checksumLo: 0x7c, // 2 osd2.l_i_checksum_lo
  // 0x7e 2 osd2.l_i_reserved
  extraIsize: 0x80, // 2 i_extra_isize
  checksumHi: 0x82, // 2 i_checksum_hi
  ctimeExtra: 0x84, // 4 i_ctime_extra
  mtimeExtra: 0x88, // 4 i_mtime_extra
  atimeExtra: 0x8c, // 4 i_atime_extra
  crtime: 0x90, // 4 i_crtime
  crtimeExtra: 0x94, // 4 i_crtime_extra
  versionHi: 0x98, // 4 i_version_hi
  projid: 0x9c, // 4 i_projid
  inlineXattr: 0xa0, // in-inode xattr area: 4-byte magic, then entries, values at the end
} as const;

export const GOOD_OLD_INODE_SIZE = 128;
export const I_BLOCK_SIZE = 60;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export const IFL_INDEX = 0x1000; // hashed directory
export const IFL_HUGE_FILE = 0x40000;
export const IFL_EXTENTS = 0x80000;
export const IFL_INLINE_DATA = 0x10000000;

// ---- extent tree (ext4_extent_header / ext4_extent / ext4_extent_idx, 12 bytes each) ----
export const EXTENT_MAGIC = 0xf30a;
export const EXT_HEADER_SIZE = 12;
export const EXT_ENTRY_SIZE = 12;
export const EH = {
  magic: 0x0, // 2 eh_magic
  entries: 0x2, // 2 eh_entries
  max: 0x4, // 2 eh_max
  depth: 0x6, // 2 eh_depth
  generation: 0x8, // 4 eh_generation
} as const;
export const EE = {
  block: 0x0, // 4 ee_block (first logical block)
  len: 0x4, // 2 ee_len (> 32768: uninitialized)
  startHi: 0x6, // 2 ee_start_hi
  startLo: 0x8, // 4 ee_start_lo
} as const;
export const EI = {
  block: 0x0, // 4 ei_block
  leafLo: 0x4, // 4 ei_leaf_lo
  leafHi: 0x8, // 2 ei_leaf_hi
  // 0xa 2 ei_unused
} as const;
export const EXTENTS_IN_INODE = (I_BLOCK_SIZE - EXT_HEADER_SIZE) / EXT_ENTRY_SIZE; // 4
export const EXTENTS_PER_BLOCK = (BLOCK_SIZE - EXT_HEADER_SIZE - 4) / EXT_ENTRY_SIZE; // 340 (+4-byte tail)

// ---- directories ----
export const DIRENT_HEADER = 8; // inode 4, rec_len 2, name_len 1, file_type 1
export const DIR_TAIL_SIZE = 12; // struct ext4_dir_entry_tail (metadata_csum)
export const DIR_TAIL_FT = 0xde;
export const FT_UNKNOWN = 0;
export const FT_REG = 1;
export const FT_DIR = 2;
export const FT_CHRDEV = 3;
export const FT_BLKDEV = 4;
export const FT_FIFO = 5;
export const FT_SOCK = 6;
export const FT_SYMLINK = 7;

// htree (dir_index): block 0 is dx_root, inner blocks dx_node, leaves are plain dirent blocks.
export const DX_ROOT_INFO = 24; // after the fake "." (12) and ".." (12) entries
export const DX_ROOT_ENTRIES = 32; // dx_countlimit + entries start
export const DX_NODE_ENTRIES = 8; // after a fake empty dirent
export const DX_ENTRY_SIZE = 8; // hash 4, block 4 (the first holds limit 2, count 2, block 4)
export const DX_TAIL_SIZE = 8; // dt_reserved 4, dt_checksum 4
export const DX_HASH_LEGACY = 0;
export const DX_HASH_HALF_MD4 = 1;
export const DX_HASH_TEA = 2;
export const DX_HASH_LEGACY_UNSIGNED = 3;
export const DX_HASH_HALF_MD4_UNSIGNED = 4;
export const DX_HASH_TEA_UNSIGNED = 5;
export const DX_ROOT_LIMIT = (BLOCK_SIZE - DX_ROOT_ENTRIES - DX_TAIL_SIZE) / DX_ENTRY_SIZE; // 507
export const DX_NODE_LIMIT = (BLOCK_SIZE - DX_NODE_ENTRIES - DX_TAIL_SIZE) / DX_ENTRY_SIZE; // 510
export const DX_MAX_LEVELS = 2; // indirect_levels 0 or 1 without large_dir

// ---- extended attributes ----
export const XATTR_MAGIC = 0xea020000;
export const XATTR_BLOCK_HEADER = 32; // h_magic h_refcount h_blocks h_hash h_checksum h_reserved[3]
export const XH = {
  magic: 0x0, // 4 h_magic
  refcount: 0x4, // 4 h_refcount
  blocks: 0x8, // 4 h_blocks
  hash: 0xc, // 4 h_hash
  checksum: 0x10, // 4 h_checksum
} as const;
export const XATTR_ENTRY_HEADER = 16; // e_name_len 1, e_name_index 1, e_value_offs 2, e_value_inum 4, e_value_size 4, e_hash 4
export const XE = {
  nameLen: 0x0, // 1 e_name_len
  nameIndex: 0x1, // 1 e_name_index
  valueOffs: 0x2, // 2 e_value_offs
  valueInum: 0x4, // 4 e_value_inum
  valueSize: 0x8, // 4 e_value_size
  hash: 0xc, // 4 e_hash
  name: 0x10, // e_name (not NUL-terminated)
} as const;
export const XATTR_IBODY_START = INO.inlineXattr + 4; // first in-inode entry; value offsets count from here
export const XATTR_INDEX = {
  user: 1,
  posixAclAccess: 2,
  posixAclDefault: 3,
  trusted: 4,
  security: 6,
  system: 7,
  richacl: 8,
} as const;
/** Prefix → name index; the longest matching prefix wins (ACL names have an empty suffix). */
export const XATTR_PREFIXES: [string, number][] = [
  ['system.posix_acl_access', XATTR_INDEX.posixAclAccess],
  ['system.posix_acl_default', XATTR_INDEX.posixAclDefault],
  ['system.richacl', XATTR_INDEX.richacl],
  ['user.', XATTR_INDEX.user],
  ['trusted.', XATTR_INDEX.trusted],
  ['security.', XATTR_INDEX.security],
  ['system.', XATTR_INDEX.system],
];

// ext4's own POSIX ACL encoding (struct ext4_acl_header/entry); differs from the VFS xattr form.
export const EXT4_ACL_VERSION = 1;
export const VFS_ACL_VERSION = 2;
export const ACL_USER_OBJ = 0x01;
export const ACL_USER = 0x02;
export const ACL_GROUP_OBJ = 0x04;
export const ACL_GROUP = 0x08;
export const ACL_MASK = 0x10;
export const ACL_OTHER = 0x20;

// ---- jbd2 journal superblock (big-endian) ----
export const JBD2_MAGIC = 0xc03b3998;
export const JBD2_SUPERBLOCK_V2 = 4;
export const JSB = {
  magic: 0x0, // 4 h_magic
  blocktype: 0x4, // 4 h_blocktype
  sequence: 0x8, // 4 h_sequence
  blocksize: 0xc, // 4 s_blocksize
  maxlen: 0x10, // 4 s_maxlen
  first: 0x14, // 4 s_first
  seq: 0x18, // 4 s_sequence
  start: 0x1c, // 4 s_start
  errno: 0x20, // 4 s_errno
  featureCompat: 0x24, // 4 s_feature_compat
  featureIncompat: 0x28, // 4 s_feature_incompat
  featureRoCompat: 0x2c, // 4 s_feature_ro_compat
  uuid: 0x30, // 16 s_uuid
  nrUsers: 0x40, // 4 s_nr_users
  dynsuper: 0x44, // 4 s_dynsuper
  maxTransaction: 0x48, // 4 s_max_transaction
  maxTransData: 0x4c, // 4 s_max_trans_data
  checksumType: 0x50, // 1 s_checksum_type
  numFcBlocks: 0x54, // 4 s_num_fc_blks
  checksum: 0xfc, // 4 s_checksum
  users: 0x100, // 16*48 s_users
} as const;
export const JOURNAL_MIN_BLOCKS = 1024;

/** Groups that hold a superblock backup under sparse_super: 0, 1 and powers of 3, 5 and 7. */
export function groupHasSuperblock(group: number): boolean {
  if (group <= 1) return true;
  for (const base of [3, 5, 7]) {
    let p = base;
    while (p < group) p *= base;
    if (p === group) return true;
  }
  return false;
}

/** Under meta_bg, a meta-group's descriptor block is in its first, second and last group. */
export function groupHasDescriptorBlock(group: number): boolean {
  const i = group % DESCS_PER_BLOCK;
  return i === 0 || i === 1 || i === DESCS_PER_BLOCK - 1;
}

/** Blocks at the start of `group` taken by a superblock copy and/or a descriptor block. */
export function groupReservedBlocks(group: number): number {
  return (groupHasSuperblock(group) ? 1 : 0) + (groupHasDescriptorBlock(group) ? 1 : 0);
}
