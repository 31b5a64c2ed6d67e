import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthMonitor, healthConfig, type HealthState } from './health.js';

test('health check forms and defaults follow Docker', () => {
  assert.equal(healthConfig(undefined), undefined);
  assert.equal(healthConfig({ Test: ['NONE'] }), undefined);
  assert.deepEqual(healthConfig({ Test: ['CMD-SHELL', 'exit 0'] })?.test, ['/bin/sh', '-c', 'exit 0']);
  const c = healthConfig({ Test: ['CMD', 'true'], Interval: 2e9, Timeout: 1e9, Retries: 5, StartPeriod: 3e9 })!;
  assert.deepEqual(c, { test: ['true'], intervalMs: 2000, timeoutMs: 1000, retries: 5, startPeriodMs: 3000 });
  assert.equal(healthConfig({ Test: ['CMD', 'x'] })!.intervalMs, 30000);
});

test('a monitor goes starting → healthy → unhealthy after Retries failures', async () => {
  const state: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
  const codes = [0, 1, 1, 1];
  const transitions: string[] = [];
  const monitor = new HealthMonitor({
    config: { test: ['x'], intervalMs: 5, timeoutMs: 100, retries: 3, startPeriodMs: 0 },
    state,
    probe: async () => ({ exitCode: codes.shift() ?? 1, output: 'probe\n' }),
    onUpdate: (s, changed) => changed && transitions.push(s.Status),
  });
  monitor.start();
  while (transitions.length < 2) await new Promise((r) => setTimeout(r, 5));
  monitor.stop();
  assert.deepEqual(transitions, ['healthy', 'unhealthy']);
  assert.ok(state.Log.length <= 5);
  assert.ok(state.FailingStreak >= 3);
});
