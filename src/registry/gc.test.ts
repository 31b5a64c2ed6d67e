/**
 * Garbage collection: what is referenced stays pullable, what is not goes once the grace period
 * is over, stale uploads are purged, and an online collector runs beside pushes without harm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { digestOf, makeImage, pushImage, startRegistry } from './testing.js';

test('garbage collection keeps referenced blobs and removes unreferenced ones after the grace period', async (t) => {
  const r = await startRegistry();
  t.after(() => r.close());
  const kept = await makeImage('kept');
  const dropped = await makeImage('dropped');
  await pushImage(r, 'gc/app', kept, 'v1');
  await pushImage(r, 'gc/app', dropped, 'v2');
  const orphan = Buffer.from('pushed but never referenced');
  await r.request('POST', `/v2/gc/app/blobs/uploads/?digest=${digestOf(orphan)}`, { body: orphan });
  assert.equal((await r.request('DELETE', `/v2/gc/app/manifests/${dropped.manifestDigest}`)).status, 202);
  const upload = (await r.request('POST', '/v2/gc/app/blobs/uploads/')).headers.location!;

  // Within the grace period nothing goes.
  const early = await r.registry.store.collectGarbage({ gracePeriodMs: 3_600_000, uploadTtlMs: 3_600_000 });
  assert.deepEqual(early.deleted, []);
  assert.equal(early.uploadsPurged, 0);

  const dry = await r.registry.store.collectGarbage({ gracePeriodMs: 0, dryRun: true });
  assert.ok(dry.deleted.includes(digestOf(orphan)));
  assert.equal(await r.registry.store.content.has(digestOf(orphan)), true);

  const report = await r.registry.store.collectGarbage({ gracePeriodMs: 0, uploadTtlMs: 0 });
  const droppedBlobs = [dropped.manifestDigest, digestOf(dropped.config), ...dropped.layers.map(digestOf), digestOf(orphan)];
  assert.deepEqual([...report.deleted].sort(), droppedBlobs.sort());
  assert.equal(report.uploadsPurged, 1);
  assert.equal((await r.request('GET', upload)).code, 'BLOB_UPLOAD_UNKNOWN');
  for (const digest of droppedBlobs) {
    assert.equal(await r.registry.store.content.has(digest), false, digest);
    assert.equal((await r.request('HEAD', `/v2/gc/app/blobs/${digest}`)).status, 404, digest);
  }
  // The kept image is whole.
  const manifest = await r.request('GET', '/v2/gc/app/manifests/v1');
  assert.ok(manifest.body.equals(kept.manifest));
  for (const blob of [kept.config, ...kept.layers]) {
    assert.ok((await r.request('GET', `/v2/gc/app/blobs/${digestOf(blob)}`)).body.equals(blob));
  }
});

test('a blob shared with another repository survives the deletion of one of its manifests', async (t) => {
  const r = await startRegistry();
  t.after(() => r.close());
  const image = await makeImage('shared');
  await pushImage(r, 'one', image, 'v1');
  await pushImage(r, 'two', image, 'v1');
  await r.request('DELETE', `/v2/one/manifests/${image.manifestDigest}`);
  const report = await r.registry.store.collectGarbage({ gracePeriodMs: 0 });
  assert.deepEqual(report.deleted, []);
  assert.ok((await r.request('GET', '/v2/two/manifests/v1')).body.equals(image.manifest));
  assert.equal((await r.request('HEAD', `/v2/two/blobs/${digestOf(image.layers[1]!)}`)).status, 200);
});

test('a recently linked blob is kept even when the blob file itself is old', async (t) => {
  const r = await startRegistry();
  t.after(() => r.close());
  const blob = Buffer.from('old bytes, new link');
  const digest = digestOf(blob);
  await r.request('POST', `/v2/src/blobs/uploads/?digest=${digest}`, { body: blob });
  const old = new Date(Date.now() - 10 * 3_600_000);
  await fs.utimes(r.registry.store.content.path(digest), old, old);
  await fs.utimes(path.join(r.root, 'repositories', 'src', '_layers', 'sha256', digest.slice(7)), old, old);
  assert.equal((await r.request('POST', `/v2/dst/blobs/uploads/?mount=${digest}&from=src`)).status, 201);
  const kept = await r.registry.store.collectGarbage({ gracePeriodMs: 3_600_000 });
  assert.deepEqual(kept.deleted, []);
  // Once every link is old too, it goes, and so do its links.
  await fs.utimes(path.join(r.root, 'repositories', 'dst', '_layers', 'sha256', digest.slice(7)), old, old);
  const swept = await r.registry.store.collectGarbage({ gracePeriodMs: 3_600_000 });
  assert.deepEqual(swept.deleted, [digest]);
  assert.equal((await r.request('HEAD', `/v2/dst/blobs/${digest}`)).status, 404);
});

test('online garbage collection runs while pushes go on and never breaks a pushed image', async (t) => {
  const r = await startRegistry({ gc: { intervalMs: 5, gracePeriodMs: 60_000, uploadTtlMs: 60_000 } });
  t.after(() => r.close());
  const images = await Promise.all([0, 1, 2, 3].map((i) => makeImage(`online-${i}`)));
  await Promise.all(images.map((image, i) => pushImage(r, `online/r${i}`, image, 'v1')));
  for (let i = 0; i < 20; i++) {
    const blob = randomBytes(1000);
    await r.request('POST', `/v2/online/noise/blobs/uploads/?digest=${digestOf(blob)}`, { body: blob });
  }
  await new Promise((res) => setTimeout(res, 30));
  for (const [i, image] of images.entries()) {
    assert.ok((await r.request('GET', `/v2/online/r${i}/manifests/v1`)).body.equals(image.manifest));
    for (const blob of [image.config, ...image.layers]) assert.equal((await r.request('HEAD', `/v2/online/r${i}/blobs/${digestOf(blob)}`)).status, 200);
  }
  // With no grace, the unreferenced noise goes on a later pass; images stay.
  const report = await r.registry.store.collectGarbage({ gracePeriodMs: 0 });
  assert.equal(report.deleted.length, 20);
  assert.equal((await r.request('GET', '/v2/online/r0/manifests/v1')).status, 200);
});
