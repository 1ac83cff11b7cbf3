/**
 * `rootforge kernel from-deb <file.deb | package>`: a Debian/Ubuntu kernel package → a cache
 * entry with the uncompressed vmlinux, the kernel config, and an initramfs holding the modules
 * a microVM needs.
 *
 *   package name ──apt-get download (temp dir)──▶ .deb ──(metapackage? follow its linux-image-* Depends)
 *                 (another architecture than the host's: private apt lists, apt-foreign.ts)
 *   .deb ──ar member data.tar.{xz,zst,gz}──▶ decompress (xz CLI / in process) ──▶ TarParser, one pass:
 *        /boot/vmlinuz-<rel>      kept (bzImage, ~10 MB)
 *        /boot/config-<rel>       kept → config check → which pieces are modules
 *        /lib/modules/<rel>/modules.builtin, modules.dep (when shipped)
 *        /lib/modules/<rel>/**.ko[.xz|.zst|.gz]   .modinfo read for every module (depends=);
 *                                 bytes kept for the likely ones; compressed ones kept as they are
 *   plan: wanted modules + dependencies, load order (kernel-modules.ts); anything needed but not
 *        kept is collected in a second pass (rare)
 *   vmlinuz ──bzimage.ts──▶ vmlinux;  modules + our /init ──initramfs.ts──▶ initramfs.cpio
 *   cache entry deb-<rel> (kernel-cache.ts), made the default when none is set
 *
 * Nothing of the package is extracted to disk.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail } from '../errors.js';
import { defaultCacheDir } from '../util/cache-dir.js';
import { hostArch } from '../provision/arch.js';
import { aptDownloadForeign, debArchOfPackage, type DebArch } from './apt-foreign.js';
import type { TarEntry } from '../tar/reader.js';
import { version as toolVersion } from '../version.js';
import { extractVmlinux, isBzImage } from './bzimage.js';
import { dependsNames, readDebControl, readDebData } from './deb.js';
import { checkKernelConfig, parseKernelConfig, type ConfigReport } from './kernel-config.js';
import { decompressBuffer, detectCompression, type Compression } from './kernel-decompress.js';
import { isArm64Image, isElf, kernelImageInfo, type KernelArch } from './kernel-elf.js';
import { KernelCache, sha256File, sha256Of, fileInfo, type KernelEntry, type KernelMeta } from './kernel-cache.js';
import { formatModulesDep, moduleInfo, moduleNameOf, parseModulesBuiltin, parseModulesDep, planModuleLoad, type LoadPlan, type ModuleInfo } from './kernel-modules.js';
import { buildInitramfs, readInitBinary } from './initramfs.js';

export interface FromDebOptions {
  /** Default $XDG_CACHE_HOME/rootforge. */
  cacheDir?: string;
  /** Cache entry name. Default deb-<kernel release>. */
  name?: string;
  /** More modules to put in the initramfs (with their dependencies). */
  modules?: string[];
  /** Modules to leave out (e.g. virtio_net). */
  without?: string[];
  /** Keep a kernel whose config lacks a required piece (reported in kernel.json). Default false. */
  allowMissing?: boolean;
  /** Make it the default kernel: 'auto' (default) only when none is set. */
  setDefault?: boolean | 'auto';
  /** Rebuild even if an identical entry exists. */
  force?: boolean;
  /** The initramfs /init; default build/initrd/linux-<arch>/init. */
  init?: Buffer;
  /** Progress lines for people. */
  onLog?: (line: string) => void;
  /**
   * The Debian architecture of a package given by name. Default: the one its name ends with
   * (linux-image-cloud-arm64), else this host's. Another architecture than the host's is
   * downloaded through a private apt state (apt-foreign.ts), never the host's apt setup.
   */
  arch?: DebArch;
}

export interface FromDebResult {
  entry: KernelEntry;
  /** False when an identical entry was already there. */
  built: boolean;
  madeDefault: boolean;
  /** The .deb that held the kernel, and where it came from. */
  deb: { path: string; package: string; version: string; sha256: string; downloaded: boolean };
  warnings: string[];
}

/** Modules likely to be needed as dependencies: their bytes are kept in the first pass. */
const LIKELY_DEPS = ['virtio', 'virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'failover', 'net_failover', 'fuse', 'jbd2', 'mbcache', 'crc16', 'crc32c_generic', 'libcrc32c'];

/** What the scan of a kernel package's data.tar found. */
interface DebScan {
  release?: string;
  vmlinuz?: Buffer;
  config?: string;
  builtin?: Set<string>;
  modulesDep?: Map<string, ModuleInfo>;
  /** Every module's info (for compressed ones: filled in lazily). */
  index: Map<string, ModuleInfo>;
  /** Decompressed bytes kept in the first pass. */
  bytes: Map<string, Buffer>;
  /** Compressed modules as stored (small): name → path, data, compression. */
  compressed: Map<string, { path: string; data: Buffer; kind: Compression }>;
  /** Compressed modules whose .modinfo has not been read yet (their index entry is a stub). */
  lazy: Set<string>;
}

export async function kernelFromDeb(spec: string, o: FromDebOptions = {}): Promise<FromDebResult> {
  const log = o.onLog ?? (() => {});
  const cache = new KernelCache(o.cacheDir ?? defaultCacheDir());
  const warnings: string[] = [];
  let work: string | undefined;
  const debArch = o.arch ?? debArchOfPackage(spec) ?? hostArch();
  const download = async (pkg: string, dir: string): Promise<string> => {
    if (debArch === hostArch()) {
      log(`apt-get download ${pkg}`);
      return aptDownload(pkg, dir);
    }
    return aptDownloadForeign(pkg, debArch, dir, { cacheDir: o.cacheDir ?? defaultCacheDir(), onLog: log });
  };
  try {
    let debPath: string;
    let downloaded = false;
    if (await isFile(spec)) debPath = spec;
    else {
      if (!/^[a-z0-9][a-z0-9+.-]+$/.test(spec)) fail('KERNEL_NOT_FOUND', 'use a kernel package', 'neither a file nor a Debian package name', spec);
      work = await mkdtemp(join(tmpdir(), 'rootforge-deb-'));
      debPath = await download(spec, work);
      downloaded = true;
    }
    for (let depth = 0; ; depth++) {
      const control = await readDebControl(debPath);
      const pkg = control['Package'] ?? '(unknown package)';
      const debSha = await sha256File(debPath);
      log(`reading ${pkg} ${control['Version'] ?? ''}`);
      const scan = await scanDeb(debPath, wantedGuess(o.modules ?? []));
      if (scan.vmlinuz === undefined) {
        const next = dependsNames(control['Depends']).find((d) => d.startsWith('linux-image-'));
        if (next === undefined || depth >= 3) fail('KERNEL_BAD_DEB', 'find the kernel in the package', `no /boot/vmlinuz-* in ${pkg} and no linux-image-* dependency to follow`, debPath);
        log(`${pkg} is a metapackage: following its dependency ${next}`);
        work ??= await mkdtemp(join(tmpdir(), 'rootforge-deb-'));
        debPath = await download(next, work);
        downloaded = true;
        continue;
      }
      const deb = { path: debPath, package: pkg, version: control['Version'] ?? '', sha256: debSha, downloaded };
      return await buildEntry(cache, scan, deb, control, o, warnings, log);
    }
  } finally {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  }
}

async function buildEntry(
  cache: KernelCache,
  scan: DebScan,
  deb: FromDebResult['deb'],
  control: Record<string, string>,
  o: FromDebOptions,
  warnings: string[],
  log: (l: string) => void,
): Promise<FromDebResult> {
  const debArch = control['Architecture'];
  const arch: KernelArch = debArch === 'arm64' ? 'aarch64' : 'x86_64';
  const release = scan.release;
  if (release === undefined) return fail('KERNEL_BAD_DEB', 'find the kernel release', 'no /boot/vmlinuz-<release> name', deb.path);
  const name = o.name ?? `deb-${release}`;
  const init = o.init ?? readInitBinary(arch);

  // the config says what is built in, a module, or missing
  let report: ConfigReport | undefined;
  if (scan.config !== undefined) {
    report = checkKernelConfig(parseKernelConfig(scan.config), arch);
    if (report.missing.length > 0) {
      const msg = `its config lacks ${report.missing.join(', ')} (required; see \`rootforge kernel ls --json\`)`;
      if (!o.allowMissing) fail('KERNEL_MODULE_MISSING', `use kernel ${release}`, `${msg}; pass --allow-missing to keep it anyway`, deb.package);
      warnings.push(`kernel ${release}: ${msg}`);
    }
    for (const w of report.warnings) warnings.push(`kernel ${release}: CONFIG_${w} is not set (${report.checks.find((c) => c.symbol === w)?.why ?? ''})`);
  } else {
    warnings.push(`kernel ${release}: no /boot/config-${release} in the package; modules chosen by name only`);
  }

  const without = new Set((o.without ?? []).map((m) => m.replace(/-/g, '_')));
  const builtin = scan.builtin ?? new Set<string>();
  const wanted: string[] = [];
  const fromConfig = report?.modules ?? ['virtio_mmio', 'virtio_pci', 'virtio_blk', 'virtio_console', 'vsock', 'vmw_vsock_virtio_transport', 'virtio_net', 'virtiofs'];
  for (const m of fromConfig) {
    if (without.has(m)) continue;
    const check = report?.checks.find((c) => c.module === m);
    if (!scan.index.has(m) && !builtin.has(m)) {
      // the config says module, the package does not have it
      if (check?.need === 'required') fail('KERNEL_MODULE_MISSING', `build the initramfs for ${release}`, `module ${m} (CONFIG_${check.symbol}=m) is not in the package`, deb.package);
      if (check?.need !== 'optional') warnings.push(`kernel ${release}: module ${m} is not in the package`);
      continue;
    }
    wanted.push(m);
  }
  for (const m of o.modules ?? []) {
    const n = m.replace(/-/g, '_');
    if (!scan.index.has(n) && !builtin.has(n)) fail('KERNEL_MODULE_MISSING', `build the initramfs for ${release}`, 'no such module in the package', m);
    if (!wanted.includes(n)) wanted.push(n);
  }

  const plan = await planWithCompressed(wanted, scan, builtin);
  if (plan.missing.length > 0) fail('KERNEL_MODULE_MISSING', `build the initramfs for ${release}`, `dependencies missing from the package: ${plan.missing.join(', ')}`, deb.package);
  const wantedKey = plan.order.map((m) => m.name).join(',');
  const initSha = sha256Of(init);

  const existing = await cache.get(name);
  if (!o.force && existing !== undefined && existing.meta.source.kind === 'deb' && existing.meta.source.debSha256 === deb.sha256 && existing.meta.initramfsInputs?.initSha256 === initSha && existing.meta.initramfsInputs?.modules === wantedKey) {
    log(`${name} is already in the cache`);
    return { entry: existing, built: false, madeDefault: await cache.applyDefault(name, o.setDefault), deb, warnings };
  }

  // module bytes: kept in the first pass, decompressed from what was kept, or a second pass
  const need = plan.order.filter((m) => !scan.bytes.has(m.name) && !scan.compressed.has(m.name));
  if (need.length > 0) {
    log(`second pass for ${need.length} module(s): ${need.map((m) => m.name).join(', ')}`);
    await collectModules(deb.path, new Set(need.map((m) => m.path)), scan);
  }
  const modules = [];
  for (const m of plan.order) modules.push({ info: m, data: await moduleBytes(m.name, scan) });

  log(`extracting vmlinux from ${scan.vmlinuz!.length} bytes of vmlinuz`);
  const vmlinux = await kernelFromVmlinuz(scan.vmlinuz!, release);
  const info = kernelImageInfo(vmlinux, `use the kernel of ${deb.package}`);
  if (info.arch !== arch) fail('KERNEL_BAD_IMAGE', `use the kernel of ${deb.package}`, `it is ${info.arch}, the package says ${debArch}`, deb.path);
  if (arch === 'x86_64' && info.pvhEntry === undefined) warnings.push(`kernel ${release}: the vmlinux has no PVH note: Firecracker and QEMU cannot boot it directly (use the bzImage with QEMU)`);

  const initramfs = buildInitramfs({ arch, release, modules, modulesDep: formatModulesDep(plan, scan.index), init });
  log(`initramfs: ${modules.length} modules, ${initramfs.length} bytes`);

  const entry = await cache.commit(name, async (dir) => {
    await writeFile(join(dir, 'vmlinux'), vmlinux);
    await writeFile(join(dir, 'initramfs.cpio'), initramfs);
    const files: KernelMeta['files'] = { vmlinux: fileInfo(vmlinux), initramfs: fileInfo(initramfs) };
    if (scan.config !== undefined) {
      await writeFile(join(dir, 'config'), scan.config);
      files.config = fileInfo(Buffer.from(scan.config));
    }
    const meta: KernelMeta = {
      schema: 1,
      name,
      version: release,
      arch,
      source: { kind: 'deb', package: deb.package, packageVersion: deb.version, debSha256: deb.sha256 },
      files,
      pvh: info.pvhEntry !== undefined,
      modules: plan.order.map((m) => ({ name: m.name, path: m.path, depends: m.depends })),
      builtinModules: plan.builtin,
      cmdline: ['console=ttyS0', 'root=/dev/vda', 'rootfstype=ext4'],
      initramfsInputs: { initSha256: initSha, modules: wantedKey },
      createdBy: toolVersion(),
    };
    if (report !== undefined) meta.config = report;
    return meta;
  });
  return { entry, built: true, madeDefault: await cache.applyDefault(name, o.setDefault), deb, warnings };
}

/** The uncompressed kernel from /boot/vmlinuz: an x86 bzImage, a gzip'd arm64 Image, or an ELF. */
export async function kernelFromVmlinuz(vmlinuz: Buffer, what: string): Promise<Buffer> {
  if (isBzImage(vmlinuz)) return (await extractVmlinux(vmlinuz)).vmlinux;
  if (isElf(vmlinuz) || isArm64Image(vmlinuz)) return vmlinuz;
  const kind = detectCompression(vmlinuz);
  if (kind !== 'none') {
    const out = await decompressBuffer(kind, vmlinuz, `decompress vmlinuz ${what}`);
    if (isElf(out) || isArm64Image(out)) return out;
  }
  return fail('KERNEL_BAD_IMAGE', `read vmlinuz ${what}`, 'not a bzImage, ELF or (compressed) arm64 Image');
}

const VMLINUZ_RE = /^(?:\.\/)?boot\/vmlinu[xz]-(.+)$/;
const CONFIG_RE = /^(?:\.\/)?boot\/config-(.+)$/;
const MODULES_RE = /^(?:\.\/)?(?:usr\/)?lib\/modules\/([^/]+)\/(.+)$/;

/** One pass over data.tar. `keep(name)`: keep that module's bytes. */
async function scanDeb(path: string, keep: (name: string) => boolean): Promise<DebScan> {
  const scan: DebScan = { index: new Map(), bytes: new Map(), compressed: new Map(), lazy: new Set() };
  for await (const e of readDebData(path)) {
    if (e.type !== 'file') continue;
    let m: RegExpExecArray | null;
    if ((m = VMLINUZ_RE.exec(e.path)) !== null) {
      scan.release ??= m[1]!;
      scan.vmlinuz = await body(e);
    } else if ((m = CONFIG_RE.exec(e.path)) !== null) {
      scan.config = (await body(e)).toString('latin1');
    } else if ((m = MODULES_RE.exec(e.path)) !== null) {
      const rel = m[2]!;
      if (rel === 'modules.builtin') scan.builtin = parseModulesBuiltin((await body(e)).toString('latin1'));
      else if (rel === 'modules.dep') scan.modulesDep = parseModulesDep((await body(e)).toString('latin1'));
      else if (/\.ko(\.(xz|zst|gz))?$/.test(rel)) await scanModule(scan, rel, await body(e), keep);
    }
  }
  if (scan.modulesDep !== undefined) {
    // the shipped dependency list wins over what .modinfo said
    for (const [n, d] of scan.modulesDep) {
      const cur = scan.index.get(n);
      if (cur !== undefined) cur.depends = d.depends;
    }
  }
  return scan;
}

async function scanModule(scan: DebScan, rel: string, data: Buffer, keep: (name: string) => boolean): Promise<void> {
  const fileName = moduleNameOf(rel);
  const kind = /\.ko$/.test(rel) ? 'none' : detectCompression(data);
  if (kind !== 'none') {
    // decompressed lazily, only if the plan reaches it
    scan.compressed.set(fileName, { path: rel, data, kind });
    scan.index.set(fileName, { name: fileName, path: rel, depends: [], softPre: [] });
    scan.lazy.add(fileName);
    return;
  }
  const info = moduleInfo(rel, data);
  scan.index.set(info.name, info);
  if (keep(info.name)) scan.bytes.set(info.name, data);
}

/** planModuleLoad, first reading the .modinfo of every compressed module the plan can reach. */
async function planWithCompressed(wanted: string[], scan: DebScan, builtin: Set<string>): Promise<LoadPlan> {
  const queue = [...wanted];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const n = queue.shift()!;
    if (seen.has(n)) continue;
    seen.add(n);
    const c = scan.compressed.get(n);
    let info = scan.index.get(n);
    if (c !== undefined && scan.lazy.has(n)) {
      const data = await decompressBuffer(c.kind, c.data, `decompress module ${c.path}`);
      info = moduleInfo(c.path, data);
      scan.index.set(n, info);
      scan.bytes.set(n, data);
      scan.lazy.delete(n);
    }
    if (info !== undefined) queue.push(...info.softPre, ...info.depends);
  }
  return planModuleLoad(wanted, scan.index, builtin);
}

async function moduleBytes(name: string, scan: DebScan): Promise<Buffer> {
  const b = scan.bytes.get(name);
  if (b !== undefined) return b;
  const c = scan.compressed.get(name);
  if (c !== undefined) return decompressBuffer(c.kind, c.data, `decompress module ${c.path}`);
  return fail('KERNEL_MODULE_MISSING', 'build the initramfs', 'module bytes not found in the package', name);
}

/** Second pass: the bytes of modules at `paths` (relative to /lib/modules/<rel>/). */
async function collectModules(path: string, paths: Set<string>, scan: DebScan): Promise<void> {
  for await (const e of readDebData(path)) {
    const m = MODULES_RE.exec(e.path);
    if (e.type !== 'file' || m === null || !paths.has(m[2]!)) continue;
    const data = await body(e);
    scan.bytes.set(moduleInfo(m[2]!, data).name, data);
  }
}

function wantedGuess(extra: string[]): (name: string) => boolean {
  const names = new Set([
    'virtio_mmio', 'virtio_pci', 'virtio_blk', 'virtio_console', 'vsock', 'vmw_vsock_virtio_transport', 'vmw_vsock_virtio_transport_common',
    'virtio_net', 'virtiofs', 'virtio_rng', 'ext4', 'unix', ...LIKELY_DEPS, ...extra.map((m) => m.replace(/-/g, '_')),
  ]);
  return (n) => names.has(n);
}

async function body(e: TarEntry): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of e.body) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/**
 * `apt-get download NAME` into `dir` (argv array, no shell); returns the .deb's path. apt-get
 * prints an "unsandboxed" note when run as root on a directory _apt cannot write: harmless.
 */
export async function aptDownload(pkg: string, dir: string): Promise<string> {
  const r = await run('apt-get', ['download', pkg], dir);
  if (r.error !== undefined) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    fail('KERNEL_APT_FAILED', `download package ${pkg}`, missing ? 'apt-get is not available here: download the .deb yourself and pass its path' : r.error.message, pkg, r.error);
  }
  if (r.code !== 0) {
    const last = r.stderr.split('\n').filter((l) => l.startsWith('E:')).join(' ') || r.stderr.trim().split('\n').pop() || `exit ${r.code}`;
    const hint = /Unable to locate|has no installation candidate/.test(last) ? ' (run apt-get update, or check the name)' : '';
    fail('KERNEL_APT_FAILED', `download package ${pkg}`, `apt-get download failed: ${last}${hint}`, pkg);
  }
  const files = (await readdir(dir)).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (files.length !== 1) fail('KERNEL_APT_FAILED', `download package ${pkg}`, `expected one ${pkg}_*.deb, found ${files.length}`, dir);
  return join(dir, files[0]!);
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; stderr: string; error?: Error }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 16384) stderr += b.toString();
    });
    child.on('error', (error) => resolve({ code: null, stderr, error }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw e;
  }
}

