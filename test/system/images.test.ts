/**
 * Images through both CLIs: import (file, stdin, --change), tag, images (filters, --format),
 * inspect, history, save → load → run, a docker-save archive loaded and run, rmi rules, prune,
 * and bad archives refused without damage.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { bootstrapBusybox, hasDocker, repoRoot, runCommand, startDaemon, type Daemon, ok } from './harness.js';


describe('images', () => {
  let daemon: Daemon;
  let work: string;
  before(async () => {
    daemon = await startDaemon({ name: 'img' });
    await bootstrapBusybox(daemon);
    work = path.join(daemon.dir, 'work');
    await fs.mkdir(work);
  });
  after(async () => {
    await daemon?.cleanup();
  });

  test('bootstrap labels busybox:latest with where it came from', async () => {
    const r = await daemon.cli(['image', 'inspect', 'busybox:latest']);
    ok(r, 'inspect');
    const [img] = JSON.parse(r.stdout);
    assert.match(img.Id, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(img.RepoTags, ['busybox:latest']);
    assert.ok(Object.keys(img.Config.Labels ?? {}).some((k) => k.includes('bootstrap')), JSON.stringify(img.Config.Labels));
    assert.equal(img.RootFS.Type, 'layers');
  });

  test('import a rootfs tar from stdin with --change, then run it', async () => {
    const rootfs = path.join(work, 'rootfs');
    await fs.mkdir(path.join(rootfs, 'bin'), { recursive: true });
    await fs.copyFile('/bin/busybox', path.join(rootfs, 'bin/busybox'));
    await fs.symlink('busybox', path.join(rootfs, 'bin/sh'));
    await fs.symlink('busybox', path.join(rootfs, 'bin/cat'));
    await fs.mkdir(path.join(rootfs, 'data'));
    await fs.writeFile(path.join(rootfs, 'data/hello.txt'), 'from the import\n');
    const tar = path.join(work, 'rootfs.tar');
    ok(await runCommand('tar', ['-C', rootfs, '-cf', tar, '.']), 'tar');
    const input = await fs.readFile(tar);
    const imp = await daemon.cli(['import', '-c', 'CMD ["cat", "/data/hello.txt"]', '-c', 'ENV WHO=whale', '-m', 'test import', '-', 'imported:v1'], { input });
    ok(imp, 'import');
    assert.match(imp.stdout, /sha256:[0-9a-f]{64}/);
    const run = await daemon.cli(['run', '--rm', 'imported:v1']);
    ok(run, 'run imported');
    assert.equal(run.stdout, 'from the import\n');
    const env = await daemon.cli(['run', '--rm', 'imported:v1', 'sh', '-c', 'echo $WHO']);
    assert.equal(env.stdout, 'whale\n');
    const hist = await daemon.cli(['history', '--no-trunc', 'imported:v1']);
    ok(hist, 'history');
    assert.match(hist.stdout, /test import/);
    if (hasDocker) {
      const dimp = await daemon.docker(['import', '-c', 'CMD ["cat", "/data/hello.txt"]', tar, 'imported:docker']);
      ok(dimp, 'docker import');
      const drun = await daemon.docker(['run', '--rm', 'imported:docker']);
      assert.equal(drun.stdout, 'from the import\n');
    }
  });

  test('tag, images with filters and --format, rmi untags then deletes', async () => {
    ok(await daemon.cli(['tag', 'busybox', 'myrepo/bb:v1']), 'tag');
    if (hasDocker) ok(await daemon.docker(['tag', 'busybox', 'myrepo/bb:v2']), 'docker tag');
    const list = await daemon.cli(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    ok(list, 'images');
    assert.match(list.stdout, /myrepo\/bb:v1/);
    const filtered = await daemon.cli(['images', '--filter', 'reference=myrepo/*', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.deepEqual(filtered.stdout.trim().split('\n').sort(), (hasDocker ? ['myrepo/bb:v1', 'myrepo/bb:v2'] : ['myrepo/bb:v1']));
    const byFull = await daemon.cli(['image', 'inspect', '-f', '{{.Id}}', 'docker.io/myrepo/bb:v1']);
    ok(byFull, 'inspect by full name');
    const rmi = await daemon.cli(['rmi', 'myrepo/bb:v1']);
    ok(rmi, 'rmi');
    assert.match(rmi.stdout, /Untagged: myrepo\/bb:v1/);
    assert.doesNotMatch(rmi.stdout, /Deleted/);
    if (hasDocker) {
      const drmi = await daemon.docker(['rmi', 'myrepo/bb:v2']);
      ok(drmi, 'docker rmi');
    }
    ok(await daemon.cli(['image', 'inspect', 'busybox']), 'busybox survives');
  });

  test('rmi of an image a container uses is refused', async () => {
    ok(await daemon.cli(['tag', 'busybox', 'inuse:1']), 'tag');
    const imported = await daemon.cli(['import', '-', 'solo:1'], { input: await fs.readFile(path.join(work, 'rootfs.tar')) });
    ok(imported, 'import');
    ok(await daemon.cli(['create', '--name', 'user-of-solo', 'solo:1', 'true']), 'create');
    const refused = await daemon.cli(['rmi', 'solo:1']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /conflict: unable to remove repository reference/);
    ok(await daemon.cli(['rm', 'user-of-solo']), 'rm');
    const removed = await daemon.cli(['rmi', 'solo:1']);
    ok(removed, 'rmi');
    assert.match(removed.stdout, /Deleted: sha256:/);
  });

  test('save → load → run round trip keeps the image id', async () => {
    const archive = path.join(work, 'busybox.tar');
    const id = (await daemon.cli(['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).stdout.trim();
    ok(await daemon.cli(['tag', 'busybox', 'roundtrip:1']), 'tag');
    ok(await daemon.cli(['save', '-o', archive, 'roundtrip:1']), 'save');
    ok(await daemon.cli(['rmi', 'roundtrip:1']), 'rmi');
    const load = await daemon.cli(['load', '-i', archive]);
    ok(load, 'load');
    assert.match(load.stdout, /Loaded image: roundtrip:1/);
    assert.equal((await daemon.cli(['image', 'inspect', '-f', '{{.Id}}', 'roundtrip:1'])).stdout.trim(), id);
    const run = await daemon.cli(['run', '--rm', 'roundtrip:1', 'echo', 'loaded']);
    assert.equal(run.stdout, 'loaded\n');
    if (hasDocker) {
      const dsave = path.join(work, 'docker-saved.tar');
      ok(await daemon.docker(['save', '-o', dsave, 'roundtrip:1']), 'docker save');
      ok(await daemon.docker(['rmi', 'roundtrip:1']), 'docker rmi');
      const dload = await daemon.docker(['load', '-i', dsave]);
      ok(dload, 'docker load');
      assert.match(dload.stdout, /Loaded image: roundtrip:1/);
      const drun = await daemon.docker(['run', '--rm', 'roundtrip:1', 'echo', 'loaded']);
      assert.equal(drun.stdout, 'loaded\n');
    }
  });

  test('a docker-archive written by another tool (skopeo) loads and runs', { skip: !existsSync('/usr/bin/skopeo') && 'skopeo is not installed' }, async () => {
    const layout = path.join(work, 'oci');
    const archive = path.join(work, 'busybox.tar');
    // Our save archive is also an OCI layout; skopeo rewrites it into its own docker-archive.
    await fs.mkdir(layout, { recursive: true });
    ok(await runCommand('tar', ['-C', layout, '-xf', archive]), 'untar');
    const out = path.join(work, 'skopeo.tar');
    const copy = await runCommand('skopeo', ['copy', '--insecure-policy', `docker-archive:${archive}`, `docker-archive:${out}:skopeo/bb:1`]);
    ok(copy, 'skopeo copy');
    ok(await daemon.cli(['load', '-i', out]), 'load skopeo archive');
    const run = await daemon.cli(['run', '--rm', 'skopeo/bb:1', 'echo', 'skopeo']);
    assert.equal(run.stdout, 'skopeo\n');
  });

  test('an archive written by docker save (dockerd 20.10) loads and runs', async () => {
    const fixture = path.join(repoRoot, 'test/fixtures/dockerd-20.10-save.tar.gz');
    const load = await daemon.cli(['load', '-i', fixture]);
    ok(load, 'load');
    assert.match(load.stdout, /Loaded image: dockerref\/bb:2/);
    const run = await daemon.cli(['run', '--rm', 'dockerref/bb:2', 'sh', '-c', 'cat /etc/origin /etc/second; echo $MADE_BY']);
    ok(run, 'run');
    assert.equal(run.stdout, 'made by dockerd 20.10\nlayer2\ndockerd\n');
    const defaultCmd = await daemon.cli(['run', '--rm', 'dockerref/bb:2']);
    assert.equal(defaultCmd.stdout, 'made by dockerd 20.10\n');
    const history = await daemon.cli(['history', '--format', '{{.CreatedBy}}', 'dockerref/bb:2']);
    assert.match(history.stdout, /ENV MADE_BY=dockerd/);
    assert.match(history.stdout, /echo layer2/);
    if (hasDocker) {
      ok(await daemon.docker(['rmi', 'dockerref/bb:2']), 'docker rmi');
      const dload = await daemon.docker(['load', '-i', fixture]);
      ok(dload, 'docker load');
      const drun = await daemon.docker(['run', '--rm', 'dockerref/bb:2']);
      assert.equal(drun.stdout, 'made by dockerd 20.10\n');
    }
  });

  test('a corrupt or incomplete archive is refused and nothing stored is damaged', async () => {
    const before = (await daemon.cli(['images', '-q', '--no-trunc'])).stdout;
    const archive = path.join(work, 'busybox.tar');
    const bytes = await fs.readFile(archive);
    const truncated = await daemon.cli(['load'], { input: bytes.subarray(0, Math.floor(bytes.length / 2)) });
    assert.notEqual(truncated.code, 0);
    const garbage = await daemon.cli(['load'], { input: Buffer.from('this is not a tar archive at all'.repeat(40)) });
    assert.notEqual(garbage.code, 0);
    // An archive whose manifest names a layer that is not in it.
    const broken = path.join(work, 'broken');
    await fs.mkdir(broken, { recursive: true });
    ok(await runCommand('tar', ['-C', broken, '-xf', archive]), 'untar');
    const manifest = JSON.parse(await fs.readFile(path.join(broken, 'manifest.json'), 'utf8'));
    await fs.rm(path.join(broken, manifest[0].Layers[0]));
    const brokenTar = path.join(work, 'broken.tar');
    ok(await runCommand('tar', ['-C', broken, '-cf', brokenTar, '.']), 'tar');
    const missing = await daemon.cli(['load', '-i', brokenTar]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /layer|missing|not found/i);
    assert.equal((await daemon.cli(['images', '-q', '--no-trunc'])).stdout, before);
    const run = await daemon.cli(['run', '--rm', 'busybox', 'echo', 'still fine']);
    assert.equal(run.stdout, 'still fine\n');
  });

  test('image prune removes dangling images only', async () => {
    const input = await fs.readFile(path.join(work, 'rootfs.tar'));
    const imp = await daemon.cli(['import', '-c', 'LABEL dangling=yes', '-'], { input });
    ok(imp, 'import untagged');
    const id = imp.stdout.trim();
    const prune = await daemon.cli(['image', 'prune', '-f']);
    ok(prune, 'prune');
    assert.match(prune.stdout, new RegExp(id.replace('sha256:', '').slice(0, 12)));
    ok(await daemon.cli(['image', 'inspect', 'busybox']), 'tagged image kept');
  });
});

