/**
 * The Docker Engine API server on node:http: strips the version prefix, routes, answers errors
 * through the one kind → status table, and hands hijacked connections (attach, exec start) their
 * raw socket. Requests with `Upgrade: tcp` arrive through the server's 'upgrade' event; they are
 * routed like any other request, with the socket given to the handler.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { BaleiaError, describeError, type Logger } from '../lib/index.js';
import type { Engine } from '../engine/index.js';
import { parseJsonBody, readBody, sendError, splitVersion } from './http.js';
import { routes, type RequestContext } from './routes.js';

export interface ApiServerOptions {
  engine: Engine;
  logger: Logger;
}

export function createApiServer(options: ApiServerOptions): http.Server {
  const server = http.createServer({ keepAlive: true });
  let nextRequest = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse | undefined, upgrade?: { socket: Duplex; head: Buffer }) => {
    const started = Date.now();
    const reqId = ++nextRequest;
    const url = new URL(req.url ?? '/', 'http://baleia');
    let status = 0;
    try {
      const { version, path } = splitVersion(url.pathname);
      const method = req.method ?? 'GET';
      let matched: { handler: (ctx: RequestContext) => Promise<void>; params: Record<string, string> } | undefined;
      let pathKnown = false;
      for (const route of routes) {
        const m = route.pattern.exec(path);
        if (!m) continue;
        pathKnown = true;
        if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue;
        matched = { handler: route.handler, params: Object.fromEntries(Object.entries(m.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)])) };
        break;
      }
      if (!matched) {
        throw new BaleiaError(pathKnown ? 'InvalidArgument' : 'NotFound', pathKnown ? `Method ${method} is not allowed on ${path}` : `page not found`);
      }
      let bodyCache: Buffer | undefined;
      const ctx: RequestContext = {
        req,
        res,
        upgrade,
        method,
        path,
        version,
        params: matched.params,
        query: url.searchParams,
        engine: options.engine,
        log: options.logger,
        async raw() {
          if (bodyCache) return bodyCache;
          if (upgrade) bodyCache = await readUpgradeBody(req, upgrade);
          else bodyCache = await readBody(req);
          return bodyCache;
        },
        async json() {
          return parseJsonBody(await ctx.raw());
        },
        setStatus: (s: number) => {
          status = s;
        },
      };
      await matched.handler(ctx);
      status ||= res?.statusCode ?? 101;
    } catch (err) {
      if (res) status = sendError(res, err);
      else if (upgrade) {
        // Before the upgrade was answered: a plain HTTP error on the raw socket.
        const message = JSON.stringify({ message: describeError(err) }) + '\n';
        const code = sendErrorStatus(err);
        upgrade.socket.end(
          `HTTP/1.1 ${code} ${http.STATUS_CODES[code] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(message)}\r\nConnection: close\r\n\r\n${message}`,
        );
        status = code;
      }
      if (status >= 500) options.logger.warn('Request failed', { req: reqId, method: req.method, url: req.url, err: describeError(err) });
    } finally {
      options.logger.debug('Request', { req: reqId, method: req.method, url: req.url, status, ms: Date.now() - started });
    }
  };

  server.on('request', (req, res) => void handle(req, res));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void handle(req, undefined, { socket, head }));
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  return server;
}

function sendErrorStatus(err: unknown): number {
  // Reuse the table without a response object.
  const fake = { headersSent: false, writeHead() {}, end() {} } as unknown as ServerResponse;
  return sendError(fake, err);
}

/**
 * With an upgrade, Node stops parsing after the headers: the request body (exec start's JSON)
 * is at the front of `head` and the socket. Read exactly Content-Length bytes and leave the rest
 * (early stdin) in `upgrade.head`.
 */
async function readUpgradeBody(req: IncomingMessage, upgrade: { socket: Duplex; head: Buffer }): Promise<Buffer> {
  const length = Number(req.headers['content-length'] ?? 0);
  if (!length) return Buffer.alloc(0);
  let buf = upgrade.head;
  while (buf.length < length) {
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (d: Buffer) => {
        cleanup();
        resolve(d);
      };
      const onEnd = () => {
        cleanup();
        resolve(null);
      };
      const cleanup = () => {
        upgrade.socket.off('data', onData);
        upgrade.socket.off('end', onEnd);
        upgrade.socket.pause();
      };
      upgrade.socket.on('data', onData);
      upgrade.socket.on('end', onEnd);
      upgrade.socket.resume();
    });
    if (chunk === null) break;
    buf = Buffer.concat([buf, chunk]);
  }
  upgrade.head = buf.subarray(length);
  return buf.subarray(0, length);
}
