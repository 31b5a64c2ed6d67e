import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostsFile, resolvConf, usableHostResolvers } from './resolv.js';

test('resolvConf and usableHostResolvers write and read the three line kinds', () => {
  assert.equal(resolvConf({ nameservers: ['10.1.0.1'], search: ['a.test'], options: ['ndots:2'] }), 'search a.test\nnameserver 10.1.0.1\noptions ndots:2\n');
  assert.deepEqual(usableHostResolvers('nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch x.test\noptions edns0\n'), {
    nameservers: ['10.0.0.2'],
    search: ['x.test'],
    options: ['edns0'],
  });
});

test('hostsFile lists localhost, extra hosts and the container itself', () => {
  const text = hostsFile({ hostname: 'web', ip: '10.1.0.2', extraHosts: [{ name: 'db', ip: '10.1.0.3' }] });
  assert.match(text, /^127\.0\.0\.1\tlocalhost$/m);
  assert.match(text, /^10\.1\.0\.3\tdb$/m);
  assert.match(text, /^10\.1\.0\.2\tweb$/m);
});
