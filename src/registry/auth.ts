/**
 * Registry auth, client side: the credentials a Docker client hands the daemon
 * (`X-Registry-Auth`), the `WWW-Authenticate` challenges a registry answers with, and Docker's
 * token flow:
 *
 *   GET /v2/…                      → 401, WWW-Authenticate: Bearer realm="https://auth/token",service="reg",scope="repository:x:pull"
 *   GET <realm>?service=reg&scope=repository:x:pull   (Basic credentials, or anonymous)
 *                                  → {"token": "…", "expires_in": 300}   (or "access_token")
 *   GET /v2/… with Authorization: Bearer <token>
 *
 * A registry that answers `WWW-Authenticate: Basic` gets the credentials on every request.
 * Tokens are cached per scope set until shortly before they expire. Secrets are never logged.
 */
import { BaleiaError } from '../lib/index.js';

/** Docker's AuthConfig as clients send it (engine-api.md §5). */
export interface RegistryAuth {
  username?: string;
  password?: string;
  /** base64 of `username:password` (what config.json stores). */
  auth?: string;
  identitytoken?: string;
  registrytoken?: string;
  serveraddress?: string;
  email?: string;
}

/**
 * Decodes `X-Registry-Auth` leniently: the CLI sends URL-safe base64 with padding, docker-py
 * `urlsafe_b64encode`, dockerode standard base64 with `+/` swapped for `-_`; padding may be
 * missing. Anything that does not decode to a JSON object is anonymous (moby ignores decode errors
 * on pull).
 */
export function decodeRegistryAuthHeader(header: string | undefined): RegistryAuth {
  if (header === undefined) return {};
  let text = header.trim();
  if (text === '') return {};
  text = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(text) || text.length % 4 === 1) return {};
  text += '='.repeat((4 - (text.length % 4)) % 4);
  try {
    const value = JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
    const out: RegistryAuth = {};
    for (const key of ['username', 'password', 'auth', 'identitytoken', 'registrytoken', 'serveraddress', 'email'] as const) {
      const v = (value as Record<string, unknown>)[key];
      if (typeof v === 'string' && v !== '') out[key] = v;
    }
    return out;
  } catch {
    return {};
  }
}

/** Username and password of an AuthConfig (`auth` = base64 `user:pass` fills what is missing). */
export function basicCredentials(auth: RegistryAuth | undefined): { username: string; password: string } | undefined {
  if (!auth) return undefined;
  let { username, password } = auth;
  if ((username === undefined || password === undefined) && auth.auth) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      username ??= decoded.slice(0, colon);
      password ??= decoded.slice(colon + 1);
    }
  }
  if (username === undefined || username === '' || password === undefined) return undefined;
  return { username, password };
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses `WWW-Authenticate` (RFC 7235): one or more challenges, each a scheme followed by
 * `key=value` or `key="quoted, value"` parameters. Scheme names are lowercased.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  const param = /\s*,?\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/y;
  const scheme = /\s*,?\s*([A-Za-z][A-Za-z0-9_.-]*)/y;
  let pos = 0;
  let current: Challenge | undefined;
  while (pos < text.length) {
    // `scheme` alone and `key=value` are told apart by the `=`: try a parameter first.
    param.lastIndex = pos;
    const p = param.exec(text);
    if (p && current) {
      current.params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
      pos = param.lastIndex;
      continue;
    }
    scheme.lastIndex = pos;
    const s = scheme.exec(text);
    if (!s) break;
    current = { scheme: s[1]!.toLowerCase(), params: {} };
    out.push(current);
    pos = scheme.lastIndex;
  }
  return out;
}

/** What a request goes through to fetch a token (the client's transport). */
export type TokenFetch = (
  url: string,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<{ status: number; text: string }>;

interface CachedToken {
  token: string;
  expiresAt: number;
}

/**
 * The auth state of one registry for one set of credentials: which scheme the registry asked
 * for, and the bearer tokens obtained so far, per scope set.
 */
export class Authenticator {
  readonly #auth: RegistryAuth | undefined;
  readonly #fetch: TokenFetch;
  #challenge: Challenge | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  /** A refresh token the token server issued (login with offline_token). */
  refreshToken: string | undefined;

  constructor(auth: RegistryAuth | undefined, fetch: TokenFetch) {
    this.#auth = auth;
    this.#fetch = fetch;
  }

  get scheme(): string | undefined {
    return this.#challenge?.scheme;
  }

  get hasCredentials(): boolean {
    return !!(basicCredentials(this.#auth) || this.#auth?.identitytoken || this.#auth?.registrytoken);
  }

  /** Remembers the challenge of a 401 (the registry's preferred scheme: Bearer over Basic). */
  setChallenge(header: string | string[] | undefined): boolean {
    const challenges = parseChallenges(header);
    const chosen = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (!chosen) return false;
    this.#challenge = chosen;
    return true;
  }

  /** Drops a cached token (the registry refused it). */
  invalidate(scopes: string[]): void {
    this.#tokens.delete(scopeKey(scopes));
  }

  /** The Authorization header for a request needing `scopes`, fetching a token when required. */
  async header(scopes: string[], opts: { signal?: AbortSignal; offline?: boolean } = {}): Promise<string | undefined> {
    if (this.#auth?.registrytoken) return `Bearer ${this.#auth.registrytoken}`;
    const challenge = this.#challenge;
    if (!challenge) return undefined;
    const creds = basicCredentials(this.#auth);
    if (challenge.scheme === 'basic') {
      return creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    }
    const key = scopeKey(scopes);
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    const token = await this.#fetchToken(challenge, scopes, opts);
    this.#tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  async #fetchToken(challenge: Challenge, scopes: string[], opts: { signal?: AbortSignal; offline?: boolean }): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm) throw new BaleiaError('Unauthorized', 'Cannot authenticate to the registry: its bearer challenge has no realm');
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch (err) {
      throw new BaleiaError('Unauthorized', `Cannot authenticate to the registry: invalid token realm "${realm}"`, { cause: err });
    }
    const service = challenge.params.service;
    const allScopes = [...new Set([...scopes, ...(challenge.params.scope ? challenge.params.scope.split(' ') : [])])].filter(Boolean);
    const creds = basicCredentials(this.#auth);
    const refresh = this.#auth?.identitytoken ?? this.refreshToken;
    let reply: { status: number; text: string } | undefined;
    if (refresh) {
      // OAuth2 refresh-token grant, as Docker does with an identity token.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh, client_id: 'docker' });
      if (service) form.set('service', service);
      if (allScopes.length > 0) form.set('scope', allScopes.join(' '));
      reply = await this.#fetch(realmUrl.href, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        signal: opts.signal,
      });
      // Token servers without OAuth answer 404/405: fall back to the GET flow.
      if (reply.status === 404 || reply.status === 405) reply = undefined;
    }
    if (!reply) {
      const url = new URL(realmUrl.href);
      if (service) url.searchParams.set('service', service);
      for (const s of allScopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (creds) {
        headers.Authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
        url.searchParams.set('account', creds.username);
      }
      if (opts.offline) {
        url.searchParams.set('offline_token', 'true');
        url.searchParams.set('client_id', 'docker');
      }
      reply = await this.#fetch(url.href, { method: 'GET', headers, signal: opts.signal });
    }
    if (reply.status === 401 || reply.status === 403) {
      throw new BaleiaError('Unauthorized', 'unauthorized: incorrect username or password');
    }
    if (reply.status !== 200) {
      throw new BaleiaError('Unauthorized', `Cannot get a token from "${realmUrl.origin}${realmUrl.pathname}": status ${reply.status}`);
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; refresh_token?: unknown };
    try {
      body = JSON.parse(reply.text) as typeof body;
    } catch (err) {
      throw new BaleiaError('Unauthorized', `Cannot get a token from "${realmUrl.origin}${realmUrl.pathname}": the answer is not JSON`, { cause: err });
    }
    const token = typeof body.token === 'string' && body.token ? body.token : typeof body.access_token === 'string' ? body.access_token : '';
    if (!token) throw new BaleiaError('Unauthorized', `Cannot get a token from "${realmUrl.origin}${realmUrl.pathname}": the answer has no token`);
    if (typeof body.refresh_token === 'string' && body.refresh_token) this.refreshToken = body.refresh_token;
    // The token spec's default lifetime is 60 s; renew 10 s early.
    const lifetime = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    return { token, expiresAt: Date.now() + Math.max(lifetime - 10, 1) * 1000 };
  }
}

function scopeKey(scopes: string[]): string {
  return [...new Set(scopes)].sort().join(' ');
}

/** `repository:<name>:<actions>` */
export function repositoryScope(name: string, actions: string[]): string {
  return `repository:${name}:${actions.join(',')}`;
}
