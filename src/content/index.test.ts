import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ContentStore, sha256Digest } from './index.js';

async function withStore(fn: (store: ContentStore, root: string) => Promise<void>): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-test-content-'));
  try {
    const store = new ContentStore(root);
    await store.init();
    await fn(store, root);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

test('writeBlob and ingest store blobs under their digest and read them back', async () => {
  await withStore(async (store) => {
    const a = await store.writeBlob(Buffer.from('hello'));
    assert.equal(a.digest, sha256Digest('hello'));
    assert.equal(a.size, 5);
    assert.equal((await store.read(a.digest)).toString(), 'hello');
    const b = await store.ingest(Readable.from([Buffer.from('wor'), Buffer.from('ld')]), { expected: sha256Digest('world'), expectedSize: 5 });
    assert.equal(b.digest, sha256Digest('world'));
    assert.equal(await store.size(b.digest), 5);
    assert.equal(await store.has(b.digest), true);
    const chunks: Buffer[] = [];
    for await (const c of store.createReadStream(b.digest)) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'world');
    assert.deepEqual((await store.list()).sort(), [a.digest, b.digest].sort());
    await store.delete(a.digest);
    await store.delete(a.digest);
    assert.equal(await store.has(a.digest), false);
  });
});

test('ingest rejects a blob whose digest or size does not match and leaves nothing', async () => {
  await withStore(async (store, root) => {
    const wrong = sha256Digest('other');
    await assert.rejects(store.ingest(Readable.from([Buffer.from('data')]), { expected: wrong }), /digest mismatch/);
    await assert.rejects(store.ingest(Readable.from([Buffer.from('data')]), { expectedSize: 3 }), /more than the expected 3 bytes/);
    await assert.rejects(store.ingest(Readable.from([Buffer.from('data')]), { expectedSize: 9 }), /size mismatch/);
    await assert.rejects(store.writeBlob(Buffer.from('data'), { expected: wrong }), /digest mismatch/);
    assert.deepEqual(await store.list(), []);
    assert.deepEqual(await fs.readdir(path.join(root, 'content', 'ingest')), []);
  });
});

test('a failing source stream fails the ingest', async () => {
  await withStore(async (store) => {
    const src = new Readable({ read() {} });
    src.push('part');
    setImmediate(() => src.destroy(new Error('connection reset')));
    await assert.rejects(store.ingest(src), /connection reset/);
    assert.deepEqual(await store.list(), []);
  });
});

test('missing blobs are NotFound and init removes stale ingests', async () => {
  await withStore(async (store, root) => {
    const d = sha256Digest('nothing');
    await assert.rejects(store.read(d), (e: Error & { kind?: string }) => e.kind === 'NotFound' && /No such blob/.test(e.message));
    await assert.rejects(store.size(d), (e: Error & { kind?: string }) => e.kind === 'NotFound');
    await assert.rejects(store.has('md5:abc'), /invalid digest format/);
    await fs.mkdir(path.join(root, 'content', 'ingest', 'stale'), { recursive: true });
    await store.init();
    assert.deepEqual(await fs.readdir(path.join(root, 'content', 'ingest')), []);
  });
});
