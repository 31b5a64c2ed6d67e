/**
 * Containers outlive the daemon, limits hold, and failures leave nothing behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { bootstrapBusybox, startDaemon, type Daemon, ok } from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function conmonsOf(execRoot: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return cmd.includes('conmon') && cmd.includes(execRoot);
      } catch {
        return false;
      }
    })
    .map(Number);
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir));
}

describe('survival, limits and clean failures', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ name: 'surv' });
    await bootstrapBusybox(daemon);
  });
  after(async () => {
    await daemon?.cleanup();
  });

  test('running containers survive kill -9 of the daemon; one that ended meanwhile has its exit code', async () => {
    const long = (await daemon.cli(['run', '-d', '--name', 'survivor', 'busybox', 'sh', '-c', 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done'])).stdout.trim();
    const short = (await daemon.cli(['run', '-d', '--name', 'ender', 'busybox', 'sh', '-c', 'sleep 2; exit 7'])).stdout.trim();
    assert.match(long, /^[0-9a-f]{64}$/);
    assert.match(short, /^[0-9a-f]{64}$/);
    await daemon.stop({ kill: true });
    await sleep(3000); // `ender` exits while no daemon runs
    await daemon.restart();

    const state = JSON.parse((await daemon.cli(['inspect', 'survivor'])).stdout)[0].State;
    assert.equal(state.Status, 'running');
    const ended = JSON.parse((await daemon.cli(['inspect', 'ender'])).stdout)[0].State;
    assert.equal(ended.Status, 'exited');
    assert.equal(ended.ExitCode, 7);
    const waited = await daemon.cli(['wait', 'ender']);
    assert.equal(waited.stdout.trim(), '7');

    const exec = await daemon.cli(['exec', 'survivor', 'echo', 'still here']);
    ok(exec, 'exec after restart');
    assert.equal(exec.stdout, 'still here\n');
    const logs = await daemon.cli(['logs', '--tail', '1', 'survivor']);
    assert.match(logs.stdout, /^tick\d+\n$/);

    const waiter = daemon.cli(['wait', 'survivor']);
    await sleep(200);
    ok(await daemon.cli(['stop', '-t', '1', 'survivor']), 'stop after restart');
    const code = await waiter;
    assert.equal(code.stdout.trim(), '137');
    ok(await daemon.cli(['rm', 'survivor', 'ender']), 'rm');
    assert.deepEqual(conmonsOf(daemon.execRoot), []);
  });

  test('a memory hog is OOM-killed and inspect says so', async () => {
    const r = await daemon.cli(['run', '--name', 'hog', '-m', '32m', '--memory-swap', '32m', 'busybox', 'sh', '-c', 'x=a; while true; do x="$x$x"; done']);
    assert.equal(r.code, 137, r.stderr);
    const state = JSON.parse((await daemon.cli(['inspect', 'hog'])).stdout)[0].State;
    assert.equal(state.OOMKilled, true);
    assert.equal(state.ExitCode, 137);
    ok(await daemon.cli(['rm', 'hog']), 'rm');
  });

  test('a fork bomb stops at --pids-limit', async () => {
    // Only shell builtins after the bomb: no fork is left to spare.
    const script = '( for i in $(seq 1 60); do sleep 5 & done ) 2>/dev/null; ' +
      '{ read n < /sys/fs/cgroup/pids/pids.current || read n < /sys/fs/cgroup/pids.current; } 2>/dev/null; echo "$n"';
    const r = await daemon.cli(['run', '--rm', '--pids-limit', '20', 'busybox', 'sh', '-c', script]);
    ok(r, 'fork bomb run');
    const n = Number(r.stdout.trim());
    assert.ok(n >= 15 && n <= 20, `processes in the cgroup: ${r.stdout}`);
  });

  test('a failed start leaves no mount, conmon or runtime state behind', async () => {
    const conmonsBefore = conmonsOf(daemon.execRoot).length;
    const r = await daemon.cli(['run', '--name', 'broken', 'busybox', 'no-such-command']);
    assert.equal(r.code, 127);
    const state = JSON.parse((await daemon.cli(['inspect', 'broken'])).stdout)[0].State;
    assert.equal(state.ExitCode, 127);
    assert.match(state.Error, /not found/);
    const id = JSON.parse((await daemon.cli(['inspect', 'broken'])).stdout)[0].Id;
    assert.equal(conmonsOf(daemon.execRoot).length, conmonsBefore);
    assert.deepEqual(mountsUnder(path.join(daemon.root, 'snapshots', 'containers', id)), []);
    assert.equal(existsSync(path.join(daemon.execRoot, 'runc', id)), false);
    for (const controller of ['memory', 'pids', 'cpu', 'unified'])
      assert.equal(existsSync(path.join('/sys/fs/cgroup', controller, 'baleia', id)), false, `${controller} cgroup left`);
    ok(await daemon.cli(['rm', 'broken']), 'rm');
    assert.equal(existsSync(path.join(daemon.root, 'containers', id)), false);
  });

  test('a TTY container follows resize requests', async () => {
    const create = await fetchSocket(daemon.socket, 'POST', '/v1.41/containers/create?name=tty-resize', JSON.stringify({ Image: 'busybox', Cmd: ['sleep', '60'], Tty: true, OpenStdin: true }));
    assert.equal(create.status, 201, create.body);
    ok(await daemon.cli(['start', 'tty-resize']), 'start');
    const resize = await fetchSocket(daemon.socket, 'POST', '/v1.41/containers/tty-resize/resize?h=40&w=123');
    assert.equal(resize.status, 200, resize.body);
    const bad = await fetchSocket(daemon.socket, 'POST', '/v1.41/containers/tty-resize/resize?h=x&w=1');
    assert.equal(bad.status, 400);
    // The container's terminal is the one conmon holds: read its size through /proc/1/fd/0.
    let size = '';
    for (let i = 0; i < 20 && size !== '40 123'; i++) {
      size = (await daemon.cli(['exec', 'tty-resize', 'sh', '-c', 'stty size < /proc/1/fd/0'])).stdout.trim();
      if (size !== '40 123') await sleep(100);
    }
    assert.equal(size, '40 123');
    ok(await daemon.cli(['rm', '-f', 'tty-resize']), 'rm');
  });

  test('attach follows a running container until it exits', async () => {
    ok(await daemon.cli(['run', '-d', '--name', 'att', 'busybox', 'sh', '-c', 'sleep 1; echo attached-out; exit 4']), 'run');
    const attached = await daemon.cli(['attach', 'att']);
    assert.equal(attached.stdout, 'attached-out\n');
    assert.equal(attached.code, 4);
    ok(await daemon.cli(['rm', 'att']), 'rm');
  });

  test('a client that goes away mid-stream (save, logs -f, events) does not hurt the daemon', async () => {
    const http = await import('node:http');
    for (const p of ['/v1.41/images/get?names=busybox', '/v1.41/events']) {
      await new Promise<void>((resolve) => {
        const req = http.request({ socketPath: daemon.socket, method: 'GET', path: p }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
          setTimeout(() => {
            req.destroy();
            resolve();
          }, 500);
        });
        req.on('error', () => resolve());
        req.end();
      });
    }
    await sleep(300);
    ok(await daemon.cli(['version']), 'daemon still answers');
    assert.equal(daemon.process.exitCode, null);
    assert.doesNotMatch(daemon.logs(), /Uncaught exception|Unhandled rejection/);
  });

  test('malformed requests get a clear 400 and nothing changes', async () => {
    const res = await fetchSocket(daemon.socket, 'POST', '/v1.41/containers/create', '{"Image": "busybox", ');
    assert.equal(res.status, 400);
    assert.match(res.headers['content-type'] ?? '', /^application\/json$/);
    assert.match(JSON.parse(res.body).message, /JSON/);
    const unknown = await fetchSocket(daemon.socket, 'GET', '/v1.41/containers/nope/json');
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.body).message, 'No such container: nope');
    const img = await fetchSocket(daemon.socket, 'GET', '/images/nope/json');
    assert.equal(img.status, 404);
    assert.match(JSON.parse(img.body).message, /No such image: nope/);
    const ping = await fetchSocket(daemon.socket, 'HEAD', '/_ping');
    assert.equal(ping.status, 200);
    assert.equal(ping.headers['api-version'], '1.41');
  });
});

import http from 'node:http';
function fetchSocket(socketPath: string, method: string, p: string, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: p, headers: body ? { 'Content-Type': 'application/json' } : {} }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
