/**
 * The devices a VM gets beyond the root disk and the agent channel: more disks (an instance's
 * writable disk, its config disk, Firecracker share disks) and virtio-fs shares. Kept apart from
 * the runners so qemu.ts and firecracker.ts only append what this returns.
 *
 * QEMU `-M microvm` has 8 virtio-mmio slots and every device here takes one: the root disk and
 * the virtio-serial port (agent channel) take two, each disk one, each share one. vhost-user
 * devices (virtio-fs) on virtio-mmio need `-global virtio-mmio.force-legacy=false` (the daemon
 * aborts on a legacy device) and guest memory a separate process can map: a shared memfd
 * backend (../shared/MACHINE-NOTES.md).
 *
 * Disk names in the guest: the root is /dev/vda and the extra disks follow in order
 * (/dev/vdb, /dev/vdc, …) on both VMMs (QEMU's microvm probes its virtio-mmio slots in the
 * order the devices are given; Firecracker attaches drives in config order).
 */
import { fail } from '../errors.js';
import type { VmConfig } from './types.js';

/** virtio-mmio transports of QEMU's microvm machine. */
export const MICROVM_MMIO_SLOTS = 8;
/** Slots the runner always uses: the root disk and the virtio-serial agent port. */
export const BASE_SLOTS = 2;

/** The guest device name of extra disk `index` (0 → /dev/vdb). */
export function diskDevice(index: number): string {
  const n = index + 1; // vda is the root
  if (n < 26) return `/dev/vd${String.fromCharCode(97 + n)}`;
  return fail('OPTION_INVALID', 'attach the disks', 'more than 25 extra disks', index);
}

/** Virtio-mmio slots the config needs (root, agent port, disks, shares). */
export function slotsNeeded(config: Pick<VmConfig, 'disks' | 'fsShares'>): number {
  return BASE_SLOTS + (config.disks?.length ?? 0) + (config.fsShares?.length ?? 0);
}

/** Fails when the devices do not fit the machine's virtio-mmio slots. */
export function checkSlots(config: Pick<VmConfig, 'disks' | 'fsShares' | 'image'>, slots = MICROVM_MMIO_SLOTS): void {
  const need = slotsNeeded(config);
  if (need > slots) {
    const what = `root disk, agent port, ${config.disks?.length ?? 0} more disk(s), ${config.fsShares?.length ?? 0} share(s)`;
    fail('OPTION_INVALID', `boot ${config.image}`, `the microvm machine has ${slots} virtio-mmio slots and this VM needs ${need} (${what}); use fewer --share`, need);
  }
}

/** Memory backend and machine property that let a virtiofsd map guest memory. */
export function sharedMemoryArgs(memMiB: number): { object: string; machineProp: string } {
  return { object: `memory-backend-memfd,id=rfmem,size=${memMiB}M,share=on`, machineProp: 'memory-backend=rfmem' };
}

/**
 * QEMU arguments for the extra disks and shares, appended after the root disk's. `machine` is
 * the -M value the runner built; the returned one adds the memory backend when shares need it.
 */
export function qemuDeviceArgs(config: VmConfig, machine: string): { machine: string; argv: string[] } {
  const argv: string[] = [];
  if ((config.disks?.length ?? 0) + (config.fsShares?.length ?? 0) === 0) return { machine, argv };
  if (machine.startsWith('microvm')) checkSlots(config);
  for (const d of config.disks ?? []) {
    if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(d.id)) fail('OPTION_INVALID', 'attach a disk', 'drive ids are letters, digits, - and _', d.id);
    if (d.path.includes(',')) fail('OPTION_INVALID', 'attach a disk', 'QEMU cannot take a path with a comma', d.path);
    argv.push('-drive', `id=${d.id},file=${d.path},format=raw,if=none${d.readOnly ? ',readonly=on' : ''}`);
    argv.push('-device', `virtio-blk-device,drive=${d.id}`);
  }
  const shares = config.fsShares ?? [];
  if (shares.length === 0) return { machine, argv };
  const mem = sharedMemoryArgs(config.memMiB ?? 256);
  argv.push('-object', mem.object, '-global', 'virtio-mmio.force-legacy=false');
  shares.forEach((s, i) => {
    if (s.socket.includes(',')) fail('OPTION_INVALID', 'attach a share', 'QEMU cannot take a socket path with a comma', s.socket);
    argv.push('-chardev', `socket,id=rffs${i},path=${s.socket}`);
    argv.push('-device', `vhost-user-fs-device,chardev=rffs${i},tag=${s.tag}`);
  });
  return { machine: `${machine},${mem.machineProp}`, argv };
}
