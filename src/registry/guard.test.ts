/**
 * Registry auth end to end: our server with htpasswd users, access rules and its own token
 * endpoint, driven by the real RegistryClient (push, pull, login) and by raw HTTP for the wire
 * details (challenges, token answers, refresh tokens, Basic mode).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isKind } from '../lib/index.js';
import { parseChallenges } from './auth.js';
import { RegistryClient } from './client.js';
import { importImage, newStores } from './client-testing.js';
import { basic, startHub } from './hub-testing.js';

const users = { alice: 'alice-secret', bob: 'bob-secret' };
const access = [
  { user: 'alice', repos: 'team/*', actions: ['pull', 'push'] },
  { user: 'bob', repos: 'team/*', actions: ['pull'] },
];

test('the token flow lets the right password push and pull, refuses a wrong one, and a read-only user cannot push', async (t) => {
  const hub = await startHub(t, { users, access });
  const a = await newStores(t, 'auth-a');
  const b = await newStores(t, 'auth-b');
  const ref = `${hub.address}/team/app:1`;
  await importImage(a, ref);
  const client = new RegistryClient({});

  await assert.rejects(client.push(ref, { images: a.images, content: a.content }), (err) => isKind(err, 'Unauthorized'));
  await assert.rejects(
    client.push(ref, { images: a.images, content: a.content, auth: { username: 'alice', password: 'wrong' } }),
    (err) => isKind(err, 'Unauthorized') && /incorrect username or password/.test((err as Error).message),
  );
  const pushed = await client.push(ref, { images: a.images, content: a.content, auth: { username: 'alice', password: users.alice } });
  assert.match(pushed.digest, /^sha256:/);

  const record = await client.pull(ref, { images: b.images, content: b.content, auth: { username: 'bob', password: users.bob } });
  assert.ok(record.repoDigests.some((d) => d.endsWith(pushed.digest)));
  await importImage(b, `${hub.address}/team/other:1`, 'bob');
  await assert.rejects(
    new RegistryClient({}).push(`${hub.address}/team/other:1`, { images: b.images, content: b.content, auth: { username: 'bob', password: users.bob } }),
    (err) => isKind(err, 'Forbidden') && /denied/.test((err as Error).message),
  );
  await assert.rejects(new RegistryClient({}).pull(ref, { images: b.images, content: b.content }), (err) => isKind(err, 'Unauthorized'));

  await client.login({ username: 'alice', password: users.alice, serveraddress: hub.address });
  await assert.rejects(client.login({ username: 'alice', password: 'nope', serveraddress: hub.address }), (err) => isKind(err, 'Unauthorized'));
});

test('anonymous pull works only when allowed, and /v2/ still challenges anonymous requests', async (t) => {
  const hub = await startHub(t, { users, access, auth: { allowAnonymousPull: true } });
  const a = await newStores(t, 'anon-a');
  const b = await newStores(t, 'anon-b');
  const ref = `${hub.address}/team/app:latest`;
  await importImage(a, ref);
  const client = new RegistryClient({});
  await client.push(ref, { images: a.images, content: a.content, auth: { username: 'alice', password: users.alice } });
  await client.pull(ref, { images: b.images, content: b.content });
  await importImage(b, `${hub.address}/team/app:anon`, 'anon');
  await assert.rejects(client.push(`${hub.address}/team/app:anon`, { images: b.images, content: b.content }), (err) => isKind(err, 'Unauthorized'));

  const base = await hub.request('GET', '/v2/');
  assert.equal(base.status, 401);
  assert.equal(base.code, 'UNAUTHORIZED');
  const [challenge] = parseChallenges(base.headers['www-authenticate']);
  assert.equal(challenge?.scheme, 'bearer');
  assert.equal(challenge?.params.realm, `http://${hub.address}/token`);
  assert.equal(challenge?.params.service, 'baleia-registry');
  const manifest = await hub.request('PUT', '/v2/team/app/manifests/x', { body: '{}' });
  assert.equal(parseChallenges(manifest.headers['www-authenticate'])[0]?.params.scope, 'repository:team/app:pull,push');
});

test('the token endpoint narrows scopes to the rules, issues refresh tokens and takes them back by POST', async (t) => {
  const hub = await startHub(t, { users, access: 'rules:\n  - {user: bob, repos: "team/*", actions: [pull]}\n  - {user: "*", repos: "pub/*", actions: ["*"]}\n' });
  const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string; access: unknown[] };

  const got = await hub.request('GET', '/token?service=baleia-registry&scope=repository:team/app:pull,push&scope=repository:pub/x:pull,push,delete&offline_token=true&client_id=docker', {
    headers: { Authorization: basic('bob', users.bob) },
  });
  assert.equal(got.status, 200);
  const body = got.json<{ token: string; access_token: string; expires_in: number; refresh_token: string }>();
  assert.equal(body.token, body.access_token);
  assert.equal(body.expires_in, 300);
  assert.deepEqual(claims(body.token).access, [
    { type: 'repository', name: 'team/app', actions: ['pull'] },
    { type: 'repository', name: 'pub/x', actions: ['pull', 'push', 'delete'] },
  ]);
  assert.equal((await hub.request('GET', '/v2/team/app/tags/list', { headers: { Authorization: `Bearer ${body.token}` } })).code, 'NAME_UNKNOWN');
  assert.equal((await hub.request('GET', '/v2/', { headers: { Authorization: `Bearer ${body.token}` } })).status, 200);
  const forged = body.token.slice(0, -4) + (body.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  assert.equal((await hub.request('GET', '/v2/', { headers: { Authorization: `Bearer ${forged}` } })).status, 401);
  assert.equal((await hub.request('GET', '/v2/', { headers: { Authorization: `Bearer ${body.refresh_token}` } })).status, 401);

  const form = (fields: Record<string, string>) => ({
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  const refreshed = await hub.request('POST', '/token', form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: 'baleia-registry', scope: 'repository:team/app:pull', client_id: 'docker' }));
  assert.equal(refreshed.status, 200);
  assert.equal(claims(refreshed.json<{ access_token: string }>().access_token).sub, 'bob');
  assert.equal(refreshed.json<{ scope: string }>().scope, 'repository:team/app:pull');
  const password = await hub.request('POST', '/token', form({ grant_type: 'password', username: 'bob', password: 'bad', service: 'baleia-registry' }));
  assert.equal(password.status, 401);
  assert.equal(password.json<{ error: string }>().error, 'invalid_grant');
  assert.equal((await hub.request('GET', '/token?service=baleia-registry', { headers: { Authorization: basic('bob', 'bad') } })).status, 401);
  assert.equal((await hub.request('GET', '/token?service=other')).status, 400);
  const anonymous = await hub.request('GET', '/token?service=baleia-registry&scope=repository:team/app:pull');
  assert.deepEqual(claims(anonymous.json<{ token: string }>().token).access, [{ type: 'repository', name: 'team/app', actions: [] }]);
});

test('basic mode checks the password on each request and refuses a read-only user push with DENIED', async (t) => {
  const hub = await startHub(t, { users, access, auth: { mode: 'basic' } });
  const a = await newStores(t, 'basic-a');
  const ref = `${hub.address}/team/app:1`;
  await importImage(a, ref);
  const anonymous = await hub.request('GET', '/v2/');
  assert.equal(anonymous.status, 401);
  assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm="baleia-registry"/);
  assert.equal((await hub.request('GET', '/v2/', { headers: { Authorization: basic('alice', 'x') } })).status, 401);
  assert.equal((await hub.request('GET', '/v2/', { headers: { Authorization: basic('alice', users.alice) } })).status, 200);
  assert.equal((await hub.request('GET', '/token')).status, 404);
  const client = new RegistryClient({});
  await client.push(ref, { images: a.images, content: a.content, auth: { username: 'alice', password: users.alice } });
  const denied = await hub.request('POST', '/v2/team/app/blobs/uploads/', { headers: { Authorization: basic('bob', users.bob) } });
  assert.equal(denied.status, 403);
  assert.equal(denied.code, 'DENIED');
  assert.equal((await hub.request('GET', '/v2/team/app/tags/list', { headers: { Authorization: basic('bob', users.bob) } })).status, 200);
});
