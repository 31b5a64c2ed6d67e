/**
 * Client auth: X-Registry-Auth decoding, WWW-Authenticate parsing, and Docker's token flow and
 * HTTP Basic against our registry (its `authorize` hook) with a token server written here.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isKind } from '../lib/index.js';
import { decodeRegistryAuthHeader, parseChallenges } from './auth.js';
import { RegistryClient } from './client.js';
import { importImage, newStores } from './client-testing.js';
import { registryError } from './errors.js';
import { startRegistry, type TestRegistry } from './testing.js';

const b64url = (s: string) => Buffer.from(s).toString('base64url');
const b64 = (s: string) => Buffer.from(s).toString('base64');

test('decodeRegistryAuthHeader reads every encoder and treats garbage as anonymous', () => {
  const creds = { username: 'user1', password: 'pass1', serveraddress: 'localhost:5000' };
  // A password whose base64 has '+' and '/' and needs padding.
  const tricky = { username: 'u', password: '>>>???~~~\u00ff', serveraddress: 'r.example' };
  const trickyJson = JSON.stringify(tricky);
  assert.match(b64(trickyJson), /[+/]/);
  const table: Array<[string | undefined, object]> = [
    // the CLI: URL-safe with padding (engine-api.md §5, observed)
    ['eyJ1c2VybmFtZSI6InVzZXIxIiwicGFzc3dvcmQiOiJwYXNzMSIsInNlcnZlcmFkZHJlc3MiOiJsb2NhbGhvc3Q6NTAwMCJ9', creds],
    // docker-py urlsafe_b64encode (padded) and unpadded variants
    [b64(trickyJson).replace(/\+/g, '-').replace(/\//g, '_'), tricky],
    [b64url(trickyJson), tricky],
    // dockerode: standard base64 with +/ swapped; and plain standard base64
    [b64(trickyJson), tricky],
    ['e30=', {}],
    ['e30', {}],
    [b64url('{"identitytoken":"tok","username":"","auth":"dTpw"}'), { identitytoken: 'tok', auth: 'dTpw' }],
    [undefined, {}],
    ['', {}],
    ['not base64 at all!', {}],
    ['%%%', {}],
    [b64url('not json'), {}],
    [b64url('[1,2]'), {}],
    [b64url('"str"'), {}],
    [b64url('{"username":5}'), {}],
    ['a', {}],
  ];
  for (const [header, expected] of table) assert.deepEqual(decodeRegistryAuthHeader(header), expected, `header ${header}`);
});

test('parseChallenges reads Bearer and Basic challenges with quoted parameters', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  assert.deepEqual(parseChallenges('Basic realm="a, b", Bearer realm="https://x/t",scope="repository:a:pull,push",error="insufficient_scope"'), [
    { scheme: 'basic', params: { realm: 'a, b' } },
    { scheme: 'bearer', params: { realm: 'https://x/t', scope: 'repository:a:pull,push', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseChallenges(['Bearer realm=https://x/t', 'Basic']), [
    { scheme: 'bearer', params: { realm: 'https://x/t' } },
    { scheme: 'basic', params: {} },
  ]);
  assert.deepEqual(parseChallenges(undefined), []);
});

interface TokenServer {
  url: string;
  requests: Array<{ method: string; scopes: string[]; user?: string; offline: boolean }>;
}

/**
 * A token server in the manner of Docker's: GET /token?service&scope… with Basic credentials (or
 * none), POST /token with a refresh token; alice/secret gets every scope she asks for, anonymous
 * gets pull on public/*. Tokens are random and remembered with what they grant.
 */
async function startTokenServer(t: TestContext, grants: Map<string, Set<string>>): Promise<TokenServer> {
  const refreshTokens = new Map<string, string>();
  const requests: TokenServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      let user: string | undefined;
      let scopes: string[];
      let offline = false;
      if (req.method === 'POST') {
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        user = refreshTokens.get(form.get('refresh_token') ?? '');
        if (form.get('grant_type') !== 'refresh_token' || !user) {
          res.writeHead(401).end();
          return;
        }
        scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      } else {
        scopes = url.searchParams.getAll('scope');
        offline = url.searchParams.get('offline_token') === 'true';
        const header = req.headers.authorization;
        if (header) {
          const [name, password] = Buffer.from(header.replace(/^Basic /, ''), 'base64').toString().split(':');
          if (name !== 'alice' || password !== 'secret') {
            res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"incorrect username or password"}');
            return;
          }
          user = name;
        }
      }
      requests.push({ method: req.method!, scopes, user, offline });
      const granted = new Set<string>();
      for (const scope of scopes) {
        const [type, name, actions] = scope.split(':');
        if (type !== 'repository' || !name || !actions) continue;
        for (const action of actions.split(',')) {
          if (user === 'alice' || (action === 'pull' && name.startsWith('public/'))) granted.add(`${name}:${action}`);
        }
      }
      const token = randomBytes(16).toString('hex');
      grants.set(token, granted);
      const body: Record<string, unknown> = { token, expires_in: 300 };
      if (offline && user) {
        const refresh = randomBytes(16).toString('hex');
        refreshTokens.set(refresh, user);
        body.refresh_token = refresh;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, requests };
}

/** Our registry demanding bearer tokens from `tokens` for every request, /v2/ included. */
async function tokenRegistry(t: TestContext): Promise<{ registry: TestRegistry; tokens: TokenServer }> {
  const grants = new Map<string, Set<string>>();
  const tokens = await startTokenServer(t, grants);
  const registry = await startRegistry({
    authorize: ({ name, action, from, headers }) => {
      const token = /^Bearer (\S+)$/.exec(headers.authorization ?? '')?.[1];
      const granted = token ? grants.get(token) : undefined;
      const needed = action === 'base' || action === 'catalog' ? [] : [`${name}:${action === 'delete' ? 'delete' : action}`];
      if (from) needed.push(`${from}:pull`);
      if (granted && needed.every((n) => granted.has(n))) return;
      const scope = name ? ` ,scope="repository:${name}:${action === 'push' ? 'pull,push' : action}"`.replace(' ,', ',') : '';
      throw registryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate': `Bearer realm="${tokens.url}",service="baleia-test"${scope}` } });
    },
  });
  t.after(() => registry.close());
  return { registry, tokens };
}

test('the bearer token flow: credentials get a token per scope, cached; wrong or missing credentials are Unauthorized', async (t) => {
  const { registry: r, tokens } = await tokenRegistry(t);
  const a = await newStores(t, 'a');
  const b = await newStores(t, 'b');
  const ref = `${r.address}/private/app:1`;
  const id = await importImage(a, ref);
  const alice = { username: 'alice', password: 'secret', serveraddress: r.address };
  const client = new RegistryClient({});

  await assert.rejects(client.push(ref, { images: a.images, content: a.content }), (err: Error) => isKind(err, 'Unauthorized'));
  await assert.rejects(
    client.push(ref, { images: a.images, content: a.content, auth: { ...alice, password: 'wrong' } }),
    (err: Error) => isKind(err, 'Unauthorized') && /incorrect username or password/.test(err.message),
  );
  tokens.requests.length = 0;
  const pushed = await client.push(ref, { images: a.images, content: a.content, auth: alice });
  assert.match(pushed.digest, /^sha256:/);
  // One token for the push scope serves every blob and the manifest.
  assert.deepEqual(tokens.requests.map((q) => q.scopes.join(' ')), ['repository:private/app:pull,push']);

  await assert.rejects(client.pull(ref, { images: b.images, content: b.content }), (err: Error) => {
    assert.ok(isKind(err, 'Unauthorized'), String(err));
    assert.match(err.message, new RegExp(`^pull access denied for ${r.address}/private/app, repository does not exist or may require 'docker login': `));
    return true;
  });
  await assert.rejects(
    client.pull(ref, { images: b.images, content: b.content, auth: { ...alice, password: 'nope' } }),
    (err: Error) => isKind(err, 'Unauthorized'),
  );
  // `auth` (base64 user:pass, as config.json stores it) works like username/password.
  const record = await client.pull(ref, { images: b.images, content: b.content, auth: { auth: Buffer.from('alice:secret').toString('base64') } });
  assert.equal(record.id, id);

  // Anonymous tokens reach public repositories.
  await a.images.tag(id, `${r.address}/public/app:1`);
  await client.push(`${r.address}/public/app:1`, { images: a.images, content: a.content, auth: alice });
  const c = await newStores(t, 'c');
  assert.equal((await client.pull(`${r.address}/public/app:1`, { images: c.images, content: c.content })).id, id);
});

test('login checks credentials with the token server and returns its refresh token as the identity token', async (t) => {
  const { registry: r, tokens } = await tokenRegistry(t);
  const client = new RegistryClient({});
  const ok = await client.login({ username: 'alice', password: 'secret', serveraddress: r.address });
  assert.equal(ok.status, 'Login Succeeded');
  assert.match(ok.identityToken, /^[0-9a-f]{32}$/);
  assert.ok(tokens.requests.some((q) => q.offline && q.user === 'alice'));
  await assert.rejects(client.login({ username: 'alice', password: 'bad', serveraddress: r.address }), (err: Error) => isKind(err, 'Unauthorized'));
  await assert.rejects(client.login({ serveraddress: `http://${r.address}/v2/` }), (err: Error) => isKind(err, 'Unauthorized'));

  // The identity token alone authenticates (OAuth refresh-token grant).
  const a = await newStores(t, 'a');
  const ref = `${r.address}/private/idt:1`;
  await importImage(a, ref);
  tokens.requests.length = 0;
  await client.push(ref, { images: a.images, content: a.content, auth: { identitytoken: ok.identityToken, serveraddress: r.address } });
  assert.ok(tokens.requests.length > 0 && tokens.requests.every((q) => q.method === 'POST' && q.user === 'alice'));
});

test('HTTP Basic registries get the credentials; a wrong password is Unauthorized', async (t) => {
  const good = `Basic ${Buffer.from('bob:hunter2').toString('base64')}`;
  const r = await startRegistry({
    authorize: ({ headers }) => {
      if (headers.authorization !== good) throw registryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate': 'Basic realm="baleia-test"' } });
    },
  });
  t.after(() => r.close());
  const a = await newStores(t, 'a');
  const b = await newStores(t, 'b');
  const ref = `${r.address}/basic/app:1`;
  const id = await importImage(a, ref);
  const bob = { username: 'bob', password: 'hunter2', serveraddress: r.address };
  const client = new RegistryClient({});
  await client.push(ref, { images: a.images, content: a.content, auth: bob });
  assert.equal((await client.pull(ref, { images: b.images, content: b.content, auth: bob })).id, id);
  await assert.rejects(client.pull(ref, { images: b.images, content: b.content, auth: { ...bob, password: 'x' } }), (err: Error) => isKind(err, 'Unauthorized'));
  assert.deepEqual(await client.login(bob), { status: 'Login Succeeded', identityToken: '' });
  await assert.rejects(client.login({ ...bob, password: 'x' }), (err: Error) => {
    assert.ok(isKind(err, 'Unauthorized'));
    assert.equal(err.message, `login attempt to http://${r.address}/v2/ failed with status: 401 Unauthorized`);
    return true;
  });
});

test('login to a registry without auth succeeds for anyone', async (t) => {
  const r = await startRegistry();
  t.after(() => r.close());
  assert.deepEqual(await new RegistryClient({}).login({ username: 'x', password: 'y', serveraddress: r.address }), {
    status: 'Login Succeeded',
    identityToken: '',
  });
});
