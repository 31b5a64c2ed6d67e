/**
 * The upload hasher on its own: its digests equal sha256 of the bytes however they arrive, a
 * chunk cut short is rolled back, and what it cannot vouch for it answers undefined.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { UploadHasher } from './hasher.js';
import { SlabPool } from './slabs.js';
import { digestOf } from './testing.js';

/** Hashes `data` as the next bytes of a begun chunk, through slabs of `pool`; false if refused. */
async function feed(hasher: UploadHasher, pool: SlabPool, id: string, data: Buffer): Promise<boolean> {
  for (let at = 0; at < data.length; ) {
    const slab = pool.take();
    const n = data.copy(slab.buffer, 0, at);
    at += n;
    const ok = await hasher.update(id, slab, n);
    pool.give(slab);
    if (!ok) return false;
  }
  return true;
}

test('the digest is the sha256 of the bytes, through shared slabs or copies past the pool\'s cap', async (t) => {
  const hasher = new UploadHasher();
  t.after(() => hasher.close());
  const data = randomBytes(5 * 1024 * 1024 + 123);
  for (const pool of [new SlabPool(), new SlabPool({ maxSlabs: 0 }), new SlabPool({ slabBytes: 1000 })]) {
    const id = `upload-${pool.slabBytes}-${pool.maxSlabs}`;
    assert.equal(hasher.begin(id, 0), true);
    assert.equal(await feed(hasher, pool, id, data), true);
    hasher.commit(id, data.length);
    assert.equal(await hasher.digest(id, data.length), digestOf(data), id);
    hasher.drop(id);
  }
});

test('uploads hashed at once keep their own hashes', async (t) => {
  const hasher = new UploadHasher();
  const pool = new SlabPool({ maxSlabs: 4 });
  t.after(() => hasher.close());
  const blobs = Array.from({ length: 8 }, () => randomBytes(3 * 1024 * 1024));
  await Promise.all(
    blobs.map(async (blob, k) => {
      const id = `u${k}`;
      hasher.begin(id, 0);
      assert.equal(await feed(hasher, pool, id, blob), true);
      hasher.commit(id, blob.length);
    }),
  );
  for (const [k, blob] of blobs.entries()) assert.equal(await hasher.digest(`u${k}`, blob.length), digestOf(blob));
});

test('a chunk aborted half way leaves the hash where the last committed chunk ended', async (t) => {
  const hasher = new UploadHasher();
  const pool = new SlabPool();
  t.after(() => hasher.close());
  const data = randomBytes(300_000);
  hasher.begin('a', 0);
  await feed(hasher, pool, 'a', data.subarray(0, 100_000));
  hasher.commit('a', 100_000);
  hasher.begin('a', 100_000);
  await feed(hasher, pool, 'a', randomBytes(50_000));
  hasher.abort('a');
  assert.equal(await hasher.digest('a', 100_000), digestOf(data.subarray(0, 100_000)));
  assert.equal(hasher.begin('a', 100_000), true);
  await feed(hasher, pool, 'a', data.subarray(100_000));
  hasher.commit('a', data.length);
  assert.equal(await hasher.digest('a', data.length), digestOf(data));
});

test('an upload the hasher has not followed from its start answers undefined', async (t) => {
  const hasher = new UploadHasher();
  const pool = new SlabPool();
  t.after(() => hasher.close());
  assert.equal(hasher.begin('restarted', 4096), false);
  assert.equal(await hasher.digest('restarted', 4096), undefined);
  hasher.begin('b', 0);
  await feed(hasher, pool, 'b', Buffer.from('hello'));
  hasher.commit('b', 5);
  // Another offset than the one the hash reached, or a chunk still open: not vouched for.
  assert.equal(await hasher.digest('b', 6), undefined);
  hasher.begin('b', 5);
  assert.equal(await hasher.digest('b', 5), undefined);
  hasher.abort('b');
  assert.equal(await hasher.digest('b', 5), digestOf('hello'));
});

test('after close nothing is vouched for', async () => {
  const hasher = new UploadHasher();
  hasher.begin('c', 0);
  await feed(hasher, new SlabPool(), 'c', Buffer.from('x'));
  hasher.commit('c', 1);
  await hasher.close();
  assert.equal(await hasher.digest('c', 1), undefined);
  assert.equal(hasher.begin('d', 0), false);
});
