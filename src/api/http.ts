/**
 * The HTTP mechanics of the Docker Engine API: version prefixes, the common headers, JSON bodies,
 * query parsing with moby's boolean rule, filters in both wire shapes, the error-kind → status
 * table, hijacked streams and stdcopy framing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { BaleiaError, describeError, errorKind, type ErrorKind } from '../lib/index.js';

export const apiVersion = '1.41';
export const minApiVersion = '1.24';
export const maxApiVersion = '1.50';
export const engineVersion = '0.1.0';

/** The one place where an error kind becomes an HTTP status. */
export const statusOfKind: Record<ErrorKind, number> = {
  NotFound: 404,
  InvalidArgument: 400,
  Conflict: 409,
  NotModified: 304,
  Unauthorized: 401,
  Forbidden: 403,
  Unavailable: 503,
  NotImplemented: 501,
  Cancelled: 500,
  Internal: 500,
};

export function commonHeaders(): Record<string, string> {
  return {
    'Api-Version': apiVersion,
    Ostype: 'linux',
    'Docker-Experimental': 'false',
    Server: `Docker/${engineVersion} (linux)`,
  };
}

/** Splits `/v1.41/containers/json` into the version and the path; rejects versions outside our range. */
export function splitVersion(pathname: string): { version: string; path: string } {
  const m = /^\/v(\d+\.\d+)(\/.*)$/.exec(pathname);
  if (!m) return { version: apiVersion, path: pathname };
  const [major, minor] = m[1]!.split('.').map(Number) as [number, number];
  const cmp = (v: string) => {
    const [a, b] = v.split('.').map(Number) as [number, number];
    return major !== a ? major - a : minor - b;
  };
  if (cmp(minApiVersion) < 0)
    throw new BaleiaError('InvalidArgument', `client version ${m[1]} is too old. Minimum supported API version is ${minApiVersion}, please upgrade your client to a newer version`);
  if (cmp(maxApiVersion) > 0)
    throw new BaleiaError('InvalidArgument', `client version ${m[1]} is too new. Maximum supported API version is ${maxApiVersion}`);
  return { version: m[1]!, path: m[2]! };
}

/** moby's rule: "", 0, no, false, none (any case) are false; anything else present is true. */
export function queryBool(query: URLSearchParams, name: string, fallback = false): boolean {
  const v = query.get(name);
  if (v === null) return fallback;
  return !['', '0', 'no', 'false', 'none'].includes(v.toLowerCase());
}

export function queryInt(query: URLSearchParams, name: string): number | undefined {
  const v = query.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new BaleiaError('InvalidArgument', `Invalid value for "${name}": ${JSON.stringify(v)} is not a number`);
  return Math.trunc(n);
}

export type Filters = Map<string, string[]>;

/** Filters arrive as JSON, either `{"k":{"v":true}}` (docker CLI) or `{"k":["v"]}` (docker-py, dockerode). */
export function parseFilters(raw: string | null): Filters {
  const filters: Filters = new Map();
  if (!raw) return filters;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new BaleiaError('InvalidArgument', `Invalid filters: ${JSON.stringify(raw)} is not JSON`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new BaleiaError('InvalidArgument', `Invalid filters: ${JSON.stringify(raw)} is not a JSON object`);
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(value)) filters.set(key, value.map(String));
    else if (value && typeof value === 'object')
      filters.set(key, Object.entries(value).filter(([, on]) => on).map(([k]) => k));
    else if (typeof value === 'string') filters.set(key, [value]);
  }
  return filters;
}

/** Throws for a filter key outside the accepted set, as dockerd does. */
export function checkFilterKeys(filters: Filters, accepted: readonly string[]): void {
  for (const key of filters.keys())
    if (!accepted.includes(key)) throw new BaleiaError('InvalidArgument', `Invalid filter '${key}'`);
}

export async function readBody(req: IncomingMessage, limit = 16 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BaleiaError('InvalidArgument', `Request body is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON body; an empty body is `{}`; malformed JSON is a 400 with the parser's reason. */
export function parseJsonBody(buf: Buffer): Record<string, unknown> {
  const text = buf.toString('utf8').trim();
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BaleiaError('InvalidArgument', `Cannot parse request body: invalid JSON: ${(err as Error).message}`);
  }
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw new BaleiaError('InvalidArgument', 'Cannot parse request body: expected a JSON object');
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value) + '\n';
  res.writeHead(status, { ...commonHeaders(), 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { ...commonHeaders(), 'Content-Length': 0 });
  res.end();
}

export function sendError(res: ServerResponse, err: unknown): number {
  const status = statusOfKind[errorKind(err)];
  if (res.headersSent) {
    res.destroy();
    return status;
  }
  if (status === 304) {
    sendEmpty(res, 304);
    return status;
  }
  sendJson(res, status, { message: describeError(err) });
  return status;
}

/** Starts a streamed JSON response (events, progress, wait): headers go out at once. */
export function startStream(res: ServerResponse, contentType = 'application/json'): void {
  res.writeHead(200, { ...commonHeaders(), 'Content-Type': contentType });
  res.flushHeaders();
}

/** stdcopy frame: [stream, 0, 0, 0, len32be] then the payload. 0 stdin, 1 stdout, 2 stderr, 3 system error. */
export function stdcopyFrame(stream: 0 | 1 | 2 | 3, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/**
 * A hijacked connection: after the 101 (or 200) header has been written in its own write, raw
 * bytes flow both ways. `input` is what the client sends (stdin); `write` sends output.
 */
export interface Hijacked {
  socket: Duplex;
  write(data: Buffer): void;
  /** Ends the connection after everything written has been flushed. */
  end(): void;
  closed: Promise<void>;
}

/**
 * Takes over the socket of a request. With `Upgrade: tcp` the answer is `101 UPGRADED`; without it
 * (dockerode attach) it is a `200 OK` with no length, closed at the end. The header is written
 * alone and flushed before any stream byte (docker-py reads the raw socket after it).
 */
export async function hijack(socket: Duplex, options: { upgrade: boolean; head?: Buffer }): Promise<Hijacked> {
  const header = options.upgrade
    ? 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n'
    : 'HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: close\r\n' +
      Object.entries(commonHeaders()).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
  await new Promise<void>((resolve, reject) => socket.write(header, (err) => (err ? reject(err) : resolve())));
  if (options.head && options.head.length > 0) socket.unshift(options.head);
  const closed = new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
  });
  socket.on('error', () => {});
  return {
    socket,
    write: (data) => {
      if (!socket.destroyed && socket.writable) socket.write(data);
    },
    end: () => {
      if (socket.destroyed) return;
      // A half-closed client (FIN after the request) still reads until we end.
      socket.end(() => socket.destroy());
      setTimeout(() => socket.destroy(), 2000).unref();
    },
    closed,
  };
}
