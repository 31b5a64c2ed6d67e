/** `baleia daemon --help` through the built CLI: the daemon's flags, and no daemon started. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { run } from '../../lib/index.js';

const main = fileURLToPath(new URL('../main.js', import.meta.url));

test('daemon --help lists the daemon\'s flags and exits without starting it', { timeout: 30_000 }, async () => {
  // A daemon that started would not exit: the 20 s deadline fails the test.
  const r = await run(process.execPath, [main, 'daemon', '--help'], { signal: AbortSignal.timeout(20_000), allowFailure: true });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: {2}baleia daemon /);
  for (const flag of ['--root dir', '--exec-root dir', '-H, --host', '--registry-mirror', '--network-plugin-timeout duration']) assert.ok(r.stdout.includes(flag), flag);
  assert.equal(r.stderr, '');
});
