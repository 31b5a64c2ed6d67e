/**
 * Interop with another engine no one here wrote: an image baleia saves runs on podman, and an
 * image podman builds runs on baleia.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { bootstrapBusybox, runCommand, startDaemon, type Daemon, type RunResult, ok } from './harness.js';

const hasPodman = existsSync('/usr/bin/podman');

describe('interop with podman', { skip: !hasPodman && 'podman is not installed' }, () => {
  let daemon: Daemon;
  let podman: (args: string[]) => Promise<RunResult>;
  before(async () => {
    daemon = await startDaemon({ name: 'podman' });
    await bootstrapBusybox(daemon);
    const dir = path.join(daemon.dir, 'podman');
    const base = [
      '--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run'), '--tmpdir', path.join(dir, 'tmp'),
      '--cgroup-manager', 'cgroupfs', '--runtime', 'runc', '--events-backend', 'file',
    ];
    podman = (args) => runCommand('podman', [...base, ...args], { timeoutMs: 120_000 });
  });
  after(async () => {
    if (podman) await podman(['rm', '-af']).catch(() => {});
    await daemon?.cleanup();
  });

  // This machine cannot raise rlimits (no CAP_SYS_RESOURCE): podman's defaults need lowering.
  const limits = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

  test('an image saved by baleia loads and runs on podman', async () => {
    const archive = path.join(daemon.dir, 'ours.tar');
    ok(await daemon.cli(['save', '-o', archive, 'busybox:latest']), 'save');
    ok(await podman(['load', '-i', archive]), 'podman load');
    const run = await podman(['run', '--rm', '--network', 'none', ...limits, 'docker.io/library/busybox:latest', 'echo', 'ran-on-podman']);
    ok(run, 'podman run');
    assert.equal(run.stdout, 'ran-on-podman\n');
  });

  test('an image podman builds loads and runs on baleia', async () => {
    const ctx = path.join(daemon.dir, 'ctx');
    await fs.mkdir(ctx, { recursive: true });
    await fs.writeFile(
      path.join(ctx, 'Containerfile'),
      'FROM docker.io/library/busybox:latest\nRUN echo built-by-podman > /podman.txt\nCMD ["cat", "/podman.txt"]\n',
    );
    ok(await podman(['build', '--network', 'none', ...limits, '-t', 'podbuilt:1', '-f', path.join(ctx, 'Containerfile'), ctx]), 'podman build');
    const archive = path.join(daemon.dir, 'podman.tar');
    ok(await podman(['save', '-o', archive, 'podbuilt:1']), 'podman save');
    const load = await daemon.cli(['load', '-i', archive]);
    ok(load, 'load');
    assert.match(load.stdout, /localhost\/podbuilt:1/);
    const run = await daemon.cli(['run', '--rm', 'localhost/podbuilt:1']);
    ok(run, 'run');
    assert.equal(run.stdout, 'built-by-podman\n');
  });
});
