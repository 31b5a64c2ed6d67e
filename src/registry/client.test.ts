/**
 * The registry client against our registry server on 127.0.0.1:0: push an image from one store,
 * pull it into another, with real stores (content, snapshots, images) in temp dirs.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { chainIds, goArch } from '../image/index.js';
import { isKind } from '../lib/index.js';
import { RegistryClient, type ProgressEvent } from './client.js';
import { importImage, listenProxy, newStores, openStores } from './client-testing.js';
import { digestOf, layerTar, makeImage, pushImage, startRegistry, type TestImage, type TestRegistry } from './testing.js';

async function withRegistry(t: TestContext, options: Parameters<typeof startRegistry>[0] = {}): Promise<TestRegistry> {
  const registry = await startRegistry(options);
  t.after(() => registry.close());
  return registry;
}

function recorder(): { events: ProgressEvent[]; onProgress: (e: ProgressEvent) => void; statuses(id?: string): string[] } {
  const events: ProgressEvent[] = [];
  return {
    events,
    onProgress: (e) => events.push(e),
    statuses: (id) => events.filter((e) => id === undefined || e.id === id).map((e) => e.status),
  };
}

/** Removes repeated neighbours (progress messages), so orders compare as sequences of phases. */
const phases = (list: string[]) => list.filter((s, i) => s !== list[i - 1]);

test('an image pushed from one store pulls into another with the same id, digest and progress order', async (t) => {
  const r = await withRegistry(t);
  const a = await newStores(t, 'a');
  const b = await newStores(t, 'b');
  const ref = `${r.address}/team/app:1`;
  const id = await importImage(a, ref);
  const client = new RegistryClient({});

  const push = recorder();
  const pushed = await client.push(ref, { images: a.images, content: a.content, onProgress: push.onProgress });
  assert.equal(pushed.tag, '1');
  assert.match(pushed.digest, /^sha256:[0-9a-f]{64}$/);
  const layerId = (await a.images.resolve(id)).layers[0]!.diffId.slice(7, 19);
  assert.deepEqual(push.events[0], { status: `The push refers to repository [${r.address}/team/app]` });
  assert.deepEqual(phases(push.statuses(layerId)), ['Preparing', 'Pushing', 'Pushed']);
  assert.equal(push.events.at(-1)!.status, `1: digest: ${pushed.digest} size: ${pushed.size}`);
  assert.deepEqual((await a.images.resolve(id)).repoDigests, [`${r.address}/team/app@${pushed.digest}`]);

  const manifest = await r.request('GET', `/v2/team/app/manifests/1`, { headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  assert.equal(manifest.status, 200);
  assert.equal(manifest.headers['content-type'], 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(digestOf(manifest.body), pushed.digest);
  assert.equal(manifest.body.length, pushed.size);

  const pull = recorder();
  const record = await client.pull(ref, { images: b.images, content: b.content, onProgress: pull.onProgress });
  assert.equal(record.id, id);
  assert.deepEqual(record.repoTags, [ref]);
  assert.deepEqual(record.repoDigests, [`${r.address}/team/app@${pushed.digest}`]);
  const blobId = record.layers[0]!.digest!.slice(7, 19);
  assert.deepEqual(pull.events[0], { status: 'Pulling from team/app', id: '1' });
  assert.deepEqual(phases(pull.statuses(blobId)), [
    'Pulling fs layer',
    'Downloading',
    'Verifying Checksum',
    'Download complete',
    'Extracting',
    'Pull complete',
  ]);
  assert.deepEqual(pull.statuses().slice(-2), [`Digest: ${pushed.digest}`, `Status: Downloaded newer image for ${ref}`]);
  const downloading = pull.events.find((e) => e.status === 'Downloading')!;
  assert.equal(downloading.progressDetail?.total, record.layers[0]!.blobSize);
  assert.match(downloading.progress ?? '', /^\[[=> ]{50}\] /);
  assert.deepEqual(await b.images.getConfig(record), await a.images.getConfig(await a.images.resolve(id)));

  const again = recorder();
  const second = await client.pull(ref, { images: b.images, content: b.content, onProgress: again.onProgress });
  assert.equal(second.id, id);
  assert.deepEqual(again.statuses(blobId), ['Already exists']);
  assert.equal(again.statuses().at(-1), `Status: Image is up to date for ${ref}`);

  // By digest: the image is found, nothing is fetched.
  const byDigest = recorder();
  const third = await client.pull(`${r.address}/team/app@${pushed.digest}`, { images: b.images, content: b.content, onProgress: byDigest.onProgress });
  assert.equal(third.id, id);
  assert.equal(byDigest.events[0]!.id, pushed.digest);
  assert.equal(byDigest.statuses().at(-1), `Status: Image is up to date for ${r.address}/team/app@${pushed.digest}`);
});

test('a second push says "Layer already exists" and a push to another repository mounts the layer', async (t) => {
  const r = await withRegistry(t);
  const a = await newStores(t, 'a');
  const ref = `${r.address}/one/app:v1`;
  const id = await importImage(a, ref);
  const layerId = (await a.images.resolve(id)).layers[0]!.diffId.slice(7, 19);
  const client = new RegistryClient({});
  const first = await client.push(ref, { images: a.images, content: a.content });

  const again = recorder();
  const second = await client.push(ref, { images: a.images, content: a.content, onProgress: again.onProgress });
  assert.equal(second.digest, first.digest);
  assert.deepEqual(again.statuses(layerId), ['Preparing', 'Layer already exists']);

  // A fresh client knows the image only by its names: the tag in one/app is the mount source.
  const other = `${r.address}/two/app:v1`;
  await a.images.tag(id, other);
  const mount = recorder();
  const third = await new RegistryClient({}).push(other, { images: a.images, content: a.content, onProgress: mount.onProgress });
  assert.equal(third.digest, first.digest);
  assert.deepEqual(mount.statuses(layerId), ['Preparing', 'Mounted from one/app']);
  // The layer went up gzip-compressed (it is stored as a plain tar): the manifest names that blob.
  const manifest = await r.request('GET', '/v2/two/app/manifests/v1', { headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  const layer = JSON.parse(manifest.body.toString()).layers[0];
  assert.equal(layer.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  assert.equal((await r.request('HEAD', `/v2/two/app/blobs/${layer.digest}`)).status, 200);
});

test('a chunked push (small PATCH chunks) stores blobs that pull back whole', async (t) => {
  const r = await withRegistry(t);
  const a = await newStores(t, 'a');
  const b = await newStores(t, 'b');
  const ref = `${r.address}/chunked:latest`;
  const id = await importImage(a, ref, 'chunks');
  const client = new RegistryClient({ pushChunkSize: 1000 });
  const progress = recorder();
  await client.push(ref, { images: a.images, content: a.content, onProgress: progress.onProgress });
  assert.ok(progress.events.filter((e) => e.status === 'Pushing').length >= 1);
  const record = await new RegistryClient({}).pull(`${r.address}/chunked`, { images: b.images, content: b.content });
  assert.equal(record.id, id);
});

test('pulling a tag that does not exist is NotFound with Docker\'s message', async (t) => {
  const r = await withRegistry(t);
  const b = await newStores(t, 'b');
  await pushImage(r, 'there', await makeImage('there'), 'yes');
  const client = new RegistryClient({});
  const progress = recorder();
  await assert.rejects(client.pull(`${r.address}/there:no`, { images: b.images, content: b.content, onProgress: progress.onProgress }), (err: Error) => {
    assert.ok(isKind(err, 'NotFound'), String(err));
    assert.equal(err.message, `manifest for ${r.address}/there:no not found: manifest unknown: manifest unknown`);
    return true;
  });
  // Nothing was sent before the failure: the engine can still answer a plain 404.
  assert.deepEqual(progress.events, []);
});

test('an OCI image pulled and pushed elsewhere keeps its manifest bytes and digest', async (t) => {
  const r = await withRegistry(t);
  const b = await newStores(t, 'b');
  const image = await makeImage('oci');
  await pushImage(r, 'src/oci', image, 'v1');
  const client = new RegistryClient({});
  const progress = recorder();
  const record = await client.pull(`${r.address}/src/oci:v1`, { images: b.images, content: b.content, onProgress: progress.onProgress });
  assert.equal(record.id, digestOf(image.config));
  assert.equal(record.layers.length, 2);
  assert.deepEqual(record.repoDigests, [`${r.address}/src/oci@${image.manifestDigest}`]);
  // Both layers were fetched; each got its own complete sequence.
  for (const layer of image.layers) assert.equal(progress.statuses(digestOf(layer).slice(7, 19)).at(-1), 'Pull complete');

  await b.images.tag(record.id, `${r.address}/dst/oci:v2`);
  const pushed = await client.push(`${r.address}/dst/oci:v2`, { images: b.images, content: b.content });
  assert.equal(pushed.digest, image.manifestDigest);
  const got = await r.request('GET', '/v2/dst/oci/manifests/v2');
  assert.ok(got.body.equals(image.manifest));
});

test('a multi-platform index pulls the manifest of the host platform, or the one asked for', async (t) => {
  const r = await withRegistry(t);
  const arches = ['amd64', 'arm64', 's390x'];
  const entries = [];
  for (const arch of arches) {
    const layer = await layerTar({ 'etc/arch': `${arch}\n` });
    const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(gunzipSync(layer))] } }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(layer), size: layer.length }],
      }),
    );
    await pushImage(r, 'multi', { config, layers: [layer], manifest, manifestDigest: digestOf(manifest) }, `only-${arch}`);
    entries.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: digestOf(manifest),
      size: manifest.length,
      platform: { os: 'linux', architecture: arch, ...(arch === 'arm64' ? { variant: 'v8' } : {}) },
      configDigest: digestOf(config),
    });
  }
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: entries.map(({ configDigest: _c, ...d }) => d),
    }),
  );
  const put = await r.request('PUT', '/v2/multi/manifests/all', { headers: { 'Content-Type': 'application/vnd.oci.image.index.v1+json' }, body: index });
  assert.equal(put.status, 201, put.text);

  const client = new RegistryClient({});
  const host = goArch();
  if (arches.includes(host)) {
    const b = await newStores(t, 'host');
    const progress = recorder();
    const record = await client.pull(`${r.address}/multi:all`, { images: b.images, content: b.content, onProgress: progress.onProgress });
    assert.equal(record.id, entries.find((e) => e.platform.architecture === host)!.configDigest);
    assert.ok(progress.statuses().includes(`Digest: ${digestOf(index)}`));
    assert.deepEqual(record.repoDigests, [`${r.address}/multi@${digestOf(index)}`]);
    // The platform manifest is what the record keeps: name@<platform manifest digest> resolves.
    assert.equal(record.manifestDigest, entries.find((e) => e.platform.architecture === host)!.digest);
  } else t.diagnostic(`host architecture ${host} is not in the test index; only the explicit platform is checked`);

  const c = await newStores(t, 'explicit');
  const s390x = await client.pull(`${r.address}/multi:all`, { images: c.images, content: c.content, platform: 'linux/s390x' });
  assert.equal(s390x.id, entries[2]!.configDigest);
  await assert.rejects(
    client.pull(`${r.address}/multi:all`, { images: c.images, content: c.content, platform: 'linux/riscv64' }),
    (err: Error) => isKind(err, 'NotFound') && err.message === 'no matching manifest for linux/riscv64 in the manifest list entries',
  );
});

test('a blob transfer cut halfway resumes with a Range request and verifies', async (t) => {
  const r = await withRegistry(t);
  const b = await newStores(t, 'b');
  const image = await makeImage('resume');
  await pushImage(r, 'cut', image, 'v1');
  // A proxy that cuts the first GET of each blob after half its bytes.
  const cut = new Set<string>();
  const ranges: string[] = [];
  const port = await listenProxy(t, (req, res) => {
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    if (req.headers.range) ranges.push(req.headers.range);
    const upstream = http.request({ host: '127.0.0.1', port: r.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 500, up.headers);
      if (isBlob && !cut.has(req.url!) && up.statusCode === 200) {
        cut.add(req.url!);
        const half = Math.floor(Number(up.headers['content-length']) / 2);
        let sent = 0;
        up.on('data', (c: Buffer) => {
          if (sent >= half) return;
          const part = c.subarray(0, half - sent);
          sent += part.length;
          res.write(part);
          if (sent >= half) setTimeout(() => res.socket?.destroy(), 20);
        });
        return;
      }
      up.pipe(res);
    });
    req.pipe(upstream);
  });

  const record = await new RegistryClient({}).pull(`127.0.0.1:${port}/cut:v1`, { images: b.images, content: b.content });
  assert.equal(record.id, digestOf(image.config));
  assert.ok(ranges.length >= 2, `expected Range requests, saw ${JSON.stringify(ranges)}`);
  assert.ok(ranges.every((h) => /^bytes=\d+-$/.test(h)));
});

test('an unreachable registry is Unavailable and a cancelled pull is Cancelled', async (t) => {
  const b = await newStores(t, 'b');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const client = new RegistryClient({});
  await assert.rejects(client.pull(`127.0.0.1:${port}/gone:1`, { images: b.images, content: b.content }), (err: Error) => {
    assert.ok(isKind(err, 'Unavailable'), String(err));
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    return true;
  });
  const r = await withRegistry(t);
  await pushImage(r, 'slow', await makeImage('slow'), 'v1');
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(
    client.pull(`${r.address}/slow:v1`, { images: b.images, content: b.content, signal: controller.signal }),
    (err: Error) => isKind(err, 'Cancelled'),
  );
});

test('insecure registries: loopback, localhost, listed hosts and CIDRs; others need TLS', () => {
  const client = new RegistryClient({ insecureRegistries: ['myreg.example:5000', '10.1.0.0/16', 'fd00::/8'] });
  assert.equal(client.isInsecure('127.0.0.1:5000'), true);
  assert.equal(client.isInsecure('127.8.9.1'), true);
  assert.equal(client.isInsecure('localhost:5000'), true);
  assert.equal(client.isInsecure('[::1]:5000'), true);
  assert.equal(client.isInsecure('myreg.example:5000'), true);
  assert.equal(client.isInsecure('myreg.example:6000'), false);
  assert.equal(client.isInsecure('10.1.2.3:5000'), true);
  assert.equal(client.isInsecure('10.2.0.1:5000'), false);
  assert.equal(client.isInsecure('[fd00::1]:5000'), true);
  assert.equal(client.isInsecure('docker.io'), false);
  assert.equal(client.isInsecure('quay.io'), false);
});

test('a mirror is tried first and the registry itself when the mirror lacks the image', async (t) => {
  const upstream = await withRegistry(t);
  const mirrorSeen: string[] = [];
  const mirror = await withRegistry(t, { authorize: ({ method, route, name }) => void mirrorSeen.push(`${method} ${route} ${name ?? ''}`) });
  const image = await makeImage('mirrored');
  await pushImage(upstream, 'lib/m', image, 'v1');
  await pushImage(mirror, 'lib/m', image, 'v1');
  await pushImage(upstream, 'lib/only-upstream', await makeImage('up'), 'v1');
  const client = new RegistryClient({ mirrors: { [upstream.address]: [mirror.url] } });
  const b = await newStores(t, 'b');
  mirrorSeen.length = 0;
  await client.pull(`${upstream.address}/lib/m:v1`, { images: b.images, content: b.content });
  assert.ok(mirrorSeen.some((s) => s.startsWith('GET blob lib/m')), JSON.stringify(mirrorSeen));
  const only = await client.pull(`${upstream.address}/lib/only-upstream:v1`, { images: b.images, content: b.content });
  assert.equal(only.repoTags[0], `${upstream.address}/lib/only-upstream:v1`);
  const mirrorCatalog = (await mirror.request('GET', '/v2/_catalog')).json<{ repositories: string[] }>();
  assert.deepEqual(mirrorCatalog.repositories, ['lib/m']);
});

test('a layer whose bytes do not match its digest fails the pull; nothing of it is kept, nor the layers unpacked before', async (t) => {
  const r = await withRegistry(t);
  const b = await newStores(t, 'b');
  const image = await makeImage('corrupt');
  await pushImage(r, 'bad', image, 'v1');
  const bad = digestOf(image.layers[1]!);
  // A proxy that flips one byte of one blob, keeping its length.
  const port = await listenProxy(t, (req, res) => {
    const upstream = http.request({ host: '127.0.0.1', port: r.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 500, up.headers);
      if (req.method === 'GET' && req.url?.endsWith(bad)) {
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const body = Buffer.concat(chunks);
          body[body.length - 1] ^= 0xff;
          res.end(body);
        });
        return;
      }
      up.pipe(res);
    });
    req.pipe(upstream);
  });
  await assert.rejects(new RegistryClient({}).pull(`127.0.0.1:${port}/bad:v1`, { images: b.images, content: b.content }), (err: Error) => {
    assert.ok(isKind(err, 'InvalidArgument'), String(err));
    assert.match(err.message, new RegExp(`filesystem layer verification failed for digest ${bad}`));
    return true;
  });
  assert.equal(await b.content.has(bad), false);
  await assert.rejects(b.images.resolve(`127.0.0.1:${port}/bad:v1`), (err: Error) => isKind(err, 'NotFound'));
  // The good layer unpacked while the pull ran is removed with it (no image uses it); its
  // verified blob stays, so a pull again needs no download for it.
  const unpacked = async () => (await fs.readdir(path.join(b.dir, 'snapshots', 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n));
  assert.deepEqual(await unpacked(), []);
  const good = digestOf(image.layers[0]!);
  assert.equal(await b.content.has(good), true);
  // A layer left by a daemon killed between unpacking and recording the image goes when the
  // store opens again.
  const diffIds = (JSON.parse(image.config.toString()) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
  assert.equal(await b.images.unpackLayer({ digest: good, diffId: diffIds[0]!, chainId: chainIds(diffIds)[0]! }), true);
  assert.equal((await unpacked()).length, 1);
  await openStores(b.dir);
  assert.deepEqual(await unpacked(), []);
});

/** An image whose first layer holds `mb` MiB of random bytes (gzip cannot shrink it) and a second small one. */
async function bigImage(mb: number): Promise<{ image: TestImage; data: Buffer }> {
  const data = randomBytes(mb << 20);
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  })();
  await new Promise<void>((resolve, reject) => pack.entry({ name: 'data/big.bin', mode: 0o644, mtime: new Date(0) }, data, (err) => (err ? reject(err) : resolve())));
  pack.finalize();
  await done;
  const layers = [gzipSync(Buffer.concat(chunks)), await layerTar({ 'etc/small.txt': 'small\n' })];
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: layers.map((l) => digestOf(gunzipSync(l))) },
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(l), size: l.length })),
  }));
  return { image: { config, layers, manifest, manifestDigest: digestOf(manifest) }, data };
}

/**
 * A proxy in front of `registry` that records the Range header of every blob GET and, the first
 * time `stallBlob` is asked for in full, sends `stallAfter` bytes of it and then nothing more
 * (the connection stays open), calling `onStall`.
 */
async function stallingProxy(t: TestContext, registry: TestRegistry, opts: { stallBlob: string; stallAfter: number; onStall: () => void }) {
  const blobGets: Array<{ digest: string; range: string | undefined }> = [];
  let stalled = false;
  const port = await listenProxy(t, (req, res) => {
    const blob = req.method === 'GET' ? /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1] : undefined;
    if (blob) blobGets.push({ digest: blob, range: req.headers.range });
    const upstream = http.request({ host: '127.0.0.1', port: registry.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 500, up.headers);
      up.on('error', () => res.destroy());
      if (blob === opts.stallBlob && !stalled && up.statusCode === 200) {
        stalled = true;
        let sent = 0;
        up.on('data', (c: Buffer) => {
          if (sent >= opts.stallAfter) return;
          const part = c.subarray(0, opts.stallAfter - sent);
          sent += part.length;
          res.write(part);
          if (sent >= opts.stallAfter) opts.onStall();
        });
        return;
      }
      up.pipe(res);
    });
    // The client going away mid-transfer is part of these tests.
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  return { port, blobGets };
}


async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a pull stopped mid-blob resumes after a restart: the kept bytes are hashed again and only the rest is fetched with Range', async (t) => {
  const r = await withRegistry(t);
  const b = await newStores(t, 'b');
  const { image, data } = await bigImage(4);
  await pushImage(r, 'big', image, 'v1');
  const big = digestOf(image.layers[0]!);
  const ingest = path.join(b.dir, 'content', 'ingest', big.slice(7), 'data');
  const keptBytes = async () => (await fs.stat(ingest).catch(() => undefined))?.size ?? 0;
  const stop = new AbortController();
  const proxy = await stallingProxy(t, r, { stallBlob: big, stallAfter: image.layers[0]!.length >> 1, onStall: () => void 0 });
  const ref = `127.0.0.1:${proxy.port}/big:v1`;

  const first = new RegistryClient({}).pull(ref, { images: b.images, content: b.content, signal: stop.signal });
  // What the daemon had written when it died is what is on disk: at least a MiB here.
  await waitFor('the first MiB on disk', async () => (await keptBytes()) >= 1 << 20);
  stop.abort();
  await assert.rejects(first, (err: Error) => isKind(err, 'Cancelled'));
  const kept = await keptBytes();
  assert.ok(kept >= 1 << 20 && kept < image.layers[0]!.length, `kept ${kept} bytes`);

  const c = await openStores(b.dir);
  assert.equal(await keptBytes(), kept, 'init keeps a young ingest');
  const record = await new RegistryClient({}).pull(ref, { images: c.images, content: c.content });
  assert.equal(record.id, digestOf(image.config));
  const gets = proxy.blobGets.filter((g) => g.digest === big).map((g) => g.range);
  assert.deepEqual(gets, [undefined, `bytes=${kept}-`]);
  assert.equal(await c.content.has(big), true);
  const chainId = record.layers[0]!.chainId;
  assert.deepEqual(await fs.readFile(path.join(c.snapshots.layerPath(chainId), 'data', 'big.bin')), data);
  assert.deepEqual(await fs.readdir(path.join(b.dir, 'content', 'ingest')), []);
});

test('kept bytes that do not verify are dropped and the blob is fetched again whole', async (t) => {
  const r = await withRegistry(t);
  const b = await newStores(t, 'b');
  const { image, data } = await bigImage(3);
  await pushImage(r, 'torn', image, 'v1');
  const big = digestOf(image.layers[0]!);
  const ingest = path.join(b.dir, 'content', 'ingest', big.slice(7), 'data');
  const stop = new AbortController();
  const proxy = await stallingProxy(t, r, { stallBlob: big, stallAfter: image.layers[0]!.length >> 1, onStall: () => void 0 });
  const ref = `127.0.0.1:${proxy.port}/torn:v1`;
  const first = new RegistryClient({}).pull(ref, { images: b.images, content: b.content, signal: stop.signal });
  await waitFor('the first MiB on disk', async () => ((await fs.stat(ingest).catch(() => undefined))?.size ?? 0) >= 1 << 20);
  stop.abort();
  await assert.rejects(first, (err: Error) => isKind(err, 'Cancelled'));
  // A torn write: the middle of what was kept is zeros, as after a power cut.
  const handle = await fs.open(ingest, 'r+');
  await handle.write(Buffer.alloc(4096), 0, 4096, 300_000);
  await handle.close();
  const kept = (await fs.stat(ingest)).size;

  const c = await openStores(b.dir);
  const record = await new RegistryClient({}).pull(ref, { images: c.images, content: c.content });
  assert.equal(record.id, digestOf(image.config));
  const gets = proxy.blobGets.filter((g) => g.digest === big).map((g) => g.range);
  assert.equal(gets[1], `bytes=${kept}-`);
  assert.equal(gets.at(-1), undefined, `the last GET is whole: ${JSON.stringify(gets)}`);
  assert.deepEqual(await fs.readFile(path.join(c.snapshots.layerPath(record.layers[0]!.chainId), 'data', 'big.bin')), data);
});

test('a blob that is a valid layer but not the one named is refused before its layer is committed', async (t) => {
  const r = await withRegistry(t);
  const b = await newStores(t, 'b');
  const image = await makeImage('swapped');
  await pushImage(r, 'swap', image, 'v1');
  const [first, second] = image.layers;
  const victim = digestOf(second!);
  // Serve the first layer's bytes (a good gzip tar) for the second layer's digest.
  const port = await listenProxy(t, (req, res) => {
    if (req.method === 'GET' && req.url?.endsWith(victim)) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': first!.length });
      res.end(first);
      return;
    }
    const upstream = http.request({ host: '127.0.0.1', port: r.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 500, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await assert.rejects(new RegistryClient({}).pull(`127.0.0.1:${port}/swap:v1`, { images: b.images, content: b.content }), (err: Error) => {
    assert.ok(isKind(err, 'InvalidArgument'), String(err));
    assert.match(err.message, new RegExp(`filesystem layer verification failed for digest ${victim}`));
    return true;
  });
  assert.equal(await b.content.has(victim), false);
  const config = JSON.parse(image.config.toString()) as { rootfs: { diff_ids: string[] } };
  const layers = await fs.readdir(path.join(b.dir, 'snapshots', 'layers'));
  const secondChain = chainIds(config.rootfs.diff_ids)[1]!;
  assert.ok(!layers.includes(secondChain.slice(7)), 'the swapped layer is not kept');
  assert.deepEqual(layers.filter((n) => n.startsWith('.tmp-')), []);
  assert.deepEqual(await fs.readdir(path.join(b.dir, 'content', 'ingest')), []);
});

test('every tag of a repository is listed across the registry\'s Link pages; an unknown repository is NotFound', async (t) => {
  const r = await withRegistry(t);
  const image = await makeImage('paged');
  const tags = ['a', 'b', 'c', 'd', 'e'];
  for (const tag of tags) await pushImage(r, 'paged/app', image, tag);
  const client = new RegistryClient({});
  assert.deepEqual(await client.listTags(`${r.address}/paged/app`, { pageSize: 2 }), tags);
  assert.deepEqual(await client.listTags(`${r.address}/paged/app`), tags);
  await assert.rejects(client.listTags(`${r.address}/paged/none`), (err) => isKind(err, 'NotFound'));
});
