/** rootforge instance create | env | ls | rm | reset | resize: sandbox instances of a base image. */
import { readFileSync } from 'node:fs';
import { fail } from '../errors.js';
import { createInstance } from '../instance/create.js';
import { describeInstance, formatInstance, listInstances, removeInstance, resetInstance, resizeInstance, setInstanceEnv } from '../instance/manage.js';
import { parseEnvAssignment } from '../instance/record.js';
import { formatBytes, parseBytes } from '../util/size.js';
import { parse, UsageError } from './args.js';

export const INSTANCE_USAGE = `Usage: rootforge instance <subcommand> ...

Sandbox instances: one read-only base image, a sparse writable disk per sandbox. \`rootforge
boot DIR\` boots one (the root is an overlay of the base and the instance disk).

  create BASE.ext4 -o DIR [--size 10G] [--ssh-key FILE]... [--hostname H] [--env K=V]... [--json]
                          make an instance (the base is referenced, never written or copied)
  env DIR [K=V]... [--unset K]...
                          set the session env stored with the instance (shown without K=V)
  ls DIR [--json]         the instance DIR, or the instances inside DIR
  rm DIR                  delete an instance (its disk and record)
  reset DIR               empty the instance disk (all the sandbox's writes); config kept
  resize DIR SIZE         grow the disk (sparse); the guest grows the filesystem at next boot`;

export async function instanceCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'create':
      return create(rest);
    case 'env':
      return env(rest);
    case 'ls':
      return ls(rest);
    case 'rm':
    case 'reset':
    case 'resize':
      return simple(sub, rest);
    case undefined:
    case '--help':
    case '-h':
      process.stdout.write(INSTANCE_USAGE + '\n');
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"\n\n${INSTANCE_USAGE}`);
  }
}

async function create(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      output: { type: 'string', short: 'o' },
      size: { type: 'string' },
      'ssh-key': { type: 'string', multiple: true },
      hostname: { type: 'string' },
      env: { type: 'string', multiple: true },
      json: { type: 'boolean' },
    } as const,
    INSTANCE_USAGE,
  );
  if (values.help) return help();
  if (positionals.length !== 1 || !values.output) throw new UsageError(`expected BASE.ext4 -o DIR\n\n${INSTANCE_USAGE}`);
  const keys = ((values['ssh-key'] ?? []) as unknown as string[]).map((f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      return fail('SOURCE_NOT_FOUND', `read ssh key ${f}`, (e as NodeJS.ErrnoException).code ?? String(e), f, e);
    }
  });
  const envs = Object.fromEntries(((values.env ?? []) as unknown as string[]).map(parseEnvAssignment));
  const r = await createInstance(positionals[0]!, values.output, {
    ...(values.size ? { sizeBytes: parseBytes(values.size) } : {}),
    sshKeys: keys,
    ...(values.hostname ? { hostname: values.hostname } : {}),
    env: envs,
  });
  if (values.json) {
    process.stdout.write(JSON.stringify({ dir: r.dir, ...r.record, diskUsageBytes: r.diskUsageBytes, hashedBase: r.hashedBase, timings: r.timings }, null, 2) + '\n');
  } else {
    process.stdout.write(`${r.dir}: instance of ${r.record.base.path}, ${formatBytes(r.record.disk.sizeBytes)} disk (${formatBytes(r.diskUsageBytes)} used), in ${r.timings['total']} ms${r.hashedBase ? ' (base hashed now; later instances reuse it)' : ''}\n`);
  }
  return 0;
}

async function env(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { unset: { type: 'string', multiple: true }, json: { type: 'boolean' } } as const, INSTANCE_USAGE);
  if (values.help) return help();
  const [dir, ...assignments] = positionals;
  if (dir === undefined) throw new UsageError(`expected DIR [K=V]...\n\n${INSTANCE_USAGE}`);
  const result = await setInstanceEnv(dir, assignments, (values.unset ?? []) as unknown as string[]);
  if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else if (assignments.length === 0 && !values.unset) for (const k of Object.keys(result).sort()) process.stdout.write(`${k}=${result[k]}\n`);
  return 0;
}

async function ls(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } } as const, INSTANCE_USAGE);
  if (values.help) return help();
  if (positionals.length !== 1) throw new UsageError(`expected DIR\n\n${INSTANCE_USAGE}`);
  const list = await listInstances(positionals[0]!);
  if (values.json) {
    process.stdout.write(JSON.stringify(list, null, 2) + '\n');
    return 0;
  }
  for (const i of list) process.stdout.write(`${i.dir}  ${formatBytes(i.disk.sizeBytes)}  ${formatBytes(i.disk.usedOnHostBytes)} used  ${i.config.hostname}  ${i.base.path}${i.base.exists ? '' : ' (base MISSING)'}\n`);
  return 0;
}

async function simple(sub: 'rm' | 'reset' | 'resize', argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {} as const, INSTANCE_USAGE);
  if (values.help) return help();
  const want = sub === 'resize' ? 2 : 1;
  if (positionals.length !== want) throw new UsageError(`expected ${sub === 'resize' ? 'DIR SIZE' : 'DIR'}\n\n${INSTANCE_USAGE}`);
  const dir = positionals[0]!;
  if (sub === 'rm') {
    await removeInstance(dir);
    process.stdout.write(`${dir}: removed\n`);
  } else if (sub === 'reset') {
    const i = await resetInstance(dir);
    process.stdout.write(`${dir}: disk emptied (${formatBytes(i.disk.usedOnHostBytes)} used)\n`);
  } else {
    const i = await resizeInstance(dir, parseBytes(positionals[1]!));
    process.stdout.write(`${dir}: disk is ${formatBytes(i.disk.sizeBytes)}; the guest grows its filesystem at the next boot\n`);
  }
  return 0;
}

function help(): number {
  process.stdout.write(INSTANCE_USAGE + '\n');
  return 0;
}

/** `rootforge inspect DIR` on an instance directory. */
export async function inspectInstance(dir: string, json: boolean): Promise<number> {
  const info = await describeInstance(dir);
  process.stdout.write(json ? JSON.stringify(info, null, 2) + '\n' : formatInstance(info) + '\n');
  return 0;
}
