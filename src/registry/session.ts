/**
 * The client's wire: one HTTP(S) transport (node:http/https with keep-alive agents, redirects
 * for reads, streaming bodies both ways) and a Session — one registry, one set of credentials —
 * that finds the registry's scheme (HTTPS; HTTP only for loopback or insecure registries), reads
 * its auth challenge from `GET /v2/`, adds the Authorization each request needs and answers a 401
 * by renewing it once.
 *
 *   const session = new Session(endpoint, authenticator, { signal });
 *   const res = await session.request('GET', paths.manifest('x', 'latest'), { scopes: ['repository:x:pull'] });
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { BaleiaError, describeError, errnoCode, silentLogger, type Logger } from '../lib/index.js';
import { Authenticator, type TokenFetch } from './auth.js';
import { parseErrorBody } from './errors.js';

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 16 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 16 }),
  insecure: new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false }),
};

export type Body = Buffer | NodeJS.ReadableStream | undefined;

export interface SendInit {
  method: string;
  headers?: Record<string, string | number>;
  body?: Body;
  signal?: AbortSignal;
  /** Accept any certificate (insecure registries over HTTPS, as Docker does). */
  insecureTls?: boolean;
  /** The registry's own HTTPS agent (its certs.d CAs and client certificate); wins over insecureTls. */
  agent?: https.Agent;
  /** Follow 3xx for GET/HEAD (blob redirects to storage); Authorization is dropped across origins. */
  followRedirects?: boolean;
  userAgent?: string;
}

const cancelled = (signal: AbortSignal | undefined, cause?: unknown) =>
  new BaleiaError('Cancelled', 'Cannot finish the registry request: cancelled', { cause: cause ?? signal?.reason });

/** One HTTP exchange; resolves with the response (body unread) or rejects with Unavailable. */
export async function send(url: URL, init: SendInit): Promise<http.IncomingMessage> {
  let target = url;
  const headers: Record<string, string | number> = { ...init.headers };
  if (init.userAgent && headers['User-Agent'] === undefined) headers['User-Agent'] = init.userAgent;
  for (let hop = 0; ; hop++) {
    const res = await sendOnce(target, { ...init, headers });
    const location = res.headers.location;
    const redirect = [301, 302, 303, 307, 308].includes(res.statusCode ?? 0) && location !== undefined;
    if (!redirect || !init.followRedirects || init.body !== undefined || hop >= 5) return res;
    res.resume();
    const next = new URL(location, target);
    if (next.origin !== target.origin) delete headers.Authorization;
    target = next;
  }
}

function sendOnce(url: URL, init: SendInit): Promise<http.IncomingMessage> {
  if (init.signal?.aborted) return Promise.reject(cancelled(init.signal));
  const secure = url.protocol === 'https:';
  const lib = secure ? https : http;
  const agent = secure ? (init.agent ?? (init.insecureTls ? agents.insecure : agents.https)) : agents.http;
  return new Promise((resolve, reject) => {
    let settled = false;
    const req = lib.request(url, { method: init.method, headers: init.headers, agent, signal: init.signal }, (res) => {
      settled = true;
      resolve(res);
    });
    req.on('error', (err) => {
      if (settled) return;
      settled = true;
      if (init.signal?.aborted) reject(cancelled(init.signal, err));
      else reject(new BaleiaError('Unavailable', `Cannot reach registry "${url.host}": ${init.method} "${url.href}": ${describeError(err)}`, { cause: err }));
    });
    const body = init.body;
    if (body === undefined || Buffer.isBuffer(body)) {
      req.end(body);
      return;
    }
    body.on('error', (err: Error) => req.destroy(err));
    body.pipe(req);
  });
}

/** The body of a response as text (manifests, errors, tokens: small), at most `limit` bytes. */
export async function readText(res: http.IncomingMessage, limit = 4 * 1024 * 1024): Promise<string> {
  return (await readBytes(res, limit)).toString('utf8');
}

export async function readBytes(res: http.IncomingMessage, limit = 4 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.destroy();
      throw new BaleiaError('InvalidArgument', `Cannot read registry response: larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The spec error of a response (`UNAUTHORIZED: authentication required`), or its status. */
export async function errorDetail(res: http.IncomingMessage): Promise<{ code?: string; message: string }> {
  const text = await readText(res, 64 * 1024).catch(() => '');
  const first = parseErrorBody(text)?.[0];
  if (first) return { code: first.code, message: `${first.code.toLowerCase().replace(/_/g, ' ')}: ${first.message ?? ''}`.trim() };
  return { message: `status ${res.statusCode} ${res.statusMessage ?? ''}`.trim() };
}

/** What a registry's certs.d directory holds: extra CAs (`*.crt`) and a client certificate. */
export interface RegistryTls {
  ca: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  /** sha256 of all of it: tells whether the files changed. */
  fingerprint: string;
}

/**
 * Docker's per-registry TLS files, `<dir>/<host[:port]>/` in each of `dirs` (Docker reads
 * /etc/docker/certs.d): every `*.crt` is a CA trusted for that registry beside the usual ones;
 * `<name>.cert` with `<name>.key` is the client certificate it asks for. A certificate without
 * its key (or a key without its certificate) is an error, as with dockerd. Undefined when there
 * is nothing for the host.
 */
export function readCertsDir(host: string, dirs: readonly string[]): RegistryTls | undefined {
  const tls: RegistryTls = { ca: [], fingerprint: '' };
  let found = false;
  for (const dir of dirs) {
    const hostDir = path.join(dir, host.replace(/[/\\]/g, '_'));
    let names: string[];
    try {
      names = readdirSync(hostDir).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const file = path.join(hostDir, name);
      if (name.endsWith('.crt')) {
        tls.ca.push(readFileSync(file));
        found = true;
      } else if (name.endsWith('.cert') || name.endsWith('.key')) {
        const base = name.replace(/\.(cert|key)$/, '');
        const pair = name.endsWith('.cert') ? `${base}.key` : `${base}.cert`;
        if (!names.includes(pair)) {
          throw new BaleiaError('InvalidArgument', `Cannot use the TLS files of registry "${host}": ${file} has no ${pair} beside it`);
        }
        if (name.endsWith('.cert') && !tls.cert) {
          tls.cert = readFileSync(file);
          tls.key = readFileSync(path.join(hostDir, pair));
          found = true;
        }
      }
    }
  }
  if (!found) return undefined;
  const hash = createHash('sha256');
  for (const b of [...tls.ca, tls.cert, tls.key]) hash.update(b ?? Buffer.alloc(0)).update('\0');
  tls.fingerprint = hash.digest('hex');
  return tls;
}

/**
 * How a registry host is reached. Docker's rules: docker.io is registry-1.docker.io; HTTPS with
 * the default CAs; plain HTTP (or HTTPS without verification) only for loopback and the
 * configured insecure registries, where HTTPS is tried first.
 */
export class Endpoint {
  readonly host: string;
  readonly insecure: boolean;
  readonly logger: Logger;
  readonly userAgent: string | undefined;
  /** Fixed base URL (a mirror): no scheme probing. */
  readonly #fixedBase: string | undefined;
  #base: Promise<{ base: string; challenge?: string | string[] }> | undefined;

  /** HTTPS agent for this registry: the shared ones, or its own when certs.d has files for it. */
  readonly httpsAgent: https.Agent;
  readonly tlsFingerprint: string | undefined;

  constructor(opts: { host: string; insecure: boolean; base?: string; logger?: Logger; userAgent?: string; tls?: RegistryTls }) {
    this.host = opts.host;
    this.insecure = opts.insecure;
    this.#fixedBase = opts.base?.replace(/\/+$/, '');
    this.logger = opts.logger ?? silentLogger;
    this.userAgent = opts.userAgent;
    const tls = opts.tls;
    this.tlsFingerprint = tls?.fingerprint;
    this.httpsAgent =
      tls && (tls.ca.length > 0 || tls.cert)
        ? new https.Agent({
            keepAlive: true,
            maxSockets: 16,
            // Docker's rule: an insecure registry is not verified, certs.d or not.
            rejectUnauthorized: !opts.insecure,
            ...(tls.ca.length > 0 ? { ca: [...rootCertificates, ...tls.ca.map((c) => c.toString())] } : {}),
            ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
          })
        : opts.insecure
          ? agents.insecure
          : agents.https;
  }

  /** The base URL (`https://host`) and the challenge `GET /v2/` answered, found once. */
  resolve(signal?: AbortSignal): Promise<{ base: string; challenge?: string | string[] }> {
    if (!this.#base) {
      const attempt = this.#ping(signal);
      this.#base = attempt;
      // Only a success is remembered: a registry that was down may be up next time.
      attempt.catch(() => {
        if (this.#base === attempt) this.#base = undefined;
      });
    }
    return this.#base;
  }

  async #ping(signal?: AbortSignal): Promise<{ base: string; challenge?: string | string[] }> {
    const hostname = this.host === 'docker.io' ? 'registry-1.docker.io' : this.host;
    const bases = this.#fixedBase ? [this.#fixedBase] : this.insecure ? [`https://${hostname}`, `http://${hostname}`] : [`https://${hostname}`];
    let lastError: unknown;
    for (const base of bases) {
      try {
        const res = await send(new URL('/v2/', base + '/'), {
          method: 'GET',
          signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(15_000)]) : AbortSignal.timeout(15_000),
          agent: this.httpsAgent,
          userAgent: this.userAgent,
        });
        res.resume();
        const challenge = res.statusCode === 401 ? res.headers['www-authenticate'] : undefined;
        this.logger.debug('registry ping', { registry: this.host, base, status: res.statusCode });
        return { base, challenge };
      } catch (err) {
        if (signal?.aborted) throw cancelled(signal, err);
        lastError = err;
      }
    }
    throw lastError instanceof BaleiaError
      ? lastError
      : new BaleiaError('Unavailable', `Cannot reach registry "${this.host}"`, { cause: lastError });
  }
}

export interface RequestInit {
  headers?: Record<string, string | number>;
  /** A factory so the request can be sent again after a 401 (a stream body is not retried). */
  body?: () => Body;
  scopes: string[];
  followRedirects?: boolean;
  signal?: AbortSignal;
}

/** One registry, one set of credentials, for the length of an operation. */
export class Session {
  readonly endpoint: Endpoint;
  readonly auth: Authenticator;
  readonly #signal: AbortSignal | undefined;

  constructor(endpoint: Endpoint, auth: Authenticator, opts: { signal?: AbortSignal } = {}) {
    this.endpoint = endpoint;
    this.auth = auth;
    this.#signal = opts.signal;
  }

  get signal(): AbortSignal | undefined {
    return this.#signal;
  }

  /** The absolute URL of a registry path or of a Location the registry answered. */
  async url(pathOrLocation: string): Promise<URL> {
    const { base } = await this.endpoint.resolve(this.#signal);
    return new URL(pathOrLocation, base + '/');
  }

  async request(method: string, pathOrLocation: string, init: RequestInit): Promise<http.IncomingMessage> {
    const { challenge } = await this.endpoint.resolve(this.#signal);
    if (challenge !== undefined && this.auth.scheme === undefined) this.auth.setChallenge(challenge);
    const url = await this.url(pathOrLocation);
    const signal = init.signal ?? this.#signal;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string | number> = { ...init.headers };
      const authorization = await this.auth.header(init.scopes, { signal });
      if (authorization) headers.Authorization = authorization;
      const body = init.body?.();
      const res = await send(url, {
        method,
        headers,
        body,
        signal,
        agent: this.endpoint.httpsAgent,
        followRedirects: init.followRedirects ?? (method === 'GET' || method === 'HEAD'),
        userAgent: this.endpoint.userAgent,
      });
      if (res.statusCode !== 401 || attempt > 0) return res;
      const replayable = body === undefined || Buffer.isBuffer(body);
      const hadScheme = this.auth.scheme;
      const changed = this.auth.setChallenge(res.headers['www-authenticate']);
      // Retry only when something can change: a new challenge, a stale token, or credentials
      // not sent yet; and only with a body that can be sent again.
      if (!changed || !replayable || (hadScheme === 'basic' && this.auth.scheme === 'basic')) return res;
      this.auth.invalidate(init.scopes);
      res.resume();
    }
  }
}

/** A TokenFetch over the same transport (token servers are HTTPS unless on loopback). */
export function tokenFetch(endpoint: Endpoint): TokenFetch {
  return async (url, init) => {
    const res = await send(new URL(url), {
      method: init.method,
      headers: { ...init.headers, ...(init.body !== undefined ? { 'Content-Length': Buffer.byteLength(init.body) } : {}) },
      body: init.body !== undefined ? Buffer.from(init.body) : undefined,
      signal: init.signal,
      agent: endpoint.httpsAgent,
      followRedirects: init.method === 'GET',
      userAgent: endpoint.userAgent,
    });
    return { status: res.statusCode ?? 0, text: await readText(res, 1024 * 1024) };
  };
}

/** True for Node errors that mean the connection broke mid-transfer (worth a resume). */
export function isTransient(err: unknown): boolean {
  const code = errnoCode(err);
  if (code && ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET'].includes(code)) return true;
  return err instanceof Error && /aborted|socket hang up|premature close/i.test(err.message);
}

/** Docker's pre-drawn progress bar: `[=====>      ]  1.57MB/3.4MB`. */
export function progressBar(current: number, total: number | undefined): string {
  if (!total || total <= 0) return humanSize(current);
  const width = 50;
  const filled = Math.min(width, Math.floor((current / total) * width));
  const bar = filled >= width ? '='.repeat(width) : '='.repeat(filled) + '>' + ' '.repeat(width - filled - 1);
  return `[${bar}] ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}

/** go-units HumanSize: decimal units, 3 significant digits (`1.57MB`, `512B`). */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/**
 * Where blobs were last seen, per registry host: the repositories a blob was pulled from or
 * pushed to, so a push to another repository of the same registry can mount instead of upload.
 */
export class BlobSources {
  readonly #seen = new Map<string, string[]>();
  static readonly #limit = 10_000;

  remember(host: string, repository: string, digest: string): void {
    const key = `${host} ${digest}`;
    const list = (this.#seen.get(key) ?? []).filter((r) => r !== repository);
    list.unshift(repository);
    this.#seen.delete(key);
    this.#seen.set(key, list.slice(0, 5));
    if (this.#seen.size > BlobSources.#limit) this.#seen.delete(this.#seen.keys().next().value as string);
  }

  repositories(host: string, digest: string): string[] {
    return this.#seen.get(`${host} ${digest}`) ?? [];
  }
}
