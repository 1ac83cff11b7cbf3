/**
 * Runs one pullImage() in its own process, for tests of two processes sharing a cache:
 *   node registry-pull-child.js '<json {ref, cacheDir, creds?}>'
 * Prints the result as one JSON line; exits 1 with the error's code and message on failure.
 */
import { parseDockerReference, pullImage } from '../../src/oci/registry.js';
import { RootforgeError } from '../../src/errors.js';

interface Args {
  ref: string;
  cacheDir: string;
  creds?: { username: string; password: string };
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
try {
  const img = await pullImage(parseDockerReference(args.ref), { cacheDir: args.cacheDir, ...(args.creds ? { creds: args.creds } : {}) });
  process.stdout.write(JSON.stringify({ ok: true, manifestDigest: img.manifestDigest, fromCache: img.fromCache, layers: img.layers.map((l) => l.descriptor.digest) }) + '\n');
} catch (e) {
  const code = e instanceof RootforgeError ? e.code : 'UNKNOWN';
  process.stdout.write(JSON.stringify({ ok: false, code, message: (e as Error).message }) + '\n');
  process.exitCode = 1;
}
