import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { isKind } from '../lib/index.js';
import { demuxStdcopy, EngineClient, EngineResponseError, encodeQuery, JsonSplitter, parseHost, stdcopyFrame, type StdStream } from './client.js';

test('stdcopy frames are demultiplexed across chunk boundaries', async () => {
  const source = new PassThrough();
  const frames: Array<[StdStream, string]> = [];
  const done = demuxStdcopy(source, (s, p) => frames.push([s, p.toString()]));
  const bytes = Buffer.concat([stdcopyFrame(1, 'hi\n'), stdcopyFrame(2, 'oops\n'), stdcopyFrame(1, '')]);
  for (let i = 0; i < bytes.length; i += 3) source.write(bytes.subarray(i, i + 3));
  source.end();
  await done;
  assert.deepEqual(frames, [[1, 'hi\n'], [2, 'oops\n'], [1, '']]);
});

test('a frame header is [stream,0,0,0,len32be]', () => {
  assert.deepEqual([...stdcopyFrame(1, 'hi\n')], [1, 0, 0, 0, 0, 0, 0, 3, 104, 105, 10]);
});

test('an unknown stream byte is an error', async () => {
  const source = new PassThrough();
  const done = demuxStdcopy(source, () => {});
  source.end(Buffer.from('hello world, raw'));
  await assert.rejects(done, /unrecognised stream byte/);
});

test('JSON values are split whether or not newlines separate them', () => {
  const s = new JsonSplitter();
  assert.deepEqual(s.push('{"a":1}\r\n{"b":"}{'), ['{"a":1}']);
  assert.deepEqual(s.push('"}{"c":[1,{"d":2}]}'), ['{"b":"}{"}', '{"c":[1,{"d":2}]}']);
});

test('queries repeat array keys and encode booleans as 1/0', () => {
  assert.equal(encodeQuery({ a: true, b: undefined, names: ['x', 'y z'], f: '{"k":{"v":true}}' }), '?a=1&names=x&names=y%20z&f=%7B%22k%22%3A%7B%22v%22%3Atrue%7D%7D');
  assert.equal(encodeQuery({}), '');
});

test('hosts are unix paths or tcp addresses', () => {
  assert.deepEqual(parseHost('unix:///run/x.sock'), { socketPath: '/run/x.sock' });
  assert.deepEqual(parseHost('tcp://127.0.0.1:2375'), { hostname: '127.0.0.1', port: 2375 });
  assert.throws(() => parseHost('ftp://x'), /Cannot use host/);
});

// A small real server on a unix socket, answering like the daemon would.
let dir: string;
let server: http.Server;
let socketPath: string;
const seen: string[] = [];

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'baleia-client-'));
  socketPath = path.join(dir, 'api.sock');
  server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url === '/_ping') {
      res.writeHead(200, { 'Api-Version': '1.43', 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : 'OK');
      return;
    }
    if (req.url?.startsWith('/v1.41/containers/missing/json')) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ message: 'No such container: missing' }));
      return;
    }
    if (req.url === '/v1.41/containers/running/start') {
      res.writeHead(304);
      res.end();
      return;
    }
    if (req.url === '/v1.41/echo') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ type: req.headers['content-type'], body: Buffer.concat(chunks).toString() }));
      });
      return;
    }
    if (req.url === '/v1.41/progress') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"status":"one"}\r\n');
      res.end('{"status":"two"}\r\n');
      return;
    }
    res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end('boom');
  });
  server.on('upgrade', (req, socket) => {
    seen.push(`UPGRADE ${req.method} ${req.url}`);
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      socket.end(stdcopyFrame(1, `got ${Buffer.concat(chunks).toString()}`));
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

test('the version is negotiated down to 1.41 with one HEAD /_ping', async () => {
  const client = new EngineClient({ host: `unix://${socketPath}` });
  await client.json('POST', '/echo', { body: { a: 1 } });
  assert.equal(client.apiVersion, '1.41');
  assert.equal(seen.filter((s) => s === 'HEAD /_ping').length >= 1, true);
  client.close();
});

test('JSON bodies are sent with their content type', async () => {
  const client = new EngineClient({ host: `unix://${socketPath}` });
  const echo = await client.json<{ type: string; body: string }>('POST', '/echo', { body: { Image: 'busybox' } });
  assert.deepEqual(echo, { type: 'application/json', body: '{"Image":"busybox"}' });
  client.close();
});

test('error statuses become errors with the daemon message and a kind', async () => {
  const client = new EngineClient({ host: `unix://${socketPath}` });
  await assert.rejects(client.json('GET', '/containers/missing/json'), (err: unknown) => {
    assert.ok(err instanceof EngineResponseError);
    assert.equal(err.status, 404);
    assert.equal(err.message, 'No such container: missing');
    return isKind(err, 'NotFound');
  });
  await assert.rejects(client.call('POST', '/containers/running/start'), (err: unknown) => isKind(err, 'NotModified'));
  await assert.rejects(client.call('GET', '/other'), (err: unknown) => isKind(err, 'Internal') && (err as Error).message === 'boom');
  client.close();
});

test('progress streams yield each message', async () => {
  const client = new EngineClient({ host: `unix://${socketPath}` });
  const statuses: string[] = [];
  for await (const m of client.stream<{ status: string }>('POST', '/progress')) statuses.push(m.status);
  assert.deepEqual(statuses, ['one', 'two']);
  client.close();
});

test('hijack answers a raw socket that survives our half-close', async () => {
  const client = new EngineClient({ host: `unix://${socketPath}` });
  const socket = await client.hijack('POST', '/containers/x/attach', { query: { stream: 1, stdin: 1 } });
  const frames: string[] = [];
  const done = demuxStdcopy(socket, (_s, p) => frames.push(p.toString()));
  socket.end('input');
  await done;
  assert.deepEqual(frames, ['got input']);
  assert.ok(seen.includes('UPGRADE POST /v1.41/containers/x/attach?stream=1&stdin=1'));
  client.close();
});

test('an absent socket is Unavailable', async () => {
  const client = new EngineClient({ host: `unix://${path.join(dir, 'nope.sock')}` });
  await assert.rejects(client.ping(), (err: unknown) => isKind(err, 'Unavailable'));
});
