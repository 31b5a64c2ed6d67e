/** baleiad's flags: defaults, values, and clear errors for bad ones. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDaemonArgs } from './daemon.js';

test('daemon flags: defaults and values, both spellings', () => {
  const defaults = parseDaemonArgs([], {});
  assert.equal(defaults.root, '/var/lib/baleia');
  assert.equal(defaults.host, 'unix:///run/baleia/baleia.sock');
  assert.equal(defaults.networkPluginTimeoutMs, 30_000);
  const c = parseDaemonArgs(
    ['--root', '/tmp/r', '--exec-root=/tmp/e', '-H', 'unix:///tmp/s.sock', '--network-plugin-timeout', '1m30s', '--registry-mirror', 'quay.io=http://127.0.0.1:5001', '--registry-mirror', 'http://127.0.0.1:5002', '-D'],
    {},
  );
  assert.equal(c.root, '/tmp/r');
  assert.equal(c.execRoot, '/tmp/e');
  assert.equal(c.host, 'unix:///tmp/s.sock');
  assert.equal(c.networkPluginTimeoutMs, 90_000);
  assert.deepEqual(c.mirrors, { 'quay.io': ['http://127.0.0.1:5001'], 'docker.io': ['http://127.0.0.1:5002'] });
  assert.equal(c.logLevel, 'debug');
  assert.equal(parseDaemonArgs([], { BALEIA_HOST: 'unix:///tmp/env.sock' }).host, 'unix:///tmp/env.sock');
});

test('daemon flags: bad values are refused with what to use', () => {
  const refused = (argv: string[], pattern: RegExp) => assert.throws(() => parseDaemonArgs(argv, {}), pattern);
  refused(['--network-plugin-timeout', '30'], /Invalid network plugin timeout "30": use a duration of at least 1s/);
  refused(['--network-plugin-timeout', '10ms'], /at least 1s/);
  refused(['--log-level', 'loud'], /Invalid log level "loud"/);
  refused(['--registry-mirror', 'ftp://x'], /Invalid registry mirror/);
  refused(['-H', 'tcp://0.0.0.0:2375'], /only unix:\/\/ sockets are supported/);
  refused(['--root'], /flag needs an argument: --root/);
  refused(['--frobnicate'], /unknown flag: --frobnicate/);
});
