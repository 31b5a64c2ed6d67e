import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contains, formatCidr, formatIp, lowestFree, macForIp, overlaps, parseCidr, parseIp, splitPool } from './ipam.js';

test('parseCidr accepts network addresses and refuses host bits, bad prefixes and garbage', () => {
  assert.equal(formatCidr(parseCidr('10.99.0.0/24')!), '10.99.0.0/24');
  assert.equal(parseCidr('10.99.0.5/24'), undefined);
  assert.equal(parseCidr('10.99.0.0/33'), undefined);
  assert.equal(parseCidr('10.300.0.0/16'), undefined);
  assert.equal(parseCidr('fd00::/64'), undefined);
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')!), '0.0.0.0/0');
});

test('overlaps and contains follow the address ranges', () => {
  const a = parseCidr('10.1.0.0/16')!;
  assert.ok(overlaps(a, parseCidr('10.1.200.0/24')!));
  assert.ok(!overlaps(a, parseCidr('10.2.0.0/24')!));
  assert.ok(contains(a, parseIp('10.1.255.255')!));
  assert.ok(!contains(a, parseIp('10.2.0.0')!));
  assert.equal(formatIp(parseIp('255.255.255.255')!), '255.255.255.255');
});

test('splitPool yields the /24s of a pool in order', () => {
  const subnets = [...splitPool(parseCidr('10.89.0.0/22')!)].map(formatCidr);
  assert.deepEqual(subnets, ['10.89.0.0/24', '10.89.1.0/24', '10.89.2.0/24', '10.89.3.0/24']);
});

test('lowestFree skips the network, broadcast and used addresses, and stays in the range', () => {
  const subnet = parseCidr('10.0.0.0/29')!;
  const used = new Set([parseIp('10.0.0.1')!, parseIp('10.0.0.2')!]);
  assert.equal(formatIp(lowestFree(subnet, subnet, used)!), '10.0.0.3');
  for (let i = 3; i <= 6; i++) used.add(parseIp(`10.0.0.${i}`)!);
  assert.equal(lowestFree(subnet, subnet, used), undefined, '10.0.0.7 is the broadcast address');
  assert.equal(formatIp(lowestFree(parseCidr('10.0.0.0/24')!, parseCidr('10.0.0.128/25')!, new Set())!), '10.0.0.128');
});

test('macForIp builds Docker MACs', () => {
  assert.equal(macForIp(parseIp('172.17.0.2')!), '02:42:ac:11:00:02');
});
