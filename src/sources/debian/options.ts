/**
 * A Debian package-set base (`from: debian:trixie`): which suite, which packages, from which
 * mirror and extra repositories, for which architecture. Resolved from the spec's keys with
 * their defaults here, so load.ts stays a list of keys; built by mmdebstrap (mmdebstrap.ts).
 */
import { isAbsolute, join } from 'node:path';
import { fail } from '../../errors.js';

/** Debian's own mirror: the default, like mmdebstrap's. */
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
/** mmdebstrap's variants; minbase (Essential + apt) is our default. */
export const VARIANTS = ['extract', 'custom', 'essential', 'apt', 'required', 'minbase', 'buildd', 'important', 'debootstrap', 'standard'] as const;
export type DebianVariant = (typeof VARIANTS)[number];

/** An extra apt repository (a NodeSource-style one) and the key its Release is signed with. */
export interface DebianRepository {
  /** e.g. https://deb.nodesource.com/node_20.x */
  uri: string;
  /** Default: the base's suite. */
  suite: string;
  /** Default: [main]. */
  components: string[];
  /** Absolute path of the repository's OpenPGP key (armored .asc or binary .gpg); undefined: trusted by the host's keyrings. */
  key: string | undefined;
}

export interface DebianOptions {
  /** As written after `debian:`: trixie, bookworm, sid, stable… (`debian` alone: stable). */
  suite: string;
  packages: string[];
  variant: DebianVariant;
  components: string[];
  mirror: string;
  repositories: DebianRepository[];
  /** Debian architecture name (amd64, arm64, …); undefined: the host's. */
  architecture: string | undefined;
  /** Install Recommends too (default false: --no-install-recommends). */
  recommends: boolean;
}

/** The spec keys this source reads (see schema/rootforge.schema.json). */
export interface DebianSpecKeys {
  packages?: string[];
  variant?: DebianVariant;
  components?: string[];
  mirror?: string;
  repositories?: { uri: string; suite?: string; components?: string[]; key?: string }[];
  architecture?: string;
  recommends?: boolean;
}

/** Keys that mean something only for a package-set base. */
export const PACKAGE_SOURCE_KEYS = ['packages', 'variant', 'components', 'mirror', 'repositories', 'recommends'] as const;

/** "debian", "debian:trixie" → the suite; anything else → undefined. */
export function debianSuite(from: string): string | undefined {
  if (from === 'debian') return 'stable';
  const m = /^debian:(.*)$/s.exec(from);
  if (!m) return undefined;
  if (!/^[a-z][a-z0-9.+-]*$/.test(m[1]!)) fail('SPEC_INVALID', `use source ${from}`, 'a Debian suite is a name like trixie, bookworm, sid or stable', m[1]);
  return m[1]!;
}

export function resolveDebianOptions(from: string, keys: DebianSpecKeys, baseDir: string): DebianOptions | undefined {
  const suite = debianSuite(from);
  if (suite === undefined) return undefined;
  const mirror = (keys.mirror ?? DEFAULT_MIRROR).replace(/\/+$/, '');
  return {
    suite,
    packages: [...new Set(keys.packages ?? [])],
    variant: keys.variant ?? 'minbase',
    components: keys.components ?? ['main'],
    mirror,
    repositories: (keys.repositories ?? []).map((r) => ({
      uri: r.uri.replace(/\/+$/, ''),
      suite: r.suite ?? suite,
      components: r.components ?? ['main'],
      key: r.key === undefined ? undefined : isAbsolute(r.key) ? r.key : join(baseDir, r.key),
    })),
    architecture: keys.architecture,
    recommends: keys.recommends ?? false,
  };
}
