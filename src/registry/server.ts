/**
 * The HTTP face of the registry: node:http handlers for the Docker Registry HTTP API v2 and the
 * OCI Distribution Spec v1.1 over a RegistryStore. Errors are caught here, at the edge, and
 * answered from the one table in errors.ts.
 *
 * Authorization is a hook (`authorize`) called after routing with what the request wants to do
 * to which repository; it throws `registryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate':
 * … } })` or DENIED (guard.ts implements it over htpasswd users and tokens). Paths outside
 * `/v2/` go to the `frontend` hook (token endpoint, web UI, search: hub.ts) and `serveRegistry`
 * listens with TLS when given a certificate.
 */
import type { FileHandle } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { describeError, silentLogger, type Logger } from '../lib/index.js';
import { errorBody, registryError, registryErrorOf } from './errors.js';
import { mediaTypes, manifestMediaTypes, maxManifestSize, baseMediaType } from './manifests.js';
import { checkDigest, checkName, isName, parseReference } from './names.js';
import { matchRoute, paths, routeAction, type RouteName } from './routes.js';
import type { SlabPool } from './slabs.js';
import { rangeHeader, RegistryStore, type GcOptions } from './store.js';

export interface AccessRequest {
  method: string;
  route: RouteName;
  /** The repository, absent for `/v2/` and `/v2/_catalog`. */
  name?: string;
  action: 'pull' | 'push' | 'delete' | 'catalog' | 'base';
  /** A cross-repository mount also reads `from`. */
  from?: string;
  headers: http.IncomingHttpHeaders;
}

/** A request outside `/v2/`, for the `frontend` hook. */
export interface FrontendRequest {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  signal: AbortSignal;
  registry: Registry;
}

export interface RegistryOptions {
  /** The registry's own root (not the daemon's). */
  root: string;
  logger?: Logger;
  authorize?: (request: AccessRequest) => void | Promise<void>;
  /** Deletes of manifests, tags and blobs (default true; false answers UNSUPPORTED). */
  allowDelete?: boolean;
  /** Online garbage collection while serving; off when absent. */
  gc?: GcOptions & { intervalMs: number };
  /** Largest page of `/v2/_catalog` (default 1000). */
  maxCatalogEntries?: number;
  /**
   * Answers requests outside `/v2/` (resolves true when it did); errors it throws are answered
   * like the API's. Without it, or when it resolves false, such paths are 404.
   */
  frontend?: (request: FrontendRequest) => Promise<boolean>;
}

type Handler = (ctx: Context) => Promise<void>;

interface Context {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  name: string;
  ref: string;
  signal: AbortSignal;
}

const noop = () => {};

function send(res: http.ServerResponse, status: number, headers: Record<string, string | number>, body?: string | Buffer): void {
  const data = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { ...headers, 'Content-Length': data?.length ?? 0 });
  res.end(res.req.method === 'HEAD' ? undefined : data);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string | number> = {}): void {
  send(res, status, { 'Content-Type': 'application/json', ...headers }, JSON.stringify(value));
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  const tooLarge = () => registryError('MANIFEST_INVALID', { status: 413, message: `manifest is larger than ${limit} bytes` });
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Sends bytes `start`..`end` (inclusive) of an open file as the response body through two
 * slabs: one is read from the file while the other is on its way to the socket. A slab is read
 * into again only after its write's callback (the kernel has the bytes), so nothing is allocated
 * per chunk and at most two slabs are queued (backpressure). Resolves when the body is sent or
 * the client has gone.
 */
async function sendFileRange(res: http.ServerResponse, handle: FileHandle, start: number, end: number, pool: SlabPool): Promise<void> {
  let onClose!: () => void;
  const gone = new Promise<'gone'>((resolve) => {
    onClose = () => resolve('gone');
    res.once('close', onClose);
  });
  const slabs = [pool.take(), pool.take()];
  const writes: Array<Promise<void> | undefined> = [undefined, undefined];
  // A slab whose write never called back (client gone) may still be queued: not reused.
  let reusable = true;
  try {
    let position = start;
    for (let i = 0; position <= end; i ^= 1) {
      if (writes[i] && (await Promise.race([writes[i], gone])) === 'gone') {
        reusable = false;
        return;
      }
      const buffer = slabs[i]!.buffer;
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position + 1), position);
      if (bytesRead === 0) throw new Error(`Cannot send blob: its file ended at ${position} bytes, before ${end + 1}`);
      position += bytesRead;
      if (res.destroyed) {
        reusable = false;
        return;
      }
      const write = new Promise<void>((resolve, reject) => res.write(buffer.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve())));
      write.catch(noop);
      writes[i] = write;
    }
    if ((await Promise.race([Promise.all(writes), gone])) === 'gone') {
      reusable = false;
      return;
    }
    res.end();
  } catch (err) {
    reusable = false;
    throw err;
  } finally {
    res.off('close', onClose);
    for (const slab of slabs) {
      if (reusable) pool.give(slab);
      else pool.discard(slab);
    }
  }
}

/** `n` and `last` of a paginated list (tags, catalog), per spec §"Listing Tags". */
function page(url: URL, all: string[], maxEntries: number | undefined): { items: string[]; next?: string } {
  const nText = url.searchParams.get('n');
  let n = maxEntries;
  if (nText !== null && nText !== '') {
    if (!/^\d+$/.test(nText)) throw registryError('PAGINATION_NUMBER_INVALID', { detail: { n: nText } });
    n = Number(nText);
    if (maxEntries !== undefined && n > maxEntries) n = maxEntries;
  }
  const last = url.searchParams.get('last');
  let items = last ? all.filter((x) => x > last) : all;
  if (n === undefined || items.length <= n) return { items };
  items = items.slice(0, n);
  return { items, next: items.length > 0 ? items[items.length - 1] : undefined };
}

function linkHeader(pathname: string, n: number, last: string): string {
  return `<${pathname}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`;
}

/** `Content-Range: <start>-<end>` of a chunk (inclusive); `bytes ` / `bytes=` and `/total` tolerated. */
function parseContentRange(value: string | undefined): { start: number; length: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(value.trim());
  if (!m) throw registryError('RANGE_INVALID', { message: `invalid Content-Range "${value}"` });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw registryError('RANGE_INVALID', { message: `invalid Content-Range "${value}"` });
  return { start, length: end - start + 1 };
}

/** A single `Range: bytes=a-b` of a blob; undefined to send it whole (absent or multi-range). */
function parseRange(value: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!value) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m) return undefined;
  const unsatisfiable = () =>
    registryError('RANGE_INVALID', { message: `range "${value}" is outside the blob`, headers: { 'Content-Range': `bytes */${size}` } });
  if (m[1] === '' && m[2] === '') return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw unsatisfiable();
    return { start: Math.max(size - suffix, 0), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) throw unsatisfiable();
  return { start, end };
}

/**
 * Basic Accept negotiation: a client that lists manifest media types and not this one (nor a
 * wildcard) cannot read it, which docker/distribution answers with MANIFEST_UNKNOWN.
 */
function acceptable(accept: string | undefined, mediaType: string): boolean {
  if (!accept) return true;
  const types = accept.split(',').map((t) => baseMediaType(t) ?? '');
  if (types.includes(mediaType) || types.includes('*/*') || types.includes('application/*')) return true;
  return !types.some((t) => manifestMediaTypes.includes(t));
}

export class Registry {
  readonly store: RegistryStore;
  readonly #options: RegistryOptions;
  readonly #logger: Logger;
  #gcTimer: NodeJS.Timeout | undefined;
  #gcRunning: Promise<unknown> | undefined;

  private constructor(options: RegistryOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
    this.store = new RegistryStore(options.root, { logger: this.#logger });
  }

  /** A registry over `root`, its tree created and cleaned of what a crash left. */
  static async open(options: RegistryOptions): Promise<Registry> {
    const registry = new Registry(options);
    await registry.store.init();
    registry.store.startHashing();
    const gc = options.gc;
    if (gc) {
      registry.#gcTimer = setInterval(() => {
        if (registry.#gcRunning) return;
        registry.#gcRunning = registry.store
          .collectGarbage(gc)
          .catch((err) => registry.#logger.error('registry garbage collection failed', { error: describeError(err) }))
          .finally(() => (registry.#gcRunning = undefined));
      }, gc.intervalMs);
      registry.#gcTimer.unref();
    }
    return registry;
  }

  /**
   * Stops online garbage collection (waits for a running one), waits for the work answered
   * requests left going (commits, upload removals) and stops the store's hash threads.
   */
  async close(): Promise<void> {
    clearInterval(this.#gcTimer);
    await this.#gcRunning;
    await this.store.close();
  }

  /** The node:http request listener. */
  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void this.#handle(req, res);
  };

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    req.on('error', noop);
    res.on('error', noop);
    const abort = new AbortController();
    // 'close' on the response before it finished: the client went away mid-request.
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(registryError('BLOB_UPLOAD_INVALID', { message: 'client disconnected' }));
    });
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = new URL(req.url ?? '/', 'http://registry.invalid');
    try {
      await this.#dispatch(req, res, url, abort.signal);
    } catch (err) {
      this.#fail(req, res, err, url);
    } finally {
      const fields = { method: req.method, path: url.pathname, status: res.statusCode, ms: Date.now() - started };
      if (res.statusCode >= 500) this.#logger.error('registry request', fields);
      else this.#logger.debug('registry request', fields);
    }
  }

  #fail(req: http.IncomingMessage, res: http.ServerResponse, err: unknown, url: URL): void {
    const info = registryErrorOf(err);
    if (info.status >= 500) this.#logger.error('registry request failed', { method: req.method, path: url.pathname, error: describeError(err) });
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const { status, headers, body } = errorBody(err);
    // A body we did not read: close rather than read on through an upload we refused.
    if (!req.complete) res.setHeader('Connection', 'close');
    send(res, status, { 'Content-Type': 'application/json', ...headers }, body);
    if (!req.complete) req.resume();
  }

  async #dispatch(req: http.IncomingMessage, res: http.ServerResponse, url: URL, signal: AbortSignal): Promise<void> {
    let pathname: string;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      pathname = url.pathname;
    }
    if (this.#options.frontend && pathname !== '/v2' && !pathname.startsWith('/v2/')) {
      if (await this.#options.frontend({ req, res, url, signal, registry: this })) return;
    }
    const match = matchRoute(pathname);
    if (!match) throw registryError('UNSUPPORTED', { status: 404, message: `unknown endpoint "${url.pathname}"` });
    const method = req.method ?? 'GET';
    const handler = this.#routes[match.route][method];
    if (!handler) throw registryError('UNSUPPORTED', { message: `method ${method} is not allowed on ${match.route}`, headers: { Allow: Object.keys(this.#routes[match.route]).join(', ') } });
    const name = match.name === undefined ? '' : checkName(match.name);
    const from = url.searchParams.get('from') ?? undefined;
    if (this.#options.authorize) {
      await this.#options.authorize({
        method,
        route: match.route,
        name: name || undefined,
        action: routeAction(match.route, method),
        from: match.route === 'uploads' && url.searchParams.has('mount') ? from : undefined,
        headers: req.headers,
      });
    }
    if (method === 'DELETE' && this.#options.allowDelete === false) throw registryError('UNSUPPORTED', { message: 'deletes are disabled on this registry' });
    await handler({ req, res, url, name, ref: match.ref ?? '', signal });
  }

  #uploadHeaders(name: string, id: string, offset: number): Record<string, string> {
    return { Location: paths.upload(name, id), Range: rangeHeader(offset), 'Docker-Upload-UUID': id };
  }

  /** Adds the upload's Location and UUID to a 416 so the client can resume from the right offset. */
  async #withUpload<T>(ctx: Context, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (registryErrorOf(err).code === 'RANGE_INVALID' && !ctx.res.headersSent) {
        ctx.res.setHeader('Location', paths.upload(ctx.name, ctx.ref));
        ctx.res.setHeader('Docker-Upload-UUID', ctx.ref);
      }
      throw err;
    }
  }

  readonly #routes: Record<RouteName, Record<string, Handler>> = {
    base: {
      GET: async ({ res }) => sendJson(res, 200, {}),
      HEAD: async ({ res }) => sendJson(res, 200, {}),
    },
    catalog: {
      GET: async ({ res, url }) => {
        const max = this.#options.maxCatalogEntries ?? 1000;
        const { items, next } = page(url, await this.store.listRepositories(), max);
        const headers: Record<string, string> = {};
        if (next !== undefined) headers.Link = linkHeader(paths.catalog(), items.length, next);
        sendJson(res, 200, { repositories: items }, headers);
      },
    },
    tags: {
      GET: async ({ res, url, name }) => {
        const { items, next } = page(url, await this.store.listTags(name), undefined);
        const headers: Record<string, string> = {};
        if (next !== undefined) headers.Link = linkHeader(paths.tags(name), items.length, next);
        sendJson(res, 200, { name, tags: items }, headers);
      },
    },
    manifest: {
      GET: (ctx) => this.#getManifest(ctx),
      HEAD: (ctx) => this.#getManifest(ctx),
      PUT: async ({ req, res, name, ref }) => {
        const reference = parseReference(ref);
        const body = await readBody(req, maxManifestSize);
        const { digest, subject } = await this.store.putManifest(name, reference, body, req.headers['content-type']);
        const headers: Record<string, string> = { Location: paths.manifest(name, digest), 'Docker-Content-Digest': digest };
        if (subject) headers['OCI-Subject'] = subject;
        send(res, 201, headers);
      },
      DELETE: async ({ res, name, ref }) => {
        await this.store.deleteManifest(name, parseReference(ref));
        send(res, 202, {});
      },
    },
    blob: {
      GET: (ctx) => this.#getBlob(ctx),
      HEAD: (ctx) => this.#getBlob(ctx),
      DELETE: async ({ res, name, ref }) => {
        const digest = checkDigest(ref);
        await this.store.deleteBlob(name, digest);
        send(res, 202, { 'Docker-Content-Digest': digest });
      },
    },
    uploads: {
      POST: async ({ req, res, url, name, signal }) => {
        const mount = url.searchParams.get('mount');
        const from = url.searchParams.get('from');
        if (mount !== null) {
          const digest = checkDigest(mount);
          // An unusable `from` is not an error: the spec says fall back to a new upload.
          if (from !== null && isName(from) && (await this.store.mountBlob(name, from, digest))) {
            req.resume();
            send(res, 201, { Location: paths.blob(name, digest), 'Docker-Content-Digest': digest });
            return;
          }
        } else if (url.searchParams.has('digest')) {
          const digest = checkDigest(url.searchParams.get('digest'));
          await this.store.putBlob(name, req, digest, { signal });
          send(res, 201, { Location: paths.blob(name, digest), 'Docker-Content-Digest': digest });
          return;
        }
        req.resume();
        const state = await this.store.startUpload(name);
        send(res, 202, this.#uploadHeaders(name, state.id, state.offset));
      },
    },
    upload: {
      GET: async ({ res, name, ref }) => {
        const state = await this.store.uploadStatus(name, ref);
        send(res, 204, this.#uploadHeaders(name, state.id, state.offset));
      },
      PATCH: (ctx) =>
        this.#withUpload(ctx, async () => {
          const { req, res, name, ref, signal } = ctx;
          const range = parseContentRange(req.headers['content-range']);
          const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
          if (range && declared !== undefined && declared !== range.length) {
            throw registryError('RANGE_INVALID', { message: `Content-Length ${declared} does not match Content-Range "${req.headers['content-range']}"` });
          }
          const state = await this.store.appendUpload(name, ref, req, { start: range?.start, length: range?.length, signal });
          send(res, 202, this.#uploadHeaders(name, state.id, state.offset));
        }),
      PUT: (ctx) =>
        this.#withUpload(ctx, async () => {
          const { req, res, url, name, ref, signal } = ctx;
          const digest = checkDigest(url.searchParams.get('digest'));
          const range = parseContentRange(req.headers['content-range']);
          await this.store.finishUpload(name, ref, digest, { stream: req, start: range?.start, length: range?.length, signal });
          send(res, 201, { Location: paths.blob(name, digest), 'Docker-Content-Digest': digest });
        }),
      DELETE: async ({ res, name, ref }) => {
        await this.store.cancelUpload(name, ref);
        send(res, 204, {});
      },
    },
    referrers: {
      GET: async ({ res, url, name, ref }) => {
        const digest = checkDigest(ref);
        const artifactType = url.searchParams.get('artifactType') ?? undefined;
        const manifests = await this.store.referrers(name, digest, { artifactType });
        const headers: Record<string, string> = { 'Content-Type': mediaTypes.ociIndex };
        if (artifactType !== undefined) headers['OCI-Filters-Applied'] = 'artifactType';
        send(res, 200, headers, JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests }));
      },
    },
  };

  async #getManifest({ req, res, name, ref }: Context): Promise<void> {
    const reference = parseReference(ref);
    const manifest = await this.store.getManifest(name, reference, { body: req.method !== 'HEAD' });
    if (!acceptable(req.headers.accept, manifest.mediaType)) {
      throw registryError('MANIFEST_UNKNOWN', {
        message: `manifest is ${manifest.mediaType}, which the Accept header does not list`,
        detail: { mediaType: manifest.mediaType },
      });
    }
    res.writeHead(200, {
      'Content-Type': manifest.mediaType,
      'Content-Length': manifest.size,
      'Docker-Content-Digest': manifest.digest,
      ETag: `"${manifest.digest}"`,
    });
    res.end(req.method === 'HEAD' ? undefined : manifest.body);
  }

  async #getBlob({ req, res, name, ref }: Context): Promise<void> {
    const digest = checkDigest(ref);
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/octet-stream',
      'Docker-Content-Digest': digest,
      ETag: `"${digest}"`,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'max-age=31536000',
    };
    if (req.method === 'HEAD') {
      const size = await this.store.blobSize(name, digest);
      await this.store.touchBlob(name, digest);
      res.writeHead(200, { ...headers, 'Content-Length': size });
      res.end();
      return;
    }
    // Opened before the headers go out: a blob collected meanwhile still answers BLOB_UNKNOWN.
    const { handle, size } = await this.store.openBlob(name, digest);
    try {
      const range = parseRange(req.headers.range, size);
      const start = range?.start ?? 0;
      const end = range?.end ?? size - 1;
      if (range) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
      res.writeHead(range ? 206 : 200, { ...headers, 'Content-Length': size === 0 ? 0 : end - start + 1 });
      if (size === 0) res.end();
      else await sendFileRange(res, handle, start, end, this.store.slabs);
    } finally {
      await handle.close();
    }
  }
}

export interface ServeOptions extends RegistryOptions {
  host?: string;
  port?: number;
  /** Listen with HTTPS (PEM certificate chain and key). */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface RunningRegistry {
  registry: Registry;
  server: http.Server;
  scheme: 'http' | 'https';
  /** `127.0.0.1:5000`, as a client writes it in an image reference. */
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Opens the registry and listens (HTTPS when `tls` is given). */
export async function serveRegistry(options: ServeOptions): Promise<RunningRegistry> {
  const registry = await Registry.open(options);
  const server: http.Server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, registry.handle) : http.createServer(registry.handle);
  // Blob uploads can take longer than node's default 300 s request timeout.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 5000, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await registry.close();
    throw err;
  }
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    registry,
    server,
    scheme: options.tls ? 'https' : 'http',
    address: `${host}:${port}`,
    port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await registry.close();
    },
  };
}
