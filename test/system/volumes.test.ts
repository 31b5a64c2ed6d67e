/**
 * Volumes and mounts through both CLIs: data that outlives containers, copy-up from the image,
 * read-only mounts, binds, tmpfs, --volumes-from, the image's VOLUME, and the volume commands.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { bootstrapBusybox, runCommand, startDaemon, type Daemon, ok, testClients } from './harness.js';


const clients = testClients;

describe('volumes and mounts', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ name: 'vol' });
    await bootstrapBusybox(daemon);
    // An image whose /srv/app is owned by 1000:1000 with mode 0750 and declares VOLUME /cache.
    const rootfs = path.join(daemon.dir, 'rootfs');
    await fs.mkdir(path.join(rootfs, 'srv/app'), { recursive: true });
    await fs.writeFile(path.join(rootfs, 'srv/app/config'), 'from-image\n');
    await fs.symlink('config', path.join(rootfs, 'srv/app/link'));
    await fs.chmod(path.join(rootfs, 'srv/app'), 0o750);
    await fs.mkdir(path.join(rootfs, 'cache'));
    await fs.mkdir(path.join(rootfs, 'bin'));
    await fs.copyFile('/bin/busybox', path.join(rootfs, 'bin/busybox'));
    await fs.chmod(path.join(rootfs, 'bin/busybox'), 0o755);
    for (const applet of ['sh', 'cat', 'stat', 'ls', 'grep', 'wc', 'echo'])
      await fs.symlink('busybox', path.join(rootfs, 'bin', applet));
    await fs.writeFile(path.join(rootfs, 'cache/seed'), 'seed\n');
    const tar = path.join(daemon.dir, 'app.tar');
    ok(await runCommand('tar', ['-C', rootfs, '--owner=1000', '--group=1000', '-cf', tar, '.']), 'tar');
    ok(await daemon.cli(['import', '-c', 'VOLUME /cache', tar, 'appdata:1']), 'import');
  });
  after(async () => {
    await daemon?.cleanup();
  });

  for (const client of clients) {
    const c = (args: string[]) => client.cmd(daemon, args);
    const v = `data-${client.name}`;

    test(`${client.name}: data in a named volume outlives its container`, async () => {
      const created = await c(['volume', 'create', '--label', 'team=whales', v]);
      ok(created, 'volume create');
      assert.equal(created.stdout.trim(), v);
      ok(await c(['run', '--rm', '-v', `${v}:/data`, 'busybox', 'sh', '-c', 'echo kept > /data/file']), 'write');
      const read = await c(['run', '--rm', '-v', `${v}:/data:ro`, 'busybox', 'cat', '/data/file']);
      assert.equal(read.stdout, 'kept\n');
      const ro = await c(['run', '--rm', '-v', `${v}:/data:ro`, 'busybox', 'touch', '/data/other']);
      assert.equal(ro.code, 1);
      assert.match(ro.stderr, /Read-only file system/);
      const inspect = JSON.parse((await c(['volume', 'inspect', v])).stdout)[0];
      assert.equal(inspect.Name, v);
      assert.equal(inspect.Driver, 'local');
      assert.equal(inspect.Labels.team, 'whales');
      assert.match(inspect.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
      const ls = await c(['volume', 'ls', '--filter', 'label=team=whales', '-q']);
      assert.ok(ls.stdout.split('\n').includes(v), ls.stdout);
    });

    test(`${client.name}: a volume in use cannot be removed; rm -v removes anonymous volumes`, async () => {
      const holder = `holder-${client.name}`;
      ok(await c(['create', '--name', holder, '-v', `${v}:/data`, '-v', '/anon', 'busybox', 'true']), 'create');
      const refused = await c(['volume', 'rm', v]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /volume is in use/);
      const mounts = JSON.parse((await c(['inspect', '-f', '{{json .Mounts}}', holder])).stdout);
      const anon = mounts.find((m: { Destination: string }) => m.Destination === '/anon');
      assert.equal(anon.Type, 'volume');
      assert.match(anon.Name, /^[0-9a-f]{64}$/);
      const dangling = await c(['volume', 'ls', '-q', '--filter', 'dangling=false']);
      assert.ok(dangling.stdout.includes(anon.Name));
      ok(await c(['rm', '-v', holder]), 'rm -v');
      assert.notEqual((await c(['volume', 'inspect', anon.Name])).code, 0);
      ok(await c(['volume', 'inspect', v]), 'named volume kept');
      ok(await c(['volume', 'rm', v]), 'volume rm');
    });

    test(`${client.name}: a new volume is filled from the image with owners and modes kept, once`, async () => {
      const vol = `copyup-${client.name}`;
      const first = await c(['run', '--rm', '-v', `${vol}:/srv/app`, 'appdata:1', 'sh', '-c', 'stat -c "%u:%g %a" /srv/app; cat /srv/app/link; echo changed > /srv/app/config']);
      ok(first, 'first run');
      assert.equal(first.stdout, '1000:1000 750\nfrom-image\n');
      const second = await c(['run', '--rm', '-v', `${vol}:/srv/app`, 'appdata:1', 'cat', '/srv/app/config']);
      assert.equal(second.stdout, 'changed\n');
      const nocopy = await c(['run', '--rm', '-v', `nocopy-${client.name}:/srv/app:nocopy`, 'appdata:1', 'ls', '-A', '/srv/app']);
      assert.equal(nocopy.stdout, '');
    });

    test(`${client.name}: the image's VOLUME becomes an anonymous volume with the image's content`, async () => {
      const run = await c(['run', '--rm', 'appdata:1', 'sh', '-c', 'cat /cache/seed; grep " /cache " /proc/mounts | wc -l']);
      ok(run, 'run');
      assert.equal(run.stdout, 'seed\n1\n');
    });

    test(`${client.name}: binds, tmpfs and --volumes-from`, async () => {
      const host = path.join(daemon.dir, `host-${client.name}`);
      await fs.mkdir(host);
      await fs.writeFile(path.join(host, 'in'), 'from-host\n');
      const bind = await c(['run', '--rm', '-v', `${host}:/h`, 'busybox', 'sh', '-c', 'cat /h/in; echo out > /h/out']);
      assert.equal(bind.stdout, 'from-host\n');
      assert.equal(await fs.readFile(path.join(host, 'out'), 'utf8'), 'out\n');
      const roBind = await c(['run', '--rm', '--mount', `type=bind,source=${host},target=/h,readonly`, 'busybox', 'touch', '/h/x']);
      assert.equal(roBind.code, 1);
      const missing = await c(['run', '--rm', '--mount', `type=bind,source=${host}/nope,target=/h`, 'busybox', 'true']);
      assert.equal(missing.code, 125);
      assert.match(missing.stderr, /bind source path does not exist/);
      const created = await c(['run', '--rm', '-v', `${host}/made:/m`, 'busybox', 'true']);
      ok(created, '-v creates a missing host directory');
      const tmpfs = await c(['run', '--rm', '--mount', 'type=tmpfs,target=/scratch,tmpfs-size=8m', 'busybox', 'sh', '-c', "df -k /scratch | tail -1 | awk '{print $2}'"]);
      assert.equal(tmpfs.stdout, '8192\n');
      const tmpfsFlag = await c(['run', '--rm', '--tmpfs', '/run:size=4m', 'busybox', 'sh', '-c', "df -k /run | tail -1 | awk '{print $2}'"]);
      assert.equal(tmpfsFlag.stdout, '4096\n');
      const src = `vsrc-${client.name}`;
      ok(await c(['create', '--name', src, '-v', `shared-${client.name}:/shared`, 'busybox', 'true']), 'create source');
      ok(await c(['run', '--rm', '--volumes-from', src, 'busybox', 'sh', '-c', 'echo via-from > /shared/f']), 'volumes-from write');
      const viaRo = await c(['run', '--rm', '--volumes-from', `${src}:ro`, 'busybox', 'sh', '-c', 'cat /shared/f; touch /shared/g']);
      assert.equal(viaRo.stdout, 'via-from\n');
      assert.equal(viaRo.code, 1);
      ok(await c(['rm', src]), 'rm source');
    });

    test(`${client.name}: bad volume names and duplicate mount points are refused`, async () => {
      const bad = await c(['volume', 'create', 'a/b']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /includes invalid characters for a local volume name/);
      const dup = await c(['run', '--rm', '-v', '/tmp:/x', '-v', `${v}:/x`, 'busybox', 'true']);
      assert.equal(dup.code, 125);
      assert.match(dup.stderr, /Duplicate mount point/);
      const missing = await c(['volume', 'inspect', 'no-such-volume']);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no such volume/);
    });
  }

  test('volume prune removes unused volumes and system df counts them', async () => {
    ok(await daemon.cli(['volume', 'create', 'unused-one']), 'create');
    ok(await daemon.cli(['create', '--name', 'keeper', '-v', 'used-one:/d', 'busybox', 'true']), 'create container');
    const df = await daemon.cli(['system', 'df', '-v']);
    ok(df, 'df -v');
    assert.match(df.stdout, /used-one/);
    const prune = await daemon.cli(['volume', 'prune', '-f']);
    ok(prune, 'prune');
    const lines = prune.stdout.split('\n');
    assert.ok(lines.includes('unused-one'), prune.stdout);
    assert.ok(!lines.includes('used-one'), prune.stdout);
    ok(await daemon.cli(['volume', 'inspect', 'used-one']), 'used volume kept');
    ok(await daemon.cli(['rm', 'keeper']), 'rm');
  });
});
