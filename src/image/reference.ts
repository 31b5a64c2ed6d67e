/**
 * Image references as Docker's distribution/reference grammar defines them (pure):
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [domain "/"] path-component ["/" path-component]*
 *
 * The first component is a domain when it contains "." or ":", is "localhost", or has an
 * uppercase letter; otherwise the domain is docker.io and a one-component path gets "library/".
 */
import { invalidArgument } from '../lib/index.js';

export interface Reference {
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
}

const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const domainPattern =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const digestPattern = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;

export const defaultDomain = 'docker.io';

const bad = (s: string, detail = 'invalid reference format') =>
  invalidArgument(detail === 'invalid reference format' ? `invalid reference format: "${s}"` : `invalid reference format: ${detail}: "${s}"`);

/** Parses and normalises a reference; InvalidArgument ("invalid reference format") otherwise. */
export function parseReference(s: string): Reference {
  if (s === '' || s.length > 512) throw bad(s);
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestPattern.test(digest)) throw bad(s);
    if (digest.startsWith('sha256:') && !/^sha256:[0-9a-f]{64}$/.test(digest)) throw bad(s);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw bad(s);
  }
  if (rest === '') throw bad(s);
  const parts = rest.split('/');
  let domain = defaultDomain;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    if (!domainPattern.test(first)) throw bad(s);
    domain = first;
    parts.shift();
  }
  if (domain === 'index.docker.io') domain = defaultDomain;
  for (const p of parts) {
    if (!pathComponent.test(p)) {
      if (p.toLowerCase() !== p && pathComponent.test(p.toLowerCase())) throw bad(s, 'repository name must be lowercase');
      throw bad(s);
    }
  }
  if (domain === defaultDomain && parts.length === 1) parts.unshift('library');
  const path = parts.join('/');
  if (domain.length + 1 + path.length > 255) throw bad(s, 'repository name must not be more than 255 characters');
  const ref: Reference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `busybox`, `myrepo/bb`, `127.0.0.1:5000/x` — the name as Docker shows it. */
export function familiarRepository(ref: Reference): string {
  if (ref.domain === defaultDomain) return ref.path.startsWith('library/') && ref.path.split('/').length === 2 ? ref.path.slice(8) : ref.path;
  return `${ref.domain}/${ref.path}`;
}

/** `docker.io/library/busybox` */
export function fullRepository(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/**
 * The familiar form with ':latest' added when neither tag nor digest is given:
 * 'docker.io/library/busybox:latest' → 'busybox:latest', 'busybox' → 'busybox:latest'.
 */
export function familiarName(s: string): string {
  return formatFamiliar(withDefaultTag(parseReference(s)));
}

export function withDefaultTag(ref: Reference): Reference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref;
}

export function formatFamiliar(ref: Reference): string {
  return familiarRepository(ref) + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}

export function formatFull(ref: Reference): string {
  return fullRepository(ref) + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}
