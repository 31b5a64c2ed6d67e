/**
 * Protocol tests: real HTTP against the registry on 127.0.0.1:0, one temp root per test.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { registryError } from './errors.js';
import { digestOf, makeImage, pushImage, startRegistry, type TestRegistry } from './testing.js';

const ociManifest = 'application/vnd.oci.image.manifest.v1+json';
const ociIndex = 'application/vnd.oci.image.index.v1+json';
const dockerManifest = 'application/vnd.docker.distribution.manifest.v2+json';

async function withRegistry(t: TestContext, fn: (r: TestRegistry) => Promise<void>): Promise<void> {
  const registry = await startRegistry();
  t.after(() => registry.close());
  await fn(registry);
}

async function startUpload(r: TestRegistry, name: string): Promise<string> {
  const reply = await r.request('POST', `/v2/${name}/blobs/uploads/`);
  assert.equal(reply.status, 202, reply.text);
  return reply.headers.location!;
}

const withQuery = (location: string, query: string) => `${location}${location.includes('?') ? '&' : '?'}${query}`;

test('GET /v2/ answers 200 with the API version header', async (t) => {
  await withRegistry(t, async (r) => {
    const reply = await r.request('GET', '/v2/');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.deepEqual(reply.json(), {});
    const unknown = await r.request('GET', '/v3/');
    assert.equal(unknown.status, 404);
  });
});

test('a monolithic POST then PUT with the digest stores a blob that GET and HEAD return', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = randomBytes(5000);
    const digest = digestOf(blob);
    const location = await startUpload(r, 'lib/mono');
    const put = await r.request('PUT', withQuery(location, `digest=${digest}`), {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.length },
      body: blob,
    });
    assert.equal(put.status, 201, put.text);
    assert.equal(put.headers.location, `/v2/lib/mono/blobs/${digest}`);
    assert.equal(put.headers['docker-content-digest'], digest);
    const head = await r.request('HEAD', `/v2/lib/mono/blobs/${digest}`);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(blob.length));
    assert.equal(head.headers['docker-content-digest'], digest);
    assert.equal(head.body.length, 0);
    const get = await r.request('GET', `/v2/lib/mono/blobs/${digest}`);
    assert.equal(get.status, 200);
    assert.ok(get.body.equals(blob));
    // The blob belongs to the repository it was pushed to.
    const elsewhere = await r.request('GET', `/v2/lib/other/blobs/${digest}`);
    assert.equal(elsewhere.status, 404);
    assert.equal(elsewhere.code, 'BLOB_UNKNOWN');
  });
});

test('POST with ?digest= stores a blob in a single request', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = Buffer.from('single shot');
    const digest = digestOf(blob);
    const reply = await r.request('POST', `/v2/single/blobs/uploads/?digest=${digest}`, { headers: { 'Content-Length': blob.length }, body: blob });
    assert.equal(reply.status, 201, reply.text);
    assert.equal(reply.headers['docker-content-digest'], digest);
    assert.ok((await r.request('GET', `/v2/single/blobs/${digest}`)).body.equals(blob));
    const bad = await r.request('POST', `/v2/single/blobs/uploads/?digest=${digestOf('other')}`, { headers: { 'Content-Length': blob.length }, body: blob });
    assert.equal(bad.status, 400);
    assert.equal(bad.code, 'DIGEST_INVALID');
    assert.equal((await r.request('HEAD', `/v2/single/blobs/${digestOf('other')}`)).status, 404);
  });
});

test('a chunked upload takes PATCHes with and without Content-Range and reports its status', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = randomBytes(30_000);
    const digest = digestOf(blob);
    let location = await startUpload(r, 'chunked');
    const post = await r.request('GET', location);
    assert.equal(post.status, 204);
    assert.equal(post.headers.range, '0-0');
    assert.ok(post.headers['docker-upload-uuid']);

    const first = await r.request('PATCH', location, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '0-9999', 'Content-Length': 10_000 },
      body: blob.subarray(0, 10_000),
    });
    assert.equal(first.status, 202, first.text);
    assert.equal(first.headers.range, '0-9999');
    location = first.headers.location!;

    const outOfOrder = await r.request('PATCH', location, {
      headers: { 'Content-Range': '15000-19999', 'Content-Length': 5000 },
      body: blob.subarray(15_000, 20_000),
    });
    assert.equal(outOfOrder.status, 416);
    assert.equal(outOfOrder.code, 'RANGE_INVALID');
    assert.equal(outOfOrder.headers.range, '0-9999');

    const second = await r.request('PATCH', location, { body: blob.subarray(10_000, 20_000) });
    assert.equal(second.status, 202);
    assert.equal(second.headers.range, '0-19999');
    const status = await r.request('GET', second.headers.location!);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, '0-19999');

    const done = await r.request('PUT', withQuery(second.headers.location!, `digest=${digest}`), {
      headers: { 'Content-Range': '20000-29999', 'Content-Length': 10_000 },
      body: blob.subarray(20_000),
    });
    assert.equal(done.status, 201, done.text);
    assert.ok((await r.request('GET', `/v2/chunked/blobs/${digest}`)).body.equals(blob));
    // The upload is gone once it is a blob.
    assert.equal((await r.request('GET', location)).code, 'BLOB_UPLOAD_UNKNOWN');
  });
});

test('PUT with a digest that does not match the upload answers DIGEST_INVALID and stores nothing', async (t) => {
  await withRegistry(t, async (r) => {
    const location = await startUpload(r, 'bad');
    const wrong = digestOf('something else');
    const reply = await r.request('PUT', withQuery(location, `digest=${wrong}`), { body: 'hello' });
    assert.equal(reply.status, 400);
    assert.equal(reply.code, 'DIGEST_INVALID');
    assert.deepEqual(Object.keys(reply.json().errors[0]).sort(), ['code', 'detail', 'message']);
    assert.equal((await r.request('HEAD', `/v2/bad/blobs/${wrong}`)).status, 404);
    assert.equal((await r.request('HEAD', `/v2/bad/blobs/${digestOf('hello')}`)).status, 404);
    for (const digest of ['', 'sha256:abc', 'md5:0123456789abcdef0123456789abcdef', 'nonsense']) {
      const loc = await startUpload(r, 'bad');
      const bad = await r.request('PUT', digest ? withQuery(loc, `digest=${encodeURIComponent(digest)}`) : loc, { body: 'x' });
      assert.equal(bad.code, 'DIGEST_INVALID', `digest "${digest}"`);
    }
  });
});

test('DELETE cancels an upload and unknown uploads answer BLOB_UPLOAD_UNKNOWN', async (t) => {
  await withRegistry(t, async (r) => {
    const location = await startUpload(r, 'cancel');
    assert.equal((await r.request('DELETE', location)).status, 204);
    assert.equal((await r.request('GET', location)).code, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal((await r.request('PATCH', location, { body: 'x' })).code, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal((await r.request('GET', '/v2/cancel/blobs/uploads/not-a-uuid')).status, 404);
    // An upload belongs to its repository.
    const other = await startUpload(r, 'cancel');
    assert.equal((await r.request('GET', other.replace('/cancel/', '/elsewhere/'))).code, 'BLOB_UPLOAD_UNKNOWN');
  });
});

test('GET of a blob honours Range', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = Buffer.from('0123456789abcdef');
    const digest = digestOf(blob);
    await r.request('POST', `/v2/range/blobs/uploads/?digest=${digest}`, { body: blob });
    const part = await r.request('GET', `/v2/range/blobs/${digest}`, { headers: { Range: 'bytes=2-5' } });
    assert.equal(part.status, 206);
    assert.equal(part.text, '2345');
    assert.equal(part.headers['content-range'], 'bytes 2-5/16');
    const tail = await r.request('GET', `/v2/range/blobs/${digest}`, { headers: { Range: 'bytes=-3' } });
    assert.equal(tail.text, 'def');
    const open = await r.request('GET', `/v2/range/blobs/${digest}`, { headers: { Range: 'bytes=10-' } });
    assert.equal(open.text, 'abcdef');
    const outside = await r.request('GET', `/v2/range/blobs/${digest}`, { headers: { Range: 'bytes=100-200' } });
    assert.equal(outside.status, 416);
    assert.equal(outside.headers['content-range'], 'bytes */16');
  });
});

test('cross-repository mount links an existing blob and falls back to an upload otherwise', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = Buffer.from('mount me');
    const digest = digestOf(blob);
    await r.request('POST', `/v2/source/blobs/uploads/?digest=${digest}`, { body: blob });
    const mounted = await r.request('POST', `/v2/target/blobs/uploads/?mount=${digest}&from=source`);
    assert.equal(mounted.status, 201);
    assert.equal(mounted.headers.location, `/v2/target/blobs/${digest}`);
    assert.ok((await r.request('GET', `/v2/target/blobs/${digest}`)).body.equals(blob));
    const missing = await r.request('POST', `/v2/target/blobs/uploads/?mount=${digestOf('absent')}&from=source`);
    assert.equal(missing.status, 202);
    assert.ok(missing.headers['docker-upload-uuid']);
    const wrongFrom = await r.request('POST', `/v2/third/blobs/uploads/?mount=${digest}&from=nowhere`);
    assert.equal(wrongFrom.status, 202);
    const invalidFrom = await r.request('POST', `/v2/third/blobs/uploads/?mount=${digest}&from=Not_Valid`);
    assert.equal(invalidFrom.status, 202);
  });
});

test('manifests are stored by tag and by digest and served with their media type and digest', async (t) => {
  await withRegistry(t, async (r) => {
    const image = await makeImage('manifests');
    await pushImage(r, 'app/web', image, 'v1');
    const get = await r.request('GET', '/v2/app/web/manifests/v1', { headers: { Accept: `${ociManifest}, ${dockerManifest}` } });
    assert.equal(get.status, 200);
    assert.equal(get.headers['content-type'], ociManifest);
    assert.equal(get.headers['docker-content-digest'], image.manifestDigest);
    assert.ok(get.body.equals(image.manifest));
    const byDigest = await r.request('HEAD', `/v2/app/web/manifests/${image.manifestDigest}`);
    assert.equal(byDigest.status, 200);
    assert.equal(byDigest.headers['content-length'], String(image.manifest.length));
    assert.equal(byDigest.body.length, 0);
    // A client that lists only Docker types cannot read an OCI manifest.
    const notAccepted = await r.request('GET', '/v2/app/web/manifests/v1', { headers: { Accept: dockerManifest } });
    assert.equal(notAccepted.status, 404);
    assert.equal(notAccepted.code, 'MANIFEST_UNKNOWN');
    assert.equal((await r.request('GET', '/v2/app/web/manifests/v1', { headers: { Accept: '*/*' } })).status, 200);
    // By digest, the reference must be the body's digest.
    const wrongDigest = await r.request('PUT', `/v2/app/web/manifests/${digestOf('x')}`, { headers: { 'Content-Type': ociManifest }, body: image.manifest });
    assert.equal(wrongDigest.code, 'DIGEST_INVALID');
    const putDigest = await r.request('PUT', `/v2/app/web/manifests/${image.manifestDigest}`, { headers: { 'Content-Type': ociManifest }, body: image.manifest });
    assert.equal(putDigest.status, 201);
    assert.equal(putDigest.headers.location, `/v2/app/web/manifests/${image.manifestDigest}`);
    const unknown = await r.request('GET', '/v2/app/web/manifests/nope');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.code, 'MANIFEST_UNKNOWN');
  });
});

test('a manifest whose blobs are not in the repository answers MANIFEST_BLOB_UNKNOWN', async (t) => {
  await withRegistry(t, async (r) => {
    const image = await makeImage('missing');
    await pushImage(r, 'has/blobs', image, 'v1');
    // Same bytes exist in the registry, but not in this repository.
    const reply = await r.request('PUT', '/v2/no/blobs/manifests/v1', { headers: { 'Content-Type': ociManifest }, body: image.manifest });
    assert.equal(reply.status, 400);
    assert.equal(reply.code, 'MANIFEST_BLOB_UNKNOWN');
    assert.equal(reply.json().errors[0].detail.digests.length, 3);
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ociIndex, manifests: [{ mediaType: ociManifest, digest: digestOf('nothing'), size: 7 }] }));
    const indexReply = await r.request('PUT', '/v2/has/blobs/manifests/idx', { headers: { 'Content-Type': ociIndex }, body: index });
    assert.equal(indexReply.code, 'MANIFEST_BLOB_UNKNOWN');
  });
});

test('an index over stored manifests is accepted; invalid, unsupported and oversized manifests are refused', async (t) => {
  await withRegistry(t, async (r) => {
    const image = await makeImage('index');
    await pushImage(r, 'multi', image, 'amd64');
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: ociIndex,
        manifests: [{ mediaType: ociManifest, digest: image.manifestDigest, size: image.manifest.length, platform: { os: 'linux', architecture: 'amd64' } }],
      }),
    );
    const put = await r.request('PUT', '/v2/multi/manifests/latest', { headers: { 'Content-Type': ociIndex }, body: index });
    assert.equal(put.status, 201, put.text);
    assert.equal((await r.request('GET', '/v2/multi/manifests/latest')).headers['content-type'], ociIndex);

    const notJson = await r.request('PUT', '/v2/multi/manifests/bad', { headers: { 'Content-Type': ociManifest }, body: '{not json' });
    assert.equal(notJson.code, 'MANIFEST_INVALID');
    const unsupported = await r.request('PUT', '/v2/multi/manifests/bad', {
      headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' },
      body: JSON.stringify({ schemaVersion: 1 }),
    });
    assert.equal(unsupported.status, 400);
    assert.equal(unsupported.code, 'MANIFEST_INVALID');
    const mismatch = await r.request('PUT', '/v2/multi/manifests/bad', { headers: { 'Content-Type': ociManifest }, body: index });
    assert.equal(mismatch.code, 'MANIFEST_INVALID');
    const noConfig = await r.request('PUT', '/v2/multi/manifests/bad', { headers: { 'Content-Type': ociManifest }, body: JSON.stringify({ schemaVersion: 2, layers: [] }) });
    assert.equal(noConfig.code, 'MANIFEST_INVALID');
    const huge = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    const tooLarge = await r.request('PUT', '/v2/multi/manifests/big', { headers: { 'Content-Type': ociManifest }, body: huge });
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.code, 'MANIFEST_INVALID');
    assert.equal((await r.request('GET', '/v2/_catalog')).status, 200);
  });
});

test('names and tags are checked against the grammar', async (t) => {
  await withRegistry(t, async (r) => {
    for (const name of ['UPPER/case', 'a//b', '-lead', 'trail-', 'a/_layers', 'x'.repeat(256)]) {
      const reply = await r.request('GET', `/v2/${name}/tags/list`);
      assert.equal(reply.code, 'NAME_INVALID', name);
      assert.equal(reply.status, 400);
    }
    const image = await makeImage('grammar');
    await pushImage(r, 'ok/name', image, 'v1');
    for (const tag of ['-bad', '.bad', 'a'.repeat(129)]) {
      const reply = await r.request('PUT', `/v2/ok/name/manifests/${tag}`, { headers: { 'Content-Type': ociManifest }, body: image.manifest });
      assert.equal(reply.code, 'TAG_INVALID', tag);
    }
    assert.equal((await r.request('PUT', '/v2/ok/name/manifests/_Under.score-1', { headers: { 'Content-Type': ociManifest }, body: image.manifest })).status, 201);
    assert.equal((await r.request('GET', '/v2/never/pushed/tags/list')).code, 'NAME_UNKNOWN');
    assert.equal((await r.request('POST', '/v2/ok/name/tags/list')).code, 'UNSUPPORTED');
  });
});

test('tags list and catalog paginate with n, last and the Link header', async (t) => {
  await withRegistry(t, async (r) => {
    const image = await makeImage('pages');
    const tags = ['a', 'b', 'c', 'd', 'e'];
    for (const tag of tags) await pushImage(r, 'paged', image, tag);
    await pushImage(r, 'alpha', image, 'x');
    await pushImage(r, 'zeta/one', image, 'x');
    const all = await r.request('GET', '/v2/paged/tags/list');
    assert.deepEqual(all.json(), { name: 'paged', tags });
    assert.equal(all.headers.link, undefined);

    const seen: string[] = [];
    let next: string | undefined = '/v2/paged/tags/list?n=2';
    let pages = 0;
    while (next) {
      const reply = await r.request('GET', next);
      assert.equal(reply.status, 200);
      seen.push(...reply.json().tags);
      const link = reply.headers.link as string | undefined;
      next = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1] : undefined;
      pages++;
    }
    assert.deepEqual(seen, tags);
    assert.equal(pages, 3);
    assert.deepEqual((await r.request('GET', '/v2/paged/tags/list?n=2&last=c')).json().tags, ['d', 'e']);
    assert.deepEqual((await r.request('GET', '/v2/paged/tags/list?n=0')).json().tags, []);
    assert.equal((await r.request('GET', '/v2/paged/tags/list?n=-1')).code, 'PAGINATION_NUMBER_INVALID');

    assert.deepEqual((await r.request('GET', '/v2/_catalog')).json().repositories, ['alpha', 'paged', 'zeta/one']);
    const first = await r.request('GET', '/v2/_catalog?n=2');
    assert.deepEqual(first.json().repositories, ['alpha', 'paged']);
    assert.equal(first.headers.link, '</v2/_catalog?n=2&last=paged>; rel="next"');
    const second = await r.request('GET', '/v2/_catalog?n=2&last=paged');
    assert.deepEqual(second.json().repositories, ['zeta/one']);
    assert.equal(second.headers.link, undefined);
  });
});

test('deleting a tag keeps the manifest; deleting the manifest removes its tags; deleting a blob unlinks it', async (t) => {
  await withRegistry(t, async (r) => {
    const image = await makeImage('delete');
    await pushImage(r, 'del', image, 'v1');
    await pushImage(r, 'del', image, 'v2');
    assert.equal((await r.request('DELETE', '/v2/del/manifests/v1')).status, 202);
    assert.deepEqual((await r.request('GET', '/v2/del/tags/list')).json().tags, ['v2']);
    assert.equal((await r.request('GET', `/v2/del/manifests/${image.manifestDigest}`)).status, 200);
    assert.equal((await r.request('DELETE', '/v2/del/manifests/v1')).code, 'MANIFEST_UNKNOWN');
    assert.equal((await r.request('DELETE', `/v2/del/manifests/${image.manifestDigest}`)).status, 202);
    assert.equal((await r.request('GET', `/v2/del/manifests/${image.manifestDigest}`)).code, 'MANIFEST_UNKNOWN');
    assert.deepEqual((await r.request('GET', '/v2/del/tags/list')).json().tags, []);
    const layer = digestOf(image.layers[0]!);
    assert.equal((await r.request('DELETE', `/v2/del/blobs/${layer}`)).status, 202);
    assert.equal((await r.request('HEAD', `/v2/del/blobs/${layer}`)).status, 404);
    assert.equal((await r.request('DELETE', `/v2/del/blobs/${layer}`)).code, 'BLOB_UNKNOWN');
    assert.equal((await r.request('DELETE', '/v2/del/blobs/sha256:zz')).code, 'DIGEST_INVALID');
  });
});

test('the referrers API lists manifests whose subject is a digest, filtered by artifactType', async (t) => {
  await withRegistry(t, async (r) => {
    const image = await makeImage('subject');
    await pushImage(r, 'refs', image, 'v1');
    const empty = Buffer.from('{}');
    await r.request('POST', `/v2/refs/blobs/uploads/?digest=${digestOf(empty)}`, { body: empty });
    const artifact = (artifactType: string, note: string) =>
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: ociManifest,
          artifactType,
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(empty), size: 2 },
          layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf(empty), size: 2 }],
          subject: { mediaType: ociManifest, digest: image.manifestDigest, size: image.manifest.length },
          annotations: { note },
        }),
      );
    const sig = artifact('application/vnd.example.signature', 'sig');
    const sbom = artifact('application/vnd.example.sbom', 'sbom');
    for (const body of [sig, sbom]) {
      const put = await r.request('PUT', `/v2/refs/manifests/${digestOf(body)}`, { headers: { 'Content-Type': ociManifest }, body });
      assert.equal(put.status, 201, put.text);
      assert.equal(put.headers['oci-subject'], image.manifestDigest);
    }
    const all = await r.request('GET', `/v2/refs/referrers/${image.manifestDigest}`);
    assert.equal(all.status, 200);
    assert.equal(all.headers['content-type'], ociIndex);
    const index = all.json();
    assert.equal(index.schemaVersion, 2);
    assert.deepEqual(index.manifests.map((d: { digest: string }) => d.digest).sort(), [digestOf(sig), digestOf(sbom)].sort());
    assert.equal(all.headers['oci-filters-applied'], undefined);
    const filtered = await r.request('GET', `/v2/refs/referrers/${image.manifestDigest}?artifactType=application/vnd.example.sbom`);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(filtered.json().manifests, [{ mediaType: ociManifest, digest: digestOf(sbom), size: sbom.length, artifactType: 'application/vnd.example.sbom', annotations: { note: 'sbom' } }]);
    const none = await r.request('GET', `/v2/refs/referrers/${digestOf('unknown')}`);
    assert.deepEqual(none.json().manifests, []);
    assert.equal((await r.request('GET', '/v2/refs/referrers/latest')).code, 'DIGEST_INVALID');
    await r.request('DELETE', `/v2/refs/manifests/${digestOf(sig)}`);
    assert.equal((await r.request('GET', `/v2/refs/referrers/${image.manifestDigest}`)).json().manifests.length, 1);
  });
});

test('concurrent pushes of the same blob both succeed and the blob is whole', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = randomBytes(2 * 1024 * 1024);
    const digest = digestOf(blob);
    const chunked = async (name: string) => {
      const location = await startUpload(r, name);
      const half = blob.length / 2;
      const a = await r.request('PATCH', location, { headers: { 'Content-Range': `0-${half - 1}` }, body: blob.subarray(0, half) });
      return r.request('PUT', withQuery(a.headers.location!, `digest=${digest}`), { body: blob.subarray(half) });
    };
    const replies = await Promise.all([
      chunked('same'),
      chunked('same'),
      chunked('other'),
      r.request('POST', `/v2/same/blobs/uploads/?digest=${digest}`, { body: blob }),
      r.request('POST', `/v2/third/blobs/uploads/?digest=${digest}`, { body: blob }),
    ]);
    for (const reply of replies) assert.equal(reply.status, 201, reply.text);
    for (const name of ['same', 'other', 'third']) {
      const get = await r.request('GET', `/v2/${name}/blobs/${digest}`);
      assert.equal(digestOf(get.body), digest);
    }
  });
});

/** Sends a PATCH that declares more bytes than it sends, then drops the connection. */
function truncatedPatch(port: number, location: string, declared: number, sent: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`PATCH ${location} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`);
      socket.write(sent, () => setTimeout(() => socket.destroy(), 100));
    });
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a PATCH cut off by a client disconnect leaves the upload at its last whole chunk, ready to resume', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = randomBytes(100_000);
    const digest = digestOf(blob);
    const location = await startUpload(r, 'cut');
    const first = await r.request('PATCH', location, { body: blob.subarray(0, 40_000) });
    assert.equal(first.headers.range, '0-39999');
    await truncatedPatch(r.port, first.headers.location!, 60_000, blob.subarray(40_000, 70_000));
    await waitFor(async () => (await r.request('GET', location)).headers.range === '0-39999', 'the cut chunk to be dropped');
    const rest = await r.request('PATCH', location, { headers: { 'Content-Range': '40000-99999' }, body: blob.subarray(40_000) });
    assert.equal(rest.status, 202, rest.text);
    const done = await r.request('PUT', withQuery(location, `digest=${digest}`));
    assert.equal(done.status, 201, done.text);
    assert.ok((await r.request('GET', `/v2/cut/blobs/${digest}`)).body.equals(blob));
  });
});

test('a single-request push cut off mid-body leaves no blob behind', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = randomBytes(50_000);
    const digest = digestOf(blob);
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(r.port, '127.0.0.1', () => {
        socket.write(`POST /v2/trunc/blobs/uploads/?digest=${digest} HTTP/1.1\r\nHost: x\r\nContent-Length: ${blob.length}\r\n\r\n`);
        socket.write(blob.subarray(0, 20_000), () => setTimeout(() => socket.destroy(), 100));
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
    await new Promise((res) => setTimeout(res, 100));
    assert.equal((await r.request('HEAD', `/v2/trunc/blobs/${digest}`)).status, 404);
    assert.equal(await r.registry.store.content.has(digest), false);
    // The server still answers.
    assert.equal((await r.request('GET', '/v2/')).status, 200);
  });
});

test('an upload survives a restart of the server and resumes where it was', async (t) => {
  const first = await startRegistry();
  let second: TestRegistry | undefined;
  t.after(async () => {
    await second?.close();
    await first.close();
  });
  const blob = randomBytes(64_000);
  const digest = digestOf(blob);
  const location = await startUpload(first, 'restart');
  const patch = await first.request('PATCH', location, { body: blob.subarray(0, 32_000) });
  assert.equal(patch.status, 202);
  await first.stop();
  second = await startRegistry({ root: first.root });
  const status = await second.request('GET', location);
  assert.equal(status.status, 204);
  assert.equal(status.headers.range, '0-31999');
  const done = await second.request('PUT', withQuery(location, `digest=${digest}`), { headers: { 'Content-Range': '32000-63999' }, body: blob.subarray(32_000) });
  assert.equal(done.status, 201, done.text);
  assert.ok((await second.request('GET', `/v2/restart/blobs/${digest}`)).body.equals(blob));
});

test('errors use the spec body and the one code table', async (t) => {
  await withRegistry(t, async (r) => {
    const reply = await r.request('GET', `/v2/nothing/blobs/${digestOf('none')}`);
    assert.equal(reply.status, 404);
    assert.equal(reply.headers['content-type'], 'application/json');
    const body = reply.json();
    assert.equal(body.errors.length, 1);
    assert.equal(body.errors[0].code, 'BLOB_UNKNOWN');
    assert.equal(typeof body.errors[0].message, 'string');
    const head = await r.request('HEAD', `/v2/nothing/blobs/${digestOf('none')}`);
    assert.equal(head.status, 404);
    assert.equal(head.body.length, 0);
  });
});

test('a keep-alive connection carries on after an error response', async (t) => {
  await withRegistry(t, async (r) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const get = (p: string) =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: r.port, path: p, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        }).on('error', reject);
      });
    assert.equal(await get('/v2/x/manifests/missing'), 404);
    assert.equal(await get('/v2/'), 200);
  });
});

test('the authorize hook sees each request and its refusals carry the spec code and headers', async (t) => {
  const seen: string[] = [];
  const r = await startRegistry({
    allowDelete: false,
    authorize: ({ method, action, name, from }) => {
      seen.push(`${method} ${action} ${name ?? '-'}${from ? ` from ${from}` : ''}`);
      if (name === 'private/repo') {
        throw registryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate': 'Basic realm="baleia"' } });
      }
      if (name === 'readonly' && action !== 'pull') throw registryError('DENIED');
    },
  });
  t.after(() => r.close());
  const denied = await r.request('GET', '/v2/private/repo/tags/list');
  assert.equal(denied.status, 401);
  assert.equal(denied.code, 'UNAUTHORIZED');
  assert.equal(denied.headers['www-authenticate'], 'Basic realm="baleia"');
  assert.equal((await r.request('POST', '/v2/readonly/blobs/uploads/')).code, 'DENIED');
  assert.equal((await r.request('POST', `/v2/open/blobs/uploads/?mount=${digestOf('m')}&from=readonly`)).status, 202);
  assert.equal((await r.request('GET', '/v2/_catalog')).status, 200);
  const del = await r.request('DELETE', `/v2/open/blobs/${digestOf('m')}`);
  assert.equal(del.code, 'UNSUPPORTED');
  assert.equal(del.status, 405);
  assert.deepEqual(seen, [
    'GET pull private/repo',
    'POST push readonly',
    'POST push open from readonly',
    'GET catalog -',
    'DELETE delete open',
  ]);
});

test('a final PUT cut off mid-body makes no blob and leaves the upload resumable', async (t) => {
  await withRegistry(t, async (r) => {
    const blob = randomBytes(80_000);
    const digest = digestOf(blob);
    const location = await startUpload(r, 'cutput');
    await r.request('PATCH', location, { body: blob.subarray(0, 30_000) });
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(r.port, '127.0.0.1', () => {
        socket.write(`PUT ${withQuery(location, `digest=${digest}`)} HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n`);
        socket.write(blob.subarray(30_000, 50_000), () => setTimeout(() => socket.destroy(), 100));
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
    await waitFor(async () => (await r.request('GET', location)).headers.range === '0-29999', 'the cut chunk to be dropped');
    assert.equal((await r.request('HEAD', `/v2/cutput/blobs/${digest}`)).status, 404);
    const done = await r.request('PUT', withQuery(location, `digest=${digest}`), { body: blob.subarray(30_000) });
    assert.equal(done.status, 201, done.text);
    assert.ok((await r.request('GET', `/v2/cutput/blobs/${digest}`)).body.equals(blob));
  });
});

test('Docker schema2 manifests and manifest lists round-trip with their media types', async (t) => {
  await withRegistry(t, async (r) => {
    const image = await makeImage('docker');
    for (const blob of [image.config, ...image.layers]) {
      await r.request('POST', `/v2/docker/img/blobs/uploads/?digest=${digestOf(blob)}`, { body: blob });
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: dockerManifest,
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: digestOf(image.config), size: image.config.length },
        layers: image.layers.map((l) => ({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: digestOf(l), size: l.length })),
      }),
    );
    assert.equal((await r.request('PUT', '/v2/docker/img/manifests/amd64', { headers: { 'Content-Type': dockerManifest }, body: manifest })).status, 201);
    const listType = 'application/vnd.docker.distribution.manifest.list.v2+json';
    const list = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: listType,
        manifests: [{ mediaType: dockerManifest, digest: digestOf(manifest), size: manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
      }),
    );
    // The body says what it is when the client sends no specific Content-Type.
    const put = await r.request('PUT', '/v2/docker/img/manifests/latest', { headers: { 'Content-Type': 'application/json' }, body: list });
    assert.equal(put.status, 201, put.text);
    const get = await r.request('GET', '/v2/docker/img/manifests/latest', { headers: { Accept: `${listType}, ${dockerManifest}` } });
    assert.equal(get.headers['content-type'], listType);
    assert.equal(get.headers['docker-content-digest'], digestOf(list));
    const child = await r.request('GET', `/v2/docker/img/manifests/${digestOf(manifest)}`, { headers: { Accept: dockerManifest } });
    assert.equal(child.headers['content-type'], dockerManifest);
    assert.ok(child.body.equals(manifest));
  });
});
