/**
 * Containers that run unattended: restart policies with back-off (also across a daemon kill),
 * health checks, stats that move, and live updates — through our CLI and the docker CLI.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapBusybox, hasDocker, startDaemon, type Daemon, ok } from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('unattended containers', () => {
  let daemon: Daemon;
  const inspect = async (name: string) => JSON.parse((await daemon.cli(['inspect', name])).stdout)[0];
  before(async () => {
    daemon = await startDaemon({ name: 'unat' });
    await bootstrapBusybox(daemon);
  });
  after(async () => {
    await daemon?.cleanup();
  });

  test('on-failure:N restarts a failing container N times with growing back-off, then stops', async () => {
    ok(await daemon.cli(['run', '-d', '--name', 'flaky', '--restart', 'on-failure:3', 'busybox', 'sh', '-c', "cut -d' ' -f1 /proc/uptime; exit 3"]), 'run');
    const state = await until('three restarts', async () => {
      const c = await inspect('flaky');
      return c.RestartCount === 3 && !c.State.Running && !c.State.Restarting ? c : undefined;
    });
    assert.equal(state.State.ExitCode, 3);
    const starts = (await daemon.cli(['logs', 'flaky'])).stdout.trim().split('\n').map(Number);
    assert.equal(starts.length, 4);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    assert.ok(gaps[2]! > gaps[0]!, `back-off grows: ${gaps.join(', ')}`);
    // The daemon stays responsive while it happens.
    ok(await daemon.cli(['ps', '-a']), 'ps');
    ok(await daemon.cli(['rm', 'flaky']), 'rm');
  });

  test('a crash-looping always container backs off and stop ends the loop', async () => {
    ok(await daemon.cli(['run', '-d', '--name', 'loop', '--restart', 'always', 'busybox', 'false']), 'run');
    await until('a few restarts', async () => ((await inspect('loop')).RestartCount >= 3 ? true : undefined));
    ok(await daemon.cli(['stop', 'loop']), 'stop');
    const count = (await inspect('loop')).RestartCount;
    await sleep(1500);
    const after = await inspect('loop');
    assert.equal(after.RestartCount, count);
    assert.equal(after.State.Running, false);
    ok(await daemon.cli(['rm', 'loop']), 'rm');
  });

  test('after kill -9 of the daemon: always and unless-stopped containers run, none duplicated; a user-stopped unless-stopped one does not', async () => {
    ok(await daemon.cli(['run', '-d', '--name', 'alw', '--restart', 'always', 'busybox', 'sleep', '300']), 'always');
    ok(await daemon.cli(['run', '-d', '--name', 'uns', '--restart', 'unless-stopped', 'busybox', 'sleep', '300']), 'unless-stopped');
    ok(await daemon.cli(['run', '-d', '--name', 'uns-stopped', '--restart', 'unless-stopped', 'busybox', 'sleep', '300']), 'unless-stopped 2');
    ok(await daemon.cli(['stop', '-t', '0', 'uns-stopped']), 'stop');
    const pidBefore = (await inspect('alw')).State.Pid;
    await daemon.stop({ kill: true });
    // One of them dies while no daemon watches.
    process.kill((await (async () => pidBefore)()), 'SIGKILL');
    await sleep(500);
    await daemon.restart();
    const alw = await until('always back', async () => {
      const c = await inspect('alw');
      return c.State.Running ? c : undefined;
    });
    assert.notEqual(alw.State.Pid, pidBefore);
    assert.equal((await inspect('uns')).State.Running, true);
    await sleep(1000);
    assert.equal((await inspect('uns-stopped')).State.Running, false);
    const running = (await daemon.cli(['ps', '-q', '--no-trunc'])).stdout.trim().split('\n').filter(Boolean);
    assert.equal(running.length, new Set(running).size);
    assert.equal(running.length, 2);
    ok(await daemon.cli(['rm', '-f', 'alw', 'uns', 'uns-stopped']), 'rm');
  });

  test('health goes starting → healthy → unhealthy, shown in ps and inspect; a hanging probe times out', async () => {
    ok(await daemon.cli([
      'run', '-d', '--name', 'hc', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '300ms', '--health-retries', '2',
      'busybox', 'sh', '-c', 'touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 300',
    ]), 'run');
    const first = await daemon.cli(['ps', '--filter', 'name=hc', '--format', '{{.Status}}']);
    assert.match(first.stdout, /health: starting|healthy/);
    await until('healthy', async () => ((await inspect('hc')).State.Health.Status === 'healthy' ? true : undefined));
    await until('unhealthy', async () => ((await inspect('hc')).State.Health.Status === 'unhealthy' ? true : undefined));
    const health = (await inspect('hc')).State.Health;
    assert.ok(health.FailingStreak >= 2);
    assert.ok(health.Log.length >= 1 && health.Log.length <= 5);
    const ps = await daemon.cli(['ps', '--filter', 'health=unhealthy', '--format', '{{.Names}} {{.Status}}']);
    assert.match(ps.stdout, /^hc Up .*\(unhealthy\)/);
    ok(await daemon.cli(['rm', '-f', 'hc']), 'rm');

    ok(await daemon.cli(['run', '-d', '--name', 'hang', '--health-cmd', 'sleep 60', '--health-interval', '300ms', '--health-timeout', '300ms', '--health-retries', '1', 'busybox', 'sleep', '300']), 'run hang');
    const hung = await until('a timed-out probe', async () => {
      const h = (await inspect('hang')).State.Health;
      return h.Status === 'unhealthy' ? h : undefined;
    });
    assert.match(hung.Log.at(-1).Output, /timeout/);
    ok(await daemon.cli(['rm', '-f', 'hang']), 'rm hang');
  });

  test('stats move when a container burns CPU and allocates memory; update changes limits live', async () => {
    ok(await daemon.cli(['run', '-d', '--name', 'busy', '-m', '256m', 'busybox', 'sh', '-c', 'mkdir /dev/shm/x; head -c 60000000 /dev/zero > /dev/shm/x/fill; while :; do :; done']), 'run');
    await sleep(1500);
    const r = await daemon.cli(['stats', '--no-stream', '--format', '{{.CPUPerc}} {{.MemUsage}} {{.PIDs}}', 'busy']);
    ok(r, 'stats');
    const [cpu, used, , limit, pids] = r.stdout.trim().split(/\s+/);
    assert.ok(parseFloat(cpu!) > 20, `cpu ${cpu}`);
    assert.match(used!, /MiB/);
    assert.ok(parseFloat(used!) > 40, `memory ${used}`);
    assert.equal(limit, '256MiB');
    assert.equal(pids, '1');
    if (hasDocker) {
      const d = await daemon.docker(['stats', '--no-stream', '--format', '{{.Name}} {{.MemUsage}}', 'busy']);
      ok(d, 'docker stats');
      assert.match(d.stdout, /^busy \d+(\.\d+)?MiB \/ 256MiB/);
    }
    ok(await daemon.cli(['update', '--memory', '512m', '--memory-swap', '1g', '--cpus', '0.5', 'busy']), 'update');
    const limits = await daemon.cli(['exec', 'busy', 'sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d" " -f1 /sys/fs/cgroup/cpu.max']);
    assert.equal(limits.stdout, '536870912\n50000\n');
    const hc = (await inspect('busy')).HostConfig;
    assert.equal(hc.Memory, 536870912);
    assert.equal(hc.NanoCpus, 500000000);
    if (hasDocker) ok(await daemon.docker(['update', '--restart', 'unless-stopped', 'busy']), 'docker update restart');
    ok(await daemon.cli(['rm', '-f', 'busy']), 'rm');
  });

  test('system prune removes stopped containers, dangling images and (with --volumes) unused volumes', async () => {
    ok(await daemon.cli(['create', '--name', 'stale', '-v', 'prunable:/d', 'busybox', 'true']), 'create');
    ok(await daemon.cli(['run', '-d', '--name', 'alive', 'busybox', 'sleep', '60']), 'run');
    const r = await daemon.cli(['system', 'prune', '-f', '--volumes']);
    ok(r, 'system prune');
    assert.match(r.stdout, /Deleted Containers:/);
    assert.match(r.stdout, /Deleted Volumes:\nprunable/);
    assert.match(r.stdout, /Total reclaimed space:/);
    assert.notEqual((await daemon.cli(['inspect', 'stale'])).code, 0);
    ok(await daemon.cli(['inspect', 'alive']), 'running container kept');
    ok(await daemon.cli(['image', 'inspect', 'busybox']), 'tagged image kept');
    if (hasDocker) ok(await daemon.docker(['system', 'prune', '-f']), 'docker system prune');
    ok(await daemon.cli(['rm', '-f', 'alive']), 'rm');
  });

  test('logs rotate by size and count, and logs reads across the rotated files', async () => {
    const run = await daemon.cli(['run', '-d', '--name', 'chatty', '--log-opt', 'max-size=1k', '--log-opt', 'max-file=3', 'busybox', 'sh', '-c', 'for i in $(seq 1 300); do echo line-number-$i; sleep 0.01; done']);
    ok(run, 'run');
    ok(await daemon.cli(['wait', 'chatty']), 'wait');
    const id = run.stdout.trim();
    const dir = `${daemon.root}/containers/${id}`;
    const { readdirSync, statSync } = await import('node:fs');
    const files = readdirSync(dir).filter((f) => f.startsWith('container.log')).sort();
    assert.deepEqual(files, ['container.log', 'container.log.1', 'container.log.2']);
    for (const f of files) assert.ok(statSync(`${dir}/${f}`).size <= 2048, `${f} is capped`);
    const logs = (await daemon.cli(['logs', 'chatty'])).stdout.trim().split('\n');
    assert.ok(logs.length > 10 && logs.length < 300, `kept ${logs.length} lines`);
    assert.equal(logs.at(-1), 'line-number-300');
    const first = Number(logs[0]!.split('-').pop());
    assert.deepEqual(logs, Array.from({ length: 300 - first + 1 }, (_, i) => `line-number-${first + i}`), 'in order, none lost between files');
    const tail = (await daemon.cli(['logs', '--tail', String(logs.length - 2), 'chatty'])).stdout.trim().split('\n');
    assert.deepEqual(tail, logs.slice(2));
    const bad = await daemon.cli(['run', '--rm', '--log-opt', 'max-size=lots', 'busybox', 'true']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /max-size/);
    ok(await daemon.cli(['rm', 'chatty']), 'rm');
  });
});
