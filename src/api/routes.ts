/**
 * The route table of the Docker Engine API: each route turns HTTP (path params, query, body)
 * into one engine call and the engine's answer into Docker's wire shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BaleiaError, describeError, invalidArgument, type Logger } from '../lib/index.js';
import type { Attacher, Engine, EngineEvent } from '../engine/index.js';
import { decodeRegistryAuthHeader, pathStatHeader } from '../engine/index.js';
import {
  apiVersion,
  commonHeaders,
  engineVersion,
  hijack,
  minApiVersion,
  parseFilters,
  queryBool,
  queryInt,
  sendEmpty,
  sendJson,
  startStream,
  stdcopyFrame,
  type Hijacked,
} from './http.js';
import os from 'node:os';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse | undefined;
  upgrade: { socket: Duplex; head: Buffer } | undefined;
  method: string;
  path: string;
  version: string;
  params: Record<string, string>;
  query: URLSearchParams;
  engine: Engine;
  log: Logger;
  raw(): Promise<Buffer>;
  json(): Promise<Record<string, unknown>>;
  setStatus(status: number): void;
}

type Handler = (ctx: RequestContext) => Promise<void>;
interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

const id = '(?<id>[^/]+)';
const name = '(?<name>.+)';
export const routes: Route[] = [];
const route = (method: string, path: string, handler: Handler) =>
  routes.push({ method, pattern: new RegExp(`^${path}$`), handler });

const res = (ctx: RequestContext): ServerResponse => {
  if (!ctx.res) throw invalidArgument(`${ctx.path} does not take an Upgrade request`);
  return ctx.res;
};

// ------------------------------------------------------------------ system

route('GET', '/_ping', async (ctx) => {
  const r = res(ctx);
  const body = ctx.method === 'HEAD' ? '' : 'OK';
  r.writeHead(200, {
    ...commonHeaders(),
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    Pragma: 'no-cache',
    'Builder-Version': '1',
    'Content-Length': Buffer.byteLength(body),
  });
  r.end(body);
});

route('GET', '/version', async (ctx) => {
  const details = {
    ApiVersion: apiVersion,
    MinAPIVersion: minApiVersion,
    GitCommit: 'baleia',
    GoVersion: `node${process.versions.node}`,
    Os: 'linux',
    Arch: os.arch() === 'x64' ? 'amd64' : os.arch(),
    KernelVersion: os.release(),
    BuildTime: '',
    Experimental: 'false',
  };
  sendJson(res(ctx), 200, {
    Platform: { Name: 'baleia' },
    Components: [{ Name: 'Engine', Version: engineVersion, Details: details }],
    Version: engineVersion,
    ApiVersion: apiVersion,
    MinAPIVersion: minApiVersion,
    GitCommit: 'baleia',
    GoVersion: details.GoVersion,
    Os: 'linux',
    Arch: details.Arch,
    KernelVersion: details.KernelVersion,
    BuildTime: '',
    Experimental: false,
  });
});

route('GET', '/info', async (ctx) => sendJson(res(ctx), 200, await ctx.engine.info()));
route('GET', '/system/df', async (ctx) => sendJson(res(ctx), 200, await ctx.engine.diskUsage()));

route('GET', '/events', async (ctx) => {
  const r = res(ctx);
  const filters = parseFilters(ctx.query.get('filters'));
  const since = parseEventTime(ctx.query.get('since'));
  const until = parseEventTime(ctx.query.get('until'));
  const match = eventMatcher(filters);
  startStream(r);
  const write = (e: EngineEvent) => {
    if (match(e)) r.write(JSON.stringify(e) + '\n');
  };
  const nowNano = Date.now() * 1e6;
  if (since !== undefined || until !== undefined) for (const e of ctx.engine.events.history(since, until)) write(e);
  if (until !== undefined && until <= nowNano) {
    r.end();
    return;
  }
  await new Promise<void>((resolve) => {
    const unsubscribe = ctx.engine.events.subscribe((e) => {
      if (until !== undefined && e.timeNano > until) return;
      write(e);
    });
    const finish = () => {
      unsubscribe();
      clearTimeout(timer);
      resolve();
    };
    const timer = until !== undefined ? setTimeout(() => { r.end(); finish(); }, until / 1e6 - Date.now()) : undefined;
    r.on('close', finish);
  });
});

route('POST', '/auth', async (ctx) => sendJson(res(ctx), 200, await ctx.engine.login(await ctx.json())));

// ------------------------------------------------------------------ containers

route('POST', '/containers/create', async (ctx) => {
  const body = await ctx.json();
  const name = ctx.query.get('name') ?? undefined;
  const result = await ctx.engine.containers.create(body, { name: name || undefined });
  sendJson(res(ctx), 201, result);
});

route('GET', '/containers/json', async (ctx) => {
  const limit = queryInt(ctx.query, 'limit');
  const list = await ctx.engine.listContainers({
    all: queryBool(ctx.query, 'all'),
    limit: limit !== undefined && limit > 0 ? limit : undefined,
    size: queryBool(ctx.query, 'size'),
    filters: parseFilters(ctx.query.get('filters')),
  });
  sendJson(res(ctx), 200, list);
});

route('POST', '/containers/prune', async (ctx) =>
  sendJson(res(ctx), 200, await ctx.engine.pruneContainers(parseFilters(ctx.query.get('filters')))),
);

route('GET', `/containers/${id}/json`, async (ctx) =>
  sendJson(res(ctx), 200, await ctx.engine.inspectContainer(ctx.params.id!, { size: queryBool(ctx.query, 'size') })),
);

route('POST', `/containers/${id}/start`, async (ctx) => {
  await ctx.engine.containers.start(ctx.params.id!);
  sendEmpty(res(ctx), 204);
});

route('POST', `/containers/${id}/stop`, async (ctx) => {
  await ctx.engine.containers.stop(ctx.params.id!, { timeout: queryInt(ctx.query, 't'), signal: ctx.query.get('signal') ?? undefined });
  sendEmpty(res(ctx), 204);
});

route('POST', `/containers/${id}/restart`, async (ctx) => {
  await ctx.engine.containers.restart(ctx.params.id!, { timeout: queryInt(ctx.query, 't') });
  sendEmpty(res(ctx), 204);
});

route('POST', `/containers/${id}/kill`, async (ctx) => {
  await ctx.engine.containers.kill(ctx.params.id!, ctx.query.get('signal') || 'SIGKILL');
  sendEmpty(res(ctx), 204);
});

route('POST', `/containers/${id}/pause`, async (ctx) => {
  await ctx.engine.containers.pause(ctx.params.id!);
  sendEmpty(res(ctx), 204);
});

route('POST', `/containers/${id}/unpause`, async (ctx) => {
  await ctx.engine.containers.unpause(ctx.params.id!);
  sendEmpty(res(ctx), 204);
});

route('POST', `/containers/${id}/rename`, async (ctx) => {
  const newName = ctx.query.get('name');
  if (!newName) throw invalidArgument('Cannot rename container: a new name is required (?name=)');
  await ctx.engine.containers.rename(ctx.params.id!, newName);
  sendEmpty(res(ctx), 204);
});

route('DELETE', `/containers/${id}`, async (ctx) => {
  await ctx.engine.containers.remove(ctx.params.id!, { force: queryBool(ctx.query, 'force'), volumes: queryBool(ctx.query, 'v') });
  sendEmpty(res(ctx), 204);
});

route('POST', `/containers/${id}/wait`, async (ctx) => {
  const r = res(ctx);
  // Register the waiter before the headers go out: the docker CLI starts the container only
  // after it has them.
  const result = ctx.engine.containers.wait(ctx.params.id!, ctx.query.get('condition') || 'not-running');
  startStream(r);
  const outcome = await result;
  if (!r.destroyed) r.end(JSON.stringify(outcome) + '\n');
});

route('POST', `/containers/${id}/resize`, async (ctx) => {
  await ctx.engine.containers.resize(ctx.params.id!, parseSize(ctx.query));
  sendEmpty(res(ctx), 200);
});

route('GET', `/containers/${id}/top`, async (ctx) =>
  sendJson(res(ctx), 200, await ctx.engine.containers.top(ctx.params.id!, ctx.query.get('ps_args') || '-ef')),
);

route('GET', `/containers/${id}/logs`, async (ctx) => {
  const r = res(ctx);
  const stdout = queryBool(ctx.query, 'stdout');
  const stderr = queryBool(ctx.query, 'stderr');
  if (!stdout && !stderr) throw invalidArgument('Bad parameters: you must choose at least one stream');
  const tailRaw = ctx.query.get('tail');
  const tail = tailRaw === null || tailRaw === '' || tailRaw === 'all' ? undefined : Number(tailRaw);
  if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) {
    if (!Number.isNaN(tail) && tail < 0) void 0;
    else throw invalidArgument(`Invalid value for "tail": ${JSON.stringify(tailRaw)}`);
  }
  const abort = new AbortController();
  r.on('close', () => abort.abort());
  const { record, entries } = ctx.engine.containers.logs(ctx.params.id!, {
    follow: queryBool(ctx.query, 'follow'),
    since: parseUnixSeconds(ctx.query.get('since')),
    until: parseUnixSeconds(ctx.query.get('until')),
    tail: tail !== undefined && tail >= 0 ? tail : undefined,
    signal: abort.signal,
  });
  const timestamps = queryBool(ctx.query, 'timestamps');
  const tty = record.Config.Tty;
  r.writeHead(200, { ...commonHeaders() });
  r.flushHeaders();
  try {
    for await (const entry of entries) {
      if (entry.stream === 'stdout' ? !stdout : !stderr) continue;
      const payload = timestamps ? Buffer.concat([Buffer.from(`${nanoTime(entry.time)} `), entry.data]) : entry.data;
      r.write(tty ? payload : stdcopyFrame(entry.stream === 'stdout' ? 1 : 2, payload));
    }
  } catch (err) {
    if (!abort.signal.aborted) ctx.log.warn('Cannot read logs', { container: record.Id, err: describeError(err) });
  }
  r.end();
});

route('POST', `/containers/${id}/attach`, async (ctx) => {
  const record = ctx.engine.containers.checkAttachable(ctx.params.id!);
  const h = await takeOver(ctx);
  const attacher = makeAttacher(h, {
    stdin: queryBool(ctx.query, 'stdin'),
    stdout: queryBool(ctx.query, 'stdout'),
    stderr: queryBool(ctx.query, 'stderr'),
    tty: record.Config.Tty,
  });
  if (queryBool(ctx.query, 'logs')) {
    const { entries } = ctx.engine.containers.logs(record.Id, {});
    for await (const entry of entries) attacher.write(entry.stream === 'stderr' ? 2 : 1, entry.data);
  }
  if (!queryBool(ctx.query, 'stream')) {
    h.end();
    return;
  }
  await ctx.engine.containers.attach(record.Id, attacher).catch((err) => {
    h.write(Buffer.from(`Error: ${describeError(err)}\n`));
    h.end();
  });
});

route('GET', `/containers/${id}/stats`, async (ctx) => {
  const r = res(ctx);
  const stream = queryBool(ctx.query, 'stream', true);
  const abort = new AbortController();
  r.on('close', () => abort.abort());
  const samples = ctx.engine.containers.stats(ctx.params.id!, { stream, oneShot: queryBool(ctx.query, 'one-shot'), signal: abort.signal });
  const first = await samples.next();
  startStream(r);
  if (!first.done) r.write(JSON.stringify(first.value) + '\n');
  if (stream) for await (const sample of samples) r.write(JSON.stringify(sample) + '\n');
  r.end();
});

route('POST', `/containers/${id}/update`, async (ctx) =>
  sendJson(res(ctx), 200, await ctx.engine.containers.update(ctx.params.id!, await ctx.json())),
);

route('GET', `/containers/${id}/archive`, async (ctx) => {
  const r = res(ctx);
  const target = ctx.query.get('path');
  if (!target) throw invalidArgument('Cannot copy: a path is required (?path=)');
  if (ctx.method === 'HEAD') {
    const stat = await ctx.engine.containers.statPath(ctx.params.id!, target);
    r.writeHead(200, { ...commonHeaders(), 'X-Docker-Container-Path-Stat': pathStatHeader(stat), 'Content-Length': 0 });
    r.end();
    return;
  }
  const abort = new AbortController();
  r.on('close', () => abort.abort());
  const { stat, stream } = await ctx.engine.containers.getArchive(ctx.params.id!, target, { signal: abort.signal });
  r.writeHead(200, { ...commonHeaders(), 'Content-Type': 'application/x-tar', 'X-Docker-Container-Path-Stat': pathStatHeader(stat) });
  await pipeline(stream, r).catch(() => r.destroy());
});

route('PUT', `/containers/${id}/archive`, async (ctx) => {
  const target = ctx.query.get('path');
  if (!target) throw invalidArgument('Cannot copy: a path is required (?path=)');
  await ctx.engine.containers.putArchive(ctx.params.id!, target, ctx.req, {
    noOverwriteDirNonDir: queryBool(ctx.query, 'noOverwriteDirNonDir'),
    copyUIDGID: queryBool(ctx.query, 'copyUIDGID'),
  });
  sendEmpty(res(ctx), 200);
});

route('GET', `/containers/${id}/export`, async (ctx) => {
  const r = res(ctx);
  const stream = await ctx.engine.containers.export(ctx.params.id!);
  r.writeHead(200, { ...commonHeaders(), 'Content-Type': 'application/x-tar' });
  await pipeline(stream, r).catch(() => r.destroy());
});

route('GET', `/containers/${id}/changes`, async (ctx) => {
  const list = await ctx.engine.containers.changes(ctx.params.id!);
  sendJson(res(ctx), 200, list.length ? list : null);
});

route('POST', '/commit', async (ctx) => {
  const container = ctx.query.get('container');
  if (!container) throw invalidArgument('Cannot commit: a container is required (?container=)');
  const body = await ctx.json();
  const result = await ctx.engine.commitContainer({
    container,
    repo: ctx.query.get('repo') || undefined,
    tag: ctx.query.get('tag') || undefined,
    author: ctx.query.get('author') || undefined,
    comment: ctx.query.get('comment') || undefined,
    changes: ctx.query.getAll('changes').flatMap((c) => c.split('\n')),
    pause: queryBool(ctx.query, 'pause', true),
    config: Object.keys(body).length ? body : undefined,
  });
  sendJson(res(ctx), 201, result);
});

route('POST', `/containers/${id}/exec`, async (ctx) => {
  const exec = ctx.engine.containers.createExec(ctx.params.id!, await ctx.json());
  sendJson(res(ctx), 201, { Id: exec.ID });
});

route('POST', `/exec/${id}/start`, async (ctx) => {
  const body = await ctx.json();
  const exec = ctx.engine.containers.checkExecStartable(ctx.params.id!);
  if (body.Detach) {
    await ctx.engine.containers.startExec(exec.ID, undefined);
    if (ctx.res) sendEmpty(ctx.res, 200);
    else await takeOver(ctx).then((h) => h.end());
    return;
  }
  const h = await takeOver(ctx);
  const attacher = makeAttacher(h, { stdin: exec.OpenStdin, stdout: true, stderr: true, tty: exec.ProcessConfig.tty });
  await ctx.engine.containers.startExec(exec.ID, attacher);
});

route('POST', `/exec/${id}/resize`, async (ctx) => {
  await ctx.engine.containers.resizeExec(ctx.params.id!, parseSize(ctx.query));
  sendEmpty(res(ctx), 200);
});

route('GET', `/exec/${id}/json`, async (ctx) => {
  const exec = ctx.engine.containers.getExec(ctx.params.id!);
  const { session: _session, Env: _env, WorkingDir: _wd, ConsoleSize: _cs, ...view } = exec;
  sendJson(res(ctx), 200, view);
});

// ------------------------------------------------------------------ images

route('GET', '/images/json', async (ctx) =>
  sendJson(
    res(ctx),
    200,
    await ctx.engine.listImages({ all: queryBool(ctx.query, 'all'), filters: parseFilters(ctx.query.get('filters')), digests: queryBool(ctx.query, 'digests') }),
  ),
);

route('POST', '/images/create', async (ctx) => {
  const r = res(ctx);
  const fromSrc = ctx.query.get('fromSrc');
  const fromImage = ctx.query.get('fromImage');
  if (fromSrc !== null) {
    if (fromSrc !== '-') throw new BaleiaError('NotImplemented', `Cannot import from ${JSON.stringify(fromSrc)}: only "-" (the request body) is supported`);
    const image = await ctx.engine.importImage(ctx.req, {
      repo: ctx.query.get('repo') || undefined,
      tag: ctx.query.get('tag') || undefined,
      changes: ctx.query.getAll('changes'),
      message: ctx.query.get('message') ?? undefined,
    });
    startStream(r);
    r.end(JSON.stringify({ status: image.id }) + '\r\n');
    return;
  }
  if (fromImage) {
    const tag = ctx.query.get('tag');
    const ref = tag ? (tag.startsWith('sha256:') ? `${fromImage}@${tag}` : `${fromImage}:${tag}`) : fromImage;
    const abort = new AbortController();
    r.on('close', () => abort.abort());
    // Headers go out with the first progress message: an error before it is a plain status.
    let started = false;
    const write = (message: object) => {
      if (!started) {
        startStream(r);
        started = true;
      }
      r.write(JSON.stringify(message) + '\r\n');
    };
    try {
      await ctx.engine.pullImage(ref, {
        auth: decodeRegistryAuthHeader(headerValue(ctx.req.headers['x-registry-auth'])),
        platform: ctx.query.get('platform') || undefined,
        onProgress: write,
        signal: abort.signal,
      });
    } catch (err) {
      // The docker CLI answers a 401 here with an interactive login prompt; dockerd never sends
      // one for a pull (refused credentials are a plain error).
      if (!started) throw err instanceof BaleiaError && err.kind === 'Unauthorized' ? new BaleiaError('Forbidden', err.message, { cause: err }) : err;
      const message = describeError(err);
      write({ errorDetail: { message }, error: message });
    }
    if (!started) startStream(r);
    r.end();
    return;
  }
  throw invalidArgument('Cannot create image: fromImage or fromSrc is required');
});

route('POST', '/images/load', async (ctx) => {
  const loaded = await ctx.engine.loadImages(ctx.req);
  const r = res(ctx);
  startStream(r);
  for (const l of loaded)
    r.write(JSON.stringify({ stream: l.ref ? `Loaded image: ${l.ref}\n` : `Loaded image ID: ${l.id}\n` }) + '\r\n');
  r.end();
});

const save = async (ctx: RequestContext, names: string[]) => {
  if (names.length === 0) throw invalidArgument('Cannot save images: no image names given (?names=)');
  const stream = await ctx.engine.saveImages(names);
  const r = res(ctx);
  r.writeHead(200, { ...commonHeaders(), 'Content-Type': 'application/x-tar' });
  await pipeline(stream, r).catch((err) => {
    ctx.log.warn('Cannot send saved images', { err: describeError(err) });
    r.destroy();
  });
};
route('GET', '/images/get', async (ctx) => save(ctx, ctx.query.getAll('names')));
route('POST', '/images/prune', async (ctx) =>
  sendJson(res(ctx), 200, await ctx.engine.pruneImages(parseFilters(ctx.query.get('filters')))),
);
route('GET', '/images/search', async (ctx) => {
  const term = ctx.query.get('term');
  if (!term) throw invalidArgument('Cannot search: a term is required (?term=)');
  sendJson(res(ctx), 200, await ctx.engine.searchImages(term, {
    limit: queryInt(ctx.query, 'limit'),
    filters: parseFilters(ctx.query.get('filters')),
    auth: decodeRegistryAuthHeader(headerValue(ctx.req.headers['x-registry-auth'])),
  }));
});
route('GET', `/images/${name}/get`, async (ctx) => save(ctx, [ctx.params.name!]));
route('GET', `/images/${name}/json`, async (ctx) => sendJson(res(ctx), 200, await ctx.engine.inspectImage(ctx.params.name!)));
route('GET', `/images/${name}/history`, async (ctx) => sendJson(res(ctx), 200, await ctx.engine.imageHistory(ctx.params.name!)));
route('POST', `/images/${name}/tag`, async (ctx) => {
  const repo = ctx.query.get('repo');
  if (!repo) throw invalidArgument('Cannot tag image: a repository name is required (?repo=)');
  await ctx.engine.tagImage(ctx.params.name!, repo, ctx.query.get('tag') || undefined);
  sendEmpty(res(ctx), 201);
});
route('POST', `/images/${name}/push`, async (ctx) => {
  const r = res(ctx);
  const abort = new AbortController();
  r.on('close', () => abort.abort());
  startStream(r);
  const write = (message: object) => r.write(JSON.stringify(message) + '\r\n');
  try {
    const results = await ctx.engine.pushImage(ctx.params.name!, ctx.query.get('tag') || undefined, {
      auth: decodeRegistryAuthHeader(headerValue(ctx.req.headers['x-registry-auth'])),
      onProgress: write,
      signal: abort.signal,
    });
    for (const p of results) write({ progressDetail: {}, aux: { Tag: p.tag, Digest: p.digest, Size: p.size } });
  } catch (err) {
    const message = describeError(err);
    write({ errorDetail: { message }, error: message });
  }
  r.end();
});
route('DELETE', `/images/${name}`, async (ctx) =>
  sendJson(res(ctx), 200, await ctx.engine.removeImage(ctx.params.name!, { force: queryBool(ctx.query, 'force'), noprune: queryBool(ctx.query, 'noprune') })),
);

// ------------------------------------------------------------------ networks, volumes, plugins (built-ins until their issues land)

route('GET', '/networks', async (ctx) => sendJson(res(ctx), 200, await ctx.engine.networks.list(parseFilters(ctx.query.get('filters')))));
route('POST', '/networks/create', async (ctx) => sendJson(res(ctx), 201, await ctx.engine.createNetwork(await ctx.json())));
route('GET', `/networks/${id}`, async (ctx) => sendJson(res(ctx), 200, await ctx.engine.inspectNetwork(ctx.params.id!)));
route('DELETE', `/networks/${id}`, async (ctx) => {
  await ctx.engine.removeNetwork(ctx.params.id!);
  sendEmpty(res(ctx), 204);
});
route('POST', `/networks/${id}/connect`, async (ctx) => {
  const body = await ctx.json();
  if (typeof body.Container !== 'string' || !body.Container) throw invalidArgument('Cannot connect: a container is required ("Container")');
  await ctx.engine.containers.connectNetwork(body.Container, ctx.params.id!, (body.EndpointConfig as Record<string, unknown> | null) ?? {});
  sendEmpty(res(ctx), 200);
});
route('POST', `/networks/${id}/disconnect`, async (ctx) => {
  const body = await ctx.json();
  if (typeof body.Container !== 'string' || !body.Container) throw invalidArgument('Cannot disconnect: a container is required ("Container")');
  await ctx.engine.containers.disconnectNetwork(body.Container, ctx.params.id!, { force: Boolean(body.Force) });
  sendEmpty(res(ctx), 200);
});
route('POST', '/networks/prune', async (ctx) => sendJson(res(ctx), 200, await ctx.engine.networks.prune(parseFilters(ctx.query.get('filters')))));
route('POST', '/build/prune', async (ctx) => sendJson(res(ctx), 200, { CachesDeleted: null, SpaceReclaimed: 0 }));
route('POST', '/volumes/create', async (ctx) => sendJson(res(ctx), 201, await ctx.engine.createVolume(await ctx.json())));
route('GET', '/volumes', async (ctx) => sendJson(res(ctx), 200, await ctx.engine.listVolumes(parseFilters(ctx.query.get('filters')))));
route('POST', '/volumes/prune', async (ctx) => sendJson(res(ctx), 200, await ctx.engine.pruneVolumes(parseFilters(ctx.query.get('filters')))));
route('GET', `/volumes/${name}`, async (ctx) => sendJson(res(ctx), 200, await ctx.engine.inspectVolume(ctx.params.name!)));
route('DELETE', `/volumes/${name}`, async (ctx) => {
  await ctx.engine.removeVolume(ctx.params.name!, { force: queryBool(ctx.query, 'force') });
  sendEmpty(res(ctx), 204);
});
route('GET', '/plugins', async (ctx) => sendJson(res(ctx), 200, []));
route('GET', `/plugins/${name}/json`, async (ctx) => {
  throw new BaleiaError('NotFound', `plugin "${ctx.params.name}" not found`);
});

// ------------------------------------------------------------------ helpers

const headerValue = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** Takes over the connection: 101 with an Upgrade header, else a raw 200 (dockerode). */
async function takeOver(ctx: RequestContext): Promise<Hijacked> {
  if (ctx.upgrade) {
    await ctx.raw();
    return hijack(ctx.upgrade.socket, { upgrade: true, head: ctx.upgrade.head });
  }
  await ctx.raw();
  const socket = ctx.req.socket;
  // From here on node:http must not write on this socket: we own it.
  ctx.res?.detachSocket(socket);
  return hijack(socket, { upgrade: false });
}

function makeAttacher(h: Hijacked, options: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): Attacher {
  let ended = false;
  if (!options.stdin) h.socket.resume(); // discard; lets us see the client go away
  return {
    stdin: options.stdin,
    stdout: options.stdout,
    stderr: options.stderr,
    write: (stream, data) => {
      if (!ended) h.write(options.tty ? data : stdcopyFrame(stream, data));
    },
    end: () => {
      if (ended) return;
      ended = true;
      h.end();
    },
    onInput: (cb) => {
      h.socket.on('data', cb);
      h.socket.resume();
    },
    onInputEnd: (cb) => {
      h.socket.on('end', cb);
    },
    closed: h.closed,
  };
}

function parseSize(query: URLSearchParams): { width: number; height: number } {
  const h = Number(query.get('h'));
  const w = Number(query.get('w'));
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0)
    throw invalidArgument(`Cannot resize: invalid size h=${JSON.stringify(query.get('h'))} w=${JSON.stringify(query.get('w'))}`);
  return { width: w, height: h };
}

/** `since`/`until` of logs: unix seconds with an optional fraction; 0 or empty means unset. */
function parseUnixSeconds(v: string | null): number | undefined {
  if (v === null || v === '' || v === '0') return undefined;
  const n = Number(v);
  if (Number.isFinite(n)) return n;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidArgument(`Invalid time value ${JSON.stringify(v)}: use unix seconds or RFC 3339`);
  return t / 1000;
}

/** Events' since/until in nanoseconds. */
function parseEventTime(v: string | null): number | undefined {
  const s = parseUnixSeconds(v);
  return s === undefined ? undefined : Math.round(s * 1e9);
}

/** RFC3339 with exactly nine fraction digits, as the docker CLI prints with `-t`. */
function nanoTime(time: string): string {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(time);
  if (!m) return time;
  const base = m[3] === 'Z' ? m[1] : new Date(time).toISOString().slice(0, 19);
  return `${base}.${(m[2] ?? '').padEnd(9, '0').slice(0, 9)}Z`;
}

function eventMatcher(filters: Map<string, string[]>): (e: EngineEvent) => boolean {
  return (e) => {
    const any = (key: string, test: (v: string) => boolean) => {
      const values = filters.get(key);
      return !values || values.length === 0 || values.some(test);
    };
    const attrs = e.Actor.Attributes;
    return (
      any('type', (v) => e.Type === v) &&
      any('event', (v) => e.Action === v || e.Action.startsWith(`${v}:`)) &&
      any('container', (v) => e.Type === 'container' && (e.Actor.ID.startsWith(v) || attrs.name === v)) &&
      any('image', (v) => (e.Type === 'image' && (e.Actor.ID === v || attrs.name === v)) || attrs.image === v) &&
      any('network', (v) => e.Type === 'network' && (e.Actor.ID.startsWith(v) || attrs.name === v)) &&
      any('volume', (v) => e.Type === 'volume' && (e.Actor.ID === v)) &&
      any('label', (v) => {
        const eq = v.indexOf('=');
        return eq < 0 ? v in attrs : attrs[v.slice(0, eq)] === v.slice(eq + 1);
      }) &&
      any('scope', (v) => v === 'local') &&
      any('daemon', () => e.Type === 'daemon')
    );
  };
}
