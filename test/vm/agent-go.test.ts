/**
 * The Go unit tests of agent/ (framing, exec edge cases, files, PID-1 duties through a fake
 * System), run from `npm test` so one command covers both languages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { goAvailable, REPO } from '../helpers/agent.js';

const haveGo = goAvailable();
if (!haveGo && process.env.CI === 'true') throw new Error('CI=true but no Go toolchain: .ci/run must install golang-go');

test('go vet ./... in agent/', { skip: haveGo ? false : 'no Go toolchain (apt-get install golang-go)', timeout: 300_000 }, () => {
  const r = spawnSync('go', ['vet', './...'], { cwd: join(REPO, 'agent'), encoding: 'utf8', env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '' }, timeout: 290_000 });
  assert.equal(r.status, 0, `go vet failed:\n${r.stdout}\n${r.stderr}`);
});

test('go test ./... in agent/', { skip: haveGo ? false : 'no Go toolchain (apt-get install golang-go)', timeout: 600_000 }, () => {
  const r = spawnSync('go', ['test', '-count=1', './...'], {
    cwd: join(REPO, 'agent'),
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '' },
    timeout: 590_000,
  });
  assert.equal(r.error, undefined);
  assert.equal(r.status, 0, `go test failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^ok\s+rootforge\/agent\/internal\/session/m);
});

// Sessions of one agent run on their own goroutines and share its settings: the race detector
// (it needs cgo, so a C compiler) checks the server and session packages with several hosts at once.
const haveCc = spawnSync('which', ['gcc']).status === 0;
test('go test -race of the server and session packages (concurrent connections)', { skip: haveGo && haveCc ? false : 'needs Go and gcc (apt-get install golang-go gcc)', timeout: 600_000 }, () => {
  const r = spawnSync('go', ['test', '-race', '-count=1', './internal/server/', './internal/session/'], {
    cwd: join(REPO, 'agent'),
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '1', GOFLAGS: '' },
    timeout: 590_000,
  });
  assert.equal(r.error, undefined);
  assert.equal(r.status, 0, `go test -race failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^ok\s+rootforge\/agent\/internal\/server/m);
});
