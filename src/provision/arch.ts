/** The image's architecture, from the ELF header of its /bin/sh (or other common binaries). */
import type { ContentSink } from '../tree/sink.js';
import type { FsTree } from '../tree/tree.js';

const MACHINES: Record<number, string> = { 0x3e: 'amd64', 0xb7: 'arm64', 0x28: 'arm', 0x03: '386', 0xf3: 'riscv64', 0x15: 'ppc64le', 0x16: 's390x' };

export function hostArch(): string {
  const m: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', riscv64: 'riscv64', ppc64: 'ppc64le', s390x: 's390x' };
  return m[process.arch] ?? process.arch;
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
      const head = (await writer.readContent(node.content, node.size, 1 << 30)).subarray(0, 20);
      if (head.readUInt32BE(0) !== 0x7f454c46) continue;
      const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
      if (MACHINES[machine]) return MACHINES[machine]!;
    }
    return null;
  } finally {
    tree.followParentLinks = follow;
  }
}
