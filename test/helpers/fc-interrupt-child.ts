/**
 * Child process for the Ctrl-C test: starts a VM with the stand-in Firecracker, says "ready" on
 * stdout, and on SIGINT exits the way the CLI does (process.exit(130) from a signal handler).
 * Argv: FAKE_FIRECRACKER IMAGE KERNEL.
 */
import { startFirecracker } from '../../src/vm/firecracker.js';

const [fake, image, kernel] = process.argv.slice(2) as [string, string, string];
process.once('SIGINT', () => process.exit(130));
await startFirecracker({ image, kernel: { vmlinux: kernel, name: 't', arch: 'amd64' }, vmmBinary: fake, bootTimeoutMs: 20_000 }, { vsockPort: 1024 });
process.stdout.write('ready\n');
setInterval(() => {}, 1000); // stay up until interrupted
