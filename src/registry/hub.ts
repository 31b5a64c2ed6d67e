/**
 * The self-hosted hub: the registry server plus what `baleia registry serve` puts around it —
 * users and access rules (guard.ts), the token endpoint, TLS, the web UI (ui.ts) and the v1
 * search API (search.ts). The protocol server stays in server.ts; this file only composes.
 *
 *   const hub = await serveHub({ root, port: 5000, auth: { mode: 'token', htpasswd: 'users.htpasswd' } });
 *   // GET /  (web UI)   GET /token   GET /v1/search?q=app   GET /v2/…
 *   await hub.close();
 *
 * Paths outside `/v2/`:
 *
 *   /token                     GET (Basic or anonymous) and POST (OAuth2 form): bearer tokens
 *   /v1/search?q=&n=&page=     Docker's search API (what `docker search host/term` calls)
 *   /v1/_ping                  the v1 ping docker's search does first
 *   /  /r/<name>  /r/<name>/tags/<tag>  (/?q=term)   the web UI
 */
import { promises as fs } from 'node:fs';
import { BaleiaError } from '../lib/index.js';
import { AccessPolicy, loadAccessRules } from './access.js';
import { RegistryGuard, type AuthMode } from './guard.js';
import { Htpasswd } from './htpasswd.js';
import { handleSearch } from './search.js';
import { serveRegistry, type FrontendRequest, type RunningRegistry, type ServeOptions } from './server.js';
import { TokenSigner } from './token.js';
import { handleUi } from './ui.js';

export interface HubAuthOptions {
  mode: AuthMode;
  /** The htpasswd file of users (bcrypt). */
  htpasswd: string;
  /** YAML or JSON access rules; without it every user may do everything. */
  accessFile?: string;
  allowAnonymousPull?: boolean;
  /** The `service` name of challenges and tokens (default `baleia-registry`). */
  service?: string;
  /** Token realm URL when clients must reach the token endpoint by another name than Host. */
  realm?: string;
  tokenTtlSeconds?: number;
}

export interface HubOptions extends ServeOptions {
  /** Without it the registry is open to everyone. */
  auth?: HubAuthOptions;
  /** Serve the web UI at `/` (default true). */
  ui?: boolean;
  /** Serve `/v1/search` (default true). */
  search?: boolean;
  /** PEM files to listen with TLS (read once at start). */
  tlsFiles?: { cert: string; key: string };
}

export interface RunningHub extends RunningRegistry {
  /** Absent when the registry is open. */
  guard?: RegistryGuard;
}

/** What the UI and search need to know about the request's user. */
export interface Viewer {
  /** Whether this user may see `repo` (pull it). */
  canPull(repo: string): boolean;
}

async function buildGuard(root: string, auth: HubAuthOptions, secure: boolean, logger: ServeOptions['logger']): Promise<RegistryGuard> {
  const users = await Htpasswd.open(auth.htpasswd);
  const rules = auth.accessFile ? await loadAccessRules(auth.accessFile) : undefined;
  const policy = new AccessPolicy({ rules, allowAnonymousPull: auth.allowAnonymousPull });
  const signer = auth.mode === 'token' ? await TokenSigner.open(root) : undefined;
  return new RegistryGuard({ mode: auth.mode, users, policy, signer, service: auth.service, realm: auth.realm, secure, tokenTtlSeconds: auth.tokenTtlSeconds, logger });
}

/** The viewer of a UI or search request; throws 401 (Basic challenge) when anonymous may see nothing. */
export async function viewerOf(guard: RegistryGuard | undefined, req: FrontendRequest['req'], options: { challengeAnonymous: boolean }): Promise<Viewer> {
  if (!guard) return { canPull: () => true };
  const who = await guard.identify(req.headers);
  if (who.user === undefined && options.challengeAnonymous && !guard.policy.canBrowse(undefined)) throw guard.browserChallenge();
  return { canPull: (repo) => guard.policy.allows(who.user, repo, 'pull') };
}

export async function serveHub(options: HubOptions): Promise<RunningHub> {
  let tls = options.tls;
  if (!tls && options.tlsFiles) {
    try {
      tls = { cert: await fs.readFile(options.tlsFiles.cert), key: await fs.readFile(options.tlsFiles.key) };
    } catch (err) {
      throw new BaleiaError('InvalidArgument', `Cannot read the TLS certificate "${options.tlsFiles.cert}" or key "${options.tlsFiles.key}"`, { cause: err });
    }
  }
  const guard = options.auth ? await buildGuard(options.root, options.auth, tls !== undefined, options.logger) : undefined;
  const ui = options.ui ?? true;
  const search = options.search ?? true;
  const frontend = async (request: FrontendRequest): Promise<boolean> => {
    const { req, res, url } = request;
    const pathname = url.pathname;
    if (pathname === '/token' && guard?.mode === 'token') {
      await guard.handleToken(req, res, url);
      return true;
    }
    if (search && pathname === '/v1/_ping') {
      req.resume();
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Docker-Registry-Standalone': 'true', 'Content-Length': 2 });
      res.end('{}');
      return true;
    }
    if (search && pathname === '/v1/search') {
      await handleSearch(request, await viewerOf(guard, req, { challengeAnonymous: false }));
      return true;
    }
    if (ui && (pathname === '/' || pathname.startsWith('/r/') || pathname === '/favicon.ico')) {
      return handleUi(request, { viewer: () => viewerOf(guard, req, { challengeAnonymous: true }), secure: tls !== undefined });
    }
    return options.frontend ? options.frontend(request) : false;
  };
  const running = await serveRegistry({ ...options, tls, authorize: guard?.authorize ?? options.authorize, frontend });
  return { ...running, guard };
}
