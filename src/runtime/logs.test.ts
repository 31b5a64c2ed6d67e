import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normalizeTimestamp, parseLogLine, readLogs } from './index.js';

let dir: string;
const collect = async (file: string, opts = {}) => {
  const out: Array<[string, string]> = [];
  for await (const e of readLogs(file, opts)) out.push([e.stream, e.data.toString()]);
  return out;
};

describe('conmon k8s-file logs', () => {
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-logs-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('normalizes conmon timestamps to UTC nanoseconds', () => {
    assert.deepEqual(normalizeTimestamp('2024-05-01T12:00:00.5+02:00'), { time: '2024-05-01T10:00:00.500000000Z', seconds: 1714557600.5 });
    assert.equal(normalizeTimestamp('nonsense'), undefined);
  });

  it('parses full, partial and empty lines', () => {
    const l = parseLogLine(Buffer.from('2024-05-01T10:00:00.000000001Z stderr P abc'));
    assert.equal(l?.stream, 'stderr');
    assert.equal(l?.partial, true);
    assert.equal(l?.data.toString(), 'abc');
    assert.equal(parseLogLine(Buffer.from('2024-05-01T10:00:00Z stdout F'))?.data.length, 0);
  });

  it('joins partial lines, tails and filters by time', async () => {
    const file = path.join(dir, 'a.log');
    const lines = [
      '2024-05-01T10:00:01.000000000Z stdout F one',
      '2024-05-01T10:00:02.000000000Z stdout P tw',
      '2024-05-01T10:00:02.100000000Z stderr F err',
      '2024-05-01T10:00:02.200000000Z stdout F o',
      '2024-05-01T10:00:03.000000000Z stdout F three',
    ];
    await fs.writeFile(file, lines.join('\n') + '\n');
    const t = Date.parse('2024-05-01T10:00:00Z') / 1000;
    assert.deepEqual(await collect(file), [['stdout', 'one\n'], ['stderr', 'err\n'], ['stdout', 'two\n'], ['stdout', 'three\n']]);
    assert.deepEqual(await collect(file, { tail: 2 }), [['stdout', 'two\n'], ['stdout', 'three\n']]);
    assert.deepEqual(await collect(file, { tail: 0 }), []);
    assert.equal((await collect(file, { tail: 100 })).length, 4);
    assert.deepEqual(await collect(file, { since: t + 2.5 }), [['stdout', 'three\n']]);
    assert.deepEqual(await collect(file, { until: t + 2 }), [['stdout', 'one\n']]);
  });

  it('tails a file larger than one read block', async () => {
    const file = path.join(dir, 'big.log');
    const body = Array.from({ length: 5000 }, (_, i) => `2024-05-01T10:00:00.000000000Z stdout F line ${i} ${'x'.repeat(20)}`).join('\n') + '\n';
    await fs.writeFile(file, body);
    const got = await collect(file, { tail: 3 });
    assert.deepEqual(got.map(([, d]) => d.split(' ')[1]), ['4997', '4998', '4999']);
  });

  it('follows appended lines and a rotated file until told to stop', async () => {
    const file = path.join(dir, 'f.log');
    await fs.writeFile(file, '2024-05-01T10:00:00Z stdout F a\n');
    let stop!: () => void;
    const stopWhen = new Promise<void>((r) => (stop = r));
    const got = collect(file, { follow: true, stopWhen });
    await new Promise((r) => setTimeout(r, 100));
    await fs.appendFile(file, '2024-05-01T10:00:01Z stdout F b\n');
    await new Promise((r) => setTimeout(r, 400));
    await fs.writeFile(file + '.new', '2024-05-01T10:00:02Z stdout F c\n');
    await fs.rename(file + '.new', file);
    await new Promise((r) => setTimeout(r, 400));
    stop();
    assert.deepEqual((await got).map(([, d]) => d), ['a\n', 'b\n', 'c\n']);
  });
});
