/**
 * RootfsBuilder: the fluent TypeScript API over build specs.
 *
 *   await new RootfsBuilder().from('scratch').withAgent().hostname('box').build('out.ext4');
 *
 * Each call sets one spec key; build() validates the spec exactly as `rootforge build` does.
 */
import { buildImage, type BuildOptions, type BuildResult } from './build-image.js';
import { resolveSpec } from './spec/load.js';
import type { BuildSpec, InitMode, MountSpec, StripItem, UserSpec } from './spec/types.js';

export class RootfsBuilder {
  private readonly spec: BuildSpec = {};

  constructor(private readonly baseDir: string = process.cwd()) {}

  /** 'scratch' or any convert source (tar:, dir:, oci:, docker-archive:, docker://). */
  from(source: string, platform?: string): this {
    this.spec.from = source;
    if (platform) this.spec.platform = platform;
    return this;
  }

  /** The built-in agent (no argument), your own binary (a path), or 'none'. */
  withAgent(agent = 'builtin'): this {
    this.spec.agent = agent;
    return this;
  }

  init(mode: InitMode, realInit?: string): this {
    this.spec.init = mode;
    if (realInit) this.spec.realInit = realInit;
    return this;
  }

  hostname(name: string): this {
    this.spec.hostname = name;
    return this;
  }

  dns(...servers: string[]): this {
    this.spec.dns = servers;
    return this;
  }

  env(vars: Record<string, string>): this {
    this.spec.env = { ...this.spec.env, ...vars };
    return this;
  }

  user(user: UserSpec): this {
    this.spec.users = [...(this.spec.users ?? []), user];
    return this;
  }

  workdir(path: string): this {
    this.spec.workdir = path;
    return this;
  }

  mount(m: MountSpec): this {
    this.spec.mounts = [...(this.spec.mounts ?? []), m];
    return this;
  }

  files(dir: string, owner?: string): this {
    this.spec.files = dir;
    if (owner) this.spec.filesOwner = owner;
    return this;
  }

  strip(items: boolean | StripItem[] = true): this {
    this.spec.strip = items;
    return this;
  }

  size(size: string): this {
    this.spec.size = size;
    return this;
  }

  readOnly(on = true): this {
    this.spec.readOnly = on;
    return this;
  }

  journal(on: boolean): this {
    this.spec.journal = on;
    return this;
  }

  label(label: string): this {
    this.spec.label = label;
    return this;
  }

  /**
   * Alpine packages (spec keys packages, profile, repositories, keys); use from('alpine:v3.23')
   * for the branch's minirootfs as the base.
   */
  alpine(o: { packages?: string[]; profile?: string; repositories?: string[]; keys?: string[] }): this {
    if (o.packages) this.spec.packages = [...(this.spec.packages ?? []), ...o.packages];
    if (o.profile) this.spec.profile = o.profile;
    if (o.repositories) this.spec.repositories = o.repositories;
    if (o.keys) this.spec.keys = o.keys;
    return this;
  }

  /** The spec so far (to save as rootforge.yaml, say). */
  toSpec(): BuildSpec {
    return structuredClone(this.spec);
  }

  async build(output: string, options: BuildOptions = {}): Promise<BuildResult> {
    const resolved = resolveSpec({ ...this.spec, output }, this.baseDir, 'rootfs', {}, 'RootfsBuilder');
    return buildImage(resolved, options);
  }
}
