/**
 * The registry's gate, server side: who is asking (htpasswd users over HTTP Basic, or bearer
 * tokens from the registry's own token server) and whether the access policy lets them. It
 * provides the server's `authorize` hook, the token endpoint and `identify` for the web UI and
 * search.
 *
 * Token mode (Docker's token flow, what docker, podman, skopeo and our client speak):
 *
 *   GET /v2/…                → 401 WWW-Authenticate: Bearer realm="http://<host>/token",service="<svc>",scope="repository:x:pull"
 *   GET /token?service=<svc>&scope=repository:x:pull      (Basic credentials, or none: anonymous)
 *                            → {"token","access_token","expires_in","issued_at"[,"refresh_token"]}
 *   POST /token  grant_type=password|refresh_token (OAuth2 form; refresh tokens from offline_token)
 *   GET /v2/… Authorization: Bearer <token>               → checked against the token's access claim
 *
 * A token lacking an action the user's policy would grant answers 401 (insufficient_scope: fetch
 * a wider token); one the policy refuses answers 403 DENIED; an anonymous token lacking it
 * answers 401 (log in). `/v2/` needs any valid token, so anonymous requests get the challenge.
 * Basic mode answers `WWW-Authenticate: Basic` and checks the password on every request (cached).
 */
import type http from 'node:http';
import { silentLogger, type Logger } from '../lib/index.js';
import { AccessPolicy, parseScope, type AccessEntry, type RepositoryAction } from './access.js';
import { registryError } from './errors.js';
import type { Htpasswd } from './htpasswd.js';
import type { AccessRequest } from './server.js';
import type { TokenClaims, TokenSigner } from './token.js';

export type AuthMode = 'token' | 'basic';

export interface GuardOptions {
  mode: AuthMode;
  users: Htpasswd;
  policy: AccessPolicy;
  /** Token mode: signs and checks tokens. */
  signer?: TokenSigner;
  /** The `service` of challenges and the tokens' audience (default `baleia-registry`). */
  service?: string;
  /** The token realm URL; default `<scheme>://<Host header>/token`. */
  realm?: string;
  /** Scheme of the default realm (the server listens with TLS). */
  secure?: boolean;
  /** Lifetime of access tokens (default 300 s) and refresh tokens (default 30 days). */
  tokenTtlSeconds?: number;
  refreshTtlSeconds?: number;
  logger?: Logger;
}

/** Who a request is: a user name, or undefined for anonymous. */
export interface Identity {
  user: string | undefined;
  /** The access claim of the bearer token the request carried, if any. */
  access?: AccessEntry[];
}

function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

function bearerOf(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}

const quote = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;

/** A Host header fit to go back into a URL (no path, userinfo or spaces). */
function hostOf(headers: http.IncomingHttpHeaders): string | undefined {
  const host = headers.host;
  return host && /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.test(host) ? host : undefined;
}

export class RegistryGuard {
  readonly mode: AuthMode;
  readonly service: string;
  readonly policy: AccessPolicy;
  readonly #opts: GuardOptions;
  readonly #log: Logger;

  constructor(options: GuardOptions) {
    if (options.mode === 'token' && !options.signer) throw new Error('RegistryGuard: token mode needs a signer');
    this.#opts = options;
    this.mode = options.mode;
    this.policy = options.policy;
    this.service = options.service ?? 'baleia-registry';
    this.#log = options.logger ?? silentLogger;
  }

  /** The server's `authorize` hook. */
  readonly authorize = async (request: AccessRequest): Promise<void> => {
    const scope = scopeOf(request);
    const header = headerString(request.headers.authorization);
    if (this.mode === 'basic' || parseBasic(header)) {
      const user = await this.#basicUser(header, request.headers, scope);
      this.#check(user, request, scope, (action, name) => this.policy.allows(user, name, action));
      return;
    }
    const token = bearerOf(header);
    const claims = token === undefined ? undefined : this.#opts.signer!.verify(token, this.service);
    if (!claims || claims.kind === 'refresh') {
      throw this.#challenge(request.headers, scope, token === undefined ? undefined : 'invalid_token');
    }
    const user = claims.sub || undefined;
    const access = claims.access ?? [];
    this.#check(user, request, scope, (action, name) => access.some((e) => e.type === 'repository' && e.name === name && e.actions.includes(action)), (kind) =>
      kind === 'catalog' ? access.some((e) => e.type === 'registry' && e.name === 'catalog' && e.actions.includes('*')) : true,
    );
  };

  /** Throws unless `has` grants what the request does; refusal is 401 or 403 as the top of this file says. */
  #check(
    user: string | undefined,
    request: AccessRequest,
    scope: string | undefined,
    has: (action: RepositoryAction, name: string) => boolean,
    hasOther: (kind: 'catalog' | 'base') => boolean = (kind) => kind === 'base' || this.policy.canBrowse(user),
  ): void {
    const refuse = (policyAllows: boolean) => {
      // Anonymous, or a token narrower than the policy: a new token (or credentials) may help.
      if (user === undefined || (this.mode === 'token' && policyAllows)) {
        throw this.#challenge(request.headers, scope, user === undefined ? undefined : 'insufficient_scope');
      }
      throw registryError('DENIED', { message: `requested access to the resource is denied` });
    };
    if (request.action === 'base' || request.action === 'catalog') {
      if (request.action === 'base' && user === undefined && this.mode === 'basic') throw this.#challenge(request.headers, scope);
      if (!hasOther(request.action)) refuse(request.action === 'catalog' ? this.policy.canBrowse(user) : true);
      return;
    }
    const name = request.name!;
    if (!has(request.action, name)) refuse(this.policy.allows(user, name, request.action));
    // A mount reads `from`: refused, the client falls back to a plain upload.
    if (request.from !== undefined && !has('pull', request.from)) {
      throw registryError('DENIED', { message: `requested access to the resource is denied` });
    }
  }

  async #basicUser(header: string | undefined, headers: http.IncomingHttpHeaders, scope: string | undefined): Promise<string | undefined> {
    const creds = parseBasic(header);
    if (!creds) return undefined;
    if (await this.#opts.users.verify(creds.username, creds.password)) return creds.username;
    this.#log.info('registry authentication failed', { user: creds.username });
    throw this.#challenge(headers, scope, undefined, 'Cannot authenticate: incorrect username or password');
  }

  #challenge(headers: http.IncomingHttpHeaders, scope: string | undefined, error?: string, message?: string) {
    let value: string;
    if (this.mode === 'basic') {
      value = `Basic realm=${quote(this.service)}`;
    } else {
      value = `Bearer realm=${quote(this.realmFor(headers))},service=${quote(this.service)}`;
      if (scope) value += `,scope=${quote(scope)}`;
      if (error) value += `,error=${quote(error)}`;
    }
    return registryError('UNAUTHORIZED', { message, headers: { 'WWW-Authenticate': value } });
  }

  realmFor(headers: http.IncomingHttpHeaders): string {
    if (this.#opts.realm) return this.#opts.realm;
    return `${this.#opts.secure ? 'https' : 'http'}://${hostOf(headers) ?? 'localhost'}/token`;
  }

  /**
   * Who is asking, for pages outside `/v2/` (web UI, search): Basic credentials or a bearer
   * token; anonymous without either. Wrong credentials throw 401 with a Basic challenge (what a
   * browser can answer).
   */
  async identify(headers: http.IncomingHttpHeaders): Promise<Identity> {
    const header = headerString(headers.authorization);
    const token = bearerOf(header);
    if (token !== undefined && this.#opts.signer) {
      const claims = this.#opts.signer.verify(token, this.service);
      if (claims && claims.kind !== 'refresh') return { user: claims.sub || undefined, access: claims.access };
    }
    const creds = parseBasic(header);
    if (creds) {
      if (await this.#opts.users.verify(creds.username, creds.password)) return { user: creds.username };
      throw this.browserChallenge('Cannot authenticate: incorrect username or password');
    }
    return { user: undefined };
  }

  /** 401 with a Basic challenge, which browsers answer with a login prompt. */
  browserChallenge(message?: string) {
    return registryError('UNAUTHORIZED', { message, headers: { 'WWW-Authenticate': `Basic realm=${quote(this.service)}, charset="UTF-8"` } });
  }

  /** `GET|POST /token` (token mode only). */
  async handleToken(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const signer = this.#opts.signer;
    if (this.mode !== 'token' || !signer) throw registryError('UNSUPPORTED', { status: 404, message: 'this registry does not issue tokens' });
    let params: URLSearchParams;
    let user: string | undefined;
    let offline: boolean;
    if (req.method === 'POST') {
      params = new URLSearchParams(await readForm(req));
      const grant = params.get('grant_type');
      if (grant === 'password') {
        const username = params.get('username') ?? '';
        if (!(await this.#opts.users.verify(username, params.get('password') ?? ''))) return tokenRefused(res, 'invalid_grant', 'incorrect username or password');
        user = username;
      } else if (grant === 'refresh_token') {
        const claims = signer.verify(params.get('refresh_token') ?? '', this.service);
        if (!claims || claims.kind !== 'refresh' || !claims.sub || !this.#opts.users.has(claims.sub)) return tokenRefused(res, 'invalid_grant', 'invalid or expired refresh token');
        user = claims.sub;
      } else {
        return tokenRefused(res, 'unsupported_grant_type', `unsupported grant_type "${grant ?? ''}"`, 400);
      }
      offline = params.get('access_type') === 'offline';
    } else if (req.method === 'GET' || req.method === 'HEAD') {
      req.resume();
      params = url.searchParams;
      const header = headerString(req.headers.authorization);
      const creds = parseBasic(header);
      if (creds) {
        if (!(await this.#opts.users.verify(creds.username, creds.password))) {
          this.#log.info('registry token refused', { user: creds.username });
          throw registryError('UNAUTHORIZED', { message: 'incorrect username or password', headers: { 'WWW-Authenticate': `Basic realm=${quote(this.service)}` } });
        }
        user = creds.username;
      } else if (header !== undefined && bearerOf(header) === undefined) {
        throw registryError('UNAUTHORIZED', { message: 'unsupported authorization scheme', headers: { 'WWW-Authenticate': `Basic realm=${quote(this.service)}` } });
      }
      offline = params.get('offline_token') === 'true';
    } else {
      throw registryError('UNSUPPORTED', { message: `method ${req.method} is not allowed on /token`, headers: { Allow: 'GET, POST' } });
    }
    const service = params.get('service');
    if (service !== null && service !== '' && service !== this.service) {
      throw registryError('DENIED', { status: 400, message: `unknown service "${service}": this registry is "${this.service}"` });
    }
    const scopes = params.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => parseScope(s));
    const access = this.policy.grant(user, scopes);
    const ttl = this.#opts.tokenTtlSeconds ?? 300;
    const { token, claims } = signer.sign({ sub: user ?? '', aud: this.service, access, ttlSeconds: ttl });
    const body: Record<string, unknown> = {
      token,
      access_token: token,
      expires_in: ttl,
      issued_at: new Date(claims.iat * 1000).toISOString(),
    };
    if (req.method === 'POST') body.scope = access.map((e) => `${e.type}:${e.name}:${e.actions.join(',')}`).join(' ');
    if (user !== undefined && (offline || params.get('grant_type') === 'refresh_token')) {
      body.refresh_token = signer.sign({ sub: user, aud: this.service, kind: 'refresh', ttlSeconds: this.#opts.refreshTtlSeconds ?? 30 * 86400 }).token;
    }
    this.#log.debug('registry token issued', { user: user ?? '', scopes: body.scope ?? scopes.join(' ') });
    const data = JSON.stringify(body);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(data) });
    res.end(req.method === 'HEAD' ? undefined : data);
  }
}

/** The scope a challenge names for a request (what a token must grant to retry it). */
export function scopeOf(request: AccessRequest): string | undefined {
  if (request.action === 'base') return undefined;
  if (request.action === 'catalog') return 'registry:catalog:*';
  const actions = request.action === 'push' ? 'pull,push' : request.action;
  return `repository:${request.name}:${actions}`;
}

function headerString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function tokenRefused(res: http.ServerResponse, error: string, description: string, status = 401): void {
  // RFC 6749 §5.2 error body; 401 so docker reports a login failure rather than a server error.
  const data = JSON.stringify({ error, error_description: description });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

async function readForm(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 64 * 1024) throw registryError('UNSUPPORTED', { status: 413, message: 'token request body is larger than 64 KiB' });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export type { TokenClaims };
