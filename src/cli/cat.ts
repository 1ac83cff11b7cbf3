import { once } from 'node:events';
import { fail } from '../errors.js';
import { Ext4Image } from '../ext4/reader.js';
import { utf8ToByteString } from '../util/bytes.js';
import { parse, UsageError } from './args.js';

export const CAT_USAGE = `Usage: rootforge cat <image> PATH

Writes a file of the image to stdout (symlinks are followed inside the image).`;

export async function catCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {}, CAT_USAGE);
  if (values.help) {
    process.stdout.write(CAT_USAGE + '\n');
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError(`expected <image> PATH\n\n${CAT_USAGE}`);
  const img = await Ext4Image.open(positionals[0]!);
  try {
    const st = await img.resolve(utf8ToByteString(positionals[1]!));
    if (st.kind !== 'file') fail('EXT4_NOT_FOUND', `cat ${positionals[1]}`, `not a regular file (${st.kind})`, positionals[1]);
    for await (const chunk of img.stream(st)) {
      if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
    }
    return 0;
  } finally {
    await img.close();
  }
}
