/**
 * Directories held open by file descriptor, and path resolution inside a container root that
 * never leaves it, even while the container (or anyone) swaps directories for symlinks.
 *
 * Node has no openat(2). The same guarantee comes from `/proc/<pid>/fd/<fd>/<name>`: the kernel
 * resolves `/proc/<pid>/fd/<fd>` as a "magic link" straight to the directory inode the fd holds,
 * whatever has since happened to its path, and `<name>` is then one component looked up in
 * that directory. So every call here names exactly one component in a directory we opened
 * ourselves, and:
 *   - directories are opened with O_DIRECTORY|O_NOFOLLOW (a swapped-in symlink gives ELOOP);
 *   - files are created with O_CREAT|O_EXCL|O_NOFOLLOW, removed with unlink/rmdir, and
 *     symlinks, links and device nodes are created by calls that never follow the last
 *     component; metadata goes through an fd (fchown, fchmod, futimes), an O_PATH fd reached as
 *     `/proc/<pid>/fd/<fd>` (for device nodes and fifos, which must not be opened), or
 *     l-calls (lchown, lutimes) on symlinks;
 *   - `..` is never given to the kernel: it pops our own stack of open directories, and a
 *     symlink target is followed by us, absolute targets from the root's fd, exactly as
 *     `resolveInRoot` in lib/paths.ts does by path.
 * A directory reached that way was inside the root when it was opened, and stays the same
 * inode while we hold it, so writes through it stay inside the root.
 */
import { constants as fsc, promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { BaleiaError, errnoCode, internal, invalidArgument } from '../lib/index.js';

/** Linux O_PATH (x86-64 and arm64 share it); Node does not export the constant. */
export const O_PATH = 0o10000000;

export class PinnedDir {
  readonly #handle: FileHandle;
  /** Where this directory is inside the container root, `/`-rooted (messages, read-only checks). */
  readonly path: string;

  private constructor(handle: FileHandle, containerPath: string) {
    this.#handle = handle;
    this.path = containerPath;
  }

  /** The root of a container filesystem: a trusted host path. */
  static async openRoot(hostPath: string): Promise<PinnedDir> {
    const handle = await fs.open(hostPath, fsc.O_RDONLY | fsc.O_DIRECTORY);
    return new PinnedDir(handle, '/');
  }

  /**
   * `/proc/<our pid>/fd/<fd>`: this directory, wherever it is now. Our pid rather than `self`
   * so that the python helper of sys.ts (a child process) reaches the same directory.
   */
  get self(): string {
    return `/proc/${process.pid}/fd/${this.#handle.fd}`;
  }

  /** The path of the one component `name` in this directory. */
  at(name: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
      throw internal(`Cannot use "${name}" as a single path component`);
    }
    return `${this.self}/${name}`;
  }

  childPath(name: string): string {
    return this.path === '/' ? `/${name}` : `${this.path}/${name}`;
  }

  async lstat(name: string): Promise<Stats | undefined> {
    try {
      return await fs.lstat(this.at(name));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  stat(): Promise<Stats> {
    return this.#handle.stat();
  }

  /** Opens the child directory `name`; a symlink there is refused (ELOOP), never followed. */
  async openDir(name: string): Promise<PinnedDir> {
    const handle = await fs.open(this.at(name), fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    return new PinnedDir(handle, this.childPath(name));
  }

  async readdir(): Promise<string[]> {
    return (await fs.readdir(this.self)).sort();
  }

  chown(uid: number, gid: number): Promise<void> {
    return this.#handle.chown(uid, gid);
  }

  chmod(mode: number): Promise<void> {
    return this.#handle.chmod(mode);
  }

  utimes(seconds: number): Promise<void> {
    return this.#handle.utimes(seconds, seconds);
  }

  async close(): Promise<void> {
    await this.#handle.close().catch(() => {});
  }
}

/** Owns the directories opened during one operation; closes them all at the end. */
export class DirPool {
  #dirs: PinnedDir[] = [];

  add(dir: PinnedDir): PinnedDir {
    this.#dirs.push(dir);
    return dir;
  }

  get size(): number {
    return this.#dirs.length;
  }

  async closeAll(): Promise<void> {
    const dirs = this.#dirs;
    this.#dirs = [];
    await Promise.all(dirs.map((d) => d.close()));
  }
}

export interface WalkResult {
  /** The directories walked, the root first; the last one holds `name`. */
  dirs: PinnedDir[];
  /** The last component inside the last directory; undefined when the path is that directory. */
  name?: string;
  /** lstat of `name` (a symlink only with `final: 'lstat'`). */
  st?: Stats;
  /** `name` does not exist, or a component before it is not a directory (`notDir`). */
  missing: boolean;
  /** The component `name` exists and is not a directory (only with `final: 'dir'`). */
  notDir?: boolean;
}

export interface WalkOptions {
  /**
   * What the last component is: `lstat` it (a symlink stays a symlink), `follow` symlinks to
   * the end, or `dir` — descend into every component, creating missing ones when `create`.
   */
  final: 'lstat' | 'follow' | 'dir';
  /** `final: 'dir'`: create missing directories (mode 0755) owned by this user. */
  create?: { uid: number; gid: number };
  pool: DirPool;
}

const splitPath = (p: string) => p.split('/').filter((c) => c !== '' && c !== '.');

/**
 * Resolves `inner` from the stack `start` (its first element is the container root) with
 * `resolveInRoot`'s semantics: symlinks are followed relative to the root, `..` stops at the
 * root. Every directory it opens goes into `opts.pool`.
 */
export async function walk(start: PinnedDir[], inner: string | string[], opts: WalkOptions): Promise<WalkResult> {
  const dirs = [...start];
  const pending = typeof inner === 'string' ? splitPath(inner) : [...inner];
  let hops = 0;
  let retries = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      if (dirs.length > 1) dirs.pop();
      continue;
    }
    const top = dirs[dirs.length - 1]!;
    const last = pending.length === 0;
    let st = await top.lstat(part);
    if (!st) {
      if (opts.final !== 'dir' || !opts.create) return { dirs, name: part, missing: true };
      try {
        await fs.mkdir(top.at(part), { mode: 0o755 });
        await fs.lchown(top.at(part), opts.create.uid, opts.create.gid);
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
      }
      pending.unshift(part); // look again: whatever is there now is checked like the rest
      if (++retries > 16) throw raced(top.childPath(part));
      continue;
    }
    if (st.isSymbolicLink() && (!last || opts.final !== 'lstat')) {
      if (++hops > 40) throw invalidArgument(`Cannot resolve "${top.childPath(part)}": too many levels of symbolic links`);
      const target = await fs.readlink(top.at(part));
      if (target.startsWith('/')) dirs.length = 1;
      pending.unshift(...splitPath(target));
      continue;
    }
    if (last && opts.final !== 'dir') return { dirs, name: part, st, missing: false };
    if (!st.isDirectory()) return { dirs, name: part, st, missing: !last, notDir: last };
    try {
      dirs.push(opts.pool.add(await top.openDir(part)));
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ELOOP' && code !== 'ENOTDIR' && code !== 'ENOENT') throw err;
      // changed between lstat and open: resolve this component again
      pending.unshift(part);
      if (++retries > 16) throw raced(top.childPath(part));
    }
  }
  return { dirs, missing: false };
}

const raced = (p: string) =>
  new BaleiaError('Conflict', `Cannot resolve "${p}": it keeps changing while being copied`);

/** Removes `name` in `dir` and everything under it, without following any symlink. */
export async function removeTree(dir: PinnedDir, name: string): Promise<void> {
  const st = await dir.lstat(name);
  if (!st) return;
  if (!st.isDirectory()) {
    await fs.unlink(dir.at(name));
    return;
  }
  let sub: PinnedDir;
  try {
    sub = await dir.openDir(name);
  } catch (err) {
    if (errnoCode(err) === 'ELOOP' || errnoCode(err) === 'ENOTDIR') return removeTree(dir, name);
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  try {
    for (const child of await sub.readdir()) await removeTree(sub, child);
  } finally {
    await sub.close();
  }
  await fs.rmdir(dir.at(name));
}

/** Joins a `/`-rooted container path lexically (for messages and read-only checks). */
export const containerJoin = (...parts: string[]) => path.posix.join('/', ...parts);
