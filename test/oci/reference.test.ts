/**
 * docker:// reference parsing: Docker's normalization (docker.io, library/, latest), hosts with
 * ports and IPv6, tags and digests, and the errors for what the grammar rejects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReference, parseDockerReference, registryEndpoint, type RegistryRef } from '../../src/oci/reference.js';
import { isRootforgeError } from '../../src/errors.js';

const D = 'sha256:' + 'ab'.repeat(32);

test('Docker Hub short names are normalized like docker pull does', () => {
  const cases: [string, RegistryRef][] = [
    ['alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['alpine:3.20', { registry: 'docker.io', repository: 'library/alpine', tag: '3.20' }],
    ['library/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['bitnami/redis:7', { registry: 'docker.io', repository: 'bitnami/redis', tag: '7' }],
    ['docker.io/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['index.docker.io/library/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['docker.io/bitnami/redis', { registry: 'docker.io', repository: 'bitnami/redis', tag: 'latest' }],
    ['a/b/c', { registry: 'docker.io', repository: 'a/b/c', tag: 'latest' }],
  ];
  for (const [input, want] of cases) assert.deepEqual(parseDockerReference(input), want, input);
});

test('a first component with "." or ":" or "localhost" is a registry', () => {
  const cases: [string, RegistryRef][] = [
    ['127.0.0.1:5000/repo:tag', { registry: '127.0.0.1:5000', repository: 'repo', tag: 'tag' }],
    ['localhost/repo', { registry: 'localhost', repository: 'repo', tag: 'latest' }],
    ['localhost:5000/a/b', { registry: 'localhost:5000', repository: 'a/b', tag: 'latest' }],
    ['ghcr.io/owner/img:v1.2.3', { registry: 'ghcr.io', repository: 'owner/img', tag: 'v1.2.3' }],
    ['quay.io/x/y@' + D, { registry: 'quay.io', repository: 'x/y', digest: D }],
    ['registry.example.com:443/x:t@' + D, { registry: 'registry.example.com:443', repository: 'x', tag: 't', digest: D }],
    ['[::1]:5000/repo:tag', { registry: '[::1]:5000', repository: 'repo', tag: 'tag' }],
    ['[::1]/repo', { registry: '[::1]', repository: 'repo', tag: 'latest' }],
    // Uppercase cannot be a repository name, so Docker reads it as a host.
    ['MyHost/repo', { registry: 'MyHost', repository: 'repo', tag: 'latest' }],
    ['alpine@' + D, { registry: 'docker.io', repository: 'library/alpine', digest: D }],
  ];
  for (const [input, want] of cases) assert.deepEqual(parseDockerReference(input), want, input);
});

test('repository separators follow the distribution grammar', () => {
  for (const ok of ['a.b', 'a_b', 'a__b', 'a-b', 'a---b', 'x/a.b-c__d']) assert.doesNotThrow(() => parseDockerReference(`h.io/${ok}`), ok);
  for (const bad of ['a..b', 'a___b', '-a', 'a-', '.a', 'a/', '/a', 'a//b', 'a b', 'a+b']) {
    assert.throws(() => parseDockerReference(`h.io/${bad}`), (e) => isRootforgeError(e, 'OCI_BAD_REFERENCE'), bad);
  }
});

test('bad references fail with OCI_BAD_REFERENCE and say why', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['Alpine', /must be lowercase/],
    ['docker.io/Library/alpine', /must be lowercase/],
    ['h.io/repo:', /bad tag/],
    ['h.io/repo:-x', /bad tag/],
    ['h.io/repo:' + 'x'.repeat(129), /bad tag/],
    ['h.io/repo@sha256:abc', /bad digest/],
    ['h.io/repo@sha512:' + 'a'.repeat(128), /only sha256/],
    ['h.io/', /no repository/],
    ['h_x.io/repo', /bad registry host/],
    ['h.io/' + 'a'.repeat(260), /longer than 255/],
  ];
  for (const [input, reason] of cases) {
    assert.throws(
      () => parseDockerReference(input),
      (e: unknown) => isRootforgeError(e, 'OCI_BAD_REFERENCE') && reason.test(e.message) && e.message.startsWith('Cannot parse image reference:'),
      input,
    );
  }
});

test('formatReference gives the full normalized name and round-trips', () => {
  assert.equal(formatReference(parseDockerReference('alpine')), 'docker.io/library/alpine:latest');
  assert.equal(formatReference(parseDockerReference('127.0.0.1:5000/r@' + D)), `127.0.0.1:5000/r@${D}`);
  for (const s of ['docker.io/library/alpine:3', `ghcr.io/a/b:t@${D}`, '[::1]:5000/x:y', 'localhost/a/b:c']) {
    assert.equal(formatReference(parseDockerReference(s)), s);
  }
});

test('docker.io is served by registry-1.docker.io; other registries by themselves', () => {
  assert.equal(registryEndpoint('docker.io'), 'registry-1.docker.io');
  assert.equal(registryEndpoint('127.0.0.1:5000'), '127.0.0.1:5000');
});
