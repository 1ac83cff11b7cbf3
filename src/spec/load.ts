/**
 * Reading a build spec: YAML → schema check (errors name the key) → defaults and paths made
 * absolute (relative to the spec file) → environment overrides (IMAGE_SIZE, IMAGE_NAME, like the
 * Bouvet Makefile).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { cannot, fail, RootforgeError } from '../errors.js';
import type { BuildSpec, InitMode, StripItem } from './types.js';
import { debianSuite, PACKAGE_SOURCE_KEYS, resolveDebianOptions, type DebianOptions } from '../sources/debian/options.js';
import { validate, type Schema } from './validate.js';
import { resolveAlpineSpec, type AlpineSpec } from '../sources/alpine/spec.js';

export const SCHEMA_PATH = new URL('../../../schema/rootforge.schema.json', import.meta.url).pathname;
let schema: Schema | undefined;

export function specSchema(): Schema {
  schema ??= JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Schema;
  return schema;
}

/** A spec with every default applied and every path absolute. */
export interface ResolvedSpec {
  from: string;
  platform: string | undefined;
  agent: string; // 'builtin' | 'none' | absolute path
  init: InitMode;
  realInit: string;
  hostname: string;
  dns: string[];
  env: Record<string, string>;
  users: Required<NonNullable<BuildSpec['users']>[number]>[];
  workdir: string;
  mounts: Required<NonNullable<BuildSpec['mounts']>[number]>[];
  files: string | undefined;
  filesOwner: { uid: number; gid: number };
  strip: StripItem[];
  size: string;
  readOnly: boolean;
  journal: boolean;
  label: string;
  output: string;
  overwriteEtc: boolean;
  /** from: debian:SUITE — the package set and where it comes from; undefined for other bases. */
  debian: DebianOptions | undefined;
  /** The lock file: the spec's `lock`, else <spec name>.lock.json beside the spec. */
  lockPath: string;
  /** Whether the spec named its lock file (then it must exist). */
  lockExplicit: boolean;
  /** Keys the spec set itself (a default never overwrites a base's file; an explicit value does). */
  explicit: Set<string>;
  /** from: alpine:BRANCH, packages, profile, repositories, keys (src/sources/alpine/spec.ts). */
  alpine: AlpineSpec | undefined;
}

export const DEFAULT_DNS = ['1.1.1.1', '8.8.8.8'];
export const DEFAULT_HOSTNAME = 'sandbox';
export const DEFAULT_WORKDIR = '/workspace';

export async function loadSpec(path: string, env: NodeJS.ProcessEnv = process.env): Promise<ResolvedSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'SPEC_NOT_FOUND' : 'SPEC_INVALID', `read spec ${path}`, code ?? String(e), path, e);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    fail('SPEC_INVALID', `read spec ${path}`, `not valid YAML: ${e.message.split('\n')[0]}`, `line ${e.linePos?.[0]?.line ?? '?'}`);
  }
  const raw = (doc.toJS() ?? {}) as unknown;
  return resolveSpec(raw, dirname(resolve(path)), basename(path).replace(/\.(ya?ml|json)$/, ''), env, path);
}

/** Checks and completes a spec given as an object (the fluent API builds one). */
export function resolveSpec(raw: unknown, baseDir: string, name: string, env: NodeJS.ProcessEnv = {}, shown = 'spec'): ResolvedSpec {
  const errors = validate(raw, specSchema(), 'spec');
  if (errors.length > 0) {
    const first = errors[0]!;
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more: ${errors.slice(1, 4).map((e) => e.path).join(', ')})` : '';
    throw new RootforgeError('SPEC_INVALID', cannot(`use spec ${shown}`, `${first.path} ${first.message}${more}`, first.value === undefined ? undefined : JSON.stringify(first.value)));
  }
  const s = raw as BuildSpec;
  const from = absSource(s.from ?? 'scratch', baseDir);
  const init: InitMode = s.init ?? (from === 'scratch' ? 'agent' : 'wrapper');
  const agent = s.agent === undefined || s.agent === 'builtin' || s.agent === 'none' ? (s.agent ?? 'builtin') : abs(s.agent, baseDir);
  if (agent === 'none' && init === 'agent') fail('SPEC_INVALID', `use spec ${shown}`, 'spec.init "agent" needs an agent (spec.agent is "none")', 'none');
  const users = (s.users ?? []).map((u) => ({
    name: u.name,
    uid: u.uid,
    gid: u.gid ?? u.uid,
    home: u.home ?? (u.uid === 0 ? '/root' : `/home/${u.name}`),
    shell: u.shell ?? '/bin/sh',
    groups: u.groups ?? [],
  }));
  const seen = new Set<string>();
  for (const u of users) {
    if (seen.has(u.name)) fail('SPEC_INVALID', `use spec ${shown}`, 'spec.users lists a name twice', u.name);
    seen.add(u.name);
  }
  // `packages` and `repositories` serve both package-set sources: Debian's (from: debian:SUITE,
  // repositories are objects with their key) and Alpine's (any other base, repositories are URLs
  // or directories). The keys only Debian has need a Debian base.
  const isDebian = debianSuite(from) !== undefined;
  const repos = s.repositories ?? [];
  const wrongRepo = repos.find((r) => (isDebian ? typeof r === 'string' : typeof r !== 'string'));
  if (wrongRepo !== undefined) {
    fail('SPEC_INVALID', `use spec ${shown}`, isDebian ? 'spec.repositories of a Debian base are objects { uri, suite, components, key }' : 'spec.repositories of an Alpine package set are URLs or directories (strings)', JSON.stringify(wrongRepo));
  }
  const debian = isDebian ? resolveDebianOptions(from, { ...s, repositories: repos as Exclude<(typeof repos)[number], string>[] }, baseDir) : undefined;
  if (!isDebian) {
    for (const k of PACKAGE_SOURCE_KEYS) {
      if (k === 'packages' || k === 'repositories') continue; // Alpine's too
      if (s[k] !== undefined) fail('SPEC_INVALID', `use spec ${shown}`, `spec.${k} needs a package-set base (from: debian:SUITE)`, from);
    }
  }
  const alpine = isDebian ? undefined : resolveAlpineSpec({ ...s, repositories: s.repositories as string[] | undefined }, baseDir, name, shown);
  const [fu, fg] = (s.filesOwner ?? '0:0').split(':').map(Number);
  const size = env['IMAGE_SIZE'] || s.size || 'auto';
  const outName = env['IMAGE_NAME'] ? env['IMAGE_NAME'].replace(/(\.ext4)?$/, '.ext4') : undefined;
  const output = outName ? abs(outName, baseDir) : abs(s.output ?? `${name}.ext4`, baseDir);
  return {
    from,
    platform: s.platform,
    agent,
    init,
    realInit: s.realInit ?? '/sbin/init',
    hostname: s.hostname ?? DEFAULT_HOSTNAME,
    dns: s.dns ?? DEFAULT_DNS,
    env: s.env ?? {},
    users,
    workdir: s.workdir ?? DEFAULT_WORKDIR,
    mounts: (s.mounts ?? []).map((m) => ({ tag: m.tag, target: m.target, type: m.type ?? 'virtiofs', readOnly: m.readOnly ?? false })),
    files: s.files !== undefined ? abs(s.files, baseDir) : undefined,
    filesOwner: { uid: fu!, gid: fg! },
    strip: s.strip === true ? ['docs', 'man', 'locales', 'caches'] : s.strip === false || s.strip === undefined ? [] : s.strip,
    size,
    readOnly: s.readOnly ?? false,
    journal: s.journal ?? true,
    label: s.label ?? '',
    output,
    overwriteEtc: s.overwriteEtc ?? false,
    debian,
    lockPath: abs(s.lock ?? `${name}.lock.json`, baseDir),
    lockExplicit: s.lock !== undefined,
    explicit: new Set(Object.keys(s)),
    alpine,
  };
}

function abs(p: string, base: string): string {
  return isAbsolute(p) ? p : join(base, p);
}

/** Makes the path of a path-based source absolute; registry references and scratch stay. */
function absSource(from: string, base: string): string {
  if (from === 'scratch' || from.startsWith('docker://') || from.startsWith('alpine:') || from === 'tar:-') return from;
  if (/^debian(:|$)/.test(from)) return from; // a package-set base, not a path
  const m = /^(tar|dir|oci|docker-archive):(.*)$/s.exec(from);
  if (m) return `${m[1]}:${abs(m[2]!, base)}`;
  return abs(from, base);
}
