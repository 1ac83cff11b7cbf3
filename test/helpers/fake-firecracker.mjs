#!/usr/bin/env node
// A stand-in for the firecracker binary in tests (no Firecracker can run on these machines):
// it reads `--config-file`, listens on the config's vsock.uds_path, answers the host's
// "CONNECT <port>\n" with "OK <n>\n" like Firecracker's vsock relay, and then relays the
// connection to a real rootforge agent (`serve --stdio`). When the agent exits (a shutdown
// request), this process exits too, as a VM that powered off would. Prints the config it got.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const args = process.argv.slice(2);
const cfgPath = args[args.indexOf('--config-file') + 1];
const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
process.stdout.write(`fake-firecracker: config ${JSON.stringify(cfg)}\n`);
// Tests find this process through ROOTFORGE_TEST_PIDFILE (to check it is killed).
import { writeFileSync } from 'node:fs';
if (process.env.ROOTFORGE_TEST_PIDFILE) writeFileSync(process.env.ROOTFORGE_TEST_PIDFILE, String(process.pid));
// ROOTFORGE_TEST_FC_MODE=panic: a guest whose kernel panics; the VMM keeps running (panic=-1
// would reboot; here nothing answers on vsock either), as a hung guest would.
if (process.env.ROOTFORGE_TEST_FC_MODE === 'panic') {
  process.stdout.write('[    0.512345] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n');
  setInterval(() => {}, 1000);
}
const agentBin = process.env.ROOTFORGE_TEST_AGENT;
const server = createServer((sock) => {
  let buf = '';
  const onData = (d) => {
    buf += d.toString('latin1');
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    sock.off('data', onData);
    const m = /^CONNECT (\d+)$/.exec(buf.slice(0, nl));
    if (!m || Number(m[1]) !== Number(process.env.ROOTFORGE_TEST_VSOCK_PORT ?? 1024)) {
      sock.destroy();
      return;
    }
    sock.write('OK 1073741824\n');
    const rest = Buffer.from(buf.slice(nl + 1), 'latin1');
    const agent = spawn(agentBin, ['serve', '--stdio', '--config', '/nonexistent.json', '--image-config', '/nonexistent.json'], { stdio: ['pipe', 'pipe', 'inherit'] });
    if (rest.length) agent.stdin.write(rest);
    sock.pipe(agent.stdin);
    agent.stdout.pipe(sock);
    agent.on('exit', () => {
      process.stdout.write('fake-firecracker: the guest powered off\n');
      sock.end();
      server.close();
      process.exit(0);
    });
  };
  sock.on('data', onData);
});
if (process.env.ROOTFORGE_TEST_FC_MODE !== 'panic') server.listen(cfg.vsock.uds_path);
