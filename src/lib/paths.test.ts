import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveInRoot } from './paths.js';

test('resolveInRoot keeps symlinks and .. inside the root', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-test-paths-'));
  try {
    await fs.mkdir(path.join(root, 'real/dir'), { recursive: true });
    await fs.symlink('/etc', path.join(root, 'abs'));
    await fs.symlink('../../..', path.join(root, 'real/dir/up'));
    await fs.symlink('real', path.join(root, 'rel'));
    assert.equal(await resolveInRoot(root, '/abs/passwd'), path.join(root, 'etc/passwd'));
    assert.equal(await resolveInRoot(root, '/real/dir/up/up2'), path.join(root, 'up2'));
    assert.equal(await resolveInRoot(root, '/rel/dir'), path.join(root, 'real/dir'));
    assert.equal(await resolveInRoot(root, '/../../etc'), path.join(root, 'etc'));
    assert.equal(await resolveInRoot(root, '/missing/x'), path.join(root, 'missing/x'));
    await fs.symlink('loop', path.join(root, 'loop'));
    await assert.rejects(resolveInRoot(root, '/loop/x'), /too many levels/);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
