import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkEnv, linkHostsEntry, parseLink, storedLink } from './links.js';

test('parseLink reads the CLI and the stored forms; storedLink writes what inspect shows', () => {
  assert.deepEqual(parseLink('db'), { name: 'db', alias: 'db' });
  assert.deepEqual(parseLink('db:sql'), { name: 'db', alias: 'sql' });
  assert.deepEqual(parseLink('/db:/web/sql'), { name: 'db', alias: 'sql' });
  assert.equal(storedLink({ name: 'db', alias: 'sql' }, '/web'), '/db:/web/sql');
  for (const bad of ['', ':x', 'db:', 'db:-bad', 'db:a b']) assert.throws(() => parseLink(bad), /invalid link/, bad);
});

test('linkEnv: name, ports by number (the lowest is the main one), the linked env without HOME/PATH', () => {
  const link = { name: 'db', alias: 'my-sql', id: 'a'.repeat(64), ip: '10.0.0.5', exposedPorts: ['8080/tcp', '53/udp'], env: ['PATH=/bin', 'HOME=/root', 'PASS=x=y', 'junk'] };
  assert.deepEqual(linkEnv(link, '/web'), [
    'MY_SQL_NAME=/web/my-sql',
    'MY_SQL_PORT=udp://10.0.0.5:53',
    'MY_SQL_PORT_53_UDP=udp://10.0.0.5:53', 'MY_SQL_PORT_53_UDP_ADDR=10.0.0.5', 'MY_SQL_PORT_53_UDP_PORT=53', 'MY_SQL_PORT_53_UDP_PROTO=udp',
    'MY_SQL_PORT_8080_TCP=tcp://10.0.0.5:8080', 'MY_SQL_PORT_8080_TCP_ADDR=10.0.0.5', 'MY_SQL_PORT_8080_TCP_PORT=8080', 'MY_SQL_PORT_8080_TCP_PROTO=tcp',
    'MY_SQL_ENV_PASS=x=y',
  ]);
  assert.deepEqual(linkEnv({ ...link, exposedPorts: [], env: [] }, '/web'), ['MY_SQL_NAME=/web/my-sql']);
});

test('linkHostsEntry: alias, short id and name, each once', () => {
  const id = 'b'.repeat(64);
  assert.deepEqual(linkHostsEntry({ name: 'db', alias: 'sql', id, ip: '10.0.0.5', exposedPorts: [], env: [] }), { ip: '10.0.0.5', name: `sql ${id.slice(0, 12)} db` });
  assert.deepEqual(linkHostsEntry({ name: 'db', alias: 'db', id, ip: '10.0.0.5', exposedPorts: [], env: [] }), { ip: '10.0.0.5', name: `db ${id.slice(0, 12)}` });
});
