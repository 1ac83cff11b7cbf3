import { once } from 'node:events';
import { fail } from '../errors.js';
import { bootImage, imageBootInfo, type BootOptions } from '../vm/boot.js';
import { bootInstance, parseShare } from '../instance/boot.js';
import { isInstanceDir } from '../instance/manage.js';
import { readRecord } from '../instance/record.js';
import { kernelArchOf, kernelRef } from '../kernel/kernel-ref.js';
import type { BootTimings, KernelRef } from '../vm/types.js';
import { parse, UsageError } from './args.js';

export const BOOT_USAGE = `Usage: rootforge boot <image>|<instance dir> [options] [-- CMD ARGS...]

Boots the image in a microVM, waits for its agent, prints the boot timings, then runs CMD
through the agent (stdout and stderr streamed; rootforge exits with CMD's exit code). Without
CMD it runs the image's shell with your terminal's input, if the image has one.

Options:
  --kernel K            a vmlinux/bzImage path, a .deb, a package name or a cached kernel
                        (default: the cache's default kernel, or a cached kernel of the
                        image's architecture when the default is another; see rootforge kernel)
  --vmm qemu|firecracker  default qemu (microvm machine, virt for arm64 images; KVM when usable
                        and the image is this host's architecture, else TCG)
  --cpus N              default 1
  --mem MIB             default 256
  --timeout S           seconds to wait for the agent (default 60)
  --console             show the guest's serial console on stderr
  --console-log FILE    keep the whole console in FILE
  --cache-dir DIR       kernel cache (default $XDG_CACHE_HOME/rootforge)
  --json                print the timings (and the command's result) as JSON

Instances (rootforge instance create): the base read-only, the instance disk writable, the
root an overlay of both; writes persist in the instance.
  --share HOSTDIR:GUESTDIR[:ro]   share a host directory (QEMU: virtio-fs with virtiofsd;
                        Firecracker: an ext4 disk made from it); repeatable
  --env K=V             session env for this boot (over \`rootforge instance env\`); repeatable`;

export async function bootCommand(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const cmd = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values, positionals } = parse(
    own,
    {
      kernel: { type: 'string' },
      vmm: { type: 'string' },
      cpus: { type: 'string' },
      mem: { type: 'string' },
      timeout: { type: 'string' },
      console: { type: 'boolean' },
      'console-log': { type: 'string' },
      'cache-dir': { type: 'string' },
      json: { type: 'boolean' },
      share: { type: 'string', multiple: true },
      env: { type: 'string', multiple: true },
    } as const,
    BOOT_USAGE,
  );
  if (values.help) {
    process.stdout.write(BOOT_USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one image\n\n${BOOT_USAGE}`);
  const image = positionals[0]!;
  const vmm = values.vmm ?? 'qemu';
  if (vmm !== 'qemu' && vmm !== 'firecracker') throw new UsageError(`--vmm must be qemu or firecracker\n\n${BOOT_USAGE}`);
  const num = (v: string | undefined, name: string, def: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) fail('OPTION_INVALID', `use --${name}`, 'expected a positive number', v);
    return n;
  };
  const instance = isInstanceDir(image);
  const shares = (values.share ?? []) as unknown as string[];
  const envs = (values.env ?? []) as unknown as string[];
  if (!instance && shares.length + envs.length > 0) throw new UsageError(`--share and --env are for instance directories (rootforge instance create)\n\n${BOOT_USAGE}`);
  const shareSpecs = shares.map(parseShare);
  const info = await imageBootInfo(instance ? (await readRecord(image)).base.path : image);
  const karch = kernelArchOf(info.arch);
  const kernel = await kernelRef(values.kernel, { ...(values['cache-dir'] ? { cacheDir: values['cache-dir'] } : {}), ...(karch ? { arch: karch } : {}) });
  const boot = instance
    ? (k: KernelRef, o: BootOptions) => bootInstance(image, k, { ...o, shares: shareSpecs, env: envs })
    : (k: KernelRef, o: BootOptions) => bootImage(image, k, o);
  const vm = await boot(kernel, {
    vmm,
    cpus: num(values.cpus, 'cpus', 1),
    memMiB: num(values.mem, 'mem', 256),
    bootTimeoutMs: num(values.timeout, 'timeout', 60) * 1000,
    ...(values['console-log'] ? { consoleLog: values['console-log'] } : {}),
    ...(values.console ? { onConsole: (c: Buffer) => process.stderr.write(c) } : {}),
  });
  const onSignal = () => {
    void vm.kill();
  };
  process.once('SIGINT', onSignal);
  try {
    if (!values.json) process.stderr.write(formatTimings(vm.timings, kernel.name));
    let argvToRun = cmd;
    let interactive = false;
    if (argvToRun.length === 0) {
      if (!info.shell) {
        process.stderr.write('the image has no shell; booted and answered, shutting down\n');
        await vm.shutdown();
        if (values.json) process.stdout.write(JSON.stringify({ timings: vm.timings }, null, 2) + '\n');
        return 0;
      }
      argvToRun = [info.shell, '-i'];
      interactive = true;
    }
    const r = await vm.agent.exec(argvToRun, {
      timeoutMs: 24 * 3600 * 1000,
      onStdout: (c) => void writeOut(process.stdout, c),
      onStderr: (c) => void writeOut(process.stderr, c),
      ...(interactive || !process.stdin.isTTY ? { stdin: process.stdin } : {}),
    });
    const shutdown = await vm.shutdown();
    if (values.json) process.stdout.write(JSON.stringify({ timings: vm.timings, exit: { code: r.code, signal: r.signal, timedOut: r.timedOut }, cleanShutdown: shutdown.clean }, null, 2) + '\n');
    if (r.code !== null) return r.code;
    process.stderr.write(`rootforge: the command was killed by ${r.signal}\n`);
    return 128 + signalNumber(r.signal);
  } catch (e) {
    await vm.kill();
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}

async function writeOut(s: NodeJS.WriteStream, c: Buffer): Promise<void> {
  if (!s.write(c)) await once(s, 'drain');
}

function signalNumber(sig: string | null): number {
  const n: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };
  return sig ? (n[sig] ?? 1) : 1;
}

export function formatTimings(t: BootTimings, kernel: string): string {
  const ms = (v: number | undefined) => (v === undefined ? '?' : `${Math.round(v)} ms`);
  const lines = [
    `booted with ${t.vmm} (${t.accel}: ${t.accelReason}), kernel ${kernel}`,
    `  VMM started      ${ms(t.vmmStartMs)}`,
    `  kernel running   ${ms(t.kernelMs)}`,
    `  init started     ${ms(t.initMs)}${t.initGuestMs !== undefined ? `   (guest clock ${Math.round(t.initGuestMs)} ms)` : ''}`,
    `  agent ready      ${ms(t.readyMs)}   (guest uptime ${Math.round(t.agentUptimeMs)} ms)`,
  ];
  return lines.join('\n') + '\n';
}
