import { archByName } from '../verify/arch.js';
import { formatReport } from '../verify/render.js';
import type { VerifyOptions } from '../verify/types.js';
import { verifyImage } from '../verify/verify.js';
import { isRootforgeError } from '../errors.js';
import { bootImage, checkBoot, imageBootInfo } from '../vm/boot.js';
import { kernelArchOf, kernelRef } from '../kernel/kernel-ref.js';
import type { BootTimings } from '../vm/types.js';
import { parse, UsageError } from './args.js';
import { formatTimings } from './boot.js';

export const VERIFY_USAGE = `Usage: rootforge verify <image> [--json] [--init PATH] [--agent PATH] [--arch ARCH] [--no-fsck]
                       [--boot [--expect 'CMD']... [--kernel K] [--vmm qemu|firecracker] [--timeout S]]

Checks an image without booting it:
  fsck      e2fsck -fn finds no problems (a warning if e2fsck is not installed)
  config    /etc/rootforge/agent.json and image.json, if present, are valid
  dirs      /proc /sys /dev /tmp /run /etc exist; tmp-mode: /tmp is 1777 (warning)
  init      the init program resolves (symlinks inside the image) to an executable ELF whose
            interpreter and libraries exist, or to a #! script whose interpreter does
  agent     the guest agent is an executable ELF for the image's architecture
  elf-deps  every program under the bin directories, /usr/libexec and /usr/lib*, and the
            libraries they need, finds its interpreter and libraries (right architecture)
  elf-arch  programs of another architecture (warning)

Options:
  --init PATH    init program (default: "init" in /etc/rootforge/agent.json, else /sbin/init)
  --agent PATH   guest agent (default: /usr/sbin/rootforge-agent if /etc/rootforge/agent.json
                 exists; otherwise the agent check is skipped)
  --arch ARCH    amd64, arm64, 386, arm, ppc64le, s390x, riscv64, … (default: "architecture" in
                 /etc/rootforge/image.json, else in agent.json, else the majority of /bin and
                 /usr/bin, else the host's)
  --no-fsck      do not run e2fsck
  --json         print the full report as JSON

With --boot, after the static checks pass the image is booted (see rootforge boot) and:
  boot           the agent answers ready (timings reported)
  agent-exec     the agent runs its own --version
  expect: CMD    each --expect command exits 0 (run with the image's sh -c when it has one)
  file-round-trip  a file written through the agent reads back the same
  power-off      a shutdown request stops the VM by itself
On failure the reason and the last 40 lines of the serial console are shown.
  --kernel K     kernel (default: the cache's default kernel, or a cached one of the image's
                 architecture when the default is another; see rootforge kernel)
  --vmm V        qemu (default) or firecracker
  --timeout S    seconds to wait for the agent (default 90)

Exit status: 0 when no check failed (warnings allowed), 1 when one did, 2 on usage errors.`;

export async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      json: { type: 'boolean' },
      init: { type: 'string' },
      agent: { type: 'string' },
      arch: { type: 'string' },
      'no-fsck': { type: 'boolean' },
      boot: { type: 'boolean' },
      expect: { type: 'string', multiple: true },
      kernel: { type: 'string' },
      vmm: { type: 'string' },
      timeout: { type: 'string' },
      'cache-dir': { type: 'string' },
    } as const,
    VERIFY_USAGE,
  );
  if (values.help) {
    process.stdout.write(VERIFY_USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one image\n\n${VERIFY_USAGE}`);
  if (typeof values.arch === 'string' && !archByName(values.arch)) throw new UsageError(`unknown --arch "${values.arch}"\n\n${VERIFY_USAGE}`);
  for (const k of ['init', 'agent'] as const) {
    if (values[k] === '') throw new UsageError(`--${k} needs a path\n\n${VERIFY_USAGE}`);
  }
  const options: VerifyOptions = {};
  if (typeof values.init === 'string') options.init = values.init;
  if (typeof values.agent === 'string') options.agent = values.agent;
  if (typeof values.arch === 'string') options.arch = values.arch;
  if (values['no-fsck']) options.fsck = false;
  const image = positionals[0]!;
  const report = await verifyImage(image, options);
  if (!values.boot || !report.ok) {
    process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
    return report.ok ? 0 : 1;
  }
  const expect = (values.expect ?? []) as unknown as string[];
  const vmm = values.vmm ?? 'qemu';
  if (vmm !== 'qemu' && vmm !== 'firecracker') throw new UsageError(`--vmm must be qemu or firecracker\n\n${VERIFY_USAGE}`);
  const timeout = values.timeout ? Number(values.timeout) : 90;
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`--timeout must be a number of seconds\n\n${VERIFY_USAGE}`);
  const boot = await bootChecks(image, values.kernel, values['cache-dir'], vmm, timeout * 1000, expect);
  const ok = report.ok && boot.ok;
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...report, ok, boot }, null, 2) + '\n');
  } else {
    process.stdout.write(formatReport(report));
    process.stdout.write(formatBoot(boot));
  }
  return ok ? 0 : 1;
}

interface BootSection {
  ok: boolean;
  kernel?: string;
  timings?: BootTimings;
  checks: { name: string; ok: boolean; detail: string }[];
  error?: { code: string; message: string };
  consoleTail?: string;
}

async function bootChecks(image: string, kernelSpec: string | undefined, cacheDir: string | undefined, vmm: 'qemu' | 'firecracker', timeoutMs: number, expect: string[]): Promise<BootSection> {
  let kernelName: string | undefined;
  try {
    const info = await imageBootInfo(image);
    const karch = kernelArchOf(info.arch);
    const kernel = await kernelRef(kernelSpec, { ...(cacheDir ? { cacheDir } : {}), ...(karch ? { arch: karch } : {}) });
    kernelName = kernel.name;
    const vm = await bootImage(image, kernel, { vmm, bootTimeoutMs: timeoutMs });
    const r = await checkBoot(vm, expect, info.shell);
    return { ok: r.ok, kernel: kernel.name, timings: r.timings, checks: [{ name: 'boot', ok: true, detail: `agent ready after ${Math.round(r.timings.readyMs)} ms` }, ...r.checks], ...(r.consoleTail ? { consoleTail: r.consoleTail } : {}) };
  } catch (e) {
    if (!isRootforgeError(e)) throw e;
    const [first, ...rest] = e.message.split('\n--- last console lines ---\n');
    return { ok: false, ...(kernelName ? { kernel: kernelName } : {}), checks: [{ name: 'boot', ok: false, detail: first! }], error: { code: e.code, message: first! }, ...(rest.length ? { consoleTail: rest.join('\n') } : {}) };
  }
}

function formatBoot(b: BootSection): string {
  const lines = b.checks.map((c) => `${c.ok ? '✓' : '✗'} ${c.name.padEnd(16)} ${c.detail}`);
  if (b.timings) lines.push(formatTimings(b.timings, b.kernel ?? '?').trimEnd());
  if (!b.ok && b.consoleTail) lines.push('--- last console lines ---', b.consoleTail);
  lines.push(b.ok ? 'boot: OK' : 'boot: FAILED');
  return lines.join('\n') + '\n';
}
