/**
 * The build spec (`rootforge.yaml`): what image to start from and what makes it a sandbox.
 * Every field is optional except where noted; defaults are applied by `normalizeSpec`.
 * The JSON Schema for editors is schema/rootforge.schema.json (kept in step by a test).
 */

export type InitMode = 'agent' | 'wrapper' | 'systemd' | 'openrc';
export type StripItem = 'docs' | 'man' | 'locales' | 'caches';

export interface UserSpec {
  name: string;
  uid: number;
  gid?: number; // default: uid
  home?: string; // default /home/NAME (/root for uid 0)
  shell?: string; // default /bin/sh
  groups?: string[]; // supplementary groups (must exist or be declared in `groups`)
}

export interface MountSpec {
  /** virtio-fs tag or 9p mount tag given by the VMM. */
  tag: string;
  /** Where the agent mounts it in the guest (created in the image). */
  target: string;
  type?: 'virtiofs' | '9p'; // default virtiofs
  readOnly?: boolean;
}

export interface BuildSpec {
  /** Where the root filesystem starts: 'scratch' (nothing) or any convert source. Default scratch. */
  from?: string;
  /** Image sources: which platform of a multi-platform image (OS/ARCH[/VARIANT]). */
  platform?: string;
  /** 'builtin' (rootforge's agent for the image's architecture), a path to your own, or 'none'. */
  agent?: string;
  /** How the agent starts. Default: 'agent' from scratch, else 'wrapper'. */
  init?: InitMode;
  /** The real init the wrapper hands over to (init: wrapper). Default /sbin/init. */
  realInit?: string;
  hostname?: string;
  /** Nameservers for /etc/resolv.conf. */
  dns?: string[];
  /** Environment for commands the agent runs. */
  env?: Record<string, string>;
  users?: UserSpec[];
  /** Work directory, created in the image and the agent's default cwd. Default /workspace. */
  workdir?: string;
  mounts?: MountSpec[];
  /** A directory copied over the root with its modes (owned by root unless `filesOwner`). */
  files?: string;
  /** UID:GID for `files` (default 0:0). */
  filesOwner?: string;
  /** What to leave out of the base: docs, man pages, locales, package caches; or true for all. */
  strip?: boolean | StripItem[];
  /** auto (default), 2G, +512M. */
  size?: string;
  readOnly?: boolean;
  /** Writable images: a jbd2 journal (default true). */
  journal?: boolean;
  label?: string;
  /** Output image path (relative to the spec file). Default <spec name>.ext4. */
  output?: string;
  /** Overwrite essential /etc files even when the base has them. Default false. */
  overwriteEtc?: boolean;
  // Package-set bases: from: debian:SUITE (src/sources/debian/options.ts), or Alpine packages on
  // any other base (src/sources/alpine/spec.ts). `packages` and `repositories` serve both.
  /** Packages to install: Debian's on top of the variant, or apk dependencies (`name>=1.2`, `!name`). */
  packages?: string[];
  /** mmdebstrap variant (default minbase). */
  variant?: 'extract' | 'custom' | 'essential' | 'apt' | 'required' | 'minbase' | 'buildd' | 'important' | 'debootstrap' | 'standard';
  /** Archive components (default [main]). */
  components?: string[];
  /** Package mirror (default http://deb.debian.org/debian). */
  mirror?: string;
  /** Debian: extra apt repositories with their signing keys. Alpine: URLs or directories holding <arch>/APKINDEX.tar.gz. */
  repositories?: ({ uri: string; suite?: string; components?: string[]; key?: string } | string)[];
  /** Target architecture, Debian's name (amd64, arm64); default the build's platform, else the host's. */
  architecture?: string;
  /** Install recommended packages too (default false). */
  recommends?: boolean;
  /** The lock file (default <spec name>.lock.json beside the spec, used when it exists). */
  lock?: string;
  /** Alpine: a package list, profiles/alpine/<name>.txt (minimal, balanced, heavy) or a .txt path. */
  profile?: string;
  /** Alpine: extra trusted public key files (the base's /etc/apk/keys are trusted too). */
  keys?: string[];
}
