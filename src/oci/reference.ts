/**
 * Registry image references (the part after `docker://`): `[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]`,
 * normalized the way Docker does it so `alpine` and `docker.io/library/alpine:latest` name the
 * same image and find the same credentials. Grammar: distribution's reference/regexp.go.
 */
import { fail } from '../errors.js';

export interface RegistryRef {
  /** Registry host as the user names it ("docker.io", "127.0.0.1:5000", "[::1]:5000"). */
  registry: string;
  /** Repository path inside the registry, lowercase ("library/alpine"). */
  repository: string;
  /** Tag; "latest" when the reference names neither tag nor digest. */
  tag?: string;
  /** "sha256:<hex>"; when present it decides what is pulled and the tag is informational. */
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';
/** Docker Hub's API endpoint: "docker.io" is a name, not a host serving /v2/. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])`;
const DOMAIN_RE = new RegExp(`^${HOST}(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** distribution's NameTotalLengthMax: domain and path together. */
const NAME_MAX = 255;

export function parseDockerReference(s: string): RegistryRef {
  const what = 'parse image reference';
  if (s === '') fail('OCI_BAD_REFERENCE', what, 'empty reference', s);
  let rest = s;

  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) {
      const reason = /^[a-z0-9]+[a-z0-9+._-]*:/.test(digest) && !digest.startsWith('sha256:') ? 'only sha256 digests are supported' : 'bad digest';
      fail('OCI_BAD_REFERENCE', what, reason, s);
    }
  }

  // A ':' after the last '/' starts the tag; one before it is a registry port.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/') && !rest.endsWith(']')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail('OCI_BAD_REFERENCE', what, 'bad tag (letters, digits, _ . -, at most 128, not starting with . or -)', s);
  }

  const { registry, path } = splitDomain(rest);
  if (!DOMAIN_RE.test(registry)) fail('OCI_BAD_REFERENCE', what, 'bad registry host', s);
  if (path === '') fail('OCI_BAD_REFERENCE', what, 'no repository name', s);
  for (const component of path.split('/')) {
    if (PATH_COMPONENT_RE.test(component)) continue;
    if (PATH_COMPONENT_RE.test(component.toLowerCase())) fail('OCI_BAD_REFERENCE', what, 'repository name must be lowercase', s);
    fail('OCI_BAD_REFERENCE', what, 'bad repository name (lowercase letters, digits and separators . _ __ -)', s);
  }
  const repository = registry === DOCKER_HUB && !path.includes('/') ? `library/${path}` : path;
  if (registry.length + 1 + repository.length > NAME_MAX) fail('OCI_BAD_REFERENCE', what, `name longer than ${NAME_MAX} characters`, s);

  const ref: RegistryRef = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = 'latest';
  return ref;
}

/**
 * Docker's splitDockerDomain: the first component is a registry only if it looks like a host
 * (has '.' or ':', or is "localhost"); otherwise the name is on Docker Hub. An uppercase first
 * component also counts as a host, since repository names cannot contain uppercase.
 */
function splitDomain(name: string): { registry: string; path: string } {
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  if (slash < 0 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first && !first.startsWith('['))) {
    return { registry: DOCKER_HUB, path: name };
  }
  const registry = first === 'index.docker.io' ? DOCKER_HUB : first;
  return { registry, path: name.slice(slash + 1) };
}

/** The canonical full form: "docker.io/library/alpine:latest", "host:5000/repo@sha256:…". */
export function formatReference(ref: RegistryRef): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The host:port that serves the registry API for a registry name. */
export function registryEndpoint(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}
