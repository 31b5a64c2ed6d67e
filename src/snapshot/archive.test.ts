import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { archiveFromRoot, extractToRoot, goFileMode, pathStatHeader, statInRoot } from './archive.js';
import { readTar, Sys } from './index.js';
import { isKind } from '../lib/index.js';

export interface TestEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  content?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
}

/** A tar made by tar-stream (an independent writer): one Buffer per entry, then the end blocks. */
export async function tarChunks(entries: TestEntry[]): Promise<Buffer[]> {
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

const tarOf = async (entries: TestEntry[]) => Readable.from([Buffer.concat(await tarChunks(entries))]);

async function list(stream: NodeJS.ReadableStream) {
  const out: Array<{ name: string; type: string; linkname: string; uid: number; mode: number; content: string; xattrs: Map<string, Buffer> }> = [];
  for await (const { header, body } of readTar(stream as AsyncIterable<Buffer>)) {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c);
    out.push({ name: header.name, type: header.type, linkname: header.linkname, uid: header.uid, mode: header.mode, content: Buffer.concat(parts).toString(), xattrs: header.xattrs });
  }
  return out;
}

let base: string;
let n = 0;
/** A fresh container root and, beside it, a host directory that must stay untouched. */
async function scratch() {
  const dir = path.join(base, String(n++));
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  await fs.mkdir(root, { recursive: true });
  await fs.mkdir(outside);
  return { root, outside };
}

before(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-test-archive-'));
});
after(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

test('stat gives Go FileMode bits for a file, a directory and a symlink', async () => {
  const { root } = await scratch();
  await fs.mkdir(path.join(root, 'etc/sub'), { recursive: true, mode: 0o755 });
  await fs.chmod(path.join(root, 'etc/sub'), 0o755);
  await fs.writeFile(path.join(root, 'etc/hosts'), 'hello');
  await fs.chmod(path.join(root, 'etc/hosts'), 0o4644);
  await fs.symlink('/etc/hosts', path.join(root, 'etc/link'));
  await fs.symlink('sub', path.join(root, 'etc/dirlink'));

  const file = await statInRoot(root, '/etc/hosts');
  assert.equal(file.name, 'hosts');
  assert.equal(file.size, 5);
  assert.equal(file.mode, 2 ** 23 + 0o644);
  assert.match(file.mtime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.equal(file.linkTarget, '');

  const dir = await statInRoot(root, 'etc/sub');
  assert.equal(dir.mode, 2147484141); // the documented value for a 0755 directory
  assert.equal(dir.name, 'sub');

  const link = await statInRoot(root, '/etc/link');
  assert.equal(link.mode, 2 ** 27 + 0o777);
  assert.equal(link.linkTarget, '/etc/hosts');
  assert.equal(link.size, '/etc/hosts'.length);

  // a trailing slash follows the final symlink, as Docker's ResolvePath does
  const followed = await statInRoot(root, '/etc/dirlink/');
  assert.equal(followed.mode, 2147484141);
  assert.equal(followed.name, 'dirlink');

  const header = JSON.parse(Buffer.from(pathStatHeader(file), 'base64').toString());
  assert.deepEqual(header, file);
  assert.equal(goFileMode(0o020666), 2 ** 26 + 2 ** 21 + 0o666);

  await assert.rejects(statInRoot(root, '/nope/x', { container: 'c1' }), (err) => isKind(err, 'NotFound') && /Could not find the file \/nope\/x in container c1/.test(String(err)));
});

test('archive of a file has its basename as the only entry', async () => {
  const { root } = await scratch();
  await fs.mkdir(path.join(root, 'etc'));
  await fs.writeFile(path.join(root, 'etc/hosts'), '127.0.0.1 localhost\n');
  await fs.chown(path.join(root, 'etc/hosts'), 1000, 1001);
  const { stat, stream } = await archiveFromRoot(root, '/etc/hosts');
  assert.equal(stat.name, 'hosts');
  const entries = await list(stream);
  assert.deepEqual(entries.map((e) => [e.name, e.type, e.uid, e.content]), [['hosts', 'file', 1000, '127.0.0.1 localhost\n']]);
});

test('archive of a directory keeps symlinks, hardlinks, modes and binary xattrs', async () => {
  const { root } = await scratch();
  const d = path.join(root, 'data');
  await fs.mkdir(path.join(d, 'sub'), { recursive: true });
  await fs.writeFile(path.join(d, 'a'), 'A');
  await fs.chmod(path.join(d, 'a'), 0o600);
  await fs.link(path.join(d, 'a'), path.join(d, 'sub/hard'));
  await fs.symlink('/etc', path.join(d, 'tolink'));
  const sys = new Sys();
  const binary = Buffer.from([0, 0xff, 0xfe, 0x80, 1]);
  await sys.setxattr(path.join(d, 'a'), 'user.bin', binary);
  await sys.close();

  const { stat, stream } = await archiveFromRoot(root, '/data');
  assert.equal(stat.mode, goFileMode((await fs.stat(d)).mode));
  const entries = await list(stream);
  assert.deepEqual(entries.map((e) => e.name), ['data/', 'data/a', 'data/sub/', 'data/sub/hard', 'data/tolink']);
  const byName = new Map(entries.map((e) => [e.name, e]));
  assert.equal(byName.get('data/a')!.mode & 0o777, 0o600);
  assert.deepEqual(byName.get('data/a')!.xattrs.get('user.bin'), binary);
  assert.equal(byName.get('data/sub/hard')!.type, 'link');
  assert.equal(byName.get('data/sub/hard')!.linkname, 'data/a');
  assert.equal(byName.get('data/tolink')!.type, 'symlink');
  assert.equal(byName.get('data/tolink')!.linkname, '/etc');

  // and back in: the binary xattr and the hardlink survive the round trip
  const other = await scratch();
  await extractToRoot(other.root, '/', Readable.from([Buffer.concat(await collect(await archiveFromRoot(root, '/data')))]), { copyUIDGID: true });
  const sys2 = new Sys();
  assert.deepEqual((await sys2.getxattrs(path.join(other.root, 'data/a'))).get('user.bin'), binary);
  await sys2.close();
  const [s1, s2] = await Promise.all([fs.stat(path.join(other.root, 'data/a')), fs.stat(path.join(other.root, 'data/sub/hard'))]);
  assert.equal(s1.ino, s2.ino);
});

async function collect(r: { stream: NodeJS.ReadableStream }): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of r.stream as AsyncIterable<Buffer>) out.push(c);
  return out;
}

test('archive with followLink gives the target under the link name, without it the link itself', async () => {
  const { root, outside } = await scratch();
  await fs.mkdir(path.join(root, 'data'));
  await fs.writeFile(path.join(root, 'data/f'), 'inside');
  await fs.writeFile(path.join(outside, 'f'), 'HOST');
  await fs.symlink('/data/f', path.join(root, 'l'));
  // a symlink to the host path of a host file resolves inside the root, never to the host
  await fs.symlink(path.join(outside, 'f'), path.join(root, 'hostlink'));

  const followed = await list((await archiveFromRoot(root, '/l', { followLink: true })).stream);
  assert.deepEqual(followed.map((e) => [e.name, e.type, e.content]), [['l', 'file', 'inside']]);
  const plain = await list((await archiveFromRoot(root, '/l')).stream);
  assert.deepEqual(plain.map((e) => [e.name, e.type, e.linkname]), [['l', 'symlink', '/data/f']]);
  await assert.rejects(archiveFromRoot(root, '/hostlink', { followLink: true }), (err) => isKind(err, 'NotFound'));
});

test('extract without copyUIDGID makes root the owner, with it keeps the archive owners', async () => {
  const { root } = await scratch();
  await fs.mkdir(path.join(root, 'dst'));
  const entries: TestEntry[] = [
    { name: 'd/', uid: 1234, gid: 4321, mode: 0o750 },
    { name: 'd/f', content: 'x', uid: 1234, gid: 4321, mode: 0o4755 },
    { name: 'd/l', type: 'symlink', linkname: 'f', uid: 1234, gid: 4321 },
    { name: 'd/p', type: 'fifo', uid: 1234, gid: 4321, mode: 0o640 },
  ];
  await extractToRoot(root, '/dst', await tarOf(entries));
  const st = await fs.stat(path.join(root, 'dst/d/f'));
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, 0, 0o4755]);
  assert.equal((await fs.lstat(path.join(root, 'dst/d/l'))).uid, 0);
  assert.equal((await fs.stat(path.join(root, 'dst/d'))).mtimeMs, 1_600_000_000_000);

  await extractToRoot(root, '/dst', await tarOf(entries), { copyUIDGID: true });
  const st2 = await fs.stat(path.join(root, 'dst/d/f'));
  assert.deepEqual([st2.uid, st2.gid, st2.mode & 0o7777], [1234, 4321, 0o4755]);
  assert.equal((await fs.lstat(path.join(root, 'dst/d/l'))).uid, 1234);
  assert.equal((await fs.stat(path.join(root, 'dst/d'))).mode & 0o777, 0o750);
  const fifo = await fs.lstat(path.join(root, 'dst/d/p'));
  assert.deepEqual([fifo.isFIFO(), fifo.uid, fifo.mode & 0o777], [true, 1234, 0o640]);
});

test('extract refuses entries that climb out and normalises absolute names inside', async () => {
  const { root, outside } = await scratch();
  await fs.mkdir(path.join(root, 'dst'));
  await assert.rejects(extractToRoot(root, '/dst', await tarOf([{ name: '../x', content: 'bad' }])), (err) => isKind(err, 'InvalidArgument') && /outside the extraction directory/.test(String(err)));
  await assert.rejects(extractToRoot(root, '/dst', await tarOf([{ name: 'a/../../x', content: 'bad' }])), (err) => isKind(err, 'InvalidArgument'));
  assert.equal(existsSync(path.join(root, 'x')), false);

  await extractToRoot(root, '/dst', await tarOf([{ name: `/${outside.slice(1)}/abs`, content: 'in' }, { name: '/../../top', content: 'in' }]));
  assert.equal(await fs.readFile(path.join(root, 'dst', outside, 'abs'), 'utf8'), 'in');
  assert.equal(await fs.readFile(path.join(root, 'dst/top'), 'utf8'), 'in');
  assert.deepEqual(await fs.readdir(outside), []);
});

test('extract follows symlinks inside the root only, never to the host', async () => {
  const { root, outside } = await scratch();
  await fs.mkdir(path.join(root, 'dst'));
  await fs.mkdir(path.join(root, 'etc'));
  // a symlink in the destination path that points out of the root stays in it: there it is missing
  await fs.symlink(outside, path.join(root, 'out'));
  await assert.rejects(extractToRoot(root, '/out', await tarOf([{ name: 'f', content: 'x' }])), (err) => isKind(err, 'NotFound'));
  // the archive makes a symlink to /etc and then writes through it: the container's /etc
  await extractToRoot(root, '/dst', await tarOf([
    { name: 'evil', type: 'symlink', linkname: '/etc' },
    { name: 'evil/baleia-test-planted', content: 'x' },
    { name: 'up', type: 'symlink', linkname: '../../../../../../../..' + outside },
    { name: 'up/planted', content: 'x' },
  ]));
  assert.equal(existsSync('/etc/baleia-test-planted'), false);
  assert.equal(await fs.readFile(path.join(root, 'etc/baleia-test-planted'), 'utf8'), 'x');
  assert.equal(await fs.readFile(path.join(root, outside, 'planted'), 'utf8'), 'x');
  assert.deepEqual(await fs.readdir(outside), []);

  await fs.symlink('../../../../../../..' + outside, path.join(root, 'rel'));
  await extractToRoot(root, '/rel', await tarOf([{ name: 'f2', content: 'x' }]));
  assert.equal(await fs.readFile(path.join(root, outside, 'f2'), 'utf8'), 'x');
  assert.deepEqual(await fs.readdir(outside), []);
});

test('a directory swapped for a symlink to the host during extraction receives nothing outside the root', async () => {
  const { root, outside } = await scratch();
  const dst = path.join(root, 'dst');
  await fs.mkdir(path.join(dst, 'e'), { recursive: true });
  const entries: TestEntry[] = [{ name: 'd/' }, { name: 'd/f0', content: 'first' }];
  for (let i = 1; i <= 40; i++) entries.push({ name: `d/f${i}`, content: String(i) }, { name: `e/g${i}`, content: String(i) }, { name: `e/sub${i}/h`, content: String(i) });
  const chunks = await tarChunks(entries);
  let swapped = false;
  const source = Readable.from((async function* () {
    yield Buffer.concat(chunks.slice(0, 2)); // d/ and d/f0
    // pause until d/f0 is on disk, then swap both directories for symlinks to the host
    while (!existsSync(path.join(dst, 'd/f0'))) await new Promise((r) => setTimeout(r, 2));
    await fs.rename(path.join(dst, 'd'), path.join(dst, 'd.orig'));
    await fs.symlink(outside, path.join(dst, 'd'));
    await fs.rename(path.join(dst, 'e'), path.join(dst, 'e.orig'));
    await fs.symlink('../../../../../../../../../' + outside, path.join(dst, 'e'));
    swapped = true;
    yield Buffer.concat(chunks.slice(2));
  })());
  await extractToRoot(root, '/dst', source);
  assert.ok(swapped);
  assert.deepEqual(await fs.readdir(outside), [], 'nothing was written outside the root');
  // d was pinned by fd before the swap: its entries followed the directory, not the name
  assert.equal((await fs.readdir(path.join(dst, 'd.orig'))).length, 41);
  // e was never opened before the swap: its entries resolved the symlink inside the root
  assert.equal((await fs.readdir(path.join(root, outside))).length, 80);
});

test('noOverwriteDirNonDir refuses replacing a directory by a file and a file by a directory', async () => {
  const { root } = await scratch();
  await fs.mkdir(path.join(root, 'dst/adir'), { recursive: true });
  await fs.writeFile(path.join(root, 'dst/afile'), 'x');
  const opts = { noOverwriteDirNonDir: true };
  await assert.rejects(extractToRoot(root, '/dst', await tarOf([{ name: 'adir', content: 'y' }]), opts), /cannot overwrite directory/);
  await assert.rejects(extractToRoot(root, '/dst', await tarOf([{ name: 'afile/' }]), opts), /cannot overwrite non-directory/);
  assert.ok((await fs.stat(path.join(root, 'dst/adir'))).isDirectory());
  // without the flag both are replaced, as Docker does
  await extractToRoot(root, '/dst', await tarOf([{ name: 'adir', content: 'y' }, { name: 'afile/' }]));
  assert.equal(await fs.readFile(path.join(root, 'dst/adir'), 'utf8'), 'y');
  assert.ok((await fs.stat(path.join(root, 'dst/afile'))).isDirectory());
});

test('extract refuses a missing or non-directory destination and read-only paths', async () => {
  const { root } = await scratch();
  await fs.mkdir(path.join(root, 'ro/inner'), { recursive: true });
  await fs.writeFile(path.join(root, 'file'), 'x');
  await assert.rejects(extractToRoot(root, '/missing', await tarOf([{ name: 'f', content: 'x' }]), { container: 'abc' }), (err) => isKind(err, 'NotFound') && /Could not find the file \/missing in container abc/.test(String(err)));
  await assert.rejects(extractToRoot(root, '/file', await tarOf([{ name: 'f', content: 'x' }])), (err) => isKind(err, 'InvalidArgument') && /extraction point is not a directory/.test(String(err)));
  await assert.rejects(extractToRoot(root, '/ro/inner', await tarOf([{ name: 'f', content: 'x' }]), { readOnlyPaths: ['/ro'] }), /mounted volume "\/ro" is marked read-only/);
  await assert.rejects(extractToRoot(root, '/', await tarOf([{ name: 'ro/f', content: 'x' }]), { readOnlyPaths: ['/ro/'] }), /marked read-only/);
  await assert.rejects(extractToRoot(root, '/', await tarOf([{ name: 'f', content: 'x' }]), { readOnlyPaths: ['/'] }), /container rootfs is marked read-only/);
  assert.equal(existsSync(path.join(root, 'ro/f')), false);
});
