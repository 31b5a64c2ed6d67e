/**
 * Image references as the docker CLI handles them: `busybox` is `docker.io/library/busybox:latest`,
 * shown familiar (`busybox:latest`); `host:5000/x/y:t@sha256:…` keeps its registry.
 */
import { UsageError } from './flags.js';

export interface Reference {
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
}

const defaultDomain = 'docker.io';

export function parseReference(text: string): Reference {
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!rest || /[A-Z]/.test(rest) || !/^[a-z0-9]/.test(rest)) {
    throw new UsageError(`invalid reference format${/[A-Z]/.test(rest) ? ': repository name must be lowercase' : ''}`);
  }
  if (tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(tag)) throw new UsageError('invalid reference format');
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  let domain = defaultDomain;
  let path = rest;
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    domain = first;
    path = rest.slice(slash + 1);
  }
  if (domain === 'index.docker.io') domain = defaultDomain;
  if (domain === defaultDomain && !path.includes('/')) path = `library/${path}`;
  return { domain, path, tag, digest };
}

/** `docker.io/library/busybox` */
export function fullName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** `busybox`, `myrepo/bb`, `host:5000/x` */
export function familiarName(ref: Reference): string {
  if (ref.domain !== defaultDomain) return `${ref.domain}/${ref.path}`;
  return ref.path.startsWith('library/') && ref.path.split('/').length === 2 ? ref.path.slice('library/'.length) : ref.path;
}

export function familiarString(ref: Reference): string {
  return `${familiarName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** Adds `latest` when there is neither tag nor digest. */
export function withDefaultTag(ref: Reference): Reference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref;
}

export function isDigestId(text: string): boolean {
  return /^(sha256:)?[0-9a-f]{64}$/.test(text);
}
