/**
 * Trusted signing keys and signature checks. apk names a signature member
 * `.SIGN.<TYPE>.<key file name>` and looks the key up by that file name in its keys directory;
 * TYPE is RSA (SHA-1), RSA256 or RSA512, each RSA PKCS#1 v1.5 over the signed bytes.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { fail } from '../../errors.js';

export type KeyRing = Map<string, KeyObject>;

const DIGESTS: Record<string, string> = { RSA: 'sha1', RSA256: 'sha256', RSA512: 'sha512' };

/** Adds a PEM public key under its file name (the name signatures refer to). */
export function addKey(ring: KeyRing, name: string, pem: Buffer | string, from: string): void {
  try {
    ring.set(name, createPublicKey(pem));
  } catch (e) {
    fail('APK_BAD_KEY', `read key ${from}`, 'not a PEM public key', name, e);
  }
}

export interface SignatureName {
  type: string;
  digest: string;
  key: string;
}

/** Parses `.SIGN.RSA256.name.rsa.pub`; null for other names or unknown types (skipped, as apk does). */
export function signatureName(entry: string): SignatureName | null {
  const m = /^\.SIGN\.([A-Z0-9]+)\.(.+)$/.exec(entry);
  if (!m) return null;
  const digest = DIGESTS[m[1]!];
  if (!digest) return null;
  return { type: m[1]!, digest, key: m[2]! };
}

/**
 * Checks signatures over `signed`: the first one made by a trusted key decides (apk uses the
 * first trusted one it meets). No trusted signer → APK_UNTRUSTED; a bad one → APK_BAD_SIGNATURE.
 */
export function checkSignatures(ring: KeyRing, sigs: Array<{ name: string; body: Buffer }>, signed: Buffer, what: string): string {
  const seen: string[] = [];
  for (const s of sigs) {
    const n = signatureName(s.name);
    if (!n) continue;
    seen.push(n.key);
    const key = ring.get(n.key);
    if (!key) continue;
    if (!verify(n.digest, signed, key, s.body)) {
      fail('APK_BAD_SIGNATURE', `verify ${what}`, `the ${n.type} signature by ${n.key} does not match`, what);
    }
    return n.key;
  }
  return fail('APK_UNTRUSTED', `verify ${what}`, seen.length ? `signed by an untrusted key (${seen.join(', ')}); trusted: ${[...ring.keys()].join(', ') || 'none'}` : 'not signed', what);
}
