/** Turns a resolved kernel (kernel.ts) into what the runners take. */
import { resolveKernel, type ResolveKernelOptions } from './kernel.js';
import type { KernelRef } from './types.js';

export async function kernelRef(spec: string | undefined, opts: ResolveKernelOptions = {}): Promise<KernelRef> {
  const k = await resolveKernel(spec, opts);
  return {
    vmlinux: k.vmlinux,
    ...(k.initramfs ? { initramfs: k.initramfs } : {}),
    name: k.name,
    arch: k.arch === 'aarch64' ? 'arm64' : 'amd64',
  };
}

/** The kernel architecture name for a Go/OCI one (arm64 → aarch64); undefined for others. */
export function kernelArchOf(arch: string | null | undefined): 'x86_64' | 'aarch64' | undefined {
  return arch === 'arm64' || arch === 'aarch64' ? 'aarch64' : arch === 'amd64' || arch === 'x86_64' ? 'x86_64' : undefined;
}
