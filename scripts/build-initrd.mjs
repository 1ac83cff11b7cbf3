#!/usr/bin/env node
/**
 * Builds the initramfs's /init (initrd/, a small Go program) into
 * build/initrd/linux-<arch>/init for amd64 and arm64: static (CGO_ENABLED=0), stripped,
 * reproducible (-trimpath, empty build id, no VCS stamp), checked against a 2 MB budget.
 *
 *   node scripts/build-initrd.mjs [--arch amd64|arm64]... [--out DIR] [--quiet]
 *
 * Without a Go toolchain it prints why and exits 0 (the TypeScript build does not need it;
 * `rootforge kernel from-deb` then says the init is missing), except under CI=true, where a
 * missing toolchain fails the build.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAX_BYTES = 2_000_000;
const ARCHES = ['amd64', 'arm64'];

function parseArgs(argv) {
  const opts = { arches: [], out: join(root, 'build', 'initrd'), quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--arch' && ARCHES.includes(argv[i + 1])) opts.arches.push(argv[++i]);
    else if (a === '--out' && argv[i + 1]) opts.out = resolve(argv[++i]);
    else if (a === '--quiet') opts.quiet = true;
    else {
      console.error(`build-initrd: Cannot parse arguments: unknown or incomplete argument (${a})`);
      process.exit(2);
    }
  }
  if (opts.arches.length === 0) opts.arches = ARCHES;
  return opts;
}

function goVersion() {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return r.stdout.trim();
}

const opts = parseArgs(process.argv.slice(2));
const go = goVersion();
if (go === null) {
  const msg = 'build-initrd: Cannot build the initramfs init: no Go toolchain on PATH (apt-get install golang-go)';
  if (process.env.CI === 'true') {
    console.error(msg);
    process.exit(1);
  }
  console.error(`${msg}; skipping`);
  process.exit(0);
}

for (const arch of opts.arches) {
  const dest = join(opts.out, `linux-${arch}`, 'init');
  const tmp = `${dest}.${process.pid}.tmp`;
  mkdirSync(dirname(dest), { recursive: true });
  const r = spawnSync('go', ['build', '-trimpath', '-buildvcs=false', '-ldflags', '-s -w -buildid=', '-o', tmp, '.'], {
    cwd: join(root, 'initrd'),
    // Pin everything that changes the output; GOFLAGS from the caller could add -race etc.
    env: { ...process.env, CGO_ENABLED: '0', GOOS: 'linux', GOARCH: arch, GOAMD64: 'v1', GOARM: '', GOFLAGS: '' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.error || r.status !== 0) {
    rmSync(tmp, { force: true });
    console.error(`build-initrd: Cannot build the initramfs init: go build failed for linux/${arch} (exit ${r.status ?? r.error})`);
    process.exit(1);
  }
  const size = statSync(tmp).size;
  if (size >= MAX_BYTES) {
    rmSync(tmp, { force: true });
    console.error(`build-initrd: Cannot build the initramfs init: linux/${arch} binary over the ${MAX_BYTES}-byte budget (${size})`);
    process.exit(1);
  }
  renameSync(tmp, dest);
  if (!opts.quiet) {
    const sha = createHash('sha256').update(readFileSync(dest)).digest('hex');
    console.log(`build-initrd: ${relative(process.cwd(), dest)} ${size} bytes sha256:${sha} (${go})`);
  }
}
