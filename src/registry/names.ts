/**
 * The distribution grammar (pure): repository names, tags, digests and the `<reference>` of a
 * manifest path, as the OCI Distribution Spec v1.1 writes them:
 *
 *   name      [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 *   tag       [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 *   digest    algorithm ":" encoded; only sha256 (64 lowercase hex) is stored here
 *
 * A name component never starts with `_`, which is why the store can keep `_layers`,
 * `_manifests`… beside nested repository directories without collisions.
 */
import { registryError } from './errors.js';

const component = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const namePattern = new RegExp(`^${component}(?:/${component})*$`);
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const sha256Pattern = /^sha256:[0-9a-f]{64}$/;
const anyDigestPattern = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** docker/distribution's limit on the whole name, so paths on disk stay reasonable. */
export const maxNameLength = 255;

export function isName(name: string): boolean {
  return name.length <= maxNameLength && namePattern.test(name);
}

export function isTag(tag: string): boolean {
  return tagPattern.test(tag);
}

/** True for the digests this registry stores (sha256). */
export function isSupportedDigest(digest: string): boolean {
  return sha256Pattern.test(digest);
}

/** True for anything shaped like `algorithm:encoded`, supported or not. */
export function looksLikeDigest(text: string): boolean {
  return anyDigestPattern.test(text);
}

export function checkName(name: string): string {
  if (!isName(name)) throw registryError('NAME_INVALID', { detail: { name } });
  return name;
}

export function checkTag(tag: string): string {
  if (!isTag(tag)) throw registryError('TAG_INVALID', { detail: { tag } });
  return tag;
}

/** DIGEST_INVALID for a missing, malformed or unsupported digest. */
export function checkDigest(digest: string | null | undefined): string {
  if (digest === null || digest === undefined || digest === '') {
    throw registryError('DIGEST_INVALID', { message: 'digest parameter is required', detail: { digest: digest ?? null } });
  }
  if (!isSupportedDigest(digest)) {
    const reason = looksLikeDigest(digest) && !digest.startsWith('sha256:') ? 'unsupported digest algorithm' : 'invalid digest format';
    throw registryError('DIGEST_INVALID', { message: `${reason}: "${digest}"`, detail: { digest } });
  }
  return digest;
}

export type Reference = { tag: string; digest?: undefined } | { digest: string; tag?: undefined };

/** The `<reference>` of `/v2/<name>/manifests/<reference>`: a digest or a tag. */
export function parseReference(ref: string): Reference {
  if (ref.includes(':')) return { digest: checkDigest(ref) };
  return { tag: checkTag(ref) };
}
