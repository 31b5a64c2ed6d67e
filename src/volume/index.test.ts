import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isKind, run } from '../lib/index.js';
import { VolumeStore } from './index.js';

let tmp: string;

/** Unmounts everything under the test dir (deepest first) and deletes it, even after a failure. */
async function cleanup(dir: string): Promise<void> {
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const targets = info
    .split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((t): t is string => !!t && t.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const t of targets) await run('umount', ['-l', t], { allowFailure: true });
  await fs.rm(dir, { recursive: true, force: true });
}

async function mountAt(target: string): Promise<string | undefined> {
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left?.split(' ')[4] === target) return right?.split(' ')[0];
  }
  return undefined;
}

let counter = 0;
async function newRoot(): Promise<string> {
  const root = path.join(tmp, `root${counter++}`);
  await fs.mkdir(root);
  return root;
}

function rejectsWith(kind: string, message: string | RegExp) {
  return (err: unknown) => {
    assert.ok(isKind(err, kind as never), `expected ${kind}, got ${String(err)}`);
    if (typeof message === 'string') assert.equal((err as Error).message, message);
    else assert.match((err as Error).message, message);
    return true;
  };
}

before(async () => {
  tmp = await fs.mkdtemp('/tmp/baleia-test-volume-');
});
after(async () => {
  await cleanup(tmp);
});

describe('VolumeStore', () => {
  it('creates, gets, lists and removes a volume with Docker-shaped records', async () => {
    const root = await newRoot();
    const store = new VolumeStore({ root });
    await store.init();
    const v = await store.create({ name: 'data', labels: { a: 'b' } });
    assert.deepEqual(Object.keys(v).sort(), ['CreatedAt', 'Driver', 'Labels', 'Mountpoint', 'Name', 'Options', 'Scope']);
    assert.equal(v.Mountpoint, path.join(root, 'volumes', 'data', '_data'));
    assert.match(v.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(v.Labels, { a: 'b' });
    assert.equal((await fs.stat(v.Mountpoint)).isDirectory(), true);
    assert.deepEqual(await store.get('data'), v);
    await store.create({ name: 'other' });
    assert.deepEqual((await store.list()).map((x) => x.Name), ['data', 'other']);
    await store.remove('data');
    await assert.rejects(store.get('data'), rejectsWith('NotFound', 'get data: no such volume'));
    await assert.rejects(store.remove('data'), rejectsWith('NotFound', 'get data: no such volume'));
    await store.remove('data', { force: true });
    assert.deepEqual(await fs.readdir(path.join(root, 'volumes')), ['other']);
  });

  it('generates a 64-hex name and marks anonymous volumes', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    const v = await store.create({ anonymous: true });
    assert.match(v.Name, /^[0-9a-f]{64}$/);
    assert.equal(v.Anonymous, true);
  });

  it('rejects names outside Docker grammar with Docker texts', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    await assert.rejects(
      store.create({ name: './data' }),
      rejectsWith(
        'InvalidArgument',
        'create ./data: "./data" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
      ),
    );
    for (const bad of ['-x', 'a b', '_ab', 'a/b', 'é1']) await assert.rejects(store.create({ name: bad }), rejectsWith('InvalidArgument', /includes invalid characters/));
    await assert.rejects(store.create({ name: 'a' }), rejectsWith('InvalidArgument', /volume name is too short/));
    for (const ok of ['ab', '1.2', 'A_b-c.d']) await store.create({ name: ok });
  });

  it('validates drivers and local options like Docker', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    await assert.rejects(store.create({ name: 'v1', driver: 'nfs' }), rejectsWith('NotFound', /plugin "nfs" not found/));
    await assert.rejects(store.create({ name: 'v1', options: { x: '1' } }), rejectsWith('InvalidArgument', 'create v1: invalid option key: "x"'));
    await assert.rejects(store.create({ name: 'v1', options: { type: 'tmpfs' } }), rejectsWith('InvalidArgument', 'create v1: missing required option: "device"'));
    await assert.rejects(store.create({ name: 'v1', options: { o: 'size=1m' } }), rejectsWith('InvalidArgument', /missing required option/));
    await assert.rejects(store.create({ name: 'v1', options: { size: '1g' } }), rejectsWith('InvalidArgument', /no quota support/));
    assert.deepEqual(await store.list(), []);
  });

  it('returns the existing volume on a second create unless driver or options differ', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    const opts = { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' };
    const first = await store.create({ name: 'same', options: opts, labels: { x: '1' } });
    assert.deepEqual(await store.create({ name: 'same' }), first);
    assert.deepEqual(await store.create({ name: 'same', options: { ...opts }, labels: { y: '2' } }), first);
    await assert.rejects(store.create({ name: 'same', options: { ...opts, o: 'size=2m' } }), rejectsWith('Conflict', /different options/));
    await assert.rejects(store.create({ name: 'same', driver: 'other' }), rejectsWith('Conflict', /volume name must be unique/));
  });

  it('keeps records and data across a new store on the same root', async () => {
    const root = await newRoot();
    const a = new VolumeStore({ root });
    const v = await a.create({ name: 'keep', labels: { k: 'v' }, options: { type: 'tmpfs', device: 'tmpfs' } });
    await a.create({ name: 'plain' });
    await fs.writeFile(path.join((await a.get('plain')).Mountpoint, 'f'), 'hello');
    const b = new VolumeStore({ root });
    await b.init();
    assert.deepEqual(await b.get('keep'), v);
    assert.equal(await fs.readFile(path.join((await b.get('plain')).Mountpoint, 'f'), 'utf8'), 'hello');
    assert.equal(await b.usage('plain'), 5);
  });

  it('mounts a tmpfs volume of the asked size once for two containers and unmounts after both release', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    const v = await store.create({ name: 'scratch', options: { type: 'tmpfs', device: 'tmpfs', o: 'size=64m,uid=1000' } });
    const p1 = await store.mount('scratch', 'c1');
    const p2 = await store.mount('scratch', 'c2');
    assert.equal(p1, v.Mountpoint);
    assert.equal(p2, v.Mountpoint);
    assert.equal(await mountAt(v.Mountpoint), 'tmpfs');
    const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
    assert.equal(info.split('\n').filter((l) => l.split(' ')[4] === v.Mountpoint).length, 1, 'mounted exactly once');
    const st = await fs.statfs(v.Mountpoint);
    assert.equal(st.blocks * st.bsize, 64 * 1024 * 1024);
    assert.equal((await fs.stat(v.Mountpoint)).uid, 1000);
    assert.deepEqual(store.holders('scratch').sort(), ['c1', 'c2']);
    await store.unmount('scratch', 'c1');
    assert.equal(await mountAt(v.Mountpoint), 'tmpfs');
    await store.unmount('scratch', 'c2');
    assert.equal(await mountAt(v.Mountpoint), undefined);
    await store.unmount('scratch', 'c2');
    await store.unmount('missing', 'c2');
  });

  it('adopts a mount left by a previous daemon and unmounts it when idle', async () => {
    const root = await newRoot();
    const a = new VolumeStore({ root });
    const v = await a.create({ name: 'kept', options: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' } });
    await a.mount('kept', 'c1');
    await fs.writeFile(path.join(v.Mountpoint, 'live'), 'x');
    const b = new VolumeStore({ root });
    await b.mount('kept', 'c1');
    assert.equal(await fs.readFile(path.join(v.Mountpoint, 'live'), 'utf8'), 'x', 're-adopted, not remounted');
    await b.unmountIdle();
    assert.equal(await mountAt(v.Mountpoint), 'tmpfs', 'held by c1');
    const c = new VolumeStore({ root });
    await c.unmountIdle();
    assert.equal(await mountAt(v.Mountpoint), undefined);
  });

  it('binds a host directory with type=none o=bind and never deletes it on remove', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    const host = path.join(tmp, 'hostdir');
    await fs.mkdir(host);
    await fs.writeFile(path.join(host, 'precious'), 'keep me');
    await store.create({ name: 'hostvol', options: { type: 'none', device: host, o: 'bind' } });
    const p = await store.mount('hostvol', 'c1');
    assert.equal(await fs.readFile(path.join(p, 'precious'), 'utf8'), 'keep me');
    await fs.writeFile(path.join(p, 'written'), 'through');
    assert.equal(await fs.readFile(path.join(host, 'written'), 'utf8'), 'through');
    await assert.rejects(store.remove('hostvol'), rejectsWith('Conflict', /volume is in use - \[c1\]/));
    await store.remove('hostvol', { force: true });
    assert.deepEqual((await fs.readdir(host)).sort(), ['precious', 'written']);
    assert.equal(await mountAt(p), undefined);
  });

  it('mounts a block device volume (type=ext4) and keeps its data between uses', async (t) => {
    const image = path.join(tmp, 'ext4.img');
    await fs.writeFile(image, Buffer.alloc(0));
    await fs.truncate(image, 8 * 1024 * 1024);
    const mkfs = await run('mkfs.ext4', ['-q', '-F', image], { allowFailure: true });
    const loop = mkfs.code === 0 ? await run('losetup', ['--find', '--show', image], { allowFailure: true }) : mkfs;
    if (loop.code !== 0) {
      t.skip(`no loop device here: ${loop.stderr.trim()}`);
      return;
    }
    const device = loop.stdout.trim();
    try {
      const store = new VolumeStore({ root: await newRoot() });
      await store.create({ name: 'disk', options: { type: 'ext4', device } });
      const p = await store.mount('disk', 'c1');
      assert.equal(await mountAt(p), 'ext4');
      await fs.writeFile(path.join(p, 'on-disk'), 'd');
      await store.unmount('disk', 'c1');
      assert.equal(await mountAt(p), undefined);
      assert.equal(await fs.readdir(p).then((e) => e.includes('on-disk')), false);
      await store.mount('disk', 'c2');
      assert.equal(await fs.readFile(path.join(p, 'on-disk'), 'utf8'), 'd');
      await store.remove('disk', { force: true });
    } finally {
      const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
      for (const line of info.split('\n')) if (line.includes(` ${device} `)) await run('umount', ['-l', line.split(' ')[4]!], { allowFailure: true });
      await run('losetup', ['-d', device], { allowFailure: true });
    }
  });

  it('mounts once when two containers start at the same instant, and remounts after an outside unmount of an adopted mount', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    const v = await store.create({ name: 'race', options: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' } });
    await Promise.all([store.mount('race', 'c1'), store.mount('race', 'c2')]);
    const count = async () => (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4] === v.Mountpoint).length;
    assert.equal(await count(), 1);
    await Promise.all([store.unmount('race', 'c1'), store.unmount('race', 'c2')]);
    assert.equal(await count(), 0);
    await store.mount('race', 'c3');
    const adopter = new VolumeStore({ root: path.dirname(path.dirname(path.dirname(v.Mountpoint))) });
    await adopter.init();
    await run('umount', [v.Mountpoint]);
    await adopter.mount('race', 'c4');
    assert.equal(await count(), 1, 'the adopted mount was gone, so mount() mounted again');
    await adopter.unmount('race', 'c4');
    assert.equal(await count(), 0);
  });

  it('reports a failed mount and stays unmounted', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    await store.create({ name: 'broken', options: { type: 'none', device: path.join(tmp, 'absent'), o: 'bind' } });
    await assert.rejects(store.mount('broken', 'c1'), rejectsWith('Internal', /Cannot mount volume "broken"/));
    assert.deepEqual(store.holders('broken'), []);
  });

  it('copies up owners, modes, mtimes, symlinks and hardlinks without following links out of the source', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    const src = path.join(tmp, 'image-dir');
    const outside = path.join(tmp, 'outside');
    await fs.mkdir(outside);
    await fs.writeFile(path.join(outside, 'secret'), 'host secret');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'sub', 'file'), 'content');
    await fs.chown(path.join(src, 'sub', 'file'), 1234, 5678);
    await fs.chmod(path.join(src, 'sub', 'file'), 0o640);
    await fs.chmod(path.join(src, 'sub'), 0o710);
    await fs.utimes(path.join(src, 'sub', 'file'), 1_000_000, 1_000_000);
    await fs.link(path.join(src, 'sub', 'file'), path.join(src, 'hard'));
    await fs.symlink(outside, path.join(src, 'abs-link'));
    await fs.symlink('../outside', path.join(src, 'rel-link'));
    await fs.chown(src, 1000, 1000);
    await fs.chmod(src, 0o750);
    const v = await store.create({ name: 'filled' });
    await store.copyUp('filled', src);
    const d = v.Mountpoint;
    const f = await fs.stat(path.join(d, 'sub', 'file'));
    assert.equal(f.uid, 1234);
    assert.equal(f.gid, 5678);
    assert.equal(f.mode & 0o7777, 0o640);
    assert.equal(Math.floor(f.mtimeMs / 1000), 1_000_000);
    assert.equal((await fs.stat(path.join(d, 'sub'))).mode & 0o7777, 0o710);
    assert.equal((await fs.stat(path.join(d, 'hard'))).ino, f.ino, 'hardlink kept');
    assert.equal(await fs.readlink(path.join(d, 'abs-link')), outside);
    assert.equal(await fs.readlink(path.join(d, 'rel-link')), '../outside');
    assert.equal((await fs.lstat(path.join(d, 'abs-link'))).isSymbolicLink(), true);
    const root = await fs.stat(d);
    assert.equal(root.uid, 1000);
    assert.equal(root.mode & 0o7777, 0o750);

    const linked = path.join(tmp, 'linked-src');
    await fs.symlink(outside, linked);
    await store.create({ name: 'via-link' });
    await store.copyUp('via-link', linked);
    assert.deepEqual(await fs.readdir((await store.get('via-link')).Mountpoint), [], 'a symlinked source is not followed');
    await store.copyUp('via-link', path.join(tmp, 'no-such-dir'));
  });

  it('copies up only once, and never into a volume that has data', async () => {
    const root = await newRoot();
    const store = new VolumeStore({ root });
    const src = path.join(tmp, 'once-src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a'), 'A');
    const v = await store.create({ name: 'once' });
    await store.copyUp('once', src);
    await fs.rm(path.join(v.Mountpoint, 'a'));
    await store.copyUp('once', src);
    assert.deepEqual(await fs.readdir(v.Mountpoint), []);
    await new VolumeStore({ root }).copyUp('once', src);
    assert.deepEqual(await fs.readdir(v.Mountpoint), [], 'the flag survives a restart');

    const w = await store.create({ name: 'has-data' });
    await fs.writeFile(path.join(w.Mountpoint, 'mine'), 'M');
    await store.copyUp('has-data', src);
    assert.deepEqual(await fs.readdir(w.Mountpoint), ['mine']);
  });

  it('copies up into a tmpfs volume again after each fresh mount', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    const src = path.join(tmp, 'tmpfs-src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'seed'), 'S');
    const v = await store.create({ name: 'eph', options: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m' } });
    await assert.rejects(store.copyUp('eph', src), rejectsWith('Internal', /not mounted/));
    await store.mount('eph', 'c1');
    await store.copyUp('eph', src);
    await fs.rm(path.join(v.Mountpoint, 'seed'));
    await store.copyUp('eph', src);
    assert.deepEqual(await fs.readdir(v.Mountpoint), []);
    await store.unmount('eph', 'c1');
    await store.mount('eph', 'c2');
    await store.copyUp('eph', src);
    assert.deepEqual(await fs.readdir(v.Mountpoint), ['seed']);
    await store.unmount('eph', 'c2');
  });

  it('prunes only volumes that are unused, unheld and accepted by the filter', async () => {
    const store = new VolumeStore({ root: await newRoot() });
    for (const name of ['used', 'held', 'labelled', 'gone1', 'gone2']) await store.create({ name, labels: name === 'labelled' ? { keep: '1' } : {} });
    await fs.writeFile(path.join((await store.get('gone1')).Mountpoint, 'x'), Buffer.alloc(1000));
    await fs.mkdir(path.join((await store.get('gone2')).Mountpoint, 'd'));
    await fs.writeFile(path.join((await store.get('gone2')).Mountpoint, 'd', 'y'), Buffer.alloc(24));
    await store.mount('held', 'c1');
    const r = await store.prune((v) => !('keep' in v.Labels), new Set(['used']));
    assert.deepEqual(r.VolumesDeleted.sort(), ['gone1', 'gone2']);
    assert.equal(r.SpaceReclaimed, 1024);
    assert.deepEqual((await store.list()).map((v) => v.Name), ['held', 'labelled', 'used']);
  });

  it('removes half-created and half-removed volumes at init', async () => {
    const root = await newRoot();
    const a = new VolumeStore({ root });
    await a.create({ name: 'whole' });
    const vols = path.join(root, 'volumes');
    await fs.mkdir(path.join(vols, 'half', '_data'), { recursive: true });
    await fs.writeFile(path.join(vols, 'half', '_data', 'junk'), 'j');
    await fs.mkdir(path.join(vols, '.tmp-x-0011', '_data'), { recursive: true });
    await fs.mkdir(path.join(vols, '.del-y-0011', '_data'), { recursive: true });
    const b = new VolumeStore({ root });
    await b.init();
    assert.deepEqual(await fs.readdir(vols), ['whole']);
    assert.deepEqual((await b.list()).map((v) => v.Name), ['whole']);
    await b.create({ name: 'half' });
    assert.deepEqual(await fs.readdir((await b.get('half')).Mountpoint), []);
  });
});
