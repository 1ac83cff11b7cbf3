/** The resolver on hand-made indexes: the rules that decide what an image contains. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toPackage, type IndexPackage } from '../../src/sources/alpine/apkindex.js';
import { resolve } from '../../src/sources/alpine/resolve.js';
import { parseDeps } from '../../src/sources/alpine/version.js';
import { isRootforgeError } from '../../src/errors.js';

let n = 0;
function pkg(name: string, version: string, extra: Record<string, string> = {}, repo = 0): IndexPackage {
  const fields: Array<[string, string]> = [['C', `Q1${String(++n).padStart(27, 'A')}=`], ['P', name], ['V', version], ...Object.entries(extra).map(([k, v]) => [k, v] as [string, string])];
  return toPackage(fields, 'test', repo);
}
const names = (r: { install: IndexPackage[] }) => r.install.map((p) => `${p.name}-${p.version}`);

test('dependencies first, ties by name; the newest version; the first repository on a tie', () => {
  const repo = [pkg('app', '1-r0', { D: 'libz zlib-tools' }), pkg('libz', '1.2-r0'), pkg('libz', '1.3-r0'), pkg('zlib-tools', '1-r0', { D: 'libz>=1.3' }), pkg('libz', '1.3-r0', {}, 1)];
  const r = resolve(parseDeps('app'), repo, []);
  assert.deepEqual(names(r), ['libz-1.3-r0', 'zlib-tools-1-r0', 'app-1-r0']);
  assert.equal(r.selected.get('libz')!.repo, 0);
});

test('what is installed stays, even when the repository has newer; a constraint it breaks is an error naming it', () => {
  const installed = [pkg('libz', '1.2-r0')];
  const repo = [pkg('libz', '1.3-r0'), pkg('app', '1-r0', { D: 'libz' }), pkg('app2', '1-r0', { D: 'libz>=1.3' })];
  assert.deepEqual(names(resolve(parseDeps('app'), repo, installed)), ['app-1-r0']);
  assert.throws(() => resolve(parseDeps('app2'), repo, installed), (e) => isRootforgeError(e, 'APK_UNSATISFIABLE') && /libz-1\.2-r0 is already chosen/.test(e.message));
});

test('virtual names: priorities decide, none → the user must choose; versioned provides compare as versions', () => {
  const a = pkg('sh-a', '1-r0', { p: 'sh' });
  const b = pkg('sh-b', '1-r0', { p: 'sh' });
  assert.throws(() => resolve(parseDeps('sh'), [a, b], []), (e) => isRootforgeError(e, 'APK_UNSATISFIABLE') && /sh-a, sh-b/.test(e.message));
  assert.deepEqual(names(resolve(parseDeps('sh sh-b'), [a, b], [])), ['sh-b-1-r0'], 'an explicitly named provider satisfies the virtual');
  const so1 = pkg('libfoo1', '1.0-r0', { p: 'so:libfoo.so=1.0' });
  const so2 = pkg('libfoo2', '2.0-r0', { p: 'so:libfoo.so=2.0' });
  assert.deepEqual(names(resolve(parseDeps('so:libfoo.so'), [so1, so2], [])), ['libfoo2-2.0-r0']);
  assert.deepEqual(names(resolve(parseDeps('so:libfoo.so<2'), [so1, so2], [])), ['libfoo1-1.0-r0']);
  assert.throws(() => resolve(parseDeps('sh>=1'), [a, b], []), (e) => isRootforgeError(e, 'APK_UNSATISFIABLE'), 'unversioned provides never meet a versioned dependency');
});

test('conflicts: from the world, from a new package, from an installed one', () => {
  const repo = [pkg('a', '1-r0'), pkg('b', '1-r0', { D: '!a' }), pkg('c', '1-r0')];
  assert.throws(() => resolve(parseDeps('a !a'), repo, []), (e) => isRootforgeError(e, 'APK_CONFLICT'));
  assert.throws(() => resolve(parseDeps('a b'), repo, []), (e) => isRootforgeError(e, 'APK_CONFLICT'));
  assert.throws(() => resolve(parseDeps('c'), repo, [pkg('old', '1-r0', { D: '!c' })]), (e) => isRootforgeError(e, 'APK_CONFLICT') && /old-1-r0/.test(e.message));
});

test('install_if joins once all its conditions hold, and brings its dependencies', () => {
  const repo = [pkg('a', '1-r0'), pkg('b', '1-r0'), pkg('a-b-glue', '1-r0', { i: 'a b', D: 'glue-lib' }), pkg('glue-lib', '1-r0'), pkg('a-doc', '1-r0', { i: 'a docs' })];
  assert.deepEqual(names(resolve(parseDeps('a'), repo, [])), ['a-1-r0']);
  assert.deepEqual(names(resolve(parseDeps('a b'), repo, [])).sort(), ['a-1-r0', 'a-b-glue-1-r0', 'b-1-r0', 'glue-lib-1-r0']);
});
