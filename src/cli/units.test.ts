import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiTimestamp, formatG, fromHumanSize, humanDuration, humanSize, bytesSize, memSwapBytes, nanoCpus, parseGoDuration, ramInBytes, rfc3339NanoFixed } from './units.js';

test('memory sizes are 1024-based', () => {
  assert.equal(ramInBytes('64m'), 67108864);
  assert.equal(ramInBytes('1g'), 1073741824);
  assert.equal(ramInBytes('1GB'), 1073741824);
  assert.equal(ramInBytes('512k'), 524288);
  assert.equal(ramInBytes('100'), 100);
  assert.equal(ramInBytes('1.5m'), 1572864);
  assert.equal(memSwapBytes('-1'), -1);
  assert.throws(() => ramInBytes('lots'), /invalid size/);
});

test('human sizes are 1000-based like go-units', () => {
  assert.equal(fromHumanSize('1kB'), 1000);
  assert.equal(humanSize(4261550, 3), '4.26MB');
  assert.equal(humanSize(0, 3), '0B');
  assert.equal(humanSize(999, 3), '999B');
  assert.equal(humanSize(1000, 3), '1kB');
  assert.equal(humanSize(1234567890), '1.235GB');
  assert.equal(bytesSize(1048576), '1MiB');
});

test('Go %g formatting drops trailing zeros and writes two-digit exponents', () => {
  assert.equal(formatG(4.2, 3), '4.2');
  assert.equal(formatG(999.9, 3), '1e+03');
  assert.equal(formatG(12, 3), '12');
});

test('nano CPUs from --cpus', () => {
  assert.equal(nanoCpus('0.5'), 500000000);
  assert.equal(nanoCpus('2'), 2000000000);
});

test('human durations follow go-units', () => {
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(1000), '1 second');
  assert.equal(humanDuration(5000), '5 seconds');
  assert.equal(humanDuration(60_000), 'About a minute');
  assert.equal(humanDuration(5 * 60_000), '5 minutes');
  assert.equal(humanDuration(3600_000), 'About an hour');
  assert.equal(humanDuration(3 * 3600_000), '3 hours');
  assert.equal(humanDuration(3 * 86400_000), '3 days');
  assert.equal(humanDuration(21 * 86400_000), '3 weeks');
  assert.equal(humanDuration(90 * 86400_000), '3 months');
  assert.equal(humanDuration(3 * 365 * 86400_000), '3 years');
});

test('durations and timestamps for --since', () => {
  assert.equal(parseGoDuration('1h30m'), 5_400_000);
  assert.equal(parseGoDuration('10x'), undefined);
  assert.equal(apiTimestamp('10m', 1_700_000_600_000), '1700000000.000000000');
  assert.equal(apiTimestamp('1700000000'), '1700000000');
  assert.equal(apiTimestamp('2023-11-14T22:13:20Z'), '1700000000.000000000');
});

test('RFC3339 with nine fixed fraction digits keeps every nanosecond', () => {
  const saved = process.env.TZ;
  process.env.TZ = 'UTC';
  try {
    assert.equal(rfc3339NanoFixed(1795878759105218389n), '2026-11-28T15:12:39.105218389Z');
  } finally {
    process.env.TZ = saved;
  }
});
