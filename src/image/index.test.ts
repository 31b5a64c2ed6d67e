import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { ContentStore } from '../content/index.js';
import { Snapshotter } from '../snapshot/index.js';
import { run } from '../lib/index.js';
import { ImageStore, chainIds, familiarName, parseChanges, parseReference, type ContainerConfig } from './index.js';

interface Entry {
  name: string;
  type?: 'file' | 'directory' | 'symlink';
  content?: string | Buffer;
  linkname?: string;
}

async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  })();
  for (const e of entries) {
    const type = e.type ?? (e.content !== undefined ? 'file' : 'directory');
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name: e.name, type, mode: type === 'directory' ? 0o755 : 0o644, mtime: new Date(1_600_000_000_000), linkname: e.linkname },
        e.content ?? '',
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const hex = (d: string) => d.slice(7);

async function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

interface Ctx {
  root: string;
  dir: string;
  content: ContentStore;
  snapshots: Snapshotter;
  images: ImageStore;
  reopen(): Promise<ImageStore>;
}

async function withStore(fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-test-image-'));
  const root = path.join(dir, 'root');
  const content = new ContentStore(root);
  const snapshots = new Snapshotter(root);
  await content.init();
  await snapshots.init();
  const images = new ImageStore({ root, content, snapshots });
  await images.init();
  const reopen = async () => {
    const s = new ImageStore({ root, content, snapshots });
    await s.init();
    return s;
  };
  try {
    await fn({ root, dir, content, snapshots, images, reopen });
  } finally {
    const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
    for (const line of mounts.split('\n')) {
      const mp = line.split(' ')[4];
      if (mp && mp.startsWith(dir)) await run('umount', ['-l', mp], { allowFailure: true });
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Everything stored under the root except tmp dirs: the observable state of the stores. */
async function snapshotState(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string, depth: number) => {
    for (const name of (await fs.readdir(p)).sort()) {
      const child = path.join(p, name);
      const st = await fs.lstat(child);
      out.push(path.relative(root, child) + (st.isFile() ? ` ${st.size}` : ''));
      if (st.isDirectory() && depth < 4 && name !== 'fs') await walk(child, depth + 1);
    }
  };
  await walk(root, 0);
  return out.filter((l) => !l.startsWith('images/tmp/') && !l.startsWith('content/ingest/'));
}

/** A docker-archive in the legacy layout (config <hex>.json, <id>/layer.tar), built by hand. */
async function legacyArchive(layers: Buffer[], opts: { tags?: string[]; dropLayer?: number; history?: unknown[] } = {}) {
  const diffIds = layers.map((l) => sha(l));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-02T03:04:05.123456789Z',
      config: { Cmd: ['sh'], Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: opts.history ?? layers.map((_, i) => ({ created: '2024-01-02T03:04:05Z', created_by: `step ${i}` })),
    }),
  );
  const entries: Entry[] = [{ name: `${hex(sha(config))}.json`, content: config }];
  const layerPaths: string[] = [];
  layers.forEach((l, i) => {
    const id = hex(sha(`layer${i}`));
    layerPaths.push(`${id}/layer.tar`);
    entries.push({ name: `${id}/` }, { name: `${id}/VERSION`, content: '1.0' });
    if (i !== opts.dropLayer) entries.push({ name: `${id}/layer.tar`, content: l });
  });
  entries.push({ name: 'manifest.json', content: JSON.stringify([{ Config: `${hex(sha(config))}.json`, RepoTags: opts.tags ?? ['example/app:v1'], Layers: layerPaths }]) });
  return { tar: await makeTar(entries), id: sha(config), diffIds };
}

test('reference parsing and familiar names follow Docker', () => {
  const cases: Array<[string, string]> = [
    ['busybox', 'busybox:latest'],
    ['busybox:1.36', 'busybox:1.36'],
    ['docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox', 'busybox:latest'],
    ['library/busybox', 'busybox:latest'],
    ['myrepo/bb:v1', 'myrepo/bb:v1'],
    ['docker.io/myrepo/bb', 'myrepo/bb:latest'],
    ['127.0.0.1:5000/x:1', '127.0.0.1:5000/x:1'],
    ['localhost/x', 'localhost/x:latest'],
    ['localhost:5000/a/b/c:tag', 'localhost:5000/a/b/c:tag'],
    [`busybox@sha256:${'a'.repeat(64)}`, `busybox@sha256:${'a'.repeat(64)}`],
    ['ghcr.io/o/r:t', 'ghcr.io/o/r:t'],
  ];
  for (const [input, want] of cases) assert.equal(familiarName(input), want, input);
  assert.deepEqual(parseReference('busybox'), { domain: 'docker.io', path: 'library/busybox' });
  assert.deepEqual(parseReference('localhost:5000/x:1'), { domain: 'localhost:5000', path: 'x', tag: '1' });
  for (const bad of ['', 'UPPER', 'a:b:c', 'busybox:', ':tag', 'a//b', '-a', 'a@sha256:abc', 'a:' + 'x'.repeat(129), 'a b']) {
    assert.throws(() => parseReference(bad), (e: Error & { kind?: string }) => e.kind === 'InvalidArgument' && /invalid reference format/.test(e.message), bad);
  }
  // an uppercase first component is a domain, as in Docker
  assert.deepEqual(parseReference('Foo/bar'), { domain: 'Foo', path: 'bar' });
  assert.throws(() => parseReference('UPPER'), /must be lowercase/);
  assert.throws(() => parseReference('foo/Bar'), /must be lowercase/);
});

test('parseChanges applies Dockerfile instructions in shell and JSON forms', () => {
  const config: ContainerConfig = { Env: ['PATH=/bin'], Cmd: ['old'] };
  parseChanges([
    'ENV A=1 B="two words"',
    'ENV LEGACY value with spaces',
    'CMD ["sh", "-c", "echo hi"]',
    'EXPOSE 80 53/udp 8000-8001',
    'LABEL a=b "c d"=e',
    'USER 1000:1000',
    'VOLUME ["/data", "/logs"]',
    'VOLUME /other',
    'WORKDIR /app',
    'WORKDIR sub',
    'STOPSIGNAL SIGTERM',
    'ONBUILD RUN echo',
    'HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://x/ || exit 1',
  ])(config);
  assert.deepEqual(config.Env, ['PATH=/bin', 'A=1', 'B=two words', 'LEGACY=value with spaces']);
  assert.deepEqual(config.Cmd, ['sh', '-c', 'echo hi']);
  assert.deepEqual(Object.keys(config.ExposedPorts!).sort(), ['53/udp', '80/tcp', '8000/tcp', '8001/tcp']);
  assert.deepEqual(config.Labels, { a: 'b', 'c d': 'e' });
  assert.equal(config.User, '1000:1000');
  assert.deepEqual(Object.keys(config.Volumes!).sort(), ['/data', '/logs', '/other']);
  assert.equal(config.WorkingDir, '/app/sub');
  assert.equal(config.StopSignal, 'SIGTERM');
  assert.deepEqual(config.OnBuild, ['RUN echo']);
  assert.deepEqual(config.Healthcheck, { Interval: 30e9, Retries: 3, Test: ['CMD-SHELL', 'curl -f http://x/ || exit 1'] });
  const c2: ContainerConfig = { Cmd: ['x'] };
  parseChanges(['ENTRYPOINT /bin/run --flag'])(c2);
  assert.deepEqual(c2.Entrypoint, ['/bin/sh', '-c', '/bin/run --flag']);
  assert.equal(c2.Cmd, null);
  assert.throws(() => parseChanges(['RUN echo']), /RUN is not a valid change command/);
  assert.throws(() => parseChanges(['EXPOSE abc']), /Invalid containerPort/);
});

test('chainIds follow the OCI image spec', () => {
  const a = sha('a');
  const b = sha('b');
  assert.deepEqual(chainIds([a, b]), [a, sha(`${a} ${b}`)]);
  assert.deepEqual(chainIds([]), []);
});

test('importRootfs of a gzip tar gives a runnable image with the changes applied', async () => {
  await withStore(async ({ images, snapshots, content }) => {
    const tar = await makeTar([{ name: 'bin/' }, { name: 'bin/hello', content: 'hello' }, { name: 'etc/motd', content: 'hi!' }]);
    const rec = await images.importRootfs(Readable.from([gzipSync(tar)]), { ref: 'imported:v1', changes: ['CMD ["/bin/hello"]', 'ENV X=1'], message: 'my import' });
    assert.equal(rec.id, sha(await content.read(rec.id)));
    assert.deepEqual(rec.repoTags, ['imported:v1']);
    assert.equal(rec.layers.length, 1);
    assert.equal(rec.layers[0]!.diffId, sha(tar));
    assert.equal(rec.layers[0]!.chainId, sha(tar));
    assert.equal(rec.size, 8);
    const config = (await images.getConfig(rec)) as { config: ContainerConfig; rootfs: { diff_ids: string[] }; history: unknown[]; os: string };
    assert.deepEqual(config.config.Cmd, ['/bin/hello']);
    assert.deepEqual(config.config.Env, ['X=1']);
    assert.deepEqual(config.rootfs.diff_ids, [sha(tar)]);
    assert.equal(config.os, 'linux');
    assert.equal((await images.resolve('imported:v1')).id, rec.id);
    assert.equal((await images.resolve(rec.id.slice(7, 12))).id, rec.id);
    assert.equal((await images.resolve(rec.id)).id, rec.id);
    assert.equal((await images.resolve('docker.io/library/imported:v1')).id, rec.id);
    const history = await images.history('imported:v1');
    assert.equal(history.length, 1);
    assert.equal(history[0]!.Id, rec.id);
    assert.equal(history[0]!.Comment, 'my import');
    assert.deepEqual(history[0]!.Tags, ['imported:v1']);
    assert.equal(history[0]!.Size, 8);
    const lowers = await images.ensureUnpacked(rec);
    const merged = await snapshots.mountContainer('c1', lowers);
    assert.equal(await fs.readFile(path.join(merged, 'etc/motd'), 'utf8'), 'hi!');
    await snapshots.removeContainer('c1');
  });
});

test('importRootfs of an empty tar gives a one-layer image with nothing in it', async () => {
  await withStore(async ({ images, snapshots }) => {
    const tar = await makeTar([]);
    const rec = await images.importRootfs(Readable.from([tar]));
    assert.deepEqual(rec.repoTags, []);
    assert.equal(rec.size, 0);
    assert.deepEqual(await fs.readdir(snapshots.layerPath(rec.layers[0]!.chainId)), []);
    const empty = await images.importRootfs(Readable.from([]));
    assert.equal(empty.layers.length, 1);
  });
});

test('resolve reports missing images in Docker words', async () => {
  await withStore(async ({ images }) => {
    await assert.rejects(images.resolve('busybox'), (e: Error & { kind?: string }) => e.kind === 'NotFound' && e.message === 'No such image: busybox:latest');
    await assert.rejects(images.resolve('docker.io/library/alpine:3'), { message: 'No such image: alpine:3' });
    await assert.rejects(images.resolve('abc123'), { message: 'No such image: abc123:latest' });
    await assert.rejects(images.untag('nope'), { message: 'No such image: nope:latest' });
  });
});

test('save then load round-trips to the same image id, tags and layers', async () => {
  await withStore(async ({ images, dir, reopen, root }) => {
    const l1 = await makeTar([{ name: 'a', content: 'one' }, { name: 'dir/' }, { name: 'dir/x', content: 'x' }]);
    const l2 = await makeTar([{ name: 'dir/.wh.x', content: '' }, { name: 'b', content: 'two' }]);
    const { tar, id, diffIds } = await legacyArchive([l1, l2], { tags: ['example/app:v1'] });
    const loaded = await images.load(Readable.from([tar]));
    assert.deepEqual(loaded, [{ ref: 'example/app:v1', id }]);
    await images.tag('example/app:v1', 'second:tag');
    const rec = await images.resolve('second:tag');
    assert.deepEqual(rec.repoTags, ['example/app:v1', 'second:tag']);
    assert.deepEqual(rec.layers.map((l) => l.diffId), diffIds);
    assert.equal(rec.created, '2024-01-02T03:04:05.123456789Z');
    const history = await images.history(id);
    assert.deepEqual(history.map((h) => h.CreatedBy), ['step 1', 'step 0']);
    assert.deepEqual(history.map((h) => h.Id), [id, '<missing>']);

    const archive = path.join(dir, 'saved.tar');
    await fs.writeFile(archive, await collect(images.save(['example/app:v1', 'second:tag'])));

    // into a fresh store
    const root2 = path.join(dir, 'root2');
    const c2 = new ContentStore(root2);
    const s2 = new Snapshotter(root2);
    await c2.init();
    await s2.init();
    const images2 = new ImageStore({ root: root2, content: c2, snapshots: s2 });
    await images2.init();
    const again = await images2.load(createReadStream(archive));
    assert.deepEqual(again.map((r) => r.id), [id, id]);
    assert.deepEqual((await images2.resolve(id)).repoTags, ['example/app:v1', 'second:tag']);
    assert.deepEqual((await images2.resolve(id)).layers.map((l) => l.chainId), chainIds(diffIds));

    // the records survive a restart
    const reopened = await reopen();
    assert.deepEqual((await reopened.list()).map((r) => r.id), [id]);
    assert.ok((await snapshotState(root)).length > 0);

    // by id: no tags in the archive
    const byId = await collect(images.save([id]));
    const images3Root = path.join(dir, 'root3');
    const c3 = new ContentStore(images3Root);
    const s3 = new Snapshotter(images3Root);
    await c3.init();
    await s3.init();
    const images3 = new ImageStore({ root: images3Root, content: c3, snapshots: s3 });
    await images3.init();
    assert.deepEqual(await images3.load(Readable.from([byId])), [{ id }]);
  });
});

test('a docker-archive missing a layer is refused and the store is unchanged', async () => {
  await withStore(async ({ images, root }) => {
    const l1 = await makeTar([{ name: 'a', content: 'one' }]);
    const good = await legacyArchive([l1], { tags: ['keep:1'] });
    await images.load(Readable.from([good.tar]));
    const before = await snapshotState(root);
    const l2 = await makeTar([{ name: 'b', content: 'two' }]);
    const bad = await legacyArchive([l1, l2], { tags: ['broken:1'], dropLayer: 1 });
    await assert.rejects(images.load(Readable.from([bad.tar])), (e: Error & { kind?: string }) => {
      assert.equal(e.kind, 'InvalidArgument');
      assert.match(e.message, /layer ".*layer\.tar" is missing from the archive/);
      return true;
    });
    assert.deepEqual(await snapshotState(root), before);
    assert.deepEqual(await fs.readdir(path.join(root, 'images', 'tmp')), []);
  });
});

test('a truncated archive, a corrupt layer and bad JSON are refused and change nothing', async () => {
  await withStore(async ({ images, root }) => {
    const before = await snapshotState(root);
    const l1 = await makeTar([{ name: 'a', content: 'x'.repeat(10000) }]);
    const { tar } = await legacyArchive([l1]);
    await assert.rejects(images.load(Readable.from([tar.subarray(0, 4000)])), /truncated|missing/);
    assert.deepEqual(await snapshotState(root), before);

    // a layer whose bytes do not match the config's diff_id
    const other = await makeTar([{ name: 'evil', content: 'not the real layer' }]);
    const wrong = await legacyArchive([l1]);
    const swapped = await makeTar([
      ...(await entriesOf(wrong.tar)).map((e) => (e.name.endsWith('layer.tar') ? { ...e, content: other } : e)),
    ]);
    await assert.rejects(images.load(Readable.from([swapped])), /diff ID mismatch/);
    assert.deepEqual(await snapshotState(root), before);

    const badJson = await makeTar([{ name: 'manifest.json', content: '[{"Config": ' }]);
    await assert.rejects(images.load(Readable.from([badJson])), /manifest\.json is not valid JSON/);
    await assert.rejects(images.load(Readable.from([Buffer.from('not a tar at all'.repeat(64))])), /invalid header checksum/);
    const escaping = await makeTar([{ name: 'x', content: 'x' }]);
    await assert.rejects(images.load(Readable.from([escaping])), /neither manifest\.json nor index\.json/);
    assert.deepEqual(await snapshotState(root), before);
  });
});

test('layers of a MiB or more are unpacked while the archive is read; a wrong one, a gzip one and a non-tar member too', async () => {
  await withStore(async ({ images, snapshots, content, root }) => {
    const before = await snapshotState(root);
    const big = async (name: string) => makeTar([{ name: `data/${name}`, content: randomBytes(1536 * 1024) }, { name: 'etc/', type: 'directory' }, { name: 'etc/tag', content: name }]);
    const l1 = await big('one');
    const l2 = await big('two');
    // Layer 2 replaced by another big tar: its diff ID does not match the config's.
    const wrong = await legacyArchive([l1, l2], { tags: ['wrong:1'] });
    const swapped = await makeTar((await entriesOf(wrong.tar)).map((e, i, all) => (e.name === all.filter((x) => x.name.endsWith('layer.tar'))[1]!.name ? { ...e, content: l1 } : e)));
    await assert.rejects(images.load(Readable.from([swapped])), /diff ID mismatch/);
    assert.deepEqual(await snapshotState(root), before, 'nothing kept, no prepared layer left');

    // A member of a MiB that is not a tar at all rides along (it is staged, its unpacking fails).
    const good = await legacyArchive([l1, l2], { tags: ['good:1'] });
    const withJunk = await makeTar([...(await entriesOf(good.tar)), { name: 'junk.bin', content: randomBytes(1 << 20) }]);
    const prepare = snapshots.prepareLayer.bind(snapshots);
    let prepared = 0;
    snapshots.prepareLayer = (tar, opts) => {
      prepared++;
      return prepare(tar, opts);
    };
    const [loaded] = await images.load(Readable.from([withJunk]));
    assert.equal(prepared, 3, 'both layers and the junk member were unpacked as they were read');
    assert.equal(loaded!.id, good.id);
    const record = await images.resolve('good:1');
    const chains = chainIds(good.diffIds);
    assert.deepEqual(record.layers.map((l) => l.chainId), chains);
    for (const [i, chain] of chains.entries()) {
      assert.equal((await snapshots.layerInfo(chain)).diffId, good.diffIds[i]);
      assert.equal(await fs.readFile(path.join(snapshots.layerPath(chain), 'etc', 'tag'), 'utf8'), i === 0 ? 'one' : 'two');
      // The blob moved in from the staged copy is the layer tar, byte for byte.
      assert.ok((await content.read(record.layers[i]!.digest!)).equals(i === 0 ? l1 : l2));
    }
    assert.deepEqual((await fs.readdir(path.join(root, 'snapshots', 'layers'))).filter((n) => n.startsWith('.')), []);

    // An OCI layout whose big layer is gzip: unpacked through gunzip while read.
    const l3 = await big('three');
    const gz = gzipSync(l3);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(l3)] } }));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(gz), size: gz.length }] }));
    const oci = await makeTar([
      { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
      { name: `blobs/sha256/${hex(sha(gz))}`, content: gz },
      { name: `blobs/sha256/${hex(sha(config))}`, content: config },
      { name: `blobs/sha256/${hex(sha(manifest))}`, content: manifest },
      { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'gz:1' } }] }) },
    ]);
    await images.load(Readable.from([oci]));
    const gzRecord = await images.resolve('gz:1');
    assert.equal(await fs.readFile(path.join(snapshots.layerPath(gzRecord.layers[0]!.chainId), 'etc', 'tag'), 'utf8'), 'three');
    assert.deepEqual((await fs.readdir(path.join(root, 'snapshots', 'layers'))).filter((n) => n.startsWith('.')), []);
    assert.deepEqual(await fs.readdir(path.join(root, 'images', 'tmp')), []);
  });
});

async function entriesOf(tar: Buffer): Promise<Entry[]> {
  const out: Entry[] = [];
  const ex = tarStream.extract();
  const done = (async () => {
    for await (const e of ex) {
      const parts: Buffer[] = [];
      for await (const c of e) parts.push(c as Buffer);
      out.push({ name: e.header.name, type: e.header.type === 'directory' ? 'directory' : 'file', content: e.header.type === 'directory' ? undefined : Buffer.concat(parts) });
    }
  })();
  ex.end(tar);
  await done;
  return out;
}

/** An OCI layout with a gzip layer, written by hand as an OCI producer would. */
async function ociLayout(opts: { refName?: string; containerdName?: string } = {}) {
  const layer = await makeTar([{ name: 'etc/' }, { name: 'etc/os-release', content: 'ID=test' }]);
  const gz = gzipSync(layer);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', created: '2024-05-05T00:00:00Z', config: {}, rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(gz), size: gz.length }],
    }),
  );
  const annotations: Record<string, string> = {};
  if (opts.refName) annotations['org.opencontainers.image.ref.name'] = opts.refName;
  if (opts.containerdName) annotations['io.containerd.image.name'] = opts.containerdName;
  const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, annotations }] };
  const entries: Entry[] = [
    { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', content: JSON.stringify(index) },
    { name: 'blobs/' },
    { name: 'blobs/sha256/' },
    { name: `blobs/sha256/${hex(sha(gz))}`, content: gz },
    { name: `blobs/sha256/${hex(sha(config))}`, content: config },
    { name: `blobs/sha256/${hex(sha(manifest))}`, content: manifest },
  ];
  return { entries, layer, gz, config, manifest, id: sha(config) };
}

test('an OCI layout with a gzip layer loads, keeps its manifest digest and saves uncompressed', async () => {
  await withStore(async ({ images, content }) => {
    const oci = await ociLayout({ containerdName: 'docker.io/library/ocitest:1.0', refName: '1.0' });
    const loaded = await images.load(Readable.from([await makeTar(oci.entries)]));
    assert.deepEqual(loaded, [{ ref: 'ocitest:1.0', id: oci.id }]);
    const rec = await images.resolve('ocitest:1.0');
    assert.equal(rec.manifestDigest, sha(oci.manifest));
    assert.equal(rec.layers[0]!.digest, sha(oci.gz));
    assert.equal(rec.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    assert.ok(await content.has(sha(oci.gz)));
    const saved = await entriesOf(await collect(images.save(['ocitest:1.0'])));
    const layerEntry = saved.find((e) => e.name === `blobs/sha256/${hex(sha(oci.layer))}`);
    assert.ok(layerEntry, 'the layer is saved uncompressed under its diffID');
    assert.deepEqual(layerEntry.content, oci.layer);
    const manifestJson = JSON.parse(saved.find((e) => e.name === 'manifest.json')!.content!.toString());
    assert.deepEqual(manifestJson[0].RepoTags, ['ocitest:1.0']);
    const index = JSON.parse(saved.find((e) => e.name === 'index.json')!.content!.toString());
    assert.equal(index.manifests[0].annotations['io.containerd.image.name'], 'docker.io/library/ocitest:1.0');
  });
});

test('an OCI layout whose ref.name is only a tag loads untagged; a full ref.name names it', async () => {
  await withStore(async ({ images }) => {
    const a = await ociLayout({ refName: 'latest' });
    assert.deepEqual(await images.load(Readable.from([await makeTar(a.entries)])), [{ id: a.id }]);
    const b = await ociLayout({ refName: 'quay.io/x/y:2' });
    assert.deepEqual(await images.load(Readable.from([await makeTar(b.entries)])), [{ ref: 'quay.io/x/y:2', id: b.id }]);
  });
});

test('a config-only image (no layers) loads, saves and is deleted', async () => {
  await withStore(async ({ images, content }) => {
    const { tar, id } = await legacyArchive([], { tags: ['scratchy:1'], history: [] });
    assert.deepEqual(await images.load(Readable.from([tar])), [{ ref: 'scratchy:1', id }]);
    const rec = await images.resolve('scratchy:1');
    assert.deepEqual(await images.ensureUnpacked(rec), []);
    const images2 = await collect(images.save(['scratchy:1']));
    assert.ok(images2.length > 0);
    assert.deepEqual(await images.delete(id), [id]);
    assert.equal(await content.has(id), false);
    await assert.rejects(images.resolve('scratchy:1'), /No such image: scratchy:1/);
  });
});

test('delete keeps layers shared with another image and removes the rest', async () => {
  await withStore(async ({ images, snapshots, content }) => {
    const base = await makeTar([{ name: 'base', content: 'base' }]);
    const top = await makeTar([{ name: 'top', content: 'top' }]);
    const a = await legacyArchive([base], { tags: ['a:1'] });
    const b = await legacyArchive([base, top], { tags: ['b:1'] });
    await images.load(Readable.from([a.tar]));
    await images.load(Readable.from([b.tar]));
    const [baseChain, topChain] = chainIds(b.diffIds);
    const deleted = await images.delete('b:1');
    assert.deepEqual(deleted, [b.id, topChain]);
    assert.equal(await snapshots.hasLayer(baseChain!), true);
    assert.equal(await snapshots.hasLayer(topChain!), false);
    assert.equal(await content.has(sha(top)), false);
    assert.equal(await content.has(sha(base)), true);
    const untagged = await images.untag('a:1');
    assert.deepEqual(untagged.repoTags, []);
    assert.equal((await images.list()).length, 1);
  });
});

test('two concurrent loads of archives sharing a layer both succeed', async () => {
  await withStore(async ({ images }) => {
    const files: Entry[] = [];
    for (let i = 0; i < 100; i++) files.push({ name: `f${i}`, content: `content ${i}` });
    const shared = await makeTar(files);
    const a = await legacyArchive([shared, await makeTar([{ name: 'a', content: 'a' }])], { tags: ['one:1'] });
    const b = await legacyArchive([shared, await makeTar([{ name: 'b', content: 'b' }])], { tags: ['two:1'] });
    const [ra, rb] = await Promise.all([images.load(Readable.from([a.tar])), images.load(Readable.from([b.tar]))]);
    assert.equal(ra[0]!.id, a.id);
    assert.equal(rb[0]!.id, b.id);
    assert.equal((await images.ensureUnpacked(await images.resolve('one:1'))).length, 2);
  });
});

test('init rolls back a load that a crash interrupted', async () => {
  await withStore(async ({ images, root, snapshots, content, reopen }) => {
    const before = await snapshotState(root);
    // what a load killed between unpacking a layer and writing its record leaves behind
    const layer = await makeTar([{ name: 'orphan', content: 'x' }]);
    await snapshots.applyLayer(sha(layer), Readable.from([layer]));
    await content.writeBlob(layer);
    const work = path.join(root, 'images', 'tmp', 'deadbeef');
    await fs.mkdir(work, { recursive: true });
    await fs.writeFile(path.join(work, 'intent.json'), JSON.stringify({ layers: [sha(layer)], blobs: [sha(layer)] }));
    await fs.writeFile(path.join(work, 'm0'), 'staged');
    // and a ref to a record that was never written
    await fs.writeFile(path.join(root, 'images', 'repositories.json'), JSON.stringify({ refs: { 'ghost:1': sha('ghost') } }));
    void images;
    const again = await reopen();
    assert.deepEqual(await again.list(), []);
    assert.equal(await snapshots.hasLayer(sha(layer)), false);
    assert.equal(await content.has(sha(layer)), false);
    const after = (await snapshotState(root)).filter((l) => !l.startsWith('images/repositories.json'));
    assert.deepEqual(after, before);
  });
});

const hasSkopeo = await run('skopeo', ['--version'], { allowFailure: true }).then((r) => r.code === 0, () => false);

test('skopeo reads our saved archive, and archives skopeo writes load in ours', { skip: hasSkopeo ? false : 'skopeo is not installed' }, async () => {
  await withStore(async ({ images, dir }) => {
    const l1 = await makeTar([{ name: 'bin/' }, { name: 'bin/tool', content: 'tool' }]);
    const l2 = await makeTar([{ name: 'etc/conf', content: 'conf' }]);
    const { tar, id, diffIds } = await legacyArchive([l1, l2], { tags: ['interop/app:1'] });
    await images.load(Readable.from([tar]));
    const saved = path.join(dir, 'saved.tar');
    await fs.writeFile(saved, await collect(images.save(['interop/app:1'])));

    // ours as docker-archive and as oci-archive, through skopeo's eyes
    const inspect = JSON.parse((await run('skopeo', ['--insecure-policy', 'inspect', `docker-archive:${saved}`])).stdout) as { Layers: string[] };
    assert.deepEqual(inspect.Layers, diffIds);
    const config = JSON.parse((await run('skopeo', ['--insecure-policy', 'inspect', '--config', `docker-archive:${saved}`])).stdout) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.rootfs.diff_ids, diffIds);
    const ociInspect = JSON.parse((await run('skopeo', ['--insecure-policy', 'inspect', `oci-archive:${saved}`])).stdout) as { Layers: string[] };
    assert.deepEqual(ociInspect.Layers, diffIds);

    // skopeo's docker-archive (legacy layout, symlinked layer.tar) loads back to the same id
    const skopeoArchive = path.join(dir, 'skopeo.tar');
    await run('skopeo', ['--insecure-policy', 'copy', `docker-archive:${saved}`, `docker-archive:${skopeoArchive}:sk/copy:2`]);
    assert.deepEqual(await images.load(createReadStream(skopeoArchive)), [{ ref: 'sk/copy:2', id }]);

    // skopeo's OCI layout (gzip-compressed layers), tarred up, loads with the name it was given
    const layout = path.join(dir, 'layout');
    await run('skopeo', ['--insecure-policy', 'copy', '--dest-compress', `docker-archive:${saved}`, `oci:${layout}:registry.example:5000/x/y:3`]);
    const layoutTar = path.join(dir, 'layout.tar');
    await run('tar', ['-C', layout, '-cf', layoutTar, '.']);
    const loaded = await images.load(createReadStream(layoutTar));
    assert.equal(loaded.length, 1);
    assert.equal(loaded[0]!.ref, 'registry.example:5000/x/y:3');
    const rec = await images.resolve('registry.example:5000/x/y:3');
    assert.deepEqual(rec.layers.map((l) => l.diffId), diffIds);
    assert.ok(rec.layers.every((l) => l.mediaType?.endsWith('gzip')), 'layers kept compressed as shipped');
  });
});

test('a load killed with SIGKILL mid-way leaves nothing once the stores are opened again', async () => {
  await withStore(async ({ root, dir, content, snapshots }) => {
    const before = await snapshotState(root);
    const small = await makeTar([{ name: 'small', content: 'small' }]);
    const big = await makeTar([{ name: 'big', content: Buffer.alloc(64 << 20, 7) }]);
    const { tar } = await legacyArchive([small, big], { tags: ['killed:1'] });
    const archive = path.join(dir, 'archive.tar');
    await fs.writeFile(archive, tar);
    const dist = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
    const script = path.join(dir, 'load.mjs');
    // Slow the archive down so the kill lands while layers are being unpacked.
    await fs.writeFile(
      script,
      `import { ContentStore } from '${dist}/content/index.js';
import { Snapshotter } from '${dist}/snapshot/index.js';
import { ImageStore } from '${dist}/image/index.js';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
const root = ${JSON.stringify(root)};
const content = new ContentStore(root); const snapshots = new Snapshotter(root);
await content.init(); await snapshots.init();
const images = new ImageStore({ root, content, snapshots }); await images.init();
async function* slow() { for await (const c of createReadStream(${JSON.stringify(archive)}, { highWaterMark: 1 << 20 })) { yield c; await sleep(5); } }
await images.load(Readable.from(slow()));
`,
    );
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [script], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const layers = path.join(root, 'snapshots', 'layers');
    // wait until the first layer is committed and the second is half-extracted
    for (let i = 0; i < 2000; i++) {
      const names = await fs.readdir(layers).catch(() => [] as string[]);
      if (names.some((n) => n.startsWith('.tmp-')) && names.some((n) => /^[0-9a-f]{64}$/.test(n))) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await exited;
    const leftover = await fs.readdir(layers);
    assert.ok(leftover.length > 0, 'the kill landed mid-load');
    await content.init();
    await snapshots.init();
    const images = new ImageStore({ root, content, snapshots });
    await images.init();
    assert.deepEqual(await images.list(), []);
    assert.deepEqual(await snapshotState(root), before);
  });
});
