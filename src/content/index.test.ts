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

test('a resumable ingest keeps its bytes across a restart and offers them to be hashed again', async () => {
  await withStore(async (store, root) => {
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
    const digest = sha256Digest(data);
    const first = await store.openIngest(digest, { expectedSize: data.length });
    assert.equal(first.offset, 0);
    for await (const c of first.kept()) assert.fail(`nothing is kept yet, got ${c.length} bytes`);
    await first.write(data.subarray(0, 1 << 20));
    await first.write(data.subarray(1 << 20, (1 << 20) + 5000));
    await first.close();

    const again = new ContentStore(root);
    await again.init();
    const w = await again.openIngest(digest, { expectedSize: data.length });
    assert.equal(w.offset, (1 << 20) + 5000);
    const kept: Buffer[] = [];
    for await (const c of w.kept()) kept.push(c);
    assert.deepEqual(Buffer.concat(kept), data.subarray(0, w.offset));
    await w.write(data.subarray(w.offset));
    assert.deepEqual(await w.commit(), { digest, size: data.length });
    assert.deepEqual(await again.read(digest), data);
    assert.deepEqual(await fs.readdir(path.join(root, 'content', 'ingest')), []);
  });
});

test('a resumable ingest that does not match is removed; close keeps, discard removes', async () => {
  await withStore(async (store, root) => {
    const ingestDir = path.join(root, 'content', 'ingest');
    const digest = sha256Digest('the right bytes');
    const bad = await store.openIngest(digest);
    await bad.write(Buffer.from('the wrong bytes'));
    await assert.rejects(bad.commit(), (e: Error & { kind?: string }) => e.kind === 'InvalidArgument' && /digest mismatch/.test(e.message));
    assert.deepEqual(await fs.readdir(ingestDir), []);
    assert.equal(await store.has(digest), false);

    const tooMuch = await store.openIngest(digest, { expectedSize: 3 });
    await assert.rejects(tooMuch.write(Buffer.from('four')), /more than the expected 3 bytes/);
    await tooMuch.discard();
    assert.deepEqual(await fs.readdir(ingestDir), []);

    const kept = await store.openIngest(digest);
    await kept.write(Buffer.from('the'));
    await kept.close();
    assert.deepEqual(await fs.readdir(ingestDir), [digest.slice(7)]);
    const dropped = await store.openIngest(digest);
    assert.equal(dropped.offset, 3);
    await dropped.discard();
    assert.deepEqual(await fs.readdir(ingestDir), []);
  });
});

test('init keeps young resumable ingests and removes old ones, finished ones and the rest', async () => {
  await withStore(async (store, root) => {
    const ingestDir = path.join(root, 'content', 'ingest');
    const young = sha256Digest('young');
    const old = sha256Digest('old');
    const stored = await store.writeBlob(Buffer.from('stored'));
    for (const d of [young, old, stored.digest]) {
      const w = await store.openIngest(d);
      await w.write(Buffer.from('part'));
      await w.close();
    }
    const longAgo = new Date(Date.now() - 25 * 60 * 60 * 1000);
    await fs.utimes(path.join(ingestDir, old.slice(7), 'data'), longAgo, longAgo);
    await fs.mkdir(path.join(ingestDir, 'a1b2c3d4e5f60718'));
    await store.init();
    assert.deepEqual(await fs.readdir(ingestDir), [young.slice(7)]);
    const short = new ContentStore(root, { ingestMaxAge: 0 });
    await short.init();
    assert.deepEqual(await fs.readdir(ingestDir), []);
  });
});

test('a second writer of the same blob waits until the first lets go', async () => {
  await withStore(async (store) => {
    const digest = sha256Digest('hello');
    const first = await store.openIngest(digest);
    let secondOpened = false;
    const second = store.openIngest(digest).then((w) => {
      secondOpened = true;
      return w;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(secondOpened, false);
    await first.write(Buffer.from('hello'));
    await first.commit();
    const w = await second;
    assert.equal(await store.has(digest), true);
    await w.discard();
    assert.equal(await store.has(digest), true);
  });
});
