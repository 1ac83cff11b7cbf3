import { defaultCacheDir } from '../util/cache-dir.js';
import { formatBytes } from '../util/size.js';
import { formatConfigReport } from '../kernel/kernel-config.js';
import { KernelCache } from '../kernel/kernel-cache.js';
import { kernelFromDeb } from '../kernel/kernel-deb.js';
import { kernelFetch } from '../kernel/kernel-fetch.js';
import { parseKernelArch } from '../kernel/kernel-lock.js';
import { parse, UsageError } from './args.js';
import { ProgressLine } from './progress.js';

export const KERNEL_USAGE = `Usage: rootforge kernel <command> [options]

Commands:
  ls                          list cached kernels (name, version, arch, size, default mark, source)
  show NAME                   a kernel's details: files, initramfs modules, config check
  fetch                       download the pinned Firecracker + jailer release and a Firecracker
                              CI guest kernel (versions and SHA-256 in kernels.lock.json)
  from-deb FILE.deb|PACKAGE   make a kernel from a Debian/Ubuntu kernel package (a name is fetched
                              with apt-get download; metapackages are followed): the vmlinux, and an
                              initramfs with the virtio/vsock modules the kernel needs
  default [NAME]              show or set the default kernel (used when --kernel is not given)
  rm NAME                     remove a cached kernel

Options:
  --cache-dir DIR             the cache (default $XDG_CACHE_HOME/rootforge); kernels are in DIR/kernels
  --json                      machine-readable output
  -q, --quiet                 no progress on stderr
fetch:
  --arch ARCH                 x86_64 or aarch64 (default: this machine's)
  --lock FILE                 another lock file (default: the one shipped with rootforge)
  --only firecracker|kernel   fetch just one of the two
  --default                   make the fetched kernel the default (else only when none is set)
  Environment: FIRECRACKER_VERSION, KERNEL_VERSION pick other entries of the lock file (an entry
  that is not in it is an error: nothing is downloaded unverified); ROOTFORGE_DOWNLOAD_BASE
  replaces each URL's scheme and host (a mirror).
from-deb:
  --arch ARCH                 the package's architecture, amd64 or arm64 (default: the one its name
                              ends with, e.g. linux-image-cloud-arm64, else this machine's); another
                              than this machine's is fetched with private apt lists (no apt setup)
  --name NAME                 cache name (default deb-<kernel release>)
  --modules A,B               more modules for the initramfs (with their dependencies)
  --without A,B               leave modules out (e.g. virtio_net,virtiofs)
  --allow-missing             keep a kernel whose config lacks a required piece
  --default                   make it the default (else only when none is set)
  --force                     rebuild even when an identical entry exists`;

export async function kernelCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      'cache-dir': { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      arch: { type: 'string' },
      lock: { type: 'string' },
      only: { type: 'string' },
      default: { type: 'boolean' },
      name: { type: 'string' },
      modules: { type: 'string' },
      without: { type: 'string' },
      'allow-missing': { type: 'boolean' },
      force: { type: 'boolean' },
    } as const,
    KERNEL_USAGE,
  );
  if (values.help) {
    process.stdout.write(KERNEL_USAGE + '\n');
    return 0;
  }
  const cacheDir = values['cache-dir'] ?? defaultCacheDir();
  const cache = new KernelCache(cacheDir);
  const [sub, ...rest] = positionals;
  const json = values.json === true;
  const out = (s: string): boolean => process.stdout.write(s + '\n');
  const expectArgs = (n: number, what: string): void => {
    if (rest.length !== n) throw new UsageError(`kernel ${sub}: expected ${what}\n\n${KERNEL_USAGE}`);
  };
  const list = (v: string | undefined): string[] => (v === undefined ? [] : v.split(',').map((s) => s.trim()).filter((s) => s !== ''));

  switch (sub) {
    case 'ls': {
      expectArgs(0, 'no arguments');
      const entries = await cache.list();
      const def = await cache.getDefault();
      if (json) {
        out(JSON.stringify({ dir: cache.dir, default: def ?? null, kernels: entries.map((e) => ({ name: e.name, version: e.meta.version, arch: e.meta.arch, size: e.size, default: e.name === def, source: e.meta.source, dir: e.dir, vmlinux: e.vmlinux, initramfs: e.initramfs ?? null, modules: e.meta.modules.length })) }, null, 2));
        return 0;
      }
      if (entries.length === 0) {
        out(`no kernels in ${cache.dir} (try: rootforge kernel from-deb linux-image-cloud-amd64, or rootforge kernel fetch)`);
        return 0;
      }
      const rows = entries.map((e) => [e.name === def ? '*' : ' ', e.name, e.meta.version, e.meta.arch, formatBytes(e.size), sourceText(e.meta.source)]);
      const w = [1, 4, 7, 4, 4].map((min, i) => Math.max(min, ...rows.map((r) => r[i]!.length)));
      out([' ', 'NAME'.padEnd(w[1]!), 'VERSION'.padEnd(w[2]!), 'ARCH'.padEnd(w[3]!), 'SIZE'.padStart(w[4]!), 'SOURCE'].join('  '));
      for (const r of rows) out([r[0], r[1]!.padEnd(w[1]!), r[2]!.padEnd(w[2]!), r[3]!.padEnd(w[3]!), r[4]!.padStart(w[4]!), r[5]].join('  '));
      return 0;
    }
    case 'show': {
      expectArgs(1, 'a kernel name');
      const e = await cache.get(rest[0]!);
      if (e === undefined) throw new UsageError(`kernel show: no kernel named "${rest[0]}" in ${cache.dir}`);
      if (json) {
        out(JSON.stringify({ ...e.meta, dir: e.dir, default: (await cache.getDefault()) === e.name }, null, 2));
        return 0;
      }
      out(`${e.name}: Linux ${e.meta.version} ${e.meta.arch}, ${sourceText(e.meta.source)}`);
      out(`  vmlinux    ${e.vmlinux} (${formatBytes(e.meta.files.vmlinux.size)}${e.meta.pvh ? ', PVH entry' : ', no PVH note'})`);
      if (e.initramfs !== undefined) out(`  initramfs  ${e.initramfs} (${formatBytes(e.meta.files.initramfs!.size)}): ${e.meta.modules.map((m) => m.name).join(' ') || 'no modules'}`);
      if (e.meta.builtinModules.length > 0) out(`  built in   ${e.meta.builtinModules.join(' ')}`);
      out(`  cmdline    ${e.meta.cmdline.join(' ')}`);
      if (e.meta.config !== undefined) out(`  config check:\n${formatConfigReport(e.meta.config)}`);
      return 0;
    }
    case 'default': {
      if (rest.length === 0) {
        const d = await cache.getDefault();
        out(json ? JSON.stringify({ default: d ?? null }) : (d ?? '(no default kernel)'));
        return 0;
      }
      expectArgs(1, 'one kernel name');
      await cache.setDefault(rest[0]!);
      if (!values.quiet) process.stderr.write(`default kernel: ${rest[0]}\n`);
      return 0;
    }
    case 'rm': {
      expectArgs(1, 'a kernel name');
      await cache.remove(rest[0]!);
      return 0;
    }
    case 'fetch': {
      expectArgs(0, 'no arguments');
      const only = values.only;
      if (only !== undefined && only !== 'firecracker' && only !== 'kernel') throw new UsageError(`kernel fetch: --only takes firecracker or kernel\n\n${KERNEL_USAGE}`);
      const progress = new ProgressLine(!values.quiet && process.stderr.isTTY === true);
      const r = await kernelFetch({
        cacheDir,
        ...(values.lock !== undefined ? { lockPath: values.lock } : {}),
        ...(values.arch !== undefined ? { arch: parseKernelArch(values.arch) } : {}),
        firecracker: only !== 'kernel',
        kernel: only !== 'firecracker',
        setDefault: values.default === true ? true : 'auto',
        onProgress: (_what, b, t) => progress.update(b, t),
      });
      progress.done();
      if (json) {
        out(JSON.stringify({ firecracker: r.firecracker ?? null, kernel: r.kernel === undefined ? null : { version: r.kernel.version, name: r.kernel.entry.name, vmlinux: r.kernel.entry.vmlinux, fetched: r.kernel.fetched, madeDefault: r.kernel.madeDefault } }, null, 2));
        return 0;
      }
      if (r.firecracker) out(`firecracker v${r.firecracker.version} ${r.firecracker.arch}: ${r.firecracker.fetched ? 'downloaded and verified' : 'already present'} (${r.firecracker.dir})`);
      if (r.kernel) out(`kernel ${r.kernel.entry.name}: ${r.kernel.fetched ? 'downloaded and verified' : 'already present'} (${r.kernel.entry.vmlinux})${r.kernel.madeDefault ? ', now the default' : ''}`);
      return 0;
    }
    case 'from-deb': {
      expectArgs(1, 'a .deb file or a package name');
      const r = await kernelFromDeb(rest[0]!, {
        cacheDir,
        ...(values.name !== undefined ? { name: values.name } : {}),
        modules: list(values.modules),
        without: list(values.without),
        allowMissing: values['allow-missing'] === true,
        setDefault: values.default === true ? true : 'auto',
        force: values.force === true,
        ...(values.arch !== undefined ? { arch: parseKernelArch(values.arch) === 'aarch64' ? ('arm64' as const) : ('amd64' as const) } : {}),
        ...(values.quiet ? {} : { onLog: (l: string) => process.stderr.write(`rootforge: ${l}\n`) }),
      });
      if (!values.quiet) for (const w of r.warnings) process.stderr.write(`rootforge: warning: ${w}\n`);
      const e = r.entry;
      if (json) {
        out(JSON.stringify({ ...e.meta, built: r.built, madeDefault: r.madeDefault, deb: r.deb, warnings: r.warnings, vmlinux: e.vmlinux, initramfs: e.initramfs ?? null }, null, 2));
        return 0;
      }
      out(`${e.name}: Linux ${e.meta.version} ${e.meta.arch} from ${r.deb.package} ${r.deb.version}${r.built ? '' : ' (already in the cache)'}${r.madeDefault ? ', now the default' : ''}`);
      out(`  vmlinux    ${e.vmlinux} (${formatBytes(e.meta.files.vmlinux.size)}${e.meta.pvh ? ', PVH entry' : ''})`);
      if (e.initramfs !== undefined) out(`  initramfs  ${e.initramfs} (${formatBytes(e.meta.files.initramfs!.size)}, ${e.meta.modules.length} modules: ${e.meta.modules.map((m) => m.name).join(' ')})`);
      if (e.meta.config !== undefined) out(`  config check:\n${formatConfigReport(e.meta.config)}`);
      return 0;
    }
    default:
      throw new UsageError(`${sub === undefined ? 'expected a command' : `unknown command "${sub}"`}\n\n${KERNEL_USAGE}`);
  }
}

function sourceText(s: { kind: string; package?: string; packageVersion?: string; url?: string; path?: string }): string {
  if (s.kind === 'deb') return `deb ${s.package} ${s.packageVersion}`;
  if (s.kind === 'firecracker-ci') return `firecracker-ci ${s.url}`;
  return `file ${s.path}`;
}
