import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { Snapshotter, Sys, decompressIfNeeded } from './index.js';
import { run } from '../lib/index.js';

export interface Entry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  mtime?: Date;
  pax?: Record<string, string>;
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
        {
          name: e.name,
          type,
          mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          linkname: e.linkname,
          devmajor: e.devmajor,
          devminor: e.devminor,
          mtime: e.mtime ?? new Date(1_600_000_000_000),
          pax: e.pax,
        } as Parameters<typeof pack.entry>[0],
        e.content ?? '',
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function withSnapshotter(fn: (s: Snapshotter, root: string) => Promise<void>): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-test-snap-'));
  const snaps = new Snapshotter(root);
  try {
    await snaps.init();
    await fn(snaps, root);
  } finally {
    const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
    for (const line of mounts.split('\n')) {
      const mp = line.split(' ')[4];
      if (mp && mp.startsWith(root)) await run('umount', ['-l', mp], { allowFailure: true });
    }
    await fs.rm(root, { recursive: true, force: true });
  }
}

const exists = async (p: string) => fs.lstat(p).then(() => true, () => false);

test('a layer with whiteouts and an opaque dir hides the lower files in the merged view', async () => {
  await withSnapshotter(async (snaps) => {
    const lower = await makeTar([
      { name: 'etc/' },
      { name: 'etc/keep', content: 'keep' },
      { name: 'etc/gone', content: 'gone' },
      { name: 'opq/' },
      { name: 'opq/old', content: 'old' },
    ]);
    const upper = await makeTar([
      { name: 'etc/.wh.gone', content: '' },
      { name: 'opq/' },
      { name: 'opq/.wh..wh..opq', content: '' },
      { name: 'opq/new', content: 'new' },
    ]);
    const a = await snaps.applyLayer(sha(lower), Readable.from(lower));
    assert.equal(a.diffId, sha(lower));
    const chain2 = sha(Buffer.from(`${a.diffId} ${sha(upper)}`));
    const b = await snaps.applyLayer(chain2, Readable.from(upper));
    assert.equal(b.diffId, sha(upper));
    const wh = await fs.lstat(path.join(snaps.layerPath(chain2), 'etc/gone'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    const merged = await snaps.mountContainer('c1', [sha(lower), chain2]);
    assert.equal(await snaps.mountContainer('c1', [sha(lower), chain2]), merged, 'idempotent');
    assert.equal(await fs.readFile(path.join(merged, 'etc/keep'), 'utf8'), 'keep');
    assert.equal(await exists(path.join(merged, 'etc/gone')), false);
    assert.deepEqual((await fs.readdir(path.join(merged, 'opq'))).sort(), ['new']);
    await fs.writeFile(path.join(merged, 'written'), 'hello');
    assert.equal(await fs.readFile(path.join(snaps.containerUpperPath('c1'), 'written'), 'utf8'), 'hello');
    assert.equal(await snaps.diskUsage(snaps.containerUpperPath('c1')), 5);
    await snaps.unmountContainer('c1');
    await snaps.unmountContainer('c1');
    await snaps.removeContainer('c1');
    assert.equal(await exists(snaps.containerUpperPath('c1')), false);
  });
});

test('hardlinks, symlinks, devices, fifos, setuid modes, ownership, times and xattrs are kept', async () => {
  await withSnapshotter(async (snaps) => {
    const mtime = new Date(1_500_000_000_000);
    const tar = await makeTar([
      { name: 'bin/' },
      { name: 'bin/su', content: 'su', mode: 0o4755, uid: 1000, gid: 1001, mtime },
      { name: 'bin/su-link', type: 'link', linkname: 'bin/su' },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox', uid: 5, gid: 6 },
      { name: 'dev/' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
      { name: 'dev/pipe', type: 'fifo', mode: 0o600 },
      { name: 'cap', content: 'x', pax: { 'SCHILY.xattr.user.test': 'hello' } },
      { name: 'deep/a/b/c', content: 'deep' },
    ]);
    const chain = sha(tar);
    const info = await snaps.applyLayer(chain, Readable.from(tar));
    assert.equal(info.tarSize, tar.length);
    assert.equal(info.size, 2 + 1 + 4);
    const fsDir = snaps.layerPath(chain);
    const su = await fs.lstat(path.join(fsDir, 'bin/su'));
    assert.equal(su.mode & 0o7777, 0o4755);
    assert.equal(su.uid, 1000);
    assert.equal(su.gid, 1001);
    assert.equal(su.mtimeMs, mtime.getTime());
    assert.equal(su.nlink, 2);
    assert.equal((await fs.lstat(path.join(fsDir, 'bin/su-link'))).ino, su.ino);
    assert.equal(await fs.readlink(path.join(fsDir, 'bin/sh')), '/bin/busybox');
    assert.equal((await fs.lstat(path.join(fsDir, 'bin/sh'))).uid, 5);
    const nul = await fs.lstat(path.join(fsDir, 'dev/null'));
    assert.ok(nul.isCharacterDevice());
    assert.equal(nul.rdev, (1 << 8) | 3);
    assert.equal(nul.mode & 0o777, 0o666);
    assert.ok((await fs.lstat(path.join(fsDir, 'dev/sda'))).isBlockDevice());
    assert.ok((await fs.lstat(path.join(fsDir, 'dev/pipe'))).isFIFO());
    const sys = new Sys();
    try {
      assert.equal((await sys.getxattrs(path.join(fsDir, 'cap'))).get('user.test')?.toString(), 'hello');
    } finally {
      await sys.close();
    }
    assert.equal((await fs.lstat(path.join(fsDir, 'bin'))).mtimeMs, 1_600_000_000_000);
    assert.equal(await fs.readFile(path.join(fsDir, 'deep/a/b/c'), 'utf8'), 'deep');
  });
});

const escapes: Array<[string, Entry[], RegExp]> = [
  ['a "../x" entry', [{ name: 'ok', content: 'ok' }, { name: '../x', content: 'evil' }], /"\.\.\/x" escapes the layer/],
  ['an "a/../../x" entry', [{ name: 'ok', content: 'ok' }, { name: 'a/../../x', content: 'evil' }], /escapes the layer/],
  [
    'an entry under a symlink to /etc',
    [{ name: 'link', type: 'symlink', linkname: '/etc' }, { name: 'link/evil', content: 'evil' }],
    /"link\/evil" lies under the symlink "link"/,
  ],
  [
    'an entry under a relative symlink that climbs out',
    [{ name: 'up', type: 'symlink', linkname: '../../..' }, { name: 'up/tmp/evil', content: 'evil' }],
    /lies under the symlink "up"/,
  ],
  ['a hardlink to ../../etc/passwd', [{ name: 'pw', type: 'link', linkname: '../../etc/passwd' }], /escapes the layer/],
  ['a hardlink to a file outside the layer by absolute path', [{ name: 'pw', type: 'link', linkname: '/etc/passwd' }], /not in the layer/],
];

for (const [what, entries, message] of escapes) {
  test(`applyLayer refuses ${what} and leaves nothing of the layer`, async () => {
    await withSnapshotter(async (snaps, root) => {
      const tar = await makeTar(entries);
      await assert.rejects(snaps.applyLayer(sha(tar), Readable.from(tar)), (err: Error & { kind?: string }) => {
        assert.equal(err.kind, 'InvalidArgument');
        assert.match(err.message, message);
        return true;
      });
      assert.equal(await snaps.hasLayer(sha(tar)), false);
      assert.deepEqual(await fs.readdir(path.join(root, 'snapshots', 'layers')), []);
      assert.equal(await exists('/etc/evil'), false);
      assert.equal(await exists('/tmp/evil'), false);
    });
  });
}

test('owners stay right under a setgid directory and when an entry comes twice', async () => {
  await withSnapshotter(async (snaps) => {
    const tar = await makeTar([
      { name: 'mail', mode: 0o2775, uid: 0, gid: 8 },
      { name: 'mail/root-file', content: 'r', uid: 0, gid: 0 },
      { name: 'mail/sub/deep', content: 'd', uid: 0, gid: 0 },
      { name: 'dir', uid: 1000, gid: 1000 },
      { name: 'dir', uid: 0, gid: 0, mode: 0o700 },
      { name: 'f', content: 'first', uid: 5, gid: 5 },
      { name: 'f', content: 'second', uid: 0, gid: 0 },
      { name: 'l', type: 'symlink', linkname: '/etc/passwd' },
      { name: 'l', content: 'a file now, not written through the link' },
    ]);
    await snaps.applyLayer(sha(tar), Readable.from([tar]));
    const at = (p: string) => fs.lstat(path.join(snaps.layerPath(sha(tar)), p));
    assert.equal((await at('mail')).gid, 8);
    assert.equal((await at('mail')).mode & 0o7777, 0o2775);
    assert.equal((await at('mail/root-file')).gid, 0);
    assert.equal((await at('mail/sub/deep')).gid, 0);
    assert.deepEqual([(await at('dir')).uid, (await at('dir')).gid, (await at('dir')).mode & 0o7777], [0, 0, 0o700]);
    assert.deepEqual([(await at('f')).uid, (await at('f')).gid], [0, 0]);
    assert.equal(await fs.readFile(path.join(snaps.layerPath(sha(tar)), 'f'), 'utf8'), 'second');
    assert.ok((await at('l')).isFile());
    assert.equal(await fs.readFile(path.join(snaps.layerPath(sha(tar)), 'l'), 'utf8'), 'a file now, not written through the link');
  });
});

test('a truncated layer is refused and nothing remains', async () => {
  await withSnapshotter(async (snaps, root) => {
    const tar = await makeTar([{ name: 'big', content: 'x'.repeat(5000) }]);
    const cut = tar.subarray(0, 1500);
    await assert.rejects(snaps.applyLayer(sha(cut), Readable.from(cut)), /truncated/);
    assert.deepEqual(await fs.readdir(path.join(root, 'snapshots', 'layers')), []);
  });
});

test('two concurrent applies of the same layer give one whole layer', async () => {
  await withSnapshotter(async (snaps, root) => {
    const entries: Entry[] = [];
    for (let i = 0; i < 200; i++) entries.push({ name: `d/f${i}`, content: `file ${i}` });
    const tar = await makeTar(entries);
    const [a, b] = await Promise.all([
      snaps.applyLayer(sha(tar), Readable.from(tar)),
      snaps.applyLayer(sha(tar), Readable.from(tar)),
    ]);
    assert.equal(a.diffId, b.diffId);
    assert.equal((await fs.readdir(path.join(snaps.layerPath(sha(tar)), 'd'))).length, 200);
    assert.deepEqual(await fs.readdir(path.join(root, 'snapshots', 'layers')), [sha(tar).slice(7)]);
  });
});

test('init removes half-applied layers left by a crash', async () => {
  await withSnapshotter(async (snaps, root) => {
    const layers = path.join(root, 'snapshots', 'layers');
    await fs.mkdir(path.join(layers, '.tmp-deadbeef', 'fs'), { recursive: true });
    await fs.mkdir(path.join(layers, 'a'.repeat(64), 'fs'), { recursive: true }); // no meta.json
    await snaps.init();
    assert.deepEqual(await fs.readdir(layers), []);
  });
});

test('decompressIfNeeded passes plain tars and inflates gzip and zstd', async () => {
  const tar = await makeTar([{ name: 'f', content: 'data' }]);
  const collect = async (s: NodeJS.ReadableStream) => {
    const parts: Buffer[] = [];
    for await (const c of s) parts.push(c as Buffer);
    return Buffer.concat(parts);
  };
  assert.deepEqual(await collect(decompressIfNeeded(Readable.from([tar]))), tar);
  // gzip through igzip when it is installed (auto) and through Node's zlib, in small pieces too.
  const big = await makeTar([{ name: 'big', content: 'x'.repeat(3 << 20) + 'end' }, { name: 'f', content: 'data' }]);
  const gz = gzipSync(big);
  const pieces = Array.from({ length: Math.ceil(gz.length / 1000) }, (_, i) => gz.subarray(i * 1000, (i + 1) * 1000));
  for (const gunzip of ['auto', 'zlib'] as const) {
    assert.deepEqual(await collect(decompressIfNeeded(Readable.from([gzipSync(tar)]), { gunzip })), tar, gunzip);
    assert.deepEqual(await collect(decompressIfNeeded(Readable.from(pieces), { gunzip })), big, gunzip);
    await assert.rejects(collect(decompressIfNeeded(Readable.from([gzipSync(tar).subarray(0, 20)]), { gunzip })), /corrupt or truncated/, gunzip);
    const flipped = Buffer.from(gz);
    flipped[flipped.length - 6]! ^= 0xff; // the CRC: every byte inflates, the check fails
    await assert.rejects(collect(decompressIfNeeded(Readable.from([flipped]), { gunzip })), /corrupt or truncated/, gunzip);
    // A failing input is the error that surfaces, not a truncation the decompressor saw.
    const failing = Readable.from((async function* () { yield gz.subarray(0, 5000); throw new Error('connection reset'); })());
    await assert.rejects(collect(decompressIfNeeded(failing, { gunzip })), /connection reset/, gunzip);
  }
  const zst = await run('sh', ['-c', 'zstd -q -c | base64 -w0'], { input: tar });
  assert.deepEqual(await collect(decompressIfNeeded(Readable.from([Buffer.from(zst.stdout, 'base64')]))), tar);
  assert.deepEqual(await collect(decompressIfNeeded(Readable.from([]))), Buffer.alloc(0));
});

test('applyLayer keeps nothing when the caller refuses the layer just before it is committed', async () => {
  await withSnapshotter(async (snaps, root) => {
    const tar = await makeTar([{ name: 'etc' }, { name: 'etc/x', content: 'x' }]);
    const chain = sha(tar);
    let asked = 0;
    await assert.rejects(
      snaps.applyLayer(chain, Readable.from([tar]), {
        expectedDiffId: sha(tar),
        beforeCommit: async () => {
          asked++;
          throw new Error('the blob did not match its digest');
        },
      }),
      /did not match/,
    );
    assert.equal(asked, 1);
    assert.equal(await snaps.hasLayer(chain), false);
    assert.deepEqual(await fs.readdir(path.join(root, 'snapshots', 'layers')), []);
    // A diff ID mismatch is found before the caller is asked.
    await assert.rejects(
      snaps.applyLayer(chain, Readable.from([tar]), { expectedDiffId: sha(Buffer.from('other')), beforeCommit: async () => void asked++ }),
      /diff ID mismatch/,
    );
    assert.equal(asked, 1);
    const info = await snaps.applyLayer(chain, Readable.from([tar]), { expectedDiffId: sha(tar), beforeCommit: async () => void asked++ });
    assert.equal(asked, 2);
    assert.equal(info.diffId, sha(tar));
    assert.equal(await fs.readFile(path.join(snaps.layerPath(chain), 'etc', 'x'), 'utf8'), 'x');
  });
});

test('a container with many layers mounts within the option limit, and one with none mounts too', async () => {
  await withSnapshotter(async (snaps) => {
    const chains: string[] = [];
    let prev = '';
    for (let i = 0; i < 100; i++) {
      const tar = await makeTar([{ name: `f${i}`, content: `${i}` }]);
      const chain = i === 0 ? sha(tar) : sha(Buffer.from(`${prev} ${sha(tar)}`));
      await snaps.applyLayer(chain, Readable.from(tar));
      chains.push(chain);
      prev = chain;
    }
    const merged = await snaps.mountContainer('many', chains);
    assert.equal((await fs.readdir(merged)).length, 100);
    const empty = await snaps.mountContainer('none', []);
    assert.deepEqual(await fs.readdir(empty), []);
    await snaps.removeContainer('many');
    await snaps.removeContainer('none');
  });
});

test('binary xattr values from GNU tar PAX headers survive byte for byte', async () => {
  await withSnapshotter(async (snaps, root) => {
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'bin'), 'x');
    const value = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x80, 0x00]);
    await run('/usr/bin/python3', ['-c', `import os,sys; os.setxattr(sys.argv[1], 'user.bin', bytes.fromhex('${value.toString('hex')}'))`, path.join(src, 'bin')]);
    const tarFile = path.join(root, 'x.tar');
    await run('tar', ['--xattrs', '--xattrs-include=user.*', '--format=posix', '-C', src, '-cf', tarFile, 'bin']);
    const tar = await fs.readFile(tarFile);
    await snaps.applyLayer(sha(tar), Readable.from([tar]));
    const sys = new Sys();
    try {
      assert.deepEqual((await sys.getxattrs(path.join(snaps.layerPath(sha(tar)), 'bin'))).get('user.bin'), value);
    } finally {
      await sys.close();
    }
  });
});
