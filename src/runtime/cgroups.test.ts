import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { statsFromV1, statsFromV2 } from './index.js';
import { parseV1Mounts } from './cgroups.js';

describe('cgroup file formats', () => {
  it('reads v2 memory, cpu, pids and io files', () => {
    const s = statsFromV2({
      current: '1048576\n',
      peak: '2097152\n',
      max: 'max\n',
      memStat: 'anon 4096\nfile 8192\ninactive_file 100\n',
      cpuStat: 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\n',
      pidsCur: '3\n',
      pidsMax: 'max\n',
      io: '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n',
    });
    assert.equal(s.memory.usage, 1048576);
    assert.equal(s.memory.maxUsage, 2097152);
    assert.equal(s.memory.limit, undefined);
    assert.equal(s.memory.stats.inactive_file, 100);
    assert.deepEqual(s.cpu, { total: 1_500_000, percpu: [], user: 1_000_000, kernel: 500_000, throttling: { periods: 10, throttledPeriods: 2, throttledTime: 30_000 } });
    assert.deepEqual(s.pids, { current: 3, limit: undefined });
    assert.deepEqual(s.blkio, [
      { major: 8, minor: 0, op: 'read', value: 4096 },
      { major: 8, minor: 0, op: 'write', value: 8192 },
    ]);
    assert.equal(statsFromV2({ max: '33554432\n', pidsMax: '10\n' }).memory.limit, 33554432);
  });

  it('reads v1 memory, cpuacct, pids and blkio files', () => {
    const s = statsFromV1({
      usage: '100\n', maxUsage: '200\n', limit: '9223372036854771712\n', failcnt: '0\n', memStat: 'cache 1\nrss 2\n',
      cpuUsage: '123456789\n', percpu: '100 200 \n', cpuacctStat: 'user 3\nsystem 1\n',
      cpuStat: 'nr_periods 5\nnr_throttled 1\nthrottled_time 999\n', pidsCur: '1\n', pidsMax: '10\n',
      blkio: '8:0 Read 512\n8:0 Write 1024\nTotal 1536\n',
    });
    assert.equal(s.memory.usage, 100);
    assert.equal(s.cpu.total, 123456789);
    assert.deepEqual(s.cpu.percpu, [100, 200]);
    assert.equal(s.cpu.user, 30_000_000);
    assert.equal(s.cpu.kernel, 10_000_000);
    assert.equal(s.cpu.throttling.throttledTime, 999);
    assert.deepEqual(s.pids, { current: 1, limit: 10 });
    assert.equal(s.blkio.length, 2);
  });

  it('finds v1 controller mounts in mountinfo, ignoring the controller-less v2 mount', () => {
    const info = [
      '30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw',
      '33 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,memory',
      '34 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct',
    ].join('\n');
    assert.deepEqual(parseV1Mounts(info), { memory: '/sys/fs/cgroup/memory', cpu: '/sys/fs/cgroup/cpu,cpuacct', cpuacct: '/sys/fs/cgroup/cpu,cpuacct' });
  });
});
