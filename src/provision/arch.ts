/** The image's architecture, from the ELF header of its /bin/sh (or other common binaries). */
import type { ContentSink } from '../tree/sink.js';
import type { FsTree } from '../tree/tree.js';
import { archByMachine, hostArch as hostArchInfo, ociArchName } from '../verify/arch.js';
import { elfMachineOf } from '../verify/elf.js';

/** This host's architecture by its Go/OCI name (the table in src/verify/arch.ts). */
export function hostArch(): string {
  return hostArchInfo()?.arch ?? process.arch;
}

/** The Go/OCI name for an architecture given by another of its names too (x86_64 → amd64, aarch64 → arm64). */
export function normalizeArch(arch: string): string {
  return ociArchName(arch);
}

/**
 * The architecture a build targets: the spec's `platform:` (or `build --platform`), else this
 * host's. Every source uses this one answer: scratch installs the agent for it, image sources
 * pick it from multi-platform indexes, tar and directory bases are checked against it, and the
 * distro sources install packages for it (Debian: mmdebstrap --architectures=<it>; Alpine: apk
 * --arch with its name for it, aarch64 for arm64).
 */
export function targetArch(spec: { platform?: string | undefined }): string {
  if (spec.platform === undefined || spec.platform === '') return hostArch();
  const parts = spec.platform.split('/');
  return normalizeArch(parts.length === 1 ? parts[0]! : parts[1]!);
}

export async function detectArch(tree: FsTree, writer: ContentSink): Promise<string | null> {
  const follow = tree.followParentLinks;
  tree.followParentLinks = true;
  try {
    for (const p of ['bin/sh', 'bin/busybox', 'usr/bin/env', 'bin/ls', 'usr/bin/ls']) {
      let node = tree.get(p);
      let path = p;
      for (let hops = 0; node?.kind === 'symlink' && hops < 8; hops++) {
        path = node.target.startsWith('/') ? node.target : `${path.slice(0, path.lastIndexOf('/') + 1)}${node.target}`;
        node = tree.get(path);
      }
      if (node?.kind !== 'file' || node.size < 20) continue;
      const machine = elfMachineOf((await writer.readContent(node.content, node.size, 1 << 30)).subarray(0, 20));
      const arch = machine === null ? undefined : archByMachine(machine);
      if (arch) return arch.arch;
    }
    return null;
  } finally {
    tree.followParentLinks = follow;
  }
}
