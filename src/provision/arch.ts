/** The image's architecture, from the ELF header of its /bin/sh (or other common binaries). */
import type { ContentSink } from '../tree/sink.js';
import type { FsTree } from '../tree/tree.js';
import { elfMachineOf } from '../verify/elf.js';

const MACHINES: Record<number, string> = { 0x3e: 'amd64', 0xb7: 'arm64', 0x28: 'arm', 0x03: '386', 0xf3: 'riscv64', 0x15: 'ppc64le', 0x16: 's390x' };

export function hostArch(): string {
  const m: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', riscv64: 'riscv64', ppc64: 'ppc64le', s390x: 's390x' };
  return m[process.arch] ?? process.arch;
}

/** The Go/OCI name for an architecture given by its uname name too (x86_64 → amd64, aarch64 → arm64). */
export function normalizeArch(arch: string): string {
  return arch === 'x86_64' ? 'amd64' : arch === 'aarch64' ? 'arm64' : arch;
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
      if (machine !== null && MACHINES[machine]) return MACHINES[machine]!;
    }
    return null;
  } finally {
    tree.followParentLinks = follow;
  }
}
