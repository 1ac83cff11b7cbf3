/**
 * Instances without a VM: the instance disk (sparse, e2fsck-clean, only /upper and /work, read
 * back by debugfs), the record, the base never written, ls/env/reset/resize/rm through the real
 * CLI, the config disk read by a real tar and its session env sourced by a real sh, shares
 * parsed, and the devices QEMU and Firecracker get (slot counting, every drive listed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert.js';
import { isRootforgeError } from '../../src/errors.js';
import { createInstance } from '../../src/instance/create.js';
import { configEntries, ustar } from '../../src/instance/config-disk.js';
import { bootInstance, parseShare } from '../../src/instance/boot.js';
import { readRecord } from '../../src/instance/record.js';
import { sshdSetEnvConf } from '../../src/instance/ssh.js';
import { checkSlots, qemuDeviceArgs, slotsNeeded } from '../../src/vm/devices.js';
import { firecrackerConfig } from '../../src/vm/firecracker.js';
import { qemuArgv } from '../../src/vm/qemu.js';
import { rootforge } from '../helpers/cli.js';
import { agentBinary } from '../helpers/agent.js';
import { skipOrFail } from '../helpers/fixtures.js';
import { Ext4Image } from '../../src/ext4/reader.js';
import { tarEntries } from '../helpers/tar-writer.js';

const work = mkdtempSync(join(tmpdir(), 'rf-inst-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const cache = join(work, 'cache');
const env = { XDG_CACHE_HOME: cache };
const FAKE = new URL('../../../test/helpers/fake-firecracker.mjs', import.meta.url).pathname;
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbYz0Yb8kq4Jt0Jx2i5bHq0rQmTqY1m0m8h3m4z0k1a test@host';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const have = (cmd: string) => spawnSync('which', [cmd]).status === 0;

async function base(name: string, readOnly = true): Promise<string> {
  const tar = join(work, `${name}.tar`);
  writeFileSync(tar, tarEntries([{ path: 'etc/hostname', content: 'base\n' }, { path: 'bin/', type: 'dir' }]));
  const img = join(work, `${name}.ext4`);
  await convert(`tar:${tar}`, img, { readOnly });
  return img;
}

test('create: a sparse, e2fsck-clean instance disk with only /upper and /work; the base untouched', async () => {
  const img = await base('b1');
  const before = sha(img);
  const mtime = statSync(img).mtimeMs;
  const dir = join(work, 'i1');
  const r = await createInstance(img, dir, { sizeBytes: 10 * 2 ** 30, sshKeys: [KEY], env: { TOKEN: 'x' }, cacheDir: cache });
  assert.equal(statSync(join(dir, 'disk.ext4')).size, 10 * 2 ** 30);
  assert.ok(r.diskUsageBytes < 2 ** 20, `real disk use ${r.diskUsageBytes} (goal < 1 MiB)`);
  assert.equal(r.hashedBase, true);
  assert.equal(r.record.base.sha256, before);
  assert.equal(r.record.config.hostname, 'i1');
  assert.match(r.record.config.machineId, /^[0-9a-f]{32}$/);
  assert.equal(statSync(join(dir, 'instance.json')).mode & 0o777, 0o600, 'the record may hold secrets');
  assert.equal(sha(img), before);
  assert.equal(statSync(img).mtimeMs, mtime);
  if (have('e2fsck')) {
    const fsck = spawnSync('e2fsck', ['-fn', join(dir, 'disk.ext4')], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
  }
  if (have('debugfs')) {
    const ls = spawnSync('debugfs', ['-R', 'ls -l /', join(dir, 'disk.ext4')], { encoding: 'utf8' });
    const names = ls.stdout.split('\n').map((l) => l.trim().split(/\s+/).pop()).filter((n) => n && n !== '.' && n !== '..');
    assert.deepEqual(names.sort(), ['lost+found', 'upper', 'work']);
  }
  // a second instance reuses the remembered hash, and two instances have their own identities
  const r2 = await createInstance(img, join(work, 'i2'), { cacheDir: cache });
  assert.equal(r2.hashedBase, false);
  assert.notEqual(r2.record.config.machineId, r.record.config.machineId);
  assert.equal(r2.record.disk.sizeBytes, 4 * 2 ** 30, 'default 4G');
  // same size ⇒ same disk bytes (deterministic)
  await createInstance(img, join(work, 'i3'), { sizeBytes: 64 * 2 ** 20, cacheDir: cache });
  await createInstance(img, join(work, 'i4'), { sizeBytes: 64 * 2 ** 20, cacheDir: cache });
  assert.equal(sha(join(work, 'i3', 'disk.ext4')), sha(join(work, 'i4', 'disk.ext4')));
});

test('create refuses bad input with typed errors and leaves nothing behind', async () => {
  const img = await base('b2');
  const notExt4 = join(work, 'not.ext4');
  writeFileSync(notExt4, Buffer.alloc(8192, 1));
  const cases: [() => Promise<unknown>, string, string][] = [
    [() => createInstance(notExt4, join(work, 'x1'), { cacheDir: cache }), 'SOURCE_BAD_SPEC', 'x1'],
    [() => createInstance(join(work, 'missing.ext4'), join(work, 'x2'), { cacheDir: cache }), 'SOURCE_NOT_FOUND', 'x2'],
    [() => createInstance(img, join(work, 'x3'), { sizeBytes: 1000, cacheDir: cache }), 'OPTION_INVALID', 'x3'],
    [() => createInstance(img, join(work, 'x4'), { sshKeys: ['not a key'], cacheDir: cache }), 'OPTION_INVALID', 'x4'],
    [() => createInstance(img, join(work, 'x5'), { hostname: 'bad_host!', cacheDir: cache }), 'OPTION_INVALID', 'x5'],
    [() => createInstance(img, join(work, 'x6'), { env: { '1BAD': 'v' }, cacheDir: cache }), 'OPTION_INVALID', 'x6'],
  ];
  for (const [p, code, dir] of cases) {
    await assert.rejects(p(), (e: unknown) => isRootforgeError(e, code as never) && /^Cannot /.test(e.message), `${dir}: ${code}`);
    assert.equal(existsSync(join(work, dir)), false, `${dir} left behind`);
  }
  const full = join(work, 'full');
  mkdirSync(full);
  writeFileSync(join(full, 'keep.txt'), 'mine');
  await assert.rejects(createInstance(img, full, { cacheDir: cache }), (e: unknown) => isRootforgeError(e, 'OUTPUT_EXISTS'));
  assert.equal(readFileSync(join(full, 'keep.txt'), 'utf8'), 'mine');
});

test('CLI: instance create --json, inspect, env, ls, resize, reset, rm', async () => {
  const img = await base('b3', false); // a writable base works too
  const keyFile = join(work, 'id.pub');
  writeFileSync(keyFile, `${KEY}\n`);
  const dir = join(work, 'cli-box');
  const c = rootforge(['instance', 'create', img, '-o', dir, '--size', '256M', '--ssh-key', keyFile, '--hostname', 'box-1', '--env', 'A=1', '--env', 'B=x=y', '--json'], env);
  assert.equal(c.code, 0, c.stderr);
  const doc = JSON.parse(c.stdout.toString()) as { config: { hostname: string; sshKeys: string[]; env: Record<string, string> }; disk: { sizeBytes: number } };
  assert.equal(doc.config.hostname, 'box-1');
  assert.deepEqual(doc.config.sshKeys, [KEY]);
  assert.deepEqual(doc.config.env, { A: '1', B: 'x=y' });
  assert.equal(doc.disk.sizeBytes, 256 * 2 ** 20);

  const i = rootforge(['inspect', dir], env);
  assert.equal(i.code, 0, i.stderr);
  assert.match(i.stdout.toString(), /base sha256 +[0-9a-f]{64}/);
  assert.match(i.stdout.toString(), /disk +256\.0 MiB \(sparse\), [\d.]+ MiB used on the host/);
  assert.match(i.stdout.toString(), /session env +A B/);

  assert.equal(rootforge(['instance', 'env', dir, 'C=3', '--unset', 'A'], env).code, 0);
  assert.equal(rootforge(['instance', 'env', dir], env).stdout.toString(), 'B=x=y\nC=3\n');
  assert.equal(rootforge(['instance', 'env', dir, 'bad-name=1'], env).code, 1);

  const ls = rootforge(['instance', 'ls', work, '--json'], env);
  assert.equal(ls.code, 0, ls.stderr);
  assert.ok((JSON.parse(ls.stdout.toString()) as { dir: string }[]).some((x) => x.dir.endsWith('cli-box')));

  assert.equal(rootforge(['instance', 'resize', dir, '1G'], env).code, 0);
  assert.equal(statSync(join(dir, 'disk.ext4')).size, 2 ** 30);
  assert.equal((await readRecord(dir)).disk.sizeBytes, 2 ** 30);
  const shrink = rootforge(['instance', 'resize', dir, '128M'], env);
  assert.equal(shrink.code, 1);
  assert.match(shrink.stderr, /only grow/);

  // reset: a fresh disk of the same (grown) size, config kept
  writeFileSync(join(dir, 'disk.ext4'), Buffer.alloc(4096, 7), { flag: 'r+' });
  assert.equal(rootforge(['instance', 'reset', dir], env).code, 0);
  assert.equal(statSync(join(dir, 'disk.ext4')).size, 2 ** 30);
  if (have('e2fsck')) assert.equal(spawnSync('e2fsck', ['-fn', join(dir, 'disk.ext4')]).status, 0);
  assert.equal((await readRecord(dir)).config.env['C'], '3');

  assert.equal(rootforge(['instance', 'rm', dir], env).code, 0);
  assert.equal(existsSync(dir), false);
  const again = rootforge(['instance', 'rm', dir], env);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /INSTANCE_INVALID/);
});

test('config disk: a real tar reads it, a real sh sources the session env exactly', () => {
  const cfg = { hostname: 'h1', machineId: 'a'.repeat(32), sshKeys: [KEY], env: {} };
  const tricky = { QUOTE: `it's "fine" $HOME \`x\` \\n`, EMPTY: '', NEWLINE: 'a\nb' };
  const disk = ustar(configEntries(cfg, tricky, [{ tag: 'rfshare0', target: '/workspace', type: 'virtiofs', readOnly: false }]));
  assert.equal(disk.length % 4096, 0);
  const path = join(work, 'config.img');
  writeFileSync(path, disk);
  const list = spawnSync('tar', ['-tvf', path], { encoding: 'utf8' });
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /-rw------- 0\/0 .* etc\/rootforge\/instance\.json/);
  assert.match(list.stdout, /drwx------ 0\/0 .* root\/\.ssh\//);
  assert.match(list.stdout, /-r--r--r-- 0\/0 .* etc\/machine-id/);
  const out = join(work, 'cfg-out');
  mkdirSync(out);
  assert.equal(spawnSync('tar', ['-xf', path, '-C', out]).status, 0);
  assert.equal(readFileSync(join(out, 'root/.ssh/authorized_keys'), 'utf8'), `${KEY}\n`);
  const inst = JSON.parse(readFileSync(join(out, 'etc/rootforge/instance.json'), 'utf8')) as { hostname: string; env: Record<string, string>; mounts: unknown[] };
  assert.equal(inst.hostname, 'h1');
  assert.deepEqual(inst.env, { EMPTY: '', NEWLINE: 'a\nb', QUOTE: tricky.QUOTE });
  for (const [k, v] of Object.entries(tricky)) {
    const r = spawnSync('sh', ['-c', `. "$1"; printf %s "$${k}"`, 'sh', join(out, 'etc/rootforge/session-env.sh')], { encoding: 'utf8' });
    assert.equal(r.stdout, v, k);
  }
});

test('shares: HOSTDIR:GUESTDIR[:ro] parsed and checked', () => {
  const d = join(work, 'share');
  mkdirSync(d);
  assert.deepEqual(parseShare(`${d}:/workspace`), { hostDir: d, guestDir: '/workspace', readOnly: false });
  assert.deepEqual(parseShare(`${d}:/skills:ro`), { hostDir: d, guestDir: '/skills', readOnly: true });
  assert.throws(() => parseShare(`${d}:relative`), (e: unknown) => isRootforgeError(e, 'OPTION_INVALID'));
  assert.throws(() => parseShare(`${d}/nope:/x`), (e: unknown) => isRootforgeError(e, 'SOURCE_NOT_FOUND'));
  assert.throws(() => parseShare(`${d}:/x:rx`), (e: unknown) => isRootforgeError(e, 'OPTION_INVALID'));
});

test('devices: microvm slots counted, virtio-fs gets force-legacy=false and shared memory; Firecracker lists every drive', () => {
  const kernel = { vmlinux: '/k/vmlinux', name: 'k', arch: 'amd64' };
  const disks = [
    { id: 'instance', path: '/i/disk.ext4', readOnly: false },
    { id: 'config', path: '/w/config.img', readOnly: true },
  ];
  const fsShares = [0, 1, 2, 3].map((i) => ({ tag: `rfshare${i}`, socket: `/w/fs${i}.sock` }));
  assert.equal(slotsNeeded({ disks, fsShares }), 8);
  checkSlots({ image: 'x', disks, fsShares });
  assert.throws(() => checkSlots({ image: 'x', disks, fsShares: [...fsShares, { tag: 'rfshare4', socket: '/w/fs4.sock' }] }), (e: unknown) => isRootforgeError(e, 'OPTION_INVALID') && /8 virtio-mmio slots and this VM needs 9/.test(e.message));
  const argv = qemuArgv({ image: '/b.ext4', kernel, disks, fsShares: fsShares.slice(0, 1), memMiB: 512, readOnlyRoot: true }, { accel: 'tcg', reason: 'test' } as never, '/w/agent.sock');
  const m = argv[argv.indexOf('-M') + 1]!;
  assert.equal(m, 'microvm,accel=tcg,memory-backend=rfmem');
  assert.ok(argv.includes('memory-backend-memfd,id=rfmem,size=512M,share=on'));
  assert.ok(argv.includes('virtio-mmio.force-legacy=false'));
  assert.ok(argv.includes('vhost-user-fs-device,chardev=rffs0,tag=rfshare0'));
  const drives = argv.filter((_a, i) => argv[i - 1] === "-drive");
  assert.deepEqual(drives, [
    'id=root,file=/b.ext4,format=raw,if=none,snapshot=on,readonly=on',
    'id=instance,file=/i/disk.ext4,format=raw,if=none',
    'id=config,file=/w/config.img,format=raw,if=none,readonly=on',
  ]);
  // no shares: no shared memory, no global (today's plain boot is unchanged)
  const plain = qemuDeviceArgs({ image: '/b.ext4', kernel, disks }, 'microvm,accel=tcg');
  assert.equal(plain.machine, 'microvm,accel=tcg');
  assert.ok(!plain.argv.includes('-global'));
  const fc = firecrackerConfig({ image: '/b.ext4', kernel, readOnlyRoot: true, disks: [...disks, { id: 'share0', path: '/w/share0.ext4', readOnly: true }] }, '/w/v.sock');
  assert.deepEqual(
    fc.drives.map((d) => [d.drive_id, d.path_on_host, d.is_root_device, d.is_read_only]),
    [
      ['rootfs', '/b.ext4', true, true],
      ['instance', '/i/disk.ext4', false, false],
      ['config', '/w/config.img', false, true],
      ['share0', '/w/share0.ext4', false, true],
    ],
  );
});

test('Firecracker: each share becomes an ext4 disk from our converter, every drive in the config, mounts on the config disk', { timeout: 120_000 }, async (t) => {
  const agent = agentBinary();
  if (!agent.path) return skipOrFail(t, agent.why ?? 'no agent');
  chmodSync(FAKE, 0o755);
  const spec = join(work, 'fc.yaml');
  writeFileSync(spec, `agent: ${agent.path}\ninit: agent\njournal: false\n`);
  const img = join(work, 'fc-base.ext4');
  assert.equal(rootforge(['build', spec, '-o', img, '-q']).code, 0);
  const dir = join(work, 'fc-inst');
  await createInstance(img, dir, { sizeBytes: 64 * 2 ** 20, cacheDir: cache, env: { K: 'v' } });
  const ws = join(work, 'fc-ws');
  const ro = join(work, 'fc-ro');
  mkdirSync(ws);
  mkdirSync(ro);
  writeFileSync(join(ws, 'in.txt'), 'workspace file\n');
  writeFileSync(join(ro, 'skill.md'), 'skill\n');
  const vmlinux = join(work, 'fc-vmlinux');
  writeFileSync(vmlinux, 'not booted by the stand-in');
  process.env['ROOTFORGE_TEST_AGENT'] = agent.path;
  const log = join(work, 'fc-console.log');
  const vm = await bootInstance(dir, { vmlinux, name: 't', arch: 'amd64' }, { vmm: 'firecracker', vmmBinary: FAKE, consoleLog: log, bootTimeoutMs: 30_000, cacheDir: cache, checkOverlay: false, shares: [parseShare(`${ws}:/workspace:rw`), parseShare(`${ro}:/skills:ro`)] });
  let cfg: ReturnType<typeof firecrackerConfig>;
  try {
    await new Promise((r) => setTimeout(r, 200));
    cfg = JSON.parse(/fake-firecracker: config (.*)/.exec(readFileSync(log, 'utf8'))![1]!) as ReturnType<typeof firecrackerConfig>;
    assert.deepEqual(
      cfg.drives.map((d) => [d.drive_id, d.is_root_device, d.is_read_only]),
      [
        ['rootfs', true, true],
        ['instance', false, false],
        ['config', false, true],
        ['share0', false, false],
        ['share1', false, true],
      ],
    );
    assert.equal(cfg.drives[1]!.path_on_host, join(dir, 'disk.ext4'));
    assert.match(cfg['boot-source'].boot_args, / ro .*rootforge\.upper=\/dev\/vdb rootforge\.config=\/dev\/vdc/);
    assert.doesNotMatch(cfg['boot-source'].boot_args, /K=v/);
    // the share disks hold the directories' files
    for (const [i, file, text] of [[3, '/in.txt', 'workspace file\n'], [4, '/skill.md', 'skill\n']] as const) {
      const disk = await Ext4Image.open(cfg.drives[i]!.path_on_host);
      try {
        assert.equal((await disk.readData(await disk.resolve(file))).toString(), text);
      } finally {
        await disk.close();
      }
    }
    const inst = spawnSync('tar', ['-xOf', cfg.drives[2]!.path_on_host, 'etc/rootforge/instance.json'], { encoding: 'utf8' });
    assert.deepEqual((JSON.parse(inst.stdout) as { mounts: unknown }).mounts, [
      { tag: '/dev/vdd', target: '/workspace', type: 'ext4', readOnly: false },
      { tag: '/dev/vde', target: '/skills', type: 'ext4', readOnly: true },
    ]);
  } finally {
    assert.ok((await vm.shutdown(10_000)).clean);
  }
  assert.equal(existsSync(cfg.drives[3]!.path_on_host), false, 'the per-boot share disks are removed after the VM stops');
});

test('ssh sessions: SetEnv drop-in lines, values sshd_config cannot hold left out by name', () => {
  const conf = sshdSetEnvConf({ B: "it's fine", A: 'x y', Q: 'a"b', NL: 'a\nb', BS: 'a\\b' });
  assert.deepEqual(conf.split('\n').filter((l) => !l.startsWith('# Session')), [
    '# BS: left out (a double quote, backslash or control character cannot be written here)',
    '# NL: left out (a double quote, backslash or control character cannot be written here)',
    '# Q: left out (a double quote, backslash or control character cannot be written here)',
    'SetEnv "A=x y" "B=it\'s fine"',
    '',
  ]);
  const cfg = { hostname: 'h', machineId: 'b'.repeat(32), sshKeys: [], env: {} };
  const withDropIn = configEntries(cfg, { A: '1' }, [], { sshdSetEnv: true }).find((e) => e.path === 'etc/ssh/sshd_config.d/rootforge-session-env.conf');
  assert.equal(withDropIn?.mode, 0o600);
  assert.match(withDropIn!.data!.toString(), /^SetEnv "A=1"$/m);
  assert.equal(sshdSetEnvConf({}).includes('SetEnv'), false);
  assert.equal(configEntries(cfg, { A: '1' }, []).some((e) => e.path.startsWith('etc/ssh')), false, 'only when the base sshd takes SetEnv');
});
