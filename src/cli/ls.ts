import { Ext4Image, type Stat } from '../ext4/reader.js';
import { byteStringToDisplay, utf8ToByteString } from '../util/bytes.js';
import { parse, UsageError } from './args.js';

export const LS_USAGE = `Usage: rootforge ls <image> [PATH] [-R]

Lists a directory of the image (default /) in long format: mode, links, owner, size, mtime, name.
  -R, --recursive   list every entry below PATH`;

export async function lsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { recursive: { type: 'boolean', short: 'R' } } as const, LS_USAGE);
  if (values.help) {
    process.stdout.write(LS_USAGE + '\n');
    return 0;
  }
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError(`expected <image> [PATH]\n\n${LS_USAGE}`);
  const img = await Ext4Image.open(positionals[0]!);
  try {
    const path = utf8ToByteString(positionals[1] ?? '/');
    if (values.recursive) {
      for await (const [p, st] of img.walk(path)) process.stdout.write(await line(img, st, p));
      return 0;
    }
    const st = await img.lookup(path);
    if (st.kind !== 'dir') {
      process.stdout.write(await line(img, st, path));
      return 0;
    }
    const entries = (await img.readdir(st)).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) process.stdout.write(await line(img, await img.stat(e.ino), e.name));
    return 0;
  } finally {
    await img.close();
  }
}

const TYPE: Record<Stat['kind'], string> = { file: '-', dir: 'd', symlink: 'l', chardev: 'c', blockdev: 'b', fifo: 'p', socket: 's' };

export function modeString(st: Stat): string {
  const p = st.perm;
  const rwx = (shift: number, special: number, ch: string) => {
    const r = p & (4 << shift) ? 'r' : '-';
    const w = p & (2 << shift) ? 'w' : '-';
    const x = p & (1 << shift);
    const xs = p & special ? (x ? ch : ch.toUpperCase()) : x ? 'x' : '-';
    return r + w + xs;
  };
  return TYPE[st.kind] + rwx(6, 0o4000, 's') + rwx(3, 0o2000, 's') + rwx(0, 0o1000, 't');
}

async function line(img: Ext4Image, st: Stat, name: string): Promise<string> {
  const size = st.kind === 'chardev' || st.kind === 'blockdev' ? `${st.major},${st.minor}` : String(st.size);
  const t = new Date(st.mtime.sec * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
  const target = st.kind === 'symlink' ? ` -> ${byteStringToDisplay(await img.readlink(st))}` : '';
  return `${modeString(st)} ${String(st.linksCount).padStart(3)} ${String(st.uid).padStart(5)} ${String(st.gid).padStart(5)} ${size.padStart(10)} ${t} ${byteStringToDisplay(name)}${target}\n`;
}
