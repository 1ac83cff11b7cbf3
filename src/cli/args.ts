/** Shared argument handling: node:util parseArgs with our error type. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** The options map parseArgs takes (named here so exported signatures can refer to it). */
export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
import { fail, RootforgeError } from '../errors.js';
import { parsePlatform } from '../oci/manifest.js';
import { parseCreds, type Credentials } from '../oci/auth.js';
import type { Platform } from '../oci/types.js';

export class UsageError extends RootforgeError {
  constructor(message: string) {
    super('OPTION_INVALID', message);
  }
}

const COMMON = { help: { type: 'boolean', short: 'h' }, debug: { type: 'boolean' } } as const;

/** Parsed option values: strings for string options, booleans otherwise. */
export type Values<O extends OptionsConfig> = {
  [K in keyof O]?: O[K] extends { type: 'string' } ? string : boolean;
} & { help?: boolean; debug?: boolean };

export function parse<O extends OptionsConfig>(argv: string[], options: O, usage: string): { values: Values<O>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, ...COMMON }, allowPositionals: true, strict: true });
    return { values: r.values as Values<O>, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${usage}`);
  }
}

export function parseOwner(text: string): { uid: number; gid: number } {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) return fail('OPTION_INVALID', 'parse --owner', 'expected UID:GID with numbers', text);
  const uid = Number(m[1]);
  const gid = Number(m[2]);
  if (uid > 0xffffffff || gid > 0xffffffff) fail('OPTION_INVALID', 'parse --owner', 'ids must fit in 32 bits', text);
  return { uid, gid };
}

/** Options shared by commands that read images: --platform, --creds, --tls-verify, --cache-dir, --no-cache. */
export function imageOptions(v: {
  platform?: string | boolean;
  creds?: string | boolean;
  'tls-verify'?: string | boolean;
  'cache-dir'?: string | boolean;
  'no-cache'?: string | boolean;
}): { platform?: Platform; creds?: Credentials; tlsVerify?: boolean; cacheDir?: string; cache?: boolean } {
  const out: { platform?: Platform; creds?: Credentials; tlsVerify?: boolean; cacheDir?: string; cache?: boolean } = {};
  if (typeof v.platform === 'string') out.platform = parsePlatform(v.platform);
  if (typeof v.creds === 'string') out.creds = parseCreds(v.creds);
  if (typeof v['tls-verify'] === 'string') {
    if (v['tls-verify'] !== 'true' && v['tls-verify'] !== 'false') fail('OPTION_INVALID', 'use --tls-verify', 'expected true or false', v['tls-verify']);
    out.tlsVerify = v['tls-verify'] === 'true';
  }
  if (typeof v['cache-dir'] === 'string') out.cacheDir = v['cache-dir'];
  if (v['no-cache'] === true) out.cache = false;
  return out;
}
