import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Sha256, hashThreads, setHashThreadIdleMs } from './sha256.js';

const reference = (data: Buffer) => 'sha256:' + createHash('sha256').update(data).digest('hex');

test('Sha256 gives the digest of everything given, small (hashed here) or large (on a worker)', async () => {
  assert.equal(await new Sha256().digest(), reference(Buffer.alloc(0)));
  const small = Buffer.from('hello');
  const s = new Sha256();
  s.update(small);
  assert.equal(await s.digest(), reference(small));
  // Sizes around the 1 MiB hand-over and past the 4 MiB back-pressure limit, in uneven chunks.
  for (const size of [(1 << 20) - 1, (1 << 20) + 1, 20 << 20]) {
    const data = randomBytes(size);
    const h = new Sha256();
    for (let off = 0, step = 1; off < data.length; off += step, step = (step * 7 + 13) % 300_000 + 1) {
      h.update(data.subarray(off, Math.min(data.length, off + step)));
      await h.ready();
    }
    assert.equal(await h.digest(), reference(data), `size ${size}`);
  }
});

test('Sha256 hashes many streams at once and forgets a disposed one', async () => {
  const inputs = Array.from({ length: 6 }, (_, i) => randomBytes((3 << 20) + i * 4097));
  const hashes = inputs.map(() => new Sha256());
  for (let off = 0; off < (4 << 20); off += 65536) {
    for (const [i, h] of hashes.entries()) h.update(inputs[i]!.subarray(off, off + 65536));
  }
  const abandoned = new Sha256();
  abandoned.update(randomBytes(2 << 20));
  abandoned.dispose();
  assert.deepEqual(await Promise.all(hashes.map((h) => h.digest())), inputs.map(reference));
  await assert.rejects(hashes[0]!.digest(), /twice/);
});

test('hashing threads stop once idle and start again for the next large hash', async () => {
  setHashThreadIdleMs(50);
  try {
    const big = Buffer.alloc(8 << 20, 7);
    const hash = async () => {
      const h = new Sha256();
      h.update(big);
      await h.ready();
      return h.digest();
    };
    const want = 'sha256:' + createHash('sha256').update(big).digest('hex');
    assert.equal(await hash(), want);
    assert.ok(hashThreads() > 0);
    for (let i = 0; i < 100 && hashThreads() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(hashThreads(), 0, 'idle threads stopped');
    assert.equal(await hash(), want);
    assert.ok(hashThreads() > 0);
  } finally {
    setHashThreadIdleMs(1000);
  }
});
