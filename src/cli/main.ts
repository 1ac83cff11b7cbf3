/**
 * rootforge CLI: thin commands over the library. Errors print their message and exit 1
 * (2 for usage errors); --debug adds the stack.
 */
import { unlinkSync } from 'node:fs';
import { version } from '../version.js';
import { isRootforgeError } from '../errors.js';
import { removeActiveTempFiles } from '../util/atomic.js';
import { UsageError } from './args.js';

/**
 * Each command's module is loaded only when it runs: the CLI's start-up (a rebuild that finds
 * its output up to date takes ~30 ms itself) is not spent loading every other command.
 */
const COMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
  convert: async () => (await import('./convert.js')).convertCommand,
  inspect: async () => (await import('./inspect.js')).inspectCommand,
  ls: async () => (await import('./ls.js')).lsCommand,
  cat: async () => (await import('./cat.js')).catCommand,
  pull: async () => (await import('./pull.js')).pullCommand,
  push: async () => (await import('./push.js')).pushCommand,
  build: async () => (await import('./build.js')).buildCommand,
  boot: async () => (await import('./boot.js')).bootCommand,
  kernel: async () => (await import('./kernel.js')).kernelCommand,
  verify: async () => (await import('./verify.js')).verifyCommand,
  cache: async () => (await import('./cache.js')).cacheCommand,
  diff: async () => (await import('./diff.js')).diffCommand,
  instance: async () => (await import('./instance.js')).instanceCommand,
  lock: async () => (await import('./lock.js')).lockCommand,
};

export const USAGE = `rootforge — reproducible ext4 root filesystems for microVMs, without root, Docker or mounts

Usage: rootforge <command> [options]

Commands:
  build [SPEC] [-o <image>]     build a sandbox image from a spec (rootforge.yaml)
  lock [SPEC]                   pin a package-set spec (from: debian:SUITE, or Alpine packages):
                                exact versions and checksums, into <spec>.lock.json
  convert <source> -o <image>   build an ext4 image from a tar archive, a directory, an OCI
                                layout, a docker-archive or a registry image
  boot <image> [-- CMD]         boot an image in a microVM, wait for its agent, run CMD
  instance create|env|ls|rm|reset|resize
                                sandbox instances: a read-only base + a writable disk each;
                                \`boot DIR\` boots one (overlay root, shares, session env)
  kernel ls|show|fetch|from-deb|default|rm
                                manage VM kernels (Debian packages, Firecracker CI kernels)
  pull <ref> [-o <image>]       download a registry image into the blob cache; with -o,
                                reassemble a pushed ext4 image (or convert a container image)
  push <image> docker://<ref>   store an ext4 image in a registry (chunked OCI artifact)
  cache ls|prune                list or empty the blob and image cache
  inspect <image>|<instance>    show an image's size, features, usage, image config and
                                packages (an instance: base, size, config); --html FILE
                                writes a treemap report
  diff <A> <B>                  what changed between two images (paths, sizes, packages)
  verify <image> [--boot]       static checks (e2fsck, init, agent, every program's libraries);
                                --boot also boots it and runs --expect commands
  ls <image> [PATH]             list a directory of an image
  cat <image> PATH              print a file of an image

Run "rootforge <command> --help" for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-V') {
    process.stdout.write(`rootforge ${version()}\n`);
    return 0;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    process.stderr.write(`rootforge: unknown command "${cmd}"\n\n${USAGE}\n`);
    return 2;
  }
  const debug = rest.includes('--debug');
  const onSignal = (sig: NodeJS.Signals) => {
    removeActiveTempFiles(unlinkSync);
    process.stderr.write(`\nrootforge: interrupted (${sig})\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await (await run())(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`rootforge ${cmd}: ${e.message}\n`);
      return 2;
    }
    if (isRootforgeError(e)) {
      process.stderr.write(`rootforge: ${e.message} [${e.code}]\n`);
      if (debug) process.stderr.write(`${e.stack}\n${e.cause ? `cause: ${(e.cause as Error).stack ?? e.cause}\n` : ''}`);
      return 1;
    }
    process.stderr.write(`rootforge: internal error: ${(e as Error).message}\n`);
    if (debug) process.stderr.write(`${(e as Error).stack}\n`);
    else process.stderr.write('(run with --debug for details)\n');
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
