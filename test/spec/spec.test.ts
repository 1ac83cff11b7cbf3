/** Build specs: YAML and schema errors name the key; the published JSON Schema agrees with us. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { isRootforgeError } from '../../src/errors.js';
import { loadSpec, resolveSpec, SCHEMA_PATH, specSchema } from '../../src/spec/load.js';

const work = mkdtempSync(join(tmpdir(), 'rf-spec-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const EXAMPLES = new URL('../../../examples/', import.meta.url).pathname;

async function specError(yaml: string): Promise<string> {
  const p = join(work, `s${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(p, yaml);
  try {
    await loadSpec(p);
  } catch (e) {
    assert.ok(isRootforgeError(e, 'SPEC_INVALID'), String(e));
    return (e as Error).message;
  }
  return assert.fail(`accepted:\n${yaml}`);
}

test('bad specs fail with the offending key named', async () => {
  assert.match(await specError('init: sysvinit\n'), /spec\.init must be one of "agent", "wrapper", "systemd", "openrc"/);
  assert.match(await specError('hostnme: box\n'), /spec\.hostnme is not a known key/);
  assert.match(await specError('users:\n  - name: dev\n'), /spec\.users\[0\]\.uid is required/);
  assert.match(await specError('users:\n  - name: dev\n    uid: -3\n'), /spec\.users\[0\]\.uid must be at least 0/);
  assert.match(await specError('dns: [not-an-ip]\n'), /spec\.dns\[0\] has the wrong form/);
  assert.match(await specError('size: big\n'), /spec\.size has the wrong form/);
  assert.match(await specError('readOnly: "yes"\n'), /spec\.readOnly must be a boolean/);
  assert.match(await specError('strip: [docs, fonts]\n'), /spec\.strip must be/);
  assert.match(await specError('env:\n  1BAD: x\n'), /spec\.env\.1BAD is not a valid name/);
  assert.match(await specError('mounts:\n  - tag: ws\n    target: relative\n'), /spec\.mounts\[0\]\.target has the wrong form/);
  assert.match(await specError('agent: none\ninit: agent\n'), /init "agent" needs an agent/);
  assert.match(await specError('from: [\n'), /not valid YAML/);
  assert.match(await specError('users:\n  - {name: a, uid: 1}\n  - {name: a, uid: 2}\n'), /lists a name twice/);
  await assert.rejects(loadSpec(join(work, 'missing.yaml')), (e) => isRootforgeError(e, 'SPEC_NOT_FOUND'));
});

test('defaults, relative paths and IMAGE_SIZE / IMAGE_NAME overrides', () => {
  const s = resolveSpec({ from: 'tar:base.tar', files: 'files' }, '/specs', 'dev', { IMAGE_SIZE: '4G', IMAGE_NAME: 'custom' });
  assert.equal(s.from, 'tar:/specs/base.tar');
  assert.equal(s.files, '/specs/files');
  assert.equal(s.init, 'wrapper');
  assert.equal(s.size, '4G');
  assert.equal(s.output, '/specs/custom.ext4');
  assert.equal(s.hostname, 'sandbox');
  assert.deepEqual(s.dns, ['1.1.1.1', '8.8.8.8']);
  const scratch = resolveSpec({}, '/x', 'minimal');
  assert.equal(scratch.from, 'scratch');
  assert.equal(scratch.init, 'agent');
  assert.equal(scratch.output, '/x/minimal.ext4');
  assert.equal(resolveSpec({ from: 'docker://alpine:3.20' }, '/x', 'a').from, 'docker://alpine:3.20');
});

test('the published JSON Schema (ajv) and our validator agree on examples and on bad specs', async () => {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  const check = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as object);
  assert.ok(specSchema().properties?.['init'], 'schema loads');
  const examples = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));
  assert.ok(examples.length >= 3, 'examples exist');
  for (const f of examples) {
    const doc = parse(readFileSync(join(EXAMPLES, f), 'utf8')) as unknown;
    assert.ok(check(doc), `${f}: ${JSON.stringify(check.errors)}`);
    await loadSpec(join(EXAMPLES, f)); // ours accepts it too
  }
  for (const bad of [{ init: 'x' }, { nope: 1 }, { users: [{ name: 'A' }] }, { dns: ['x y'] }, { strip: 'docs' }]) {
    assert.equal(check(bad), false, JSON.stringify(bad));
    assert.throws(() => resolveSpec(bad, '/', 'x'), (e) => isRootforgeError(e, 'SPEC_INVALID'));
  }
});
