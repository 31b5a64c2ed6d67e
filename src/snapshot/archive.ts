/**
 * `docker cp` both ways on a container's root filesystem (its mounted merged dir, or any
 * directory tree), plus the tree walker that `diff.ts` shares.
 *
 *   const st = await statInRoot(merged, '/etc/hosts');          // HEAD …/archive
 *   const { stat, stream } = await archiveFromRoot(merged, '/etc'); // GET …/archive: "etc/", "etc/hosts", …
 *   await extractToRoot(merged, '/tmp', req, { noOverwriteDirNonDir: true }); // PUT …/archive
 *
 * Paths are resolved as the container sees them (lib/paths.ts `resolveInRoot` semantics:
 * symlinks relative to the root, `..` stops at the root), through directories held open by fd
 * (see pinned-dir.ts), so nothing is ever read or written outside the root, even when a
 * directory is swapped for a symlink while the copy runs.
 *
 * Docker facts kept: the X-Docker-Container-Path-Stat header is base64(JSON PathStat) with Go
 * FileMode bits; an archive's top entry is the basename of the requested path; a trailing `/`
 * (or `/.`) on the path follows a final symlink; extraction without copyUIDGID makes files
 * owned by root; an entry `..`-escaping the destination is refused while an absolute one is
 * taken relative to it; an existing path is replaced unless both are directories (merged).
 */
import { constants as fsc, promises as fs, type Stats, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BaleiaError, errnoCode, invalidArgument, notFound, resolveInRoot } from '../lib/index.js';
import { readTar, type TarHeader } from './tar-reader.js';
import { writeTar, type TarWriteEntry } from './tar-writer.js';
import { Sys } from './sys.js';
import { DirPool, O_PATH, PinnedDir, removeTree, walk } from './pinned-dir.js';

export interface PathStat {
  name: string;
  size: number;
  /** Go os.FileMode: dir 1<<31, symlink 1<<27, device 1<<26, pipe 1<<25, socket 1<<24, setuid 1<<23, setgid 1<<22, char device 1<<21, sticky 1<<20, | perm. */
  mode: number;
  /** RFC 3339 with nanoseconds, UTC. */
  mtime: string;
  /** For a symlink: its target fully resolved inside the container, as a container path. */
  linkTarget: string;
}

/** The X-Docker-Container-Path-Stat header value: standard base64 of the JSON. */
export const pathStatHeader = (stat: PathStat): string => Buffer.from(JSON.stringify(stat)).toString('base64');

/** Go's os.FileMode bits for a Unix st_mode. */
export function goFileMode(mode: number): number {
  let m = mode & 0o777;
  switch (mode & fsc.S_IFMT) {
    case fsc.S_IFDIR: m += 2 ** 31; break;
    case fsc.S_IFLNK: m += 2 ** 27; break;
    case fsc.S_IFCHR: m += 2 ** 26 + 2 ** 21; break;
    case fsc.S_IFBLK: m += 2 ** 26; break;
    case fsc.S_IFIFO: m += 2 ** 25; break;
    case fsc.S_IFSOCK: m += 2 ** 24; break;
  }
  if (mode & 0o4000) m += 2 ** 23;
  if (mode & 0o2000) m += 2 ** 22;
  if (mode & 0o1000) m += 2 ** 20;
  return m;
}

function rfc3339(st: BigIntStats): string {
  const sec = st.mtimeNs / 1_000_000_000n;
  const ns = st.mtimeNs % 1_000_000_000n;
  const base = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
  const frac = ns === 0n ? '' : '.' + ns.toString().padStart(9, '0').replace(/0+$/, '');
  return `${base}${frac}Z`;
}

/** Docker's `filepath.Base` of the requested path: `/` for the root. */
function baseName(containerPath: string): string {
  const clean = path.posix.normalize('/' + containerPath);
  return clean === '/' ? '/' : path.posix.basename(clean);
}

/** A trailing `/` or `/.` asks for what a final symlink points at (Docker's ResolvePath). */
const followsFinal = (p: string) => p.endsWith('/') || p.endsWith('/.') || p === '.';

const couldNotFind = (p: string, container?: string) =>
  notFound(`Could not find the file ${p} in container${container ? ` ${container}` : ''}`);

export interface StatOptions {
  /** The container's name or ID, for the NotFound message Docker gives. */
  container?: string;
  /** Follow a final symlink (`cp -L`); a trailing `/` does too. */
  followLink?: boolean;
}

interface Located {
  root: PinnedDir;
  pool: DirPool;
  /** The directory holding the entry, and its name there; no name: the entry is `dir` itself. */
  dir: PinnedDir;
  name?: string;
  st: Stats;
  stat: PathStat;
}

async function locate(root: string, containerPath: string, opts: StatOptions): Promise<Located> {
  const rootDir = await PinnedDir.openRoot(root);
  const pool = new DirPool();
  try {
    const follow = opts.followLink === true || followsFinal(containerPath);
    const r = await walk([rootDir], containerPath, { final: follow ? 'follow' : 'lstat', pool });
    if (r.missing) throw couldNotFind(containerPath, opts.container);
    const dir = r.dirs[r.dirs.length - 1]!;
    const big = r.name === undefined
      ? await fs.stat(dir.self, { bigint: true })
      : await fs.lstat(dir.at(r.name), { bigint: true });
    const st = r.name === undefined ? await dir.stat() : r.st!;
    let linkTarget = '';
    if (st.isSymbolicLink()) {
      const host = await resolveInRoot(root, containerPath);
      linkTarget = '/' + path.relative(path.resolve(root), host);
    }
    const stat: PathStat = { name: baseName(containerPath), size: Number(big.size), mode: goFileMode(Number(big.mode)), mtime: rfc3339(big), linkTarget };
    return { root: rootDir, pool, dir, name: r.name, st, stat };
  } catch (err) {
    await pool.closeAll();
    await rootDir.close();
    throw err;
  }
}

/** HEAD /containers/{id}/archive: the stat of a path (a final symlink is not followed unless the path ends in `/`). */
export async function statInRoot(root: string, containerPath: string, opts: StatOptions = {}): Promise<PathStat> {
  const found = await locate(root, containerPath, opts);
  await found.pool.closeAll();
  await found.root.close();
  return found.stat;
}

// ---------------------------------------------------------------------------------------------
// Reading a tree into tar entries

/** Xattrs that describe the host or overlayfs, not the file: never archived. */
const skipXattr = (name: string) =>
  name.startsWith('trusted.overlay.') || name === 'security.selinux' || name.startsWith('system.');

export interface TreeReader {
  sys: Sys;
  signal?: AbortSignal;
  /** First archive name of each multiply-linked inode (dev:ino), for hardlink entries. */
  links: Map<string, string>;
}

export const newTreeReader = (signal?: AbortSignal): TreeReader => ({ sys: new Sys(), signal, links: new Map() });

async function xattrsOf(reader: TreeReader, p: string): Promise<Map<string, Buffer> | undefined> {
  let all: Map<string, Buffer>;
  try {
    all = await reader.sys.getxattrs(p);
  } catch (err) {
    if (['ENOTSUP', 'EOPNOTSUPP', 'ENODATA', 'EPERM', 'EACCES'].includes(errnoCode(err) ?? '')) return undefined;
    throw err;
  }
  const kept = new Map([...all].filter(([k]) => !skipXattr(k)));
  return kept.size ? kept : undefined;
}

const majorOf = (rdev: number) => (rdev >>> 8) & 0xfff;
const minorOf = (rdev: number) => (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new BaleiaError('Cancelled', 'Cannot copy files: cancelled', { cause: signal.reason });
}

async function* fileBody(handle: FileHandle, size: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
  try {
    let pos = 0;
    while (pos < size) {
      checkAbort(signal);
      const buf = Buffer.allocUnsafe(Math.min(size - pos, 1 << 20));
      const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return; // shrank: the writer pads
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await handle.close().catch(() => {});
  }
}

/**
 * The tar entry for the non-directory `name` in `dir` (undefined for sockets, which tar cannot
 * carry, and for entries that vanished). A regular file is opened with O_NOFOLLOW|O_NONBLOCK
 * and checked with fstat, so a file swapped for a symlink or fifo is never followed or waited on.
 */
export async function entryOf(reader: TreeReader, dir: PinnedDir, name: string, archiveName: string, lst: Stats): Promise<TarWriteEntry | undefined> {
  const base = { name: archiveName, mode: lst.mode & 0o7777, uid: lst.uid, gid: lst.gid, mtime: Math.trunc(lst.mtimeMs / 1000) };
  if (lst.isFile()) {
    let handle: FileHandle;
    try {
      handle = await fs.open(dir.at(name), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    } catch (err) {
      if (['ENOENT', 'ELOOP', 'ENXIO'].includes(errnoCode(err) ?? '')) return undefined;
      throw err;
    }
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      return undefined;
    }
    const xattrs = await xattrsOf(reader, dir.at(name));
    const meta = { ...base, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.trunc(st.mtimeMs / 1000), xattrs };
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const first = reader.links.get(key);
      if (first !== undefined) {
        await handle.close();
        return { ...meta, type: 'link', linkname: first, xattrs: undefined };
      }
      reader.links.set(key, archiveName);
    }
    return { ...meta, type: 'file', size: st.size, body: fileBody(handle, st.size, reader.signal) };
  }
  if (lst.isSymbolicLink()) {
    let linkname: string;
    try {
      linkname = await fs.readlink(dir.at(name));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'EINVAL') return undefined;
      throw err;
    }
    return { ...base, type: 'symlink', linkname };
  }
  const xattrs = await xattrsOf(reader, dir.at(name));
  if (lst.isCharacterDevice() || lst.isBlockDevice()) {
    return { ...base, xattrs, type: lst.isCharacterDevice() ? 'char' : 'block', devmajor: majorOf(lst.rdev), devminor: minorOf(lst.rdev) };
  }
  if (lst.isFIFO()) return { ...base, xattrs, type: 'fifo' };
  return undefined;
}

export async function dirEntry(reader: TreeReader, dir: PinnedDir, archiveName: string): Promise<TarWriteEntry> {
  const st = await dir.stat();
  const xattrs = await xattrsOf(reader, `${dir.self}/.`);
  return { name: archiveName, type: 'directory', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.trunc(st.mtimeMs / 1000), xattrs };
}

/**
 * The entries of the tree under `dir` (not `dir` itself), names prefixed with `prefix/` (or
 * bare when prefix is ''), in lexical order; symlinks are entries, never followed. `skip`
 * decides which children are left out, by their archive name.
 */
export async function* treeEntries(
  reader: TreeReader,
  dir: PinnedDir,
  prefix: string,
  skip?: (archiveName: string, st: Stats) => 'entry' | 'contents' | 'none',
): AsyncGenerator<TarWriteEntry> {
  for (const child of await dir.readdir()) {
    checkAbort(reader.signal);
    const archiveName = prefix === '' ? child : prefix.endsWith('/') ? prefix + child : `${prefix}/${child}`;
    const st = await dir.lstat(child);
    if (!st) continue;
    const decision = skip?.(archiveName, st) ?? 'none';
    if (decision === 'entry') continue;
    if (!st.isDirectory()) {
      const e = await entryOf(reader, dir, child, archiveName, st);
      if (e) yield e;
      continue;
    }
    let sub: PinnedDir;
    try {
      sub = await dir.openDir(child);
    } catch (err) {
      if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes(errnoCode(err) ?? '')) continue; // changed under us
      throw err;
    }
    try {
      yield await dirEntry(reader, sub, archiveName);
      if (decision !== 'contents') yield* treeEntries(reader, sub, archiveName, skip);
    } finally {
      await sub.close();
    }
  }
}

export interface ArchiveOptions extends StatOptions {
  signal?: AbortSignal;
}

/**
 * GET /containers/{id}/archive: a tar whose top entry is the basename of `containerPath`
 * (`hosts`, or `etc/` then `etc/hosts`…; the root gives `/`-prefixed names as Docker does),
 * keeping owners, modes, mtimes (whole seconds), symlinks, hardlinks, devices and xattrs
 * (except overlay, SELinux and ACL ones). Symlinks inside the tree are never followed. The
 * stream holds open files until it ends: read it to the end or destroy it.
 */
export async function archiveFromRoot(root: string, containerPath: string, opts: ArchiveOptions = {}): Promise<{ stat: PathStat; stream: NodeJS.ReadableStream }> {
  const found = await locate(root, containerPath, opts);
  const stat = found.stat.linkTarget && opts.followLink ? { ...found.stat, linkTarget: '' } : found.stat;
  const reader = newTreeReader(opts.signal);
  const top = stat.name;
  async function* entries(): AsyncGenerator<TarWriteEntry> {
    try {
      if (found.name !== undefined && !found.st.isDirectory()) {
        const e = await entryOf(reader, found.dir, found.name, top, found.st);
        if (!e) throw couldNotFind(containerPath, opts.container);
        yield e;
        return;
      }
      const dir = found.name === undefined ? found.dir : found.pool.add(await found.dir.openDir(found.name));
      yield await dirEntry(reader, dir, top);
      yield* treeEntries(reader, dir, top);
    } finally {
      await found.pool.closeAll();
      await found.root.close();
      await reader.sys.close();
    }
  }
  return { stat, stream: Readable.from(writeTar(entries()), { objectMode: false }) };
}

// ---------------------------------------------------------------------------------------------
// Extraction

export interface ExtractOptions {
  /** Refuse to replace a directory by a non-directory and vice versa (docker cp sets it). */
  noOverwriteDirNonDir?: boolean;
  /** Keep the archive's uid/gid (`cp -a`); otherwise everything belongs to `owner`. */
  copyUIDGID?: boolean;
  /** The container's root user on the host (user namespaces); default 0:0. */
  owner?: { uid: number; gid: number };
  /** Container paths of read-only mounts (`/` for a read-only rootfs): writes there are refused. */
  readOnlyPaths?: string[];
  /** The container's name or ID, for the NotFound message Docker gives. */
  container?: string;
  signal?: AbortSignal;
}

/**
 * An entry name as components relative to the extraction point. Docker's rule: the name is
 * cleaned; an absolute name is taken relative to the destination (`/etc/x` → `etc/x`), a
 * relative one that climbs out of it is refused.
 */
function entryParts(name: string, what = 'entry'): string[] {
  const out: string[] = [];
  const absolute = name.startsWith('/');
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part.includes('\0')) throw invalidArgument(`Cannot extract ${what} "${name}": the name contains a NUL byte`);
    if (part === '..') {
      if (out.length > 0) out.pop();
      else if (!absolute) throw invalidArgument(`Cannot extract ${what} "${name}": it points outside the extraction directory`);
      continue;
    }
    out.push(part);
  }
  return out;
}

function readOnlyCheck(containerPath: string, readOnly: string[]): void {
  for (const ro of readOnly) {
    if (ro === '/' || containerPath === ro || containerPath.startsWith(ro + '/')) {
      throw invalidArgument(
        ro === '/'
          ? `Cannot copy to "${containerPath}": container rootfs is marked read-only`
          : `Cannot copy to "${containerPath}": mounted volume "${ro}" is marked read-only`,
      );
    }
  }
}

/**
 * PUT /containers/{id}/archive: extracts `tar` into the existing directory `containerPath`.
 *
 * Safety (see pinned-dir.ts): the destination and every entry's parent are resolved from fds
 * of directories opened with O_NOFOLLOW, following symlinks inside the root only; entries are
 * created relative to those fds, never through a path the container could change. Resolved
 * parent directories are cached by their name in the archive: the cached fd still denotes the
 * directory that was inside the root when it was opened, so a symlink swapped in later cannot
 * redirect writes. An entry replacing an existing directory or symlink drops the cache.
 */
export async function extractToRoot(root: string, containerPath: string, tar: NodeJS.ReadableStream, opts: ExtractOptions = {}): Promise<void> {
  const owner = opts.owner ?? { uid: 0, gid: 0 };
  const readOnly = (opts.readOnlyPaths ?? []).map((p) => path.posix.normalize('/' + p).replace(/(.)\/$/, '$1'));
  const rootDir = await PinnedDir.openRoot(root);
  const basePool = new DirPool();
  let pool = new DirPool();
  const sys = new Sys();
  try {
    const dest = await walk([rootDir], containerPath, { final: 'dir', pool: basePool });
    if (dest.notDir) throw invalidArgument(`Cannot extract to "${containerPath}": extraction point is not a directory`);
    if (dest.missing) throw couldNotFind(containerPath, opts.container);
    const destDirs = dest.dirs;
    readOnlyCheck(destDirs[destDirs.length - 1]!.path, readOnly);

    let parents = new Map<string, PinnedDir[]>();
    const dirTimes: Array<{ parts: string[]; mtime: number }> = [];
    const parentOf = async (parts: string[], entryName: string): Promise<PinnedDir> => {
      const key = parts.join('/');
      const cached = parents.get(key);
      if (cached) return cached[cached.length - 1]!;
      if (pool.size > 256) {
        parents = new Map();
        await pool.closeAll();
        pool = new DirPool();
      }
      const r = await walk(destDirs, parts, { final: 'dir', create: owner, pool });
      if (r.missing || r.notDir) {
        throw invalidArgument(`Cannot extract "${entryName}": "${r.dirs[r.dirs.length - 1]!.childPath(r.name ?? '')}" is not a directory`);
      }
      parents.set(key, r.dirs);
      return r.dirs[r.dirs.length - 1]!;
    };

    for await (const { header, body } of readTar(tar as AsyncIterable<Buffer>)) {
      checkAbort(opts.signal);
      const parts = entryParts(header.name);
      if (parts.length === 0) continue; // "./": the extraction point itself
      if (!['file', 'directory', 'symlink', 'link', 'char', 'block', 'fifo'].includes(header.type)) continue;
      const base = parts[parts.length - 1]!;
      const dir = await parentOf(parts.slice(0, -1), header.name);
      const target = dir.childPath(base);
      readOnlyCheck(target, readOnly);
      const uid = opts.copyUIDGID ? header.uid : owner.uid;
      const gid = opts.copyUIDGID ? header.gid : owner.gid;

      const existing = await dir.lstat(base);
      const isDir = header.type === 'directory';
      if (existing) {
        if (opts.noOverwriteDirNonDir && existing.isDirectory() && !isDir) {
          throw invalidArgument(`Cannot extract "${header.name}": cannot overwrite directory "${target}" with non-directory`);
        }
        if (opts.noOverwriteDirNonDir && !existing.isDirectory() && isDir) {
          throw invalidArgument(`Cannot extract "${header.name}": cannot overwrite non-directory "${target}" with directory`);
        }
        if (!(existing.isDirectory() && isDir)) {
          await removeTree(dir, base);
          if (existing.isDirectory() || existing.isSymbolicLink()) parents = new Map();
        }
      }
      const mode = header.mode & 0o7777;
      switch (header.type) {
        case 'directory': {
          if (!existing?.isDirectory()) await fs.mkdir(dir.at(base), { mode: 0o700 });
          const sub = pool.add(await dir.openDir(base));
          await sub.chown(uid, gid);
          await sub.chmod(mode);
          await setXattrs(sys, `${sub.self}/.`, header);
          parents.set(parts.join('/'), [...(parents.get(parts.slice(0, -1).join('/')) ?? destDirs), sub]);
          dirTimes.push({ parts, mtime: header.mtime });
          break;
        }
        case 'file': {
          const handle = await fs.open(dir.at(base), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
          try {
            for await (const chunk of body) {
              checkAbort(opts.signal);
              for (let off = 0; off < chunk.length; ) off += (await handle.write(chunk, off)).bytesWritten;
            }
            await handle.chown(uid, gid);
            await handle.chmod(mode);
            await setXattrs(sys, dir.at(base), header);
            await handle.utimes(header.mtime, header.mtime);
          } finally {
            await handle.close();
          }
          break;
        }
        case 'symlink': {
          await fs.symlink(header.linkname, dir.at(base));
          await fs.lchown(dir.at(base), uid, gid);
          await fs.lutimes(dir.at(base), header.mtime, header.mtime);
          break;
        }
        case 'link': {
          const linkParts = entryParts(header.linkname, 'hardlink target');
          const pool2 = new DirPool();
          try {
            const t = await walk(destDirs, linkParts, { final: 'lstat', pool: pool2 });
            if (t.missing || t.name === undefined || t.st!.isDirectory()) {
              throw invalidArgument(`Cannot extract hardlink "${header.name}": its target "${header.linkname}" is not a file in the archive`);
            }
            await fs.link(t.dirs[t.dirs.length - 1]!.at(t.name), dir.at(base));
          } finally {
            await pool2.closeAll();
          }
          break; // a hardlink shares its target's inode and metadata
        }
        default: {
          if (header.type === 'fifo') await sys.mkfifo(dir.at(base), mode);
          else await sys.mknod(dir.at(base), { type: header.type as 'char' | 'block', mode, major: header.devmajor, minor: header.devminor });
          await metaByPath(dir, base, header, uid, gid, mode);
          await setXattrs(sys, dir.at(base), header);
        }
      }
    }

    // Directory times last, deepest first: creating their children changed them.
    dirTimes.sort((a, b) => b.parts.length - a.parts.length);
    for (const { parts, mtime } of dirTimes) {
      const p = new DirPool();
      try {
        const r = await walk(destDirs, parts, { final: 'dir', pool: p });
        if (!r.missing && !r.notDir && r.dirs.length > destDirs.length) await r.dirs[r.dirs.length - 1]!.utimes(mtime);
      } finally {
        await p.closeAll();
      }
    }
  } catch (err) {
    if (opts.signal?.aborted && !(err instanceof BaleiaError && err.kind === 'Cancelled')) {
      throw new BaleiaError('Cancelled', 'Cannot copy files: cancelled', { cause: err });
    }
    throw err;
  } finally {
    await pool.closeAll();
    await basePool.closeAll();
    await rootDir.close();
    await sys.close();
  }
}

/**
 * Owner, mode and times of a device node or fifo just made: through an O_PATH fd (opening the
 * node itself could block or have side effects), reached as /proc/<pid>/fd/<fd> so the calls
 * land on that inode even if the name was swapped meanwhile.
 */
async function metaByPath(dir: PinnedDir, base: string, header: TarHeader, uid: number, gid: number, mode: number): Promise<void> {
  const handle = await fs.open(dir.at(base), O_PATH | fsc.O_NOFOLLOW);
  try {
    const st = await handle.stat();
    if (st.isSymbolicLink() || st.isDirectory() || st.isFile()) {
      throw new BaleiaError('Conflict', `Cannot extract "${header.name}": "${dir.childPath(base)}" changed while being created`);
    }
    const self = `/proc/${process.pid}/fd/${handle.fd}`;
    await fs.chown(self, uid, gid);
    await fs.chmod(self, mode);
    await fs.utimes(self, header.mtime, header.mtime);
  } finally {
    await handle.close();
  }
}

async function setXattrs(sys: Sys, p: string, header: TarHeader): Promise<void> {
  for (const [name, value] of header.xattrs) {
    if (skipXattr(name)) continue;
    try {
      await sys.setxattr(p, name, value);
    } catch (err) {
      // Docker ignores xattrs the destination cannot hold.
      if (['ENOTSUP', 'EOPNOTSUPP', 'EPERM', 'EACCES'].includes(errnoCode(err) ?? '')) continue;
      throw invalidArgument(`Cannot extract "${header.name}": cannot set xattr "${name}"`, { cause: err });
    }
  }
}
