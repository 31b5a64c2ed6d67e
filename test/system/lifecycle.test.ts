/**
 * Container lifecycle through both CLIs: detached runs, ps/inspect fields, logs options, exec,
 * stop/kill/restart, pause, rename, top, wait, prune and events.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapBusybox, enabledClients, hasDocker, startDaemon, type Daemon, type RunResult, ok } from './harness.js';

const clients: Array<{ name: string; cmd: (d: Daemon, args: string[], input?: string) => Promise<RunResult> }> = [
  { name: 'baleia', cmd: (d, args, input) => d.cli(args, { input }) },
];
if (!enabledClients.includes('baleia')) clients.pop();
if (hasDocker && enabledClients.includes('docker')) clients.push({ name: 'docker', cmd: (d, args, input) => d.docker(args, { input }) });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('container lifecycle', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ name: 'life' });
    await bootstrapBusybox(daemon);
  });
  after(async () => {
    await daemon?.cleanup();
  });

  for (const client of clients) {
    const c = (args: string[], input?: string) => client.cmd(daemon, args, input);
    const name = `life-${client.name}`;

    test(`${client.name}: run -d, ps, inspect, exec, logs, stop, start, rm`, async () => {
      const run = await c(['run', '-d', '--name', name, '-l', 'team=whales', '-e', 'GREETING=hi', 'busybox', 'sh', '-c', 'echo started; echo oops >&2; trap "echo bye; exit 0" TERM; while true; do sleep 0.1; done']);
      ok(run, 'run -d');
      const id = run.stdout.trim();
      assert.match(id, /^[0-9a-f]{64}$/);

      const ps = await c(['ps', '--filter', `name=${name}`, '--format', '{{.ID}} {{.Names}} {{.Status}}']);
      ok(ps, 'ps');
      assert.match(ps.stdout, new RegExp(`^${id.slice(0, 12)} ${name} Up `));
      const byLabel = await c(['ps', '-q', '--filter', 'label=team=whales']);
      assert.match(byLabel.stdout, new RegExp(id.slice(0, 12)));

      const inspect = await c(['inspect', name]);
      ok(inspect, 'inspect');
      const info = JSON.parse(inspect.stdout)[0];
      assert.equal(info.Id, id);
      assert.equal(info.Name, `/${name}`);
      assert.equal(info.State.Status, 'running');
      assert.equal(info.State.Running, true);
      assert.ok(info.State.Pid > 0);
      assert.equal(info.Config.Labels.team, 'whales');
      assert.ok(info.Config.Env.includes('GREETING=hi'));
      assert.equal(info.HostConfig.LogConfig.Type, 'json-file');
      assert.equal(info.Config.Hostname, id.slice(0, 12));
      const fmt = await c(['inspect', '-f', '{{.State.Status}}', name]);
      assert.equal(fmt.stdout.trim(), 'running');

      const exec = await c(['exec', name, 'sh', '-c', 'echo $GREETING from exec']);
      ok(exec, 'exec');
      assert.equal(exec.stdout, 'hi from exec\n');
      const execCode = await c(['exec', name, 'sh', '-c', 'exit 3']);
      assert.equal(execCode.code, 3);
      const execMissing = await c(['exec', name, 'no-such-binary']);
      assert.ok(execMissing.code === 126 || execMissing.code === 127, `exec missing binary: ${execMissing.code}`);
      const execOpts = await c(['exec', '-u', 'nobody', '-w', '/tmp', '-e', 'X=1', name, 'sh', '-c', 'echo $(id -u) $(pwd) $X']);
      assert.equal(execOpts.stdout, '65534 /tmp 1\n');
      const execIn = await c(['exec', '-i', name, 'cat'], 'piped\n');
      assert.equal(execIn.stdout, 'piped\n');

      const top = await c(['top', name]);
      ok(top, 'top');
      assert.match(top.stdout, /PID/);
      assert.match(top.stdout, /sleep|sh -c/);

      await sleep(300);
      const logs = await c(['logs', name]);
      ok(logs, 'logs');
      assert.match(logs.stdout, /started/);
      assert.match(logs.stderr, /oops/);
      const ts = await c(['logs', '-t', '--tail', '1', name]);
      assert.match(ts.stdout + ts.stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (started|oops)\n$/);

      ok(await c(['pause', name]), 'pause');
      const paused = await c(['inspect', '-f', '{{.State.Status}}', name]);
      assert.equal(paused.stdout.trim(), 'paused');
      ok(await c(['unpause', name]), 'unpause');

      const stop = await c(['stop', '-t', '5', name]);
      ok(stop, 'stop');
      const stopped = JSON.parse((await c(['inspect', name])).stdout)[0];
      assert.equal(stopped.State.Status, 'exited');
      assert.equal(stopped.State.ExitCode, 0);
      const bye = await c(['logs', name]);
      assert.match(bye.stdout, /bye/);

      ok(await c(['start', name]), 'start again');
      const restarted = await c(['restart', '-t', '1', name]);
      ok(restarted, 'restart');
      const kill = await c(['kill', '-s', 'KILL', name]);
      ok(kill, 'kill');
      const waited = await c(['wait', name]);
      assert.equal(waited.stdout.trim(), '137');

      const rename = await c(['rename', name, `${name}-2`]);
      ok(rename, 'rename');
      const rm = await c(['rm', `${name}-2`]);
      ok(rm, 'rm');
      const gone = await c(['inspect', `${name}-2`]);
      assert.notEqual(gone.code, 0);
    });

    test(`${client.name}: rm of a running container needs -f`, async () => {
      const run = await c(['run', '-d', 'busybox', 'sleep', '60']);
      ok(run, 'run');
      const id = run.stdout.trim();
      const refused = await c(['rm', id]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /cannot remove a running container|Stop the container/i);
      ok(await c(['rm', '-f', id]), 'rm -f');
    });

    test(`${client.name}: a name already in use is refused`, async () => {
      ok(await c(['create', '--name', `dup-${client.name}`, 'busybox', 'true']), 'create');
      const again = await c(['create', '--name', `dup-${client.name}`, 'busybox', 'true']);
      assert.equal(again.code, 1, again.stderr); // the docker CLI exits 1 for create (125 is for run)
      assert.match(again.stderr, /already in use/);
      ok(await c(['rm', `dup-${client.name}`]), 'rm');
    });

    test(`${client.name}: logs --since/--until and -f`, async () => {
      const run = await c(['run', '-d', 'busybox', 'sh', '-c', 'for i in 1 2 3; do echo line$i; sleep 1; done']);
      ok(run, 'run');
      const id = run.stdout.trim();
      const follow = await c(['logs', '-f', id]);
      ok(follow, 'logs -f');
      assert.equal(follow.stdout, 'line1\nline2\nline3\n');
      const tail = await c(['logs', '--tail', '2', id]);
      assert.equal(tail.stdout, 'line2\nline3\n');
      const future = await c(['logs', '--since', `${Math.floor(Date.now() / 1000) + 60}`, id]);
      assert.equal(future.stdout, '');
      const until = await c(['logs', '--until', '2000-01-01T00:00:00Z', id]);
      assert.equal(until.stdout, '');
      ok(await c(['rm', id]), 'rm');
    });
  }

  test('container prune removes stopped containers only', async () => {
    const stopped = (await daemon.cli(['run', '-d', 'busybox', 'true'])).stdout.trim();
    const running = (await daemon.cli(['run', '-d', 'busybox', 'sleep', '60'])).stdout.trim();
    await daemon.cli(['wait', stopped]);
    const prune = await daemon.cli(['container', 'prune', '-f']);
    ok(prune, 'prune');
    assert.match(prune.stdout, new RegExp(stopped));
    assert.notEqual((await daemon.cli(['inspect', stopped])).code, 0);
    ok(await daemon.cli(['inspect', running]), 'running survives prune');
    ok(await daemon.cli(['rm', '-f', running]), 'rm');
  });

  test('events report container actions with filters and --since/--until', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const run = await daemon.cli(['run', '--name', 'evt', 'busybox', 'true']);
    ok(run, 'run');
    await daemon.cli(['rm', 'evt']);
    const until = Math.floor(Date.now() / 1000) + 1;
    const events = await daemon.cli(['events', '--since', String(since), '--until', String(until), '--filter', 'container=evt', '--format', '{{.Action}}']);
    ok(events, 'events');
    const actions = events.stdout.trim().split('\n');
    for (const a of ['create', 'attach', 'start', 'die', 'destroy']) assert.ok(actions.includes(a), `${a} in ${actions}`);
    if (hasDocker) {
      const d = await daemon.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'event=die', '--filter', 'container=evt']);
      ok(d, 'docker events');
      assert.match(d.stdout, /container die [0-9a-f]{64} \(.*exitCode=0/);
    }
  });

  test('version and info answer both CLIs', async () => {
    const v = await daemon.cli(['version']);
    ok(v, 'version');
    assert.match(v.stdout, /1\.41/);
    const i = await daemon.cli(['info']);
    ok(i, 'info');
    if (hasDocker) {
      const dv = await daemon.docker(['version', '--format', '{{.Server.APIVersion}}']);
      assert.equal(dv.stdout.trim(), '1.41');
      const di = await daemon.docker(['info', '--format', '{{.CgroupVersion}} {{.Driver}}']);
      assert.match(di.stdout.trim(), /^[12] overlay2$/);
      const df = await daemon.docker(['system', 'df']);
      ok(df, 'system df');
    }
  });
});
