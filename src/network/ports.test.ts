import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { BaleiaError } from '../lib/index.js';
import { planPorts, reserveSpec } from './ports.js';

test('planPorts reads PortBindings, ranges, exposed ports and -P', () => {
  const plan = planPorts(
    { '80/tcp': [{ HostIp: '', HostPort: '8080' }, { HostIp: '127.0.0.1', HostPort: '' }], '53/udp': [{ HostPort: '5300-5310' }], '9000': null },
    { exposed: ['80/tcp', '443/tcp', '7/udp'], publishAll: false },
  );
  assert.deepEqual(
    plan.specs.map((s) => `${s.key} ${s.hostIp} ${s.hostPorts.join('-')}`).sort(),
    ['53/udp 0.0.0.0 5300-5310', '80/tcp 0.0.0.0 8080-8080', '80/tcp 127.0.0.1 0-0', '9000/tcp 0.0.0.0 0-0'],
  );
  assert.deepEqual(plan.unpublished, ['443/tcp', '7/udp']);
  const all = planPorts({}, { exposed: ['443/tcp'], publishAll: true });
  assert.deepEqual(all.specs.map((s) => s.key), ['443/tcp']);
});

test('planPorts refuses bad keys, host ports and host addresses', () => {
  const kind = (k: string) => (err: unknown) => err instanceof BaleiaError && err.kind === k;
  assert.throws(() => planPorts({ '0/tcp': [] }, {}), kind('InvalidArgument'));
  assert.throws(() => planPorts({ '80/tcp': [{ HostPort: '9-1' }] }, {}), kind('InvalidArgument'));
  assert.throws(() => planPorts({ '80/tcp': [{ HostIp: 'nope' }] }, {}), kind('InvalidArgument'));
  assert.throws(() => planPorts({ '80/tcp': [{ HostIp: '::1' }] }, {}), kind('NotImplemented'));
  assert.throws(() => planPorts({ '80/sctp': [] }, {}), kind('NotImplemented'));
});

test('reserveSpec takes the next free port of a range and a random one at or above 32768', async () => {
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as net.AddressInfo).port;
  try {
    const r = await reserveSpec({ proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPorts: [port, port + 1] }, () => false).catch(() => undefined);
    if (r) {
      assert.equal(r.hostPort, port + 1);
      await r.close();
    }
    const random = await reserveSpec({ proto: 'udp', containerPort: 53, hostIp: '127.0.0.1', hostPorts: [0, 0] }, () => false);
    assert.ok(random.hostPort >= 32768);
    await random.close();
    await assert.rejects(
      reserveSpec({ proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPorts: [port, port] }, () => false),
      (err: unknown) => err instanceof BaleiaError && err.kind === 'Conflict' && /already allocated/.test(err.message),
    );
  } finally {
    await new Promise((r) => taken.close(r));
  }
});
