/**
 * Essential /etc files: passwd, group, shadow (locked passwords), hosts, hostname, resolv.conf,
 * nsswitch.conf. A base's own files are kept unless the spec sets the value (hostname, dns) or
 * asks for overwriteEtc; the spec's users are added to whatever passwd/group/shadow there is.
 */
import { fail } from '../errors.js';
import type { ResolvedSpec } from '../spec/load.js';
import { asset } from './assets.js';
import { readTreeFile, writeFile, type ProvisionContext } from './context.js';

const BASE_PASSWD = ['root:x:0:0:root:/root:/bin/sh', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin'];
const BASE_GROUP = ['root:x:0:', 'nogroup:x:65534:'];

export async function etcFiles(ctx: ProvisionContext, spec: ResolvedSpec): Promise<void> {
  const over = spec.overwriteEtc;
  // a resolv.conf symlink points at a resolver daemon only systemd starts
  const keepLink = spec.init === 'systemd';
  const missing = (p: string) => {
    const n = ctx.tree.get(p);
    return !n || (n.kind === 'symlink' && !keepLink) || n.kind === 'dir';
  };

  // ---- accounts
  const passwd = await lines(ctx, 'etc/passwd');
  const group = await lines(ctx, 'etc/group');
  const shadow = await lines(ctx, 'etc/shadow');
  const p = passwd ?? [...BASE_PASSWD];
  const g = group ?? [...BASE_GROUP];
  const sh = shadow ?? p.map((l) => `${l.split(':')[0]}:*::0:99999:7:::`);
  let changed = { p: passwd === null, g: group === null, s: shadow === null };
  for (const u of spec.users) {
    const byName = p.find((l) => l.split(':')[0] === u.name);
    const byUid = p.find((l) => l.split(':')[2] === String(u.uid));
    if (byName) {
      if (byName.split(':')[2] !== String(u.uid)) fail('PROVISION_FAILED', `add user ${u.name}`, `the base already has ${u.name} with another uid`, byName.split(':')[2]);
      continue;
    }
    if (byUid) fail('PROVISION_FAILED', `add user ${u.name}`, `uid ${u.uid} already belongs to ${byUid.split(':')[0]}`, u.uid);
    p.push(`${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home}:${u.shell}`);
    if (!g.some((l) => l.split(':')[2] === String(u.gid))) g.push(`${u.name}:x:${u.gid}:`);
    if (!sh.some((l) => l.split(':')[0] === u.name)) sh.push(`${u.name}:*::0:99999:7:::`);
    for (const name of u.groups) {
      const i = g.findIndex((l) => l.split(':')[0] === name);
      if (i < 0) fail('PROVISION_FAILED', `add user ${u.name}`, 'supplementary group does not exist in the image', name);
      const f = g[i]!.split(':');
      const members = f[3] ? f[3].split(',') : [];
      if (!members.includes(u.name)) g[i] = [f[0], f[1], f[2], [...members, u.name].join(',')].join(':');
    }
    changed = { p: true, g: true, s: true };
  }
  if (changed.p) writeFile(ctx, 'etc/passwd', p.join('\n') + '\n', 0o644);
  if (changed.g) writeFile(ctx, 'etc/group', g.join('\n') + '\n', 0o644);
  if (changed.s) {
    // keep the base's shadow mode/group when it has one (Debian: 0640 root:shadow)
    const old = ctx.tree.get('etc/shadow');
    writeFile(ctx, 'etc/shadow', sh.join('\n') + '\n', old?.kind === 'file' ? old.mode : 0o600, 0, old?.kind === 'file' ? old.gid : 0);
  }

  // ---- names
  const hostnameSet = spec.explicit.has('hostname') || over;
  if (hostnameSet || missing('etc/hostname')) writeFile(ctx, 'etc/hostname', spec.hostname + '\n');
  if (hostnameSet || missing('etc/hosts')) {
    writeFile(ctx, 'etc/hosts', `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${spec.hostname}\n`);
  }
  if (spec.explicit.has('dns') || over || missing('etc/resolv.conf')) {
    writeFile(ctx, 'etc/resolv.conf', spec.dns.map((d) => `nameserver ${d}`).join('\n') + '\n');
  }
  if (over || missing('etc/nsswitch.conf')) writeFile(ctx, 'etc/nsswitch.conf', asset('etc/nsswitch.conf'));
}

async function lines(ctx: ProvisionContext, path: string): Promise<string[] | null> {
  const b = await readTreeFile(ctx, path);
  if (b === null) return null;
  return b.toString('utf8').split('\n').filter((l) => l.trim() !== '');
}
