/**
 * The registry client: pull, push and login against any OCI Distribution / Docker Registry v2
 * registry (ours, distribution, Docker Hub), with anonymous, Basic and bearer-token auth.
 *
 * Lifecycle: new RegistryClient(opts) once per daemon → pull / push / login per request, each
 * with the caller's credentials (decodeRegistryAuthHeader of `X-Registry-Auth`) and progress
 * callback. The client keeps only caches: each registry's scheme and challenge, bearer tokens
 * per credentials and scope, and where blobs were seen (for cross-repository mounts).
 *
 *   const client = new RegistryClient({ insecureRegistries: ['10.0.0.0/8'] });
 *   const record = await client.pull('alpine:3.19', { images, content, onProgress: (e) => write(e) });
 *   const { digest } = await client.push('127.0.0.1:5000/x:1', { images, content, auth });
 *
 * Transport: HTTPS with Node's default CAs; plain HTTP (after HTTPS failed) only for loopback
 * hosts (127.0.0.0/8, ::1, localhost) and the configured insecure registries, as Docker does.
 */
import { BlockList, isIP } from 'node:net';
import { createHash } from 'node:crypto';
import { BaleiaError, silentLogger, type Logger } from '../lib/index.js';
import type { ContentStore } from '../content/index.js';
import { parseReference, withDefaultTag, type ImageRecord, type ImageStore } from '../image/index.js';
import { Authenticator, basicCredentials, decodeRegistryAuthHeader, type RegistryAuth } from './auth.js';
import { fetchManifest, pullImage, type ProgressEvent } from './pull.js';
import { pushImage } from './push.js';
import { repositoryScope } from './auth.js';
import { paths } from './routes.js';
import { BlobSources, Endpoint, Session, readCertsDir, readText, tokenFetch, type RegistryTls } from './session.js';

export { decodeRegistryAuthHeader, type RegistryAuth, type ProgressEvent };

export interface RegistryClientOptions {
  /** host[:port] or CIDR; loopback and localhost are always insecure (HTTP allowed). */
  insecureRegistries?: string[];
  /** Registry host → mirror base URLs (`https://mirror.example`), tried first for pulls. */
  mirrors?: Record<string, string[]>;
  userAgent?: string;
  logger?: Logger;
  /** Push blobs larger than this in PATCH chunks of this size (default: one PATCH per blob). */
  pushChunkSize?: number;
  /** Where per-registry TLS files live (`<dir>/<host:port>/ca.crt`, `client.cert` + `client.key`). */
  certsDirs?: string[];
}

/** Docker's certs.d first (one set of files serves both engines), then ours. */
export const defaultCertsDirs = ['/etc/docker/certs.d', '/etc/baleia/certs.d'];

export interface PullRequest {
  images: ImageStore;
  content: ContentStore;
  auth?: RegistryAuth;
  /** `os/arch[/variant]`; default the host's platform. */
  platform?: string;
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
}

export interface PushRequest {
  images: ImageStore;
  content: ContentStore;
  auth?: RegistryAuth;
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
}

const hubAliases = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const canonicalHost = (host: string) => (hubAliases.has(host.toLowerCase()) ? 'docker.io' : host.toLowerCase());

export class RegistryClient {
  readonly #opts: RegistryClientOptions;
  readonly #log: Logger;
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #authenticators = new Map<string, Authenticator>();
  readonly #sources = new BlobSources();
  readonly #insecureHosts = new Set<string>();
  readonly #insecureNets = new BlockList();
  readonly #userAgent: string;

  constructor(opts: RegistryClientOptions = {}) {
    this.#opts = opts;
    this.#log = opts.logger ?? silentLogger;
    this.#userAgent = opts.userAgent ?? 'baleia/0.1.0';
    for (const entry of opts.insecureRegistries ?? []) {
      const cidr = /^(.+)\/(\d{1,3})$/.exec(entry.trim());
      const ipType = cidr ? isIP(cidr[1]!) : 0;
      if (cidr && ipType) this.#insecureNets.addSubnet(cidr[1]!, Number(cidr[2]), ipType === 6 ? 'ipv6' : 'ipv4');
      else this.#insecureHosts.add(canonicalHost(entry.trim().replace(/^https?:\/\//, '').replace(/\/+$/, '')));
    }
  }

  /** True when `host` ([host][:port]) may be reached over plain HTTP or unverified TLS. */
  isInsecure(host: string): boolean {
    const h = canonicalHost(host);
    if (this.#insecureHosts.has(h)) return true;
    const hostname = h.startsWith('[') ? h.slice(1, h.indexOf(']')) : h.replace(/:\d+$/, '');
    if (this.#insecureHosts.has(hostname)) return true;
    if (hostname === 'localhost' || hostname.endsWith('.localhost')) return true;
    const type = isIP(hostname);
    if (type === 4) return hostname.startsWith('127.') || this.#insecureNets.check(hostname, 'ipv4');
    if (type === 6) return hostname === '::1' || this.#insecureNets.check(hostname, 'ipv6');
    return false;
  }

  async pull(ref: string, opts: PullRequest): Promise<ImageRecord> {
    const parsed = withDefaultTag(parseReference(ref));
    const log = this.#log.child({ image: ref });
    for (const mirror of this.#mirrorsOf(parsed.domain)) {
      const session = this.#mirrorSession(mirror, opts.signal);
      if (!session) continue;
      try {
        await fetchManifest(session, parsed, parsed.digest ?? parsed.tag ?? 'latest', opts.signal);
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        log.info('mirror cannot serve the image, trying the next source', { mirror, err });
        continue;
      }
      return pullImage(session, parsed, { ...opts, sources: this.#sources, logger: log });
    }
    const session = this.#session(parsed.domain, opts.auth, opts.signal);
    return pullImage(session, parsed, { ...opts, sources: this.#sources, logger: log });
  }

  async push(ref: string, opts: PushRequest): Promise<{ tag: string; digest: string; size: number }> {
    const parsed = parseReference(ref);
    const session = this.#session(parsed.domain, opts.auth, opts.signal);
    return pushImage(session, withDefaultTag(parsed), { ...opts, sources: this.#sources, chunkSize: this.#opts.pushChunkSize });
  }

  /**
   * Every tag of a repository (`pull --all-tags`), following the registry's `Link` pages; sorted
   * as the registry lists them.
   */
  async listTags(repository: string, opts: { auth?: RegistryAuth; signal?: AbortSignal; pageSize?: number } = {}): Promise<string[]> {
    const parsed = parseReference(repository);
    const session = this.#session(parsed.domain, opts.auth, opts.signal);
    const tags: string[] = [];
    let next: string | undefined = `${paths.tags(parsed.path)}?n=${opts.pageSize ?? 1000}`;
    for (let page = 0; next !== undefined; page++) {
      if (page === 1000) throw new BaleiaError('Unavailable', `Cannot list the tags of ${repository}: the registry's pages do not end`);
      const res = await session.request('GET', next, { scopes: [repositoryScope(parsed.path, ['pull'])], signal: opts.signal });
      const text = await readText(res, 16 * 1024 * 1024);
      if (res.statusCode !== 200) {
        const kind = res.statusCode === 401 ? 'Unauthorized' : res.statusCode === 403 ? 'Forbidden' : res.statusCode === 404 ? 'NotFound' : 'Unavailable';
        throw new BaleiaError(kind, `Cannot list the tags of ${repository}: ${res.statusCode} ${res.statusMessage ?? ''}`.trim());
      }
      let body: { tags?: unknown };
      try {
        body = JSON.parse(text) as { tags?: unknown };
      } catch (err) {
        throw new BaleiaError('Unavailable', `Cannot list the tags of ${repository}: the registry answered with something that is not JSON`, { cause: err });
      }
      if (body.tags !== null && body.tags !== undefined && !Array.isArray(body.tags)) {
        throw new BaleiaError('Unavailable', `Cannot list the tags of ${repository}: "tags" is not a list`);
      }
      for (const tag of (body.tags ?? []) as unknown[]) if (typeof tag === 'string') tags.push(tag);
      // `Link: </v2/name/tags/list?last=x&n=1000>; rel="next"` (spec §"Listing Tags").
      next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(res.headers.link ?? ''))?.[1];
    }
    return tags;
  }

  /**
   * `docker login`: Unauthorized unless the registry accepts the credentials. A registry that
   * asks for no auth accepts anyone. The identity token is the refresh token a token server
   * issued for `offline_token=true` (empty otherwise).
   */
  async login(auth: RegistryAuth, opts: { signal?: AbortSignal } = {}): Promise<{ status: 'Login Succeeded'; identityToken: string }> {
    const host = registryHostOf(auth.serveraddress);
    const endpoint = this.#endpoint(host);
    const authenticator = new Authenticator(auth, tokenFetch(endpoint));
    const session = new Session(endpoint, authenticator, { signal: opts.signal });
    const { base, challenge } = await endpoint.resolve(opts.signal);
    if (challenge === undefined) return { status: 'Login Succeeded', identityToken: '' };
    authenticator.setChallenge(challenge);
    const failed = (status: string) => new BaleiaError('Unauthorized', `login attempt to ${base}/v2/ failed with status: ${status}`);
    if (!authenticator.hasCredentials) throw failed('401 Unauthorized');
    if (authenticator.scheme === 'bearer') await authenticator.header([], { signal: opts.signal, offline: true });
    const res = await session.request('GET', '/v2/', { scopes: [], signal: opts.signal });
    await readText(res, 64 * 1024).catch(() => '');
    if (res.statusCode !== 200) throw failed(`${res.statusCode} ${res.statusMessage ?? ''}`.trim());
    this.#log.info('login succeeded', { registry: host, username: basicCredentials(auth)?.username });
    return { status: 'Login Succeeded', identityToken: authenticator.refreshToken ?? '' };
  }

  /**
   * `docker search host/term`: the registry's `/v1/search`, with the caller's credentials. A
   * registry that challenges is answered as for any request: Basic, or a bearer token for
   * `registry:catalog:*` (what dockerd asks for), so a private registry shows what the user may
   * pull.
   */
  async search(host: string, query: string, opts: { limit?: number; auth?: RegistryAuth; signal?: AbortSignal } = {}): Promise<{ results?: Record<string, unknown>[] }> {
    const session = this.#session(host, opts.auth, opts.signal);
    const res = await session.request('GET', `/v1/search?q=${encodeURIComponent(query)}&n=${opts.limit ?? 25}`, {
      scopes: ['registry:catalog:*'],
      signal: opts.signal,
    });
    const text = await readText(res, 16 * 1024 * 1024);
    if (res.statusCode !== 200) {
      const kind = res.statusCode === 401 ? 'Unauthorized' : res.statusCode === 403 ? 'Forbidden' : res.statusCode === 404 ? 'NotFound' : 'Unavailable';
      throw new BaleiaError(kind, `Cannot search ${host}: ${res.statusCode} ${res.statusMessage ?? ''}`.trim());
    }
    try {
      return JSON.parse(text) as { results?: Record<string, unknown>[] };
    } catch (err) {
      throw new BaleiaError('Unavailable', `Cannot search ${host}: the registry answered with something that is not JSON`, { cause: err });
    }
  }

  #tlsFor(host: string): RegistryTls | undefined {
    const tls = readCertsDir(host, this.#opts.certsDirs ?? defaultCertsDirs);
    if (tls) this.#log.debug('registry TLS files', { registry: host, cas: tls.ca.length, clientCertificate: !!tls.cert });
    return tls;
  }

  #endpoint(host: string): Endpoint {
    const key = canonicalHost(host);
    // certs.d is read for every operation, as dockerd does: files added or changed take effect
    // without a restart (a changed set makes a new endpoint, with its own connections).
    const tls = this.#tlsFor(key);
    let endpoint = this.#endpoints.get(key);
    if (!endpoint || endpoint.tlsFingerprint !== tls?.fingerprint) {
      endpoint = new Endpoint({ host: key, insecure: this.isInsecure(key), logger: this.#log, userAgent: this.#userAgent, tls });
      this.#endpoints.set(key, endpoint);
    }
    return endpoint;
  }

  #session(host: string, auth: RegistryAuth | undefined, signal: AbortSignal | undefined): Session {
    const endpoint = this.#endpoint(host);
    const key = `${endpoint.host} ${fingerprint(auth)}`;
    let authenticator = this.#authenticators.get(key);
    if (!authenticator) {
      authenticator = new Authenticator(auth, tokenFetch(endpoint));
      this.#authenticators.set(key, authenticator);
    }
    return new Session(endpoint, authenticator, { signal });
  }

  #mirrorsOf(domain: string): string[] {
    const want = canonicalHost(domain);
    const out: string[] = [];
    for (const [host, urls] of Object.entries(this.#opts.mirrors ?? {})) if (canonicalHost(host) === want) out.push(...urls);
    return out;
  }

  #mirrorSession(mirror: string, signal: AbortSignal | undefined): Session | undefined {
    let url: URL;
    try {
      url = new URL(/^[a-z]+:\/\//i.test(mirror) ? mirror : `https://${mirror}`);
    } catch {
      this.#log.warn('ignoring a mirror that is not a URL', { mirror });
      return undefined;
    }
    const key = `mirror ${url.href}`;
    let endpoint = this.#endpoints.get(key);
    if (!endpoint) {
      // An http:// mirror was configured as such on purpose.
      endpoint = new Endpoint({
        host: url.host,
        insecure: url.protocol === 'http:' || this.isInsecure(url.host),
        base: url.origin + url.pathname,
        logger: this.#log,
        userAgent: this.#userAgent,
        tls: this.#tlsFor(url.host),
      });
      this.#endpoints.set(key, endpoint);
    }
    let authenticator = this.#authenticators.get(key);
    if (!authenticator) {
      authenticator = new Authenticator(undefined, tokenFetch(endpoint));
      this.#authenticators.set(key, authenticator);
    }
    return new Session(endpoint, authenticator, { signal });
  }
}

/** The registry host of a `serveraddress` (`https://index.docker.io/v1/` → docker.io). */
export function registryHostOf(serveraddress: string | undefined): string {
  if (!serveraddress) return 'docker.io';
  const host = serveraddress.trim().replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  return host === '' ? 'docker.io' : canonicalHost(host);
}

function fingerprint(auth: RegistryAuth | undefined): string {
  if (!auth) return 'anonymous';
  const creds = basicCredentials(auth);
  const material = JSON.stringify([creds?.username, creds?.password, auth.identitytoken, auth.registrytoken]);
  return createHash('sha256').update(material).digest('hex').slice(0, 32);
}
