/** Turns a resolved kernel (kernel.ts) into what the runners take. */
import { resolveKernel, type ResolveKernelOptions } from './kernel.js';
import type { KernelRef } from '../vm/types.js';
import { vmArch } from '../verify/arch.js';

export async function kernelRef(spec: string | undefined, opts: ResolveKernelOptions = {}): Promise<KernelRef> {
  const k = await resolveKernel(spec, opts);
  return {
    vmlinux: k.vmlinux,
    ...(k.initramfs ? { initramfs: k.initramfs } : {}),
    name: k.name,
    arch: vmArch(k.arch)!.arch,
  };
}

/** The kernel architecture name for a Go/OCI one (arm64 → aarch64); undefined for others. */
export function kernelArchOf(arch: string | null | undefined): 'x86_64' | 'aarch64' | undefined {
  return vmArch(arch)?.name;
}
