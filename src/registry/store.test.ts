/**
 * The store on its own: crash leftovers are cleaned on open, the grammar, the route table.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { errorCodes, isName, isTag, matchRoute, parseManifest, registryErrorOf, RegistryStore } from './index.js';
import { digestOf, tempDir } from './testing.js';

test('opening the store cuts an upload back to its acknowledged offset and drops uploads without state', async (t) => {
  const root = await tempDir('crash');
  t.after(() => fs.rm(root, { recursive: true, force: true }));
  const store = new RegistryStore(root);
  await store.init();
  const upload = await store.startUpload('crash/repo');
  await store.appendUpload('crash/repo', upload.id, Readable.from([Buffer.from('hello ')]));
  // A crash mid-chunk: bytes past the offset, a half-written state file, a directory with no state.
  await fs.appendFile(path.join(root, 'uploads', upload.id, 'data'), 'garbage');
  await fs.writeFile(path.join(root, 'uploads', upload.id, '.tmp-state.json-abc'), '{');
  await fs.mkdir(path.join(root, 'uploads', '00000000-0000-0000-0000-000000000000'));
  await fs.mkdir(path.join(root, 'content', 'ingest', 'leftover'), { recursive: true });

  const reopened = new RegistryStore(root);
  await reopened.init();
  assert.deepEqual((await fs.readdir(path.join(root, 'uploads'))).sort(), [upload.id]);
  assert.deepEqual(await fs.readdir(path.join(root, 'uploads', upload.id)), ['data', 'state.json']);
  assert.deepEqual(await fs.readdir(path.join(root, 'content', 'ingest')), []);
  assert.equal((await reopened.uploadStatus('crash/repo', upload.id)).offset, 6);
  assert.equal((await fs.stat(path.join(root, 'uploads', upload.id, 'data'))).size, 6);
  await reopened.appendUpload('crash/repo', upload.id, Readable.from([Buffer.from('world')]), { start: 6 });
  await fs.appendFile(path.join(root, 'uploads', upload.id, 'data'), 'more garbage');
  const { digest } = await reopened.finishUpload('crash/repo', upload.id, digestOf('hello world'));
  assert.equal((await reopened.content.read(digest)).toString(), 'hello world');
  assert.deepEqual(await reopened.listRepositories(), ['crash/repo']);
});

test('the name and tag grammar follows the distribution spec', () => {
  for (const name of ['a', 'library/ubuntu', 'a.b/c_d/e__f/g-h', 'x--y', 'a/b/c/d/e', '0']) assert.equal(isName(name), true, name);
  for (const name of ['', 'A', 'a/', '/a', 'a//b', 'a_', '_a', 'a..b', 'a___b', 'a/_manifests', 'a:b', 'x'.repeat(256)]) assert.equal(isName(name), false, name);
  for (const tag of ['latest', 'v1.0', '_x', 'A-B_c.d', 'a'.repeat(128)]) assert.equal(isTag(tag), true, tag);
  for (const tag of ['', '.a', '-a', 'a/b', 'a:b', 'a'.repeat(129)]) assert.equal(isTag(tag), false, tag);
});

test('the route table anchors on the fixed tail so names may hold slashes', () => {
  const d = digestOf('x');
  assert.deepEqual(matchRoute('/v2/'), { route: 'base', name: undefined, ref: undefined });
  assert.deepEqual(matchRoute('/v2/_catalog'), { route: 'catalog', name: undefined, ref: undefined });
  assert.deepEqual(matchRoute('/v2/a/b/c/tags/list'), { route: 'tags', name: 'a/b/c', ref: undefined });
  assert.deepEqual(matchRoute(`/v2/a/blobs/b/blobs/${d}`), { route: 'blob', name: 'a/blobs/b', ref: d });
  assert.deepEqual(matchRoute('/v2/a/b/blobs/uploads/'), { route: 'uploads', name: 'a/b', ref: undefined });
  assert.deepEqual(matchRoute('/v2/a/b/blobs/uploads/1234'), { route: 'upload', name: 'a/b', ref: '1234' });
  assert.deepEqual(matchRoute('/v2/a/manifests/latest'), { route: 'manifest', name: 'a', ref: 'latest' });
  assert.deepEqual(matchRoute(`/v2/a/referrers/${d}`), { route: 'referrers', name: 'a', ref: d });
  assert.equal(matchRoute('/v2/a/unknown/x'), undefined);
});

test('Docker schema2 manifests and lists are parsed; foreign layers are not required', () => {
  const layer = { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: digestOf('l'), size: 1, urls: ['https://example.invalid/l'] };
  const manifest = parseManifest(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: digestOf('c'), size: 1 },
        layers: [layer],
      }),
    ),
    undefined,
  );
  assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(manifest.blobs.length, 2);
  const list = parseManifest(
    Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: digestOf('m'), size: 3 }] })),
    'application/vnd.docker.distribution.manifest.list.v2+json',
  );
  assert.equal(list.isIndex, true);
  assert.equal(list.manifests.length, 1);
  const bad = (() => {
    try {
      parseManifest(Buffer.from('{"schemaVersion":2}'), 'text/plain');
    } catch (err) {
      return registryErrorOf(err);
    }
  })();
  assert.equal(bad?.code, 'MANIFEST_INVALID');
});

test('every error code has a status and a message', () => {
  for (const [code, spec] of Object.entries(errorCodes)) {
    assert.match(code, /^[A-Z_]+$/);
    assert.ok(spec.status >= 400 && spec.status < 600, code);
    assert.ok(spec.message.length > 0, code);
  }
  assert.equal(registryErrorOf(new Error('boom')).code, 'UNKNOWN');
});

/** A store on a fresh root, closed and removed after the test. */
async function openStore(t: TestContext, label: string): Promise<{ root: string; store: RegistryStore }> {
  const root = await tempDir(label);
  const store = new RegistryStore(root);
  t.after(async () => {
    await store.close();
    await fs.rm(root, { recursive: true, force: true });
  });
  await store.init();
  return { root, store };
}

/** Uploads `data` into `name` in two chunks; resolves when the PUT would be answered. */
async function upload(store: RegistryStore, name: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const { id } = await store.startUpload(name);
  const half = Math.floor(data.length / 2);
  await store.appendUpload(name, id, Readable.from([data.subarray(0, half)]));
  return store.finishUpload(name, id, digestOf(data), { stream: Readable.from([data.subarray(half)]) });
}

test('a blob is stored and linked when its PUT is answered, with concurrent pushes of it, and survives a crash', async (t) => {
  const root = await tempDir('answered');
  const store = new RegistryStore(root);
  const reopened = new RegistryStore(root);
  t.after(async () => {
    await store.close();
    await reopened.close();
    await fs.rm(root, { recursive: true, force: true });
  });
  await store.init();
  const layer = randomBytes(3 * 1024 * 1024 + 17);
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  // Four pushes of the same layer into two repositories at once, and the config.
  await Promise.all([upload(store, 'a', layer), upload(store, 'a', layer), upload(store, 'b', layer), upload(store, 'b', layer), upload(store, 'a', config)]);
  const digest = digestOf(layer);
  // Answered means on disk: a second store on the same root (what a restart after a SIGKILL
  // opens; this one is never closed first) serves the blob in both repositories.
  await reopened.init();
  assert.equal(await reopened.content.has(digest), true);
  assert.equal(await reopened.blobSize('a', digest), layer.length);
  const { handle, size } = await reopened.openBlob('b', digest);
  const bytes = Buffer.alloc(size);
  await handle.read(bytes, 0, size, 0);
  await handle.close();
  assert.ok(bytes.equals(layer));
  assert.equal(await store.mountBlob('c', 'a', digest), true);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: layer.length }],
    }),
  );
  await store.putManifest('a', { tag: 'latest' }, manifest, 'application/vnd.oci.image.manifest.v1+json');
  await store.close();
  assert.deepEqual(await fs.readdir(path.join(root, 'uploads')), []);
});

test('an upload is continued or cancelled right after its POST is answered', async (t) => {
  const { root, store } = await openStore(t, 'posted');
  const cancelled = await store.startUpload('p');
  await store.cancelUpload('p', cancelled.id);
  await assert.rejects(store.uploadStatus('p', cancelled.id), (err) => registryErrorOf(err).code === 'BLOB_UPLOAD_UNKNOWN');
  const continued = await store.startUpload('p');
  const state = await store.appendUpload('p', continued.id, Readable.from([Buffer.from('abc')]));
  assert.equal(state.offset, 3);
  assert.deepEqual((await fs.readdir(path.join(root, 'uploads', continued.id))).sort(), ['data', 'state.json']);
  await store.close();
  assert.deepEqual(await fs.readdir(path.join(root, 'uploads')), [continued.id]);
});

test('manifests and tags read through the cache follow every change made to them', async (t) => {
  const { root, store } = await openStore(t, 'cached');
  const manifestOf = async (label: string) => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { label } }, rootfs: { type: 'layers', diff_ids: [] } }));
    await upload(store, 'c', config);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length }, layers: [] }));
    return body;
  };
  const unknown = (err: unknown) => registryErrorOf(err).code === 'MANIFEST_UNKNOWN';
  const a = await manifestOf('a');
  const b = await manifestOf('b');
  const type = 'application/vnd.oci.image.manifest.v1+json';
  await store.putManifest('c', { tag: 't' }, a, type);
  assert.equal((await store.getManifest('c', { tag: 't' })).digest, digestOf(a));
  assert.ok((await store.getManifest('c', { tag: 't' })).body.equals(a));
  await store.putManifest('c', { tag: 't' }, b, type);
  assert.equal((await store.getManifest('c', { tag: 't' })).digest, digestOf(b));
  await store.deleteManifest('c', { tag: 't' });
  await assert.rejects(store.getManifest('c', { tag: 't' }), unknown);
  assert.ok((await store.getManifest('c', { digest: digestOf(a) })).body.equals(a));
  await store.putManifest('c', { tag: 'u' }, a, type);
  assert.equal((await store.getManifest('c', { tag: 'u' })).digest, digestOf(a));
  await store.deleteManifest('c', { digest: digestOf(a) });
  await assert.rejects(store.getManifest('c', { digest: digestOf(a) }), unknown);
  await assert.rejects(store.getManifest('c', { tag: 'u' }), unknown);
  // Pushed again by digest: the tags the deletion removed stay removed.
  await store.putManifest('c', { digest: digestOf(a) }, a, type);
  await assert.rejects(store.getManifest('c', { tag: 'u' }), unknown);
  assert.equal((await store.getManifest('c', { digest: digestOf(b) })).digest, digestOf(b));
});
