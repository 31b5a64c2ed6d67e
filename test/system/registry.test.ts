/**
 * Sharing images through baleiad: push and pull with our CLI and the docker CLI against our own
 * registry server on 127.0.0.1, and the pushed image read back by skopeo (a tool no one here wrote).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { bootstrapBusybox, cliMain, hasDocker, runCommand, startDaemon, type Daemon, type RunResult } from './harness.js';

const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

describe('push and pull through baleiad', () => {
  let daemon: Daemon;
  let registry: ChildProcess;
  let addr = '';
  before(async () => {
    daemon = await startDaemon({ name: 'reg' });
    await bootstrapBusybox(daemon);
    registry = spawn(process.execPath, [cliMain, 'registry', 'serve', '--addr', '127.0.0.1:0', '--root', path.join(daemon.dir, 'registry')], { stdio: ['ignore', 'pipe', 'pipe'] });
    addr = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`registry did not start: ${out}`)), 15_000);
      const onData = (b: Buffer) => {
        out += b.toString();
        const m = /Listening on http:\/\/(127\.0\.0\.1:\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      registry.stdout!.on('data', onData);
      registry.stderr!.on('data', onData);
    });
  });
  after(async () => {
    registry?.kill('SIGTERM');
    await daemon?.cleanup();
  });

  test('baleia push, rmi, pull and run; a second push finds the layer; a missing tag is a clear error', async () => {
    const ref = `${addr}/team/bb:1`;
    ok(await daemon.cli(['tag', 'busybox', ref]), 'tag');
    const push = await daemon.cli(['push', ref]);
    ok(push, 'push');
    assert.match(push.stdout + push.stderr, /digest: sha256:[0-9a-f]{64}/);
    const again = await daemon.cli(['push', ref]);
    assert.match(again.stdout + again.stderr, /Layer already exists/);
    ok(await daemon.cli(['rmi', ref]), 'rmi');
    const pull = await daemon.cli(['pull', ref]);
    ok(pull, 'pull');
    assert.match(pull.stdout + pull.stderr, /Already exists|Pull complete/);
    const run = await daemon.cli(['run', '--rm', ref, 'echo', 'pulled']);
    assert.equal(run.stdout, 'pulled\n');
    const digests = await daemon.cli(['images', '--digests', '--format', '{{.Repository}} {{.Digest}}']);
    assert.match(digests.stdout, new RegExp(`${addr}/team/bb sha256:[0-9a-f]{64}`));
    const missing = await daemon.cli(['pull', `${addr}/team/nope:1`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);
  });

  test('the docker CLI pushes and pulls through baleiad', { skip: !hasDocker && 'no docker CLI' }, async () => {
    const ref = `${addr}/docker/bb:2`;
    ok(await daemon.docker(['tag', 'busybox', ref]), 'tag');
    const push = await daemon.docker(['push', ref]);
    ok(push, 'docker push');
    assert.match(push.stdout, /Mounted from team\/bb|Pushed|Layer already exists/);
    ok(await daemon.docker(['rmi', ref]), 'docker rmi');
    const pull = await daemon.docker(['pull', ref]);
    ok(pull, 'docker pull');
    assert.match(pull.stdout, /Status: (Downloaded newer image|Image is up to date)/);
    const run = await daemon.docker(['run', '--rm', ref, 'echo', 'via docker']);
    assert.equal(run.stdout, 'via docker\n');
  });

  test('skopeo reads what baleia pushed, with the same digest', { skip: !existsSync('/usr/bin/skopeo') && 'skopeo is not installed' }, async () => {
    const digest = (await daemon.cli(['images', '--digests', '--format', '{{.Digest}}', `${addr}/team/bb`])).stdout.trim().split('\n')[0];
    const inspect = await runCommand('skopeo', ['inspect', '--tls-verify=false', `docker://${addr}/team/bb:1`]);
    ok(inspect, 'skopeo inspect');
    assert.equal(JSON.parse(inspect.stdout).Digest, digest);
  });
});
