/**
 * Files in and out of containers through both CLIs: cp both ways (also to stopped containers,
 * -a, -L, tar on stdin/stdout), export, diff, commit — and escapes through `..` and symlinks refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { bootstrapBusybox, runCommand, startDaemon, type Daemon, ok, testClients } from './harness.js';


const clients = testClients;

describe('files in and out of containers', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ name: 'files' });
    await bootstrapBusybox(daemon);
  });
  after(async () => {
    await daemon?.cleanup();
  });

  for (const client of clients) {
    const c = (args: string[], input?: Buffer) => client.cmd(daemon, args, input);
    const name = `files-${client.name}`;
    const work = () => path.join(daemon.dir, client.name);

    test(`${client.name}: cp both ways, to running and stopped containers`, async () => {
      await fs.mkdir(work(), { recursive: true });
      ok(await c(['run', '-d', '--name', name, 'busybox', 'sh', '-c', 'mkdir -p /data/sub; echo inside > /data/f; ln -s f /data/link; chown 1234:5678 /data/f; sleep 300']), 'run');
      await new Promise((r) => setTimeout(r, 300));
      ok(await c(['cp', `${name}:/data/f`, path.join(work(), 'f')]), 'cp out file');
      assert.equal(await fs.readFile(path.join(work(), 'f'), 'utf8'), 'inside\n');
      ok(await c(['cp', `${name}:/data`, path.join(work(), 'd')]), 'cp out dir');
      assert.equal((await fs.readlink(path.join(work(), 'd/link'))), 'f');
      assert.ok((await fs.stat(path.join(work(), 'd/sub'))).isDirectory());
      ok(await c(['cp', '-L', `${name}:/data/link`, path.join(work(), 'followed')]), 'cp -L');
      assert.equal(await fs.readFile(path.join(work(), 'followed'), 'utf8'), 'inside\n');
      const tarOut = await c(['cp', `${name}:/data/f`, '-']);
      ok(tarOut, 'cp to stdout');
      assert.ok(tarOut.stdout.includes('inside'));

      await fs.writeFile(path.join(work(), 'host.txt'), 'from host\n');
      ok(await c(['cp', path.join(work(), 'host.txt'), `${name}:/data/`]), 'cp in to dir');
      ok(await c(['cp', path.join(work(), 'host.txt'), `${name}:/data/renamed.txt`]), 'cp in with rename');
      const seen = await c(['exec', name, 'sh', '-c', 'cat /data/host.txt /data/renamed.txt; stat -c %u /data/host.txt']);
      assert.equal(seen.stdout, 'from host\nfrom host\n0\n');
      ok(await c(['cp', '-a', path.join(work(), 'host.txt'), `${name}:/data/kept-owner.txt`]), 'cp -a');
      const missing = await c(['cp', `${name}:/no/such/file`, work()]);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /Could not find the file \/no\/such\/file/);

      ok(await c(['stop', '-t', '0', name]), 'stop');
      ok(await c(['cp', path.join(work(), 'host.txt'), `${name}:/data/while-stopped.txt`]), 'cp into a stopped container');
      ok(await c(['cp', `${name}:/data/while-stopped.txt`, path.join(work(), 'back.txt')]), 'cp out of a stopped container');
      assert.equal(await fs.readFile(path.join(work(), 'back.txt'), 'utf8'), 'from host\n');
    });

    test(`${client.name}: diff, commit and export`, async () => {
      ok(await c(['start', name]), 'start');
      ok(await c(['exec', name, 'sh', '-c', 'rm /etc/group; echo changed >> /etc/passwd']), 'change');
      const diff = await c(['diff', name]);
      ok(diff, 'diff');
      const lines = diff.stdout.trim().split('\n');
      for (const expected of ['A /data', 'A /data/f', 'C /etc', 'D /etc/group', 'C /etc/passwd']) assert.ok(lines.includes(expected), `${expected} in\n${diff.stdout}`);
      assert.ok(!lines.includes('A /etc/hosts'), diff.stdout);
      const commit = await c(['commit', '-c', 'ENV COMMITTED=yes', '-c', 'CMD ["cat", "/data/f"]', '-m', 'snapshot', '-a', 'whale', name, `committed-${client.name}:1`]);
      ok(commit, 'commit');
      assert.match(commit.stdout, /sha256:[0-9a-f]{64}/);
      const run = await c(['run', '--rm', `committed-${client.name}:1`]);
      assert.equal(run.stdout, 'inside\n');
      const env = await c(['run', '--rm', `committed-${client.name}:1`, 'sh', '-c', 'echo $COMMITTED; test -e /etc/group || echo gone']);
      assert.equal(env.stdout, 'yes\ngone\n');
      const history = await c(['history', '--format', '{{.Comment}}', `committed-${client.name}:1`]);
      assert.equal(history.stdout.split('\n')[0], 'snapshot');
      const inspect = JSON.parse((await c(['image', 'inspect', `committed-${client.name}:1`])).stdout)[0];
      assert.equal(inspect.Author, 'whale');
      assert.equal(inspect.RootFS.Layers.length, 2);
      const out = path.join(work(), 'export.tar');
      ok(await c(['export', '-o', out, name]), 'export');
      const list = await runCommand('tar', ['-tf', out]);
      assert.match(list.stdout, /(^|\n)\.?\/?data\/f\n/);
      assert.match(list.stdout, /(^|\n)\.?\/?bin\/busybox\n/);
      ok(await c(['rm', '-f', name]), 'rm');
      const gone = await c(['commit', name]);
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /No such container/);
    });

    test(`${client.name}: copies cannot escape the container through .. or symlinks`, async () => {
      const esc = `escape-${client.name}`;
      const hostTarget = path.join(daemon.dir, `host-target-${client.name}`);
      await fs.mkdir(hostTarget);
      ok(await c(['run', '-d', '--name', esc, '-v', `${path.join(daemon.dir, 'ro-' + client.name)}:/ro:ro`, 'busybox', 'sh', '-c', `ln -s ${hostTarget} /escape; ln -s /etc/shadow /leak; mkdir -p ${hostTarget}; sleep 300`]), 'run');
      await new Promise((r) => setTimeout(r, 300));
      await fs.writeFile(path.join(work(), 'payload'), 'payload\n');
      // Through a symlink that names a host path: it lands in the container's own tree.
      ok(await c(['cp', path.join(work(), 'payload'), `${esc}:/escape/`]), 'cp through symlink');
      assert.equal(existsSync(path.join(hostTarget, 'payload')), false, 'written on the host');
      const inside = await c(['exec', esc, 'cat', `${hostTarget}/payload`]);
      assert.equal(inside.stdout, 'payload\n');
      // Out through a symlink to a host file: the container's view, never the host's.
      const leak = await c(['cp', '-L', `${esc}:/leak`, path.join(work(), 'leaked')]);
      assert.notEqual(leak.code, 0);
      assert.equal(existsSync(path.join(work(), 'leaked')), false);
      // A tar whose entries climb out with ..
      const evil = path.join(work(), 'evil');
      await fs.mkdir(evil, { recursive: true });
      await fs.writeFile(path.join(evil, 'x'), 'x\n');
      const evilTar = path.join(work(), 'evil.tar');
      ok(await runCommand('tar', ['-C', evil, '-cf', evilTar, '--transform', 's,^x,../../../../tmp/baleia-escaped-x,', 'x']), 'tar');
      const refused = await c(['cp', '-', `${esc}:/tmp`], await fs.readFile(evilTar));
      assert.notEqual(refused.code, 0);
      assert.equal(existsSync('/tmp/baleia-escaped-x'), false);
      // Into a read-only mount.
      const ro = await c(['cp', path.join(work(), 'payload'), `${esc}:/ro/`]);
      assert.notEqual(ro.code, 0);
      assert.match(ro.stderr, /read-only/i);
      ok(await c(['rm', '-f', esc]), 'rm');
    });
  }
});
