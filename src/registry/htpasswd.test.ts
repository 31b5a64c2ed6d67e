import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { isKind } from '../lib/index.js';
import { AccessPolicy, parseAccessRules } from './access.js';
import { addUser, Htpasswd, parseHtpasswd } from './htpasswd.js';
import { tempDir } from './testing.js';

test('htpasswd round trip: users added with bcrypt verify, replace, survive a reload and read back in the apache format', async (t) => {
  const dir = await tempDir('htpasswd');
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'auth', 'users.htpasswd');
  assert.deepEqual(await addUser(file, 'alice', 'pa:ss word', { cost: 4 }), { replaced: false });
  await addUser(file, 'bob', 'hunter2', { cost: 4 });
  const text = await fs.readFile(file, 'utf8');
  assert.match(text, /^alice:\$2y\$04\$[./A-Za-z0-9]{53}\nbob:\$2y\$04\$/);
  assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
  assert.ok(await bcrypt.compare('hunter2', parseHtpasswd(text).get('bob')!));

  const users = await Htpasswd.open(file);
  assert.deepEqual(users.users, ['alice', 'bob']);
  assert.equal(await users.verify('alice', 'pa:ss word'), true);
  assert.equal(await users.verify('alice', 'pa:ss word'), true);
  assert.equal(await users.verify('alice', 'wrong'), false);
  assert.equal(await users.verify('carol', 'hunter2'), false);

  assert.deepEqual(await addUser(file, 'alice', 'new', { cost: 4 }), { replaced: true });
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(await users.verify('alice', 'pa:ss word'), false);
  assert.equal(await users.verify('alice', 'new'), true);

  // A hash made by `htpasswd -B` (Apache, $2y$) verifies too.
  await fs.appendFile(file, `carol:${(await bcrypt.hash('c', 4)).replace('$2b$', '$2y$')}\n`);
  assert.equal(await (await Htpasswd.open(file)).verify('carol', 'c'), true);
  await assert.rejects(addUser(file, 'bad:name', 'x'), (err) => isKind(err, 'InvalidArgument'));
  await fs.writeFile(path.join(dir, 'md5'), 'dave:$apr1$abc$def\n');
  await assert.rejects(Htpasswd.open(path.join(dir, 'md5')), /expected "name:<bcrypt hash>"/);
});

test('access rules add up per user and glob, with anonymous and any-user entries', () => {
  const rules = parseAccessRules([
    { user: 'alice', repos: 'team/*', actions: ['pull', 'push'] },
    { users: ['bob'], repos: ['team/app'], actions: ['*'] },
    { user: '*', repos: 'pub/*', actions: 'pull' },
  ]);
  const policy = new AccessPolicy({ rules, allowAnonymousPull: false });
  assert.deepEqual(policy.actionsOf('alice', 'team/a/b'), ['pull', 'push']);
  assert.deepEqual(policy.actionsOf('bob', 'team/app'), ['pull', 'push', 'delete']);
  assert.deepEqual(policy.actionsOf('bob', 'team/other'), []);
  assert.deepEqual(policy.actionsOf('carol', 'pub/x'), ['pull']);
  assert.deepEqual(policy.actionsOf(undefined, 'pub/x'), []);
  assert.deepEqual(new AccessPolicy({ rules, allowAnonymousPull: true }).actionsOf(undefined, 'anything'), ['pull']);
  assert.deepEqual(new AccessPolicy().actionsOf('anyone', 'x'), ['pull', 'push', 'delete']);
  assert.deepEqual(policy.grant('alice', ['repository:team/x:pull,push,delete', 'registry:catalog:*']), [
    { type: 'repository', name: 'team/x', actions: ['pull', 'push'] },
    { type: 'registry', name: 'catalog', actions: ['*'] },
  ]);
  assert.throws(() => parseAccessRules([{ user: 'a', repos: 'x', actions: ['write'] }]), /unknown action "write"/);
});
