import { byteStringToDisplay } from '../util/bytes.js';
import { formatBytes } from '../util/size.js';
import { diffImageFiles } from '../report/write.js';
import { parse, UsageError } from './args.js';

export const DIFF_USAGE = `Usage: rootforge diff <A.ext4> <B.ext4> [--json] [--html FILE]

Compares two images without mounting them: paths added, removed and changed (type, mode,
owner, size, content hash, symlink target), and the size change by directory and by package.
  --json        the whole comparison as JSON on stdout
  --html FILE   also write it as a self-contained HTML page`;

const signed = (n: number) => (n < 0 ? `-${formatBytes(-n)}` : `+${formatBytes(n)}`);

export async function diffCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, html: { type: 'string' } } as const, DIFF_USAGE);
  if (values.help) {
    process.stdout.write(DIFF_USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError(`expected two images\n\n${DIFF_USAGE}`);
  const d = await diffImageFiles(positionals[0]!, positionals[1]!, values.html);
  if (values.json) {
    const show = byteStringToDisplay;
    const out = {
      ...d,
      added: d.added.map((e) => ({ ...e, path: show(e.path) })),
      removed: d.removed.map((e) => ({ ...e, path: show(e.path) })),
      changed: d.changed.map((e) => ({ ...e, path: show(e.path) })),
      byDirectory: d.byDirectory.map((e) => ({ ...e, path: show(e.path) })),
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  const w = (s: string) => process.stdout.write(s + '\n');
  for (const e of d.added) w(`+ ${byteStringToDisplay(e.path)}`);
  for (const e of d.removed) w(`- ${byteStringToDisplay(e.path)}`);
  for (const e of d.changed) w(`~ ${byteStringToDisplay(e.path)} (${e.fields.join(', ')})`);
  w(`${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed; content ${signed(d.bytesDelta)}`);
  const dirs = d.byDirectory.filter((x) => x.path.split('/').length <= 3).slice(0, 15);
  if (dirs.length > 0) w(`By directory: ${dirs.map((x) => `${byteStringToDisplay(x.path)} ${signed(x.delta)}`).join(', ')}`);
  if (d.byPackage.length > 0) {
    w(`By package: ${d.byPackage.slice(0, 15).map((x) => `${x.id} ${signed(x.delta)}${x.versionBefore !== x.versionAfter ? ` (${x.versionBefore ?? 'new'} → ${x.versionAfter ?? 'gone'})` : ''}`).join(', ')}`);
  }
  if (values.html !== undefined) process.stderr.write(`wrote ${values.html}\n`);
  return 0;
}
