/**
 * `node build/bench/alpine.js [--runs N] [--packages N]` (npm run bench:alpine): resolve and
 * install a world of ~150 packages from a local signed repository into an ext4 image.
 *
 *   ours    rootforge's installer: resolve, verify (index signature, identities, datahash, per-file
 *           SHA-1), write the ext4 image directly (one pass, exact size)
 *   apk     real apk-tools 2.14.4 (chroot into the Alpine minirootfs fixture, as root):
 *           `apk add --initdb --no-scripts` into a directory, then `mke2fs -t ext4 -d` of it
 *
 * Same repository (generated here: 150 packages, dependencies, so: provides, ~40 files each,
 * sizes 200 B – 256 KiB of compressible text), same page-cache-warm inputs, runs interleaved;
 * medians and the ratio are reported. Needs root and ../shared (the minirootfs with apk-tools).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildPackage, makeKey, writeRepo, type PkgDef } from '../test/helpers/apk-repo.js';
import { apkAdd, makeOracle, oracleAvailable, rootforgeAdd } from '../test/helpers/apk-oracle.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

/** Deterministic pseudo-random text (compresses like code and docs do, ~3:1). */
function text(seed: number, size: number): Buffer {
  const words = ['return', 'const', 'static', 'void', 'include', 'struct', 'int', 'char', 'if', 'else', 'for', 'while', 'buffer', 'length', 'error', 'value', 'result', 'alpine', 'package', 'install'];
  let x = seed * 2654435761 || 1;
  const out: string[] = [];
  let n = 0;
  while (n < size) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const w = words[(x >>> 0) % words.length]! + ((x >>> 8) % 7 === 0 ? '\n' : ' ');
    out.push(w);
    n += w.length;
  }
  return Buffer.from(out.join('').slice(0, size));
}

export function benchPackages(count: number): PkgDef[] {
  const defs: PkgDef[] = [];
  for (let i = 0; i < count; i++) {
    const name = `pkg${String(i).padStart(3, '0')}`;
    const files: PkgDef['files'] = [{ path: 'usr', type: 'dir' }, { path: 'usr/lib', type: 'dir' }, { path: `usr/lib/${name}`, type: 'dir' }, { path: 'usr/bin', type: 'dir' }];
    const nfiles = 20 + (i % 40);
    for (let f = 0; f < nfiles; f++) {
      const size = 200 + ((i * 7919 + f * 104729) % (f % 9 === 0 ? 262144 : 16384));
      files.push({ path: `usr/lib/${name}/f${f}.dat`, content: text(i * 1000 + f, size), mode: f % 5 === 0 ? 0o755 : 0o644 });
    }
    files.push({ path: `usr/bin/${name}`, content: text(i, 4000), mode: 0o755 });
    files.push({ path: `usr/lib/lib${name}.so.1`, content: text(i + 77, 30000), mode: 0o755 });
    const depends = i === 0 ? [] : [`so:lib${defs[Math.floor(i / 2)]!.name}.so.1`, ...(i > 3 ? [defs[i - 3]!.name] : [])];
    defs.push({ name, version: `1.${i % 10}.${i}-r0`, depends, provides: [`so:lib${name}.so.1=1`, `cmd:${name}=1.${i % 10}.${i}-r0`], files });
  }
  return defs;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<number> {
  const why = oracleAvailable();
  if (why) {
    process.stderr.write(`bench:alpine: ${why}\n`);
    return 1;
  }
  const runs = arg('--runs', 3);
  const count = arg('--packages', 150);
  const work = mkdtempSync(join(tmpdir(), 'rf-bench-apk-'));
  const oracle = makeOracle();
  try {
    const key = makeKey();
    const defs = benchPackages(count);
    const t0 = performance.now();
    const pkgs = defs.map((d) => buildPackage(d, key));
    const repo = writeRepo(join(work, 'repo'), pkgs, key);
    const keyFile = join(work, key.name);
    writeFileSync(keyFile, key.publicPem);
    const world = defs.slice(-10).map((d) => d.name); // pulls in the rest through dependencies
    const apkBytes = pkgs.reduce((n, p) => n + p.apk.length, 0);
    const fileBytes = defs.reduce((n, d) => n + d.files.reduce((m, f) => m + (f.content ? Buffer.from(f.content).length : 0), 0), 0);
    process.stderr.write(`bench:alpine: ${count} packages, ${(apkBytes / 1e6).toFixed(1)} MB of .apk, ${(fileBytes / 1e6).toFixed(1)} MB of files (generated in ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    const ours: number[] = [];
    const theirs: number[] = [];
    const theirsApk: number[] = [];
    let installed = 0;
    for (let r = 0; r <= runs; r++) {
      // ours
      const img = join(work, 'ours.ext4');
      rmSync(img, { force: true });
      let s = performance.now();
      const res = await rootforgeAdd(img, { repositories: [repo], packages: world, keys: [keyFile], firstBoot: false });
      const tOurs = (performance.now() - s) / 1000;
      installed = res.installed.length;
      // apk-tools + mke2fs -d
      s = performance.now();
      const ref = apkAdd(oracle, repo, key, world);
      if (ref.code !== 0) throw new Error(`apk: ${ref.output}`);
      const tApk = (performance.now() - s) / 1000;
      const du = Number(spawnSync('du', ['-sb', ref.target], { encoding: 'utf8' }).stdout.split('\t')[0]);
      const size = Math.ceil((du * 1.3 + 16 * 2 ** 20) / 4096) * 4096;
      const theirImg = join(work, 'theirs.ext4');
      rmSync(theirImg, { force: true });
      const mk = spawnSync('mke2fs', ['-q', '-t', 'ext4', '-d', ref.target, '-F', theirImg, `${size / 1024}k`], { encoding: 'utf8' });
      if (mk.status !== 0) throw new Error(`mke2fs: ${mk.stderr}`);
      const tTheirs = (performance.now() - s) / 1000;
      if (r === 0) {
        for (const i of [img, theirImg]) {
          const f = spawnSync('e2fsck', ['-fn', i], { encoding: 'utf8' });
          if (f.status !== 0) throw new Error(`e2fsck ${i}: ${f.stdout}`);
        }
        process.stderr.write(`warm-up: ours ${tOurs.toFixed(2)} s (${(statSync(img).size / 1e6).toFixed(1)} MB image), apk ${tApk.toFixed(2)} s + mke2fs = ${tTheirs.toFixed(2)} s (${(size / 1e6).toFixed(1)} MB image)\n`);
        continue;
      }
      ours.push(tOurs);
      theirsApk.push(tApk);
      theirs.push(tTheirs);
      process.stderr.write(`run ${r}: ours ${tOurs.toFixed(2)} s, apk-tools ${tApk.toFixed(2)} s + mke2fs -d = ${tTheirs.toFixed(2)} s\n`);
    }
    const mo = median(ours);
    const mt = median(theirs);
    const out = {
      packages: installed,
      apkMB: +(apkBytes / 1e6).toFixed(1),
      filesMB: +(fileBytes / 1e6).toFixed(1),
      runs,
      oursMedianS: +mo.toFixed(3),
      apkToolsMedianS: +median(theirsApk).toFixed(3),
      apkToolsPlusMke2fsMedianS: +mt.toFixed(3),
      speedup: +(mt / mo).toFixed(2),
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    process.stderr.write(`bench:alpine: ours ${mo.toFixed(2)} s vs apk-tools + mke2fs -d ${mt.toFixed(2)} s: ${(mt / mo).toFixed(2)}× (goal ≥ 3×)\n`);
    return 0;
  } finally {
    oracle.cleanup();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench:alpine: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
