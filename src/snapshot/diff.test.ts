import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { changes, diffTar, exportRootfs } from './diff.js';
import { archiveFromRoot, extractToRoot } from './archive.js';
import { Snapshotter, readTar } from './index.js';
import tarStream from 'tar-stream';

interface TestEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  content?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
}

/** A tar made by tar-stream (an independent writer): one Buffer per entry, then the end blocks. */
async function tarChunks(entries: TestEntry[]): Promise<Buffer[]> {
  const perEntry: Buffer[] = [];
  for (const e of entries) {
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    const done = (async () => {
      for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
    })();
    const type = e.type ?? (e.content !== undefined ? 'file' : 'directory');
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), uid: e.uid ?? 0, gid: e.gid ?? 0, linkname: e.linkname, mtime: new Date(1_600_000_000_000) },
        e.content ?? '',
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    pack.finalize();
    await done;
    const all = Buffer.concat(chunks);
    perEntry.push(all.subarray(0, all.length - 1024)); // without the two end blocks
  }
  perEntry.push(Buffer.alloc(1024));
  return perEntry;
}

const chain = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

let base: string;
let snaps: Snapshotter;
const mounted: string[] = [];

before(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-test-diff-'));
  snaps = new Snapshotter(base);
  await snaps.init();
});
after(async () => {
  for (const id of mounted) await snaps.unmountContainer(id).catch(() => {});
  await fs.rm(base, { recursive: true, force: true });
});

async function mount(id: string, layers: string[]): Promise<string> {
  mounted.push(id);
  return snaps.mountContainer(id, layers);
}

const lowerEntries: TestEntry[] = [
  { name: 'a', content: 'old a' },
  { name: 'b', content: 'b' },
  { name: 'perm', content: 'p', mode: 0o644 },
  { name: 'd/' },
  { name: 'd/x', content: 'x' },
  { name: 'd/y', content: 'y' },
  { name: 'gone/' },
  { name: 'gone/g', content: 'g' },
  { name: 'keep/' },
  { name: 'keep/k', content: 'k' },
  { name: 'hid/' },
  { name: 'hid/h', content: 'h' },
  { name: 'proc/' },
  { name: 'link', type: 'symlink', linkname: 'a' },
];

/** The same changes made in a container's merged dir. */
async function mutate(merged: string): Promise<void> {
  await fs.writeFile(path.join(merged, 'a'), 'new a');
  await fs.rm(path.join(merged, 'b'));
  await fs.rm(path.join(merged, 'd'), { recursive: true });
  await fs.mkdir(path.join(merged, 'd'));
  await fs.writeFile(path.join(merged, 'd/new'), 'n');
  await fs.rm(path.join(merged, 'gone'), { recursive: true });
  await fs.chmod(path.join(merged, 'perm'), 0o600);
  await fs.mkdir(path.join(merged, 'newdir'));
  await fs.writeFile(path.join(merged, 'newdir/f'), 'f');
  await fs.link(path.join(merged, 'newdir/f'), path.join(merged, 'newdir/f2'));
  await fs.symlink('a', path.join(merged, 'newlink'));
  await fs.writeFile(path.join(merged, 'keep/k2'), 'k2');
  await fs.mkdir(path.join(merged, 'proc/self'), { recursive: true });
}

async function layer(id: string, entries: TestEntry[]): Promise<string> {
  const c = chain(id);
  await snaps.applyLayer(c, Readable.from([Buffer.concat(await tarChunks(entries))]));
  return c;
}

/** Every path under dir with what matters of it (the root's own times excluded). */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    for (const name of (await fs.readdir(path.join(dir, rel))).sort()) {
      const r = path.join(rel, name);
      const p = path.join(dir, r);
      const st = await fs.lstat(p);
      const kind = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? `link:${await fs.readlink(p)}` : st.isFile() ? `file:${await fs.readFile(p, 'utf8')}:${st.nlink}` : 'other';
      out.set(r, `${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${Math.trunc(st.mtimeMs / 1000)}`);
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}

test('changes reports added, modified, deleted and opaque-hidden paths from a real overlay', async () => {
  const l1 = await layer('changes-l1', lowerEntries);
  const merged = await mount('changes', [l1]);
  await mutate(merged);
  const got = await changes(snaps.containerUpperPath('changes'), [snaps.layerPath(l1)]);
  assert.deepEqual(got, [
    { Path: '/a', Kind: 0 },
    { Path: '/b', Kind: 2 },
    { Path: '/d', Kind: 0 },
    { Path: '/d/new', Kind: 1 },
    { Path: '/d/x', Kind: 2 },
    { Path: '/d/y', Kind: 2 },
    { Path: '/gone', Kind: 2 },
    { Path: '/keep', Kind: 0 },
    { Path: '/keep/k2', Kind: 1 },
    { Path: '/newdir', Kind: 1 },
    { Path: '/newdir/f', Kind: 1 },
    { Path: '/newdir/f2', Kind: 1 },
    { Path: '/newlink', Kind: 1 },
    { Path: '/perm', Kind: 0 },
    { Path: '/proc', Kind: 0 },
    { Path: '/proc/self', Kind: 1 },
  ]);
});

test('changes sees through whiteouts and opaque dirs of the lower layers', async () => {
  const l1 = await layer('stack-l1', [{ name: 'w', content: '1' }, { name: 'o/' }, { name: 'o/old', content: '1' }]);
  const l2 = await layer('stack-l2', [{ name: '.wh.w', content: '' }, { name: 'o/' }, { name: 'o/.wh..wh..opq', content: '' }, { name: 'o/mid', content: '2' }]);
  const merged = await mount('stack', [l1, l2]);
  await fs.writeFile(path.join(merged, 'w'), 'again'); // deleted by l2, so this adds it
  await fs.rm(path.join(merged, 'o'), { recursive: true });
  await fs.mkdir(path.join(merged, 'o'));
  const got = await changes(snaps.containerUpperPath('stack'), [snaps.layerPath(l1), snaps.layerPath(l2)]);
  // old was hidden by l2's opaque dir: only mid disappears now
  assert.deepEqual(got, [{ Path: '/o', Kind: 0 }, { Path: '/o/mid', Kind: 2 }, { Path: '/w', Kind: 1 }]);
});

test('diffTar applied onto the same lowers reproduces the merged view', async () => {
  const l1 = await layer('round-l1', lowerEntries);
  const merged = await mount('round', [l1]);
  await mutate(merged);
  const names: string[] = [];
  for await (const { header } of readTar(diffTar(snaps.containerUpperPath('round'), [snaps.layerPath(l1)]) as AsyncIterable<Buffer>)) names.push(header.name);
  assert.ok(names.includes('.wh.b') && names.includes('.wh.gone') && names.includes('d/.wh..wh..opq'), names.join(' '));
  assert.ok(names.indexOf('d/.wh..wh..opq') === names.indexOf('d/') + 1);

  const l2 = chain('round-l2');
  await snaps.applyLayer(l2, diffTar(snaps.containerUpperPath('round'), [snaps.layerPath(l1)]));
  const again = await mount('round-again', [l1, l2]);
  const want = await tree(merged);
  assert.ok(want.size > 15 && !want.has('d/x') && want.has('d/new'));
  assert.deepEqual(await tree(again), want);
});

test('export lists the merged tree without overlay artefacts or kernel dir contents', async () => {
  const l1 = await layer('export-l1', lowerEntries);
  const merged = await mount('export', [l1]);
  await mutate(merged);
  const names: string[] = [];
  for await (const { header } of readTar(exportRootfs(merged) as AsyncIterable<Buffer>)) names.push(header.name);
  assert.deepEqual(names, [
    'a', 'd/', 'd/new', 'hid/', 'hid/h', 'keep/', 'keep/k', 'keep/k2', 'link', 'newdir/', 'newdir/f', 'newdir/f2', 'newlink', 'perm', 'proc/',
  ]);
});

test('cp works on a mounted overlay rootfs both ways', async () => {
  const l1 = await layer('cp-l1', lowerEntries);
  const merged = await mount('cp', [l1]);
  await extractToRoot(merged, '/keep', Readable.from([Buffer.concat(await tarChunks([{ name: 'in/', uid: 5 }, { name: 'in/f', content: 'copied' }]))]));
  const entries: string[] = [];
  for await (const { header } of readTar((await archiveFromRoot(merged, '/keep')).stream as AsyncIterable<Buffer>)) entries.push(header.name);
  assert.deepEqual(entries, ['keep/', 'keep/in/', 'keep/in/f', 'keep/k']);
  assert.deepEqual(await changes(snaps.containerUpperPath('cp'), [snaps.layerPath(l1)]), [
    { Path: '/keep', Kind: 0 },
    { Path: '/keep/in', Kind: 1 },
    { Path: '/keep/in/f', Kind: 1 },
  ]);
});
