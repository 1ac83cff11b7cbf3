/** The shapes `verify` returns: a report of named checks. */

export type Severity = 'error' | 'warning';

/**
 * fsck      e2fsck -fn exits 0 (a warning when e2fsck is not installed)
 * read      only present when our reader met a corrupt structure and the checks below could not all run
 * config    /etc/rootforge/agent.json and image.json, when present, are JSON objects with usable fields
 * dirs      /proc /sys /dev /tmp /run /etc are directories
 * tmp-mode  /tmp is 1777 (warning)
 * init      the init program resolves to an executable ELF (deps checked) or a #! script whose interpreter exists
 * agent     the guest agent is an executable ELF for the image's architecture (skipped without an agent)
 * elf-deps  programs' interpreters and needed libraries resolve, for the right architecture
 * elf-arch  programs are for the image's architecture (warning; theirs are not dependency-checked)
 * first-boot  Alpine package scripts queued for the first boot and not run yet (warning)
 */
export type CheckId = 'fsck' | 'read' | 'config' | 'dirs' | 'tmp-mode' | 'init' | 'agent' | 'elf-deps' | 'elf-arch' | 'first-boot';

export interface VerifyCheck {
  id: CheckId;
  ok: boolean;
  /** An 'error' check that fails makes the image fail; a 'warning' one does not. */
  severity: Severity;
  /** One line. */
  message: string;
  /** True when the check did not apply (e.g. no agent configured); `ok` is true then. */
  skipped?: boolean;
  /** Check-specific data, complete (the human output shortens long lists). */
  details?: Record<string, unknown>;
}

export type ArchSource = 'option' | 'image.json' | 'agent.json' | 'binaries' | 'host';

export interface VerifyReport {
  image: string;
  /** No error-severity check failed. */
  ok: boolean;
  architecture: {
    /** OCI name (amd64, arm64, …) when rootforge knows the architecture. */
    arch?: string;
    /** e.g. "x86_64 (amd64)". */
    name: string;
    source: ArchSource;
  };
  checks: VerifyCheck[];
  stats: {
    /** Executable regular files opened under the scanned directories. */
    filesScanned: number;
    /** ELF programs found there. */
    programs: number;
    /** Distinct libraries reached through the programs' needed-closures. */
    libraries: number;
    /** Distinct files parsed as ELF (programs, libraries, interpreters). */
    elfFilesParsed: number;
    durationMs: number;
  };
}

export interface VerifyOptions {
  /** The init program (a path in the image). Default: the `init` field of /etc/rootforge/agent.json, else /sbin/init. */
  init?: string;
  /** The guest agent (a path in the image). Default: /usr/sbin/rootforge-agent when /etc/rootforge/agent.json exists; else no agent check. */
  agent?: string;
  /** The image's architecture, an OCI name (amd64, arm64, …). Default: image.json's `architecture`, else agent.json's, else the majority of the programs in /bin and /usr/bin, else the host's. */
  arch?: string;
  /** Run `e2fsck -fn` on the image. Default true. */
  fsck?: boolean;
  /** The e2fsck program. Default: `e2fsck` on PATH, else /sbin or /usr/sbin. */
  e2fsck?: string;
}
