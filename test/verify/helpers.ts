/**
 * Images for the verify tests: trees put together from real host files (programs with the
 * interpreter and libraries `ldd` names, copied at the loader's paths with every symlink on the
 * way, like /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/…), synthetic ELFs and text,
 * written as a tar with test/helpers/tar-writer.ts and converted with the project's converter.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { convert } from '../../src/convert.js';
import type { VerifyReport } from '../../src/verify/types.js';
import { tarEntries, type WriterEntry } from '../helpers/tar-writer.js';
import { SHARED } from '../helpers/fixtures.js';

export const ALPINE_ARM64 = join(SHARED, 'fixtures/alpine/alpine-minirootfs-3.20.3-aarch64.tar.gz');

/** The host programs the good image is made of: the tests need an x86_64 glibc host (CI is one). */
export function hostUsable(): string | null {
  if (process.arch !== 'x64') return `needs an x86_64 host for real x86_64 programs (this is ${process.arch})`;
  for (const p of ['/bin/ls', '/bin/sh', '/sbin/ldconfig', '/lib64/ld-linux-x86-64.so.2']) if (!existsSync(p)) return `${p} is missing on this host`;
  if (spawnSync('ldd', ['/bin/ls']).status !== 0) return 'ldd does not work on this host';
  return null;
}

/** Absolute paths of the interpreter and libraries `ldd` lists for a host program. */
export function lddPaths(program: string): string[] {
  const r = spawnSync('ldd', [program], { encoding: 'utf8' });
  const out: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** A tree of tar entries by path (no leading slash); later calls replace earlier ones. */
export class Tree {
  readonly entries = new Map<string, WriterEntry>();

  dir(path: string, mode = 0o755): this {
    this.entries.set(rel(path), { path: rel(path), type: 'dir', mode });
    return this;
  }

  file(path: string, content: string | Buffer, mode = 0o644): this {
    this.entries.set(rel(path), { path: rel(path), content, mode });
    return this;
  }

  symlink(path: string, target: string): this {
    this.entries.set(rel(path), { path: rel(path), type: 'symlink', linkname: target });
    return this;
  }

  remove(path: string): this {
    this.entries.delete(rel(path));
    return this;
  }

  /** Copies a host path into the tree at the same place, with each symlink on the way (and its target). */
  host(abs: string, depth = 0): this {
    if (depth > 20) throw new Error(`symlink loop on the host at ${abs}`);
    const parts = abs.split('/').filter(Boolean);
    let cur = '';
    for (let i = 0; i < parts.length; i++) {
      const next = `${cur}/${parts[i]}`;
      const st = lstatSync(next);
      if (st.isSymbolicLink()) {
        const target = readlinkSync(next);
        this.symlink(next, target);
        const rest = parts.slice(i + 1).join('/');
        return this.host(resolve(dirname(next), target) + (rest ? `/${rest}` : ''), depth + 1);
      }
      if (st.isDirectory()) {
        if (!this.entries.has(rel(next))) this.dir(next, st.mode & 0o7777);
      } else this.file(next, readFileSync(next), st.mode & 0o7777);
      cur = next;
    }
    return this;
  }

  /** A host program and everything `ldd` says it loads. */
  program(abs: string): this {
    this.host(abs);
    for (const p of lddPaths(abs)) this.host(p);
    return this;
  }

  tar(): Buffer {
    // Sorted, so a directory comes before what is in it.
    const list = [...this.entries.values()].sort((a, b) => (String(a.path) < String(b.path) ? -1 : 1));
    return tarEntries(list);
  }
}

function rel(path: string): string {
  return path.replace(/^\/+/, '');
}

/**
 * The good image: dash as init (/sbin/init -> /bin/sh), ls (libselinux, libpcre2), the static-pie
 * ldconfig as the agent, ld.so.conf with an include glob, the mount points, a 1777 /tmp.
 */
export function goodTree(): Tree {
  const t = new Tree();
  for (const d of ['/proc', '/sys', '/dev', '/run', '/etc', '/etc/ld.so.conf.d', '/etc/rootforge']) t.dir(d);
  t.dir('/tmp', 0o1777);
  t.program('/bin/ls').program('/bin/sh').host('/sbin/ldconfig');
  // /sbin is usr/sbin on merged-/usr hosts: put the link where it really lives.
  t.symlink(`${realDir('/sbin')}/init`, '/bin/sh');
  t.file('/etc/ld.so.conf', 'include /etc/ld.so.conf.d/*.conf\n');
  t.file('/etc/ld.so.conf.d/x86_64-linux-gnu.conf', '# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n');
  t.file('/etc/rootforge/agent.json', JSON.stringify({ init: '/sbin/init' }) + '\n');
  t.file(`${realDir('/usr/sbin')}/rootforge-agent`, readFileSync('/sbin/ldconfig'), 0o755);
  return t;
}

/** Where a host directory really is (/sbin → /usr/sbin on merged-/usr systems). */
export function realDir(dir: string): string {
  let d = dir;
  for (let i = 0; i < 10 && lstatSync(d).isSymbolicLink(); i++) d = resolve(dirname(d), readlinkSync(d));
  return d;
}

/** The real path of a host library ldd lists, e.g. libselinux.so.1 for /bin/ls. */
export function hostLib(program: string, name: string): string {
  const p = lddPaths(program).find((x) => x.endsWith(`/${name}`));
  if (!p) throw new Error(`ldd ${program} does not list ${name}`);
  return realpathSync(p); // where Tree.host put the file (/lib is usr/lib on merged-/usr hosts)
}

/** A scratch directory removed after the test. */
export function scratch(t: { after: (fn: () => void) => void }, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `rf-verify-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes the tree as a tar and converts it to an image. */
export async function buildImage(t: { after: (fn: () => void) => void }, tree: Tree, name: string): Promise<string> {
  const dir = scratch(t, name);
  const tar = join(dir, `${name}.tar`);
  writeFileSync(tar, tree.tar());
  const img = join(dir, `${name}.ext4`);
  await convert(`tar:${tar}`, img);
  return img;
}

/** A file from a (gzipped) tar archive, by GNU tar. */
export function fromTar(archive: string, member: string): Buffer {
  const r = spawnSync('tar', ['-xzOf', archive, member], { maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`tar -xzOf ${archive} ${member}: ${r.stderr.toString()}`);
  return r.stdout;
}

/** The ids of the checks that failed, errors and warnings apart. */
export function failed(report: VerifyReport): { errors: string[]; warnings: string[] } {
  return {
    errors: report.checks.filter((c) => !c.ok && c.severity === 'error').map((c) => c.id),
    warnings: report.checks.filter((c) => !c.ok && c.severity === 'warning').map((c) => c.id),
  };
}

export function check(report: VerifyReport, id: string) {
  const c = report.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id} in the report`);
  return c;
}
