/**
 * A typed client of the Docker Engine API over a unix socket or TCP, on node:http.
 *
 * Vocabulary: a *request* answers status, headers and a body stream; `json()` reads the body as one
 * JSON value; `stream()` yields the JSON messages of a progress or event stream one by one;
 * `hijack()` upgrades the connection (attach, exec start) and hands back the raw socket.
 *
 *   const client = new EngineClient({ host: 'unix:///run/baleia/baleia.sock' });
 *   const { Id } = await client.json<{ Id: string }>('POST', '/containers/create', { body: config });
 *   const socket = await client.hijack('POST', `/containers/${Id}/attach`, { query: { stream: 1, stdout: 1 } });
 *   await client.request('POST', `/containers/${Id}/start`);
 *
 * The API version is negotiated like the docker CLI does: `HEAD /_ping` once, then every path is
 * prefixed with `/v<min(server, 1.41)>`. A non-2xx answer throws a BaleiaError whose kind follows
 * the status and whose message is the daemon's `message`.
 */
import http from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { BaleiaError, type ErrorKind } from '../lib/index.js';

/** The highest API version this client speaks; its request shapes are those of 1.41. */
export const clientApiVersion = '1.41';
export const defaultHost = 'unix:///run/baleia/baleia.sock';

export type QueryValue = string | number | boolean | undefined | null | readonly (string | number)[];
export type Query = Record<string, QueryValue>;

export interface RequestOptions {
  query?: Query;
  /** A plain value is sent as JSON; a Buffer/string as is; a Readable is streamed chunked. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Do not prefix the path with the API version (`/_ping`). */
  unversioned?: boolean;
}

export interface EngineResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

/** An error answered by the daemon: a BaleiaError that also carries the HTTP status. */
export class EngineResponseError extends BaleiaError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(kindForStatus(status), message);
    this.status = status;
  }
}

export function kindForStatus(status: number): ErrorKind {
  switch (status) {
    case 304:
      return 'NotModified';
    case 400:
      return 'InvalidArgument';
    case 401:
      return 'Unauthorized';
    case 403:
      return 'Forbidden';
    case 404:
      return 'NotFound';
    case 409:
      return 'Conflict';
    case 501:
      return 'NotImplemented';
    case 503:
      return 'Unavailable';
    default:
      return 'Internal';
  }
}

interface Endpoint {
  socketPath?: string;
  hostname?: string;
  port?: number;
}

export function parseHost(host: string): Endpoint {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  if (host.startsWith('/')) return { socketPath: host };
  const m = /^(?:tcp|http):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(host);
  if (m) return { hostname: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : 2375 };
  throw new BaleiaError('InvalidArgument', `Cannot use host "${host}": expected unix:///path or tcp://host:port`);
}

/** Query string in the order given; arrays repeat the key; undefined and null are left out. */
export function encodeQuery(query: Query | undefined): string {
  if (!query) return '';
  const parts: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values as (string | number | boolean)[]) {
      const text = typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(text)}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

function isReadable(value: unknown): value is Readable {
  return typeof value === 'object' && value !== null && typeof (value as Readable).pipe === 'function';
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export interface PingResult {
  apiVersion: string;
  osType: string;
  experimental: boolean;
  builderVersion?: string;
}

export class EngineClient {
  readonly host: string;
  #endpoint: Endpoint;
  #agent: http.Agent;
  #version: string | undefined;
  #negotiating: Promise<string> | undefined;

  /** Called with each request line as it goes out (debug logs). */
  onRequest: ((line: string) => void) | undefined;

  constructor(options: { host?: string; version?: string; onRequest?: (line: string) => void } = {}) {
    this.host = options.host ?? defaultHost;
    this.onRequest = options.onRequest;
    this.#endpoint = parseHost(this.host);
    this.#version = options.version;
    // One kept-alive connection is reused for sequential requests, like the docker CLI.
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  }

  /** The negotiated API version (after the first request). */
  get apiVersion(): string | undefined {
    return this.#version;
  }

  /** `HEAD /_ping`, falling back to GET when the answer is neither 200 nor 500 (as the CLI does). */
  async ping(options: { signal?: AbortSignal } = {}): Promise<PingResult> {
    let res = await this.#send('HEAD', '/_ping', { signal: options.signal });
    res.body.resume();
    if (res.status !== 200 && res.status !== 500) {
      res = await this.#send('GET', '/_ping', { signal: options.signal });
      res.body.resume();
    }
    if (res.status >= 400) {
      throw new EngineResponseError(res.status, `Cannot ping the daemon: status ${res.status}`);
    }
    const header = (name: string) => {
      const v = res.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    return {
      apiVersion: header('api-version') ?? '',
      osType: header('ostype') ?? '',
      experimental: header('docker-experimental') === 'true',
      builderVersion: header('builder-version'),
    };
  }

  /** Negotiate once: min(server's Api-Version, ours); an empty header means 1.24. */
  async negotiate(options: { signal?: AbortSignal } = {}): Promise<string> {
    if (this.#version) return this.#version;
    this.#negotiating ??= this.ping(options).then(
      (p) => {
        const server = p.apiVersion || '1.24';
        this.#version = compareVersions(server, clientApiVersion) < 0 ? server : clientApiVersion;
        return this.#version;
      },
      (err) => {
        this.#negotiating = undefined;
        throw err;
      },
    );
    return this.#negotiating;
  }

  async #path(path: string, options: RequestOptions): Promise<string> {
    const query = encodeQuery(options.query);
    if (options.unversioned) return path + query;
    const version = await this.negotiate({ signal: options.signal });
    return `/v${version}${path}${query}`;
  }

  #requestOptions(method: string, fullPath: string, headers: Record<string, string>, agent: http.Agent | false) {
    return {
      method,
      path: fullPath,
      ...(this.#endpoint.socketPath
        ? { socketPath: this.#endpoint.socketPath, host: 'api.moby.localhost' }
        : { host: this.#endpoint.hostname, port: this.#endpoint.port }),
      headers: { 'User-Agent': 'baleia-cli', ...headers },
      agent,
    };
  }

  #bodyHeaders(options: RequestOptions): { headers: Record<string, string>; payload?: Buffer | Readable } {
    const headers: Record<string, string> = {};
    let payload: Buffer | Readable | undefined;
    const body = options.body;
    if (body === undefined) {
      payload = undefined;
    } else if (isReadable(body)) {
      payload = body;
    } else if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
      payload = Buffer.from(body);
    } else if (typeof body === 'string') {
      payload = Buffer.from(body);
    } else {
      payload = Buffer.from(JSON.stringify(body));
      headers['Content-Type'] = 'application/json';
    }
    if (Buffer.isBuffer(payload)) headers['Content-Length'] = String(payload.length);
    return { headers: { ...headers, ...options.headers }, payload };
  }

  async #send(method: string, path: string, options: RequestOptions): Promise<EngineResponse> {
    const fullPath = await this.#path(path, { ...options, unversioned: options.unversioned ?? path === '/_ping' });
    const { headers, payload } = this.#bodyHeaders(options);
    this.onRequest?.(`${method} ${fullPath}`);
    return new Promise<EngineResponse>((resolve, reject) => {
      const req = http.request(this.#requestOptions(method, fullPath, headers, this.#agent), (res) => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      const onAbort = () => req.destroy(new BaleiaError('Cancelled', `Cannot finish ${method} ${path}: cancelled`));
      if (options.signal) {
        if (options.signal.aborted) onAbort();
        else options.signal.addEventListener('abort', onAbort, { once: true });
        req.on('close', () => options.signal?.removeEventListener('abort', onAbort));
      }
      req.on('error', (err) => reject(this.#connectionError(err)));
      if (payload === undefined) req.end();
      else if (Buffer.isBuffer(payload)) req.end(payload);
      else {
        payload.on('error', (err) => req.destroy(err));
        payload.pipe(req);
      }
    });
  }

  #connectionError(err: unknown): unknown {
    if (err instanceof BaleiaError) return err;
    const code = (err as { code?: string }).code;
    if (code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EACCES' || code === 'ECONNRESET' || code === 'EHOSTUNREACH') {
      return new BaleiaError(
        'Unavailable',
        `Cannot connect to the baleia daemon at ${this.host}: is the daemon running?`,
        { cause: err },
      );
    }
    return new BaleiaError('Internal', `Cannot talk to the daemon at ${this.host}`, { cause: err });
  }

  /** Any request; a status >= 300 (including 304) throws an EngineResponseError. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<EngineResponse> {
    const res = await this.#send(method, path, options);
    if (res.status >= 300) throw await responseError(res.body, `${method} ${path}`);
    return res;
  }

  /** The body parsed as JSON (undefined for an empty body). */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, options);
    const text = (await readAll(res.body)).toString('utf8');
    return (text.trim() === '' ? undefined : JSON.parse(text)) as T;
  }

  /** Drain the body; for requests that answer 204 or an ignored body. */
  async call(method: string, path: string, options: RequestOptions = {}): Promise<number> {
    const res = await this.request(method, path, options);
    await readAll(res.body);
    return res.status;
  }

  /** The JSON messages of a streamed body (progress, events), one by one. */
  async *stream<T>(method: string, path: string, options: RequestOptions = {}): AsyncGenerator<T> {
    const res = await this.request(method, path, options);
    yield* parseJsonStream<T>(res.body);
  }

  /**
   * Upgrade the connection (`Connection: Upgrade`, `Upgrade: tcp`) and answer the raw socket once
   * the daemon replied 101. Bytes the daemon sent with the 101 header are put back on the socket.
   * A plain error status throws with the daemon's message, before any upgrade.
   */
  async hijack(method: string, path: string, options: RequestOptions = {}): Promise<Duplex> {
    const fullPath = await this.#path(path, options);
    const { headers, payload } = this.#bodyHeaders({
      ...options,
      headers: { Connection: 'Upgrade', Upgrade: 'tcp', ...options.headers },
    });
    if (payload !== undefined && !Buffer.isBuffer(payload)) {
      throw new BaleiaError('InvalidArgument', 'Cannot hijack with a streamed body');
    }
    if (!headers['Content-Type']) headers['Content-Type'] = 'text/plain';
    this.onRequest?.(`${method} ${fullPath} (upgrade)`);
    return new Promise<Duplex>((resolve, reject) => {
      // Its own connection: the socket leaves the pool for good.
      const req = http.request(this.#requestOptions(method, fullPath, headers, false));
      req.on('upgrade', (_res, socket, head) => {
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          responseError(res, `${method} ${path}`).then(reject, reject);
        } else {
          res.resume();
          reject(new BaleiaError('Internal', `Cannot attach: unable to upgrade to tcp, received ${res.statusCode}`));
        }
      });
      req.on('error', (err) => reject(this.#connectionError(err)));
      if (options.signal) {
        options.signal.addEventListener(
          'abort',
          () => req.destroy(new BaleiaError('Cancelled', `Cannot finish ${method} ${path}: cancelled`)),
          { once: true },
        );
      }
      req.end(payload);
    });
  }

  /** Close idle kept-alive connections. */
  close(): void {
    this.#agent.destroy();
  }
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function responseError(res: http.IncomingMessage, route: string): Promise<EngineResponseError> {
  const status = res.statusCode ?? 0;
  const raw = (await readAll(res).catch(() => Buffer.alloc(0))).toString('utf8').trim();
  let message = raw;
  const type = String(res.headers['content-type'] ?? '');
  if (type.startsWith('application/json') || raw.startsWith('{')) {
    try {
      const parsed = JSON.parse(raw) as { message?: unknown };
      if (typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // Not JSON after all: keep the raw text, like the docker CLI.
    }
  }
  if (status === 304) message = message || 'Not modified';
  if (!message) {
    message = `request returned ${status} ${http.STATUS_CODES[status] ?? ''} for API route and version ${route}, check if the server supports the requested API version`;
  }
  return new EngineResponseError(status, message);
}

/**
 * JSON values from a byte stream where they follow each other, newline-separated or not
 * (progress messages end in `\r\n`, events in `\n`, and some servers send none).
 */
export async function* parseJsonStream<T>(stream: AsyncIterable<Buffer | string>): AsyncGenerator<T> {
  const splitter = new JsonSplitter();
  for await (const chunk of stream) {
    for (const text of splitter.push(typeof chunk === 'string' ? chunk : chunk.toString('utf8'))) {
      yield JSON.parse(text) as T;
    }
  }
  const rest = splitter.rest().trim();
  if (rest) yield JSON.parse(rest) as T;
}

/** Splits concatenated JSON values by tracking depth outside strings. */
export class JsonSplitter {
  #buffer = '';
  #depth = 0;
  #inString = false;
  #escape = false;
  #start = -1;
  #scanned = 0;

  push(text: string): string[] {
    this.#buffer += text;
    const out: string[] = [];
    let i = this.#scanned;
    for (; i < this.#buffer.length; i++) {
      const c = this.#buffer[i]!;
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (c === '\\') this.#escape = true;
        else if (c === '"') this.#inString = false;
        continue;
      }
      if (c === '"') this.#inString = true;
      else if (c === '{' || c === '[') {
        if (this.#depth === 0) this.#start = i;
        this.#depth++;
      } else if (c === '}' || c === ']') {
        this.#depth--;
        if (this.#depth === 0 && this.#start >= 0) {
          out.push(this.#buffer.slice(this.#start, i + 1));
          this.#buffer = this.#buffer.slice(i + 1);
          i = -1;
          this.#start = -1;
        }
      }
    }
    this.#scanned = i;
    if (this.#depth === 0 && this.#start < 0 && this.#buffer.trim() === '') {
      this.#buffer = '';
      this.#scanned = 0;
    }
    return out;
  }

  rest(): string {
    return this.#buffer;
  }
}

/** stdcopy stream numbers: 0 stdin, 1 stdout, 2 stderr, 3 system error. */
export type StdStream = 0 | 1 | 2 | 3;

/**
 * Demultiplexes a non-TTY attach, exec or logs stream. Each frame is an 8-byte header
 * [stream, 0, 0, 0, length as big-endian uint32] followed by the payload. Resolves at end of stream.
 */
export function demuxStdcopy(
  source: Readable,
  onFrame: (stream: StdStream, payload: Buffer) => void,
): Promise<void> {
  const demuxer = new StdcopyDemuxer(onFrame);
  return new Promise<void>((resolve, reject) => {
    source.on('data', (chunk: Buffer) => {
      try {
        demuxer.push(chunk);
      } catch (err) {
        source.destroy();
        reject(err);
      }
    });
    source.on('end', () => {
      try {
        demuxer.end();
        resolve();
      } catch (err) {
        reject(err);
      }
    });
    source.on('close', () => resolve());
    source.on('error', (err) => {
      // A daemon that closes the socket hard after the last frame still delivered everything.
      if ((err as { code?: string }).code === 'ECONNRESET') resolve();
      else reject(err);
    });
  });
}

/** The incremental state machine behind demuxStdcopy (exported for tests and other readers). */
export class StdcopyDemuxer {
  #pending: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (stream: StdStream, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    while (this.#pending.length >= 8) {
      const stream = this.#pending[0]!;
      if (stream > 3) {
        throw new BaleiaError('Internal', `Cannot demultiplex stream: unrecognised stream byte ${stream}`);
      }
      const length = this.#pending.readUInt32BE(4);
      if (this.#pending.length < 8 + length) break;
      const payload = this.#pending.subarray(8, 8 + length);
      this.#pending = this.#pending.subarray(8 + length);
      this.onFrame(stream as StdStream, payload);
    }
  }

  end(): void {
    if (this.#pending.length > 0) {
      const partial = this.#pending;
      this.#pending = Buffer.alloc(0);
      // A truncated last frame: hand over what arrived rather than lose it.
      if (partial.length > 8) this.onFrame((partial[0]! & 3) as StdStream, partial.subarray(8));
    }
  }
}

/** Frames a payload the way the daemon does (tests, servers). */
export function stdcopyFrame(stream: StdStream, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}
