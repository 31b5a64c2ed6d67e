/**
 * snapshot: unpacked layers and container root filesystems on overlayfs. It owns the layer
 * directories (one per chainID, immutable once committed), the container upper/work dirs and
 * their overlay mounts; it is the only code that mounts. It does not know images or
 * registries: callers hand it uncompressed layer tars and chainIDs.
 *
 * Lifecycle: applyLayer(chainId, tar) extracts into a temp dir and renames it into place
 * (a layer is either whole or absent) → mountContainer(id, [bottom…top]) stacks layers under a
 * fresh upper dir → unmountContainer(id) → removeContainer(id) → removeLayer(chainId).
 *
 *   const snaps = new Snapshotter('/var/lib/baleia'); await snaps.init();
 *   const { diffId } = await snaps.applyLayer(chainId, decompressIfNeeded(blobStream));
 *   const rootfs = await snaps.mountContainer('c1', [chainId]);
 *
 * Beside that: `docker cp` on a container rootfs (archive.ts: statInRoot, archiveFromRoot,
 * extractToRoot — fd-pinned, never leaves the root) and what a container changed (diff.ts:
 * changes, diffTar for commit, exportRootfs).
 *
 * Layer tars use Docker's whiteout convention (`.wh.<name>`, `.wh..wh..opq`); in a layer
 * directory they become overlayfs whiteouts (char device 0:0) and `trusted.overlay.opaque=y`,
 * so the directory is usable directly as an overlay lowerdir.
 *
 * On disk, under the daemon root:
 *
 *   <root>/snapshots/
 *     layers/<chainIdHex>/fs         the unpacked layer (overlay lowerdir)
 *     layers/<chainIdHex>/meta.json  { chainId, diffId, size, tarSize }
 *     layers/.tmp-<random>/          a layer being extracted; removed by init()
 *     l/<16 hex>  -> ../layers/<chainIdHex>/fs   short names so ~100 lowerdirs fit in one
 *                                                  page of mount options
 *     empty/                         the lowerdir of a container with no layers
 *     containers/<id>/{upper,work,merged}
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawn } from 'node:child_process';
import * as zlib from 'node:zlib';
import {
  BaleiaError,
  Sha256,
  errnoCode,
  internal,
  invalidArgument,
  readJsonIfExists,
  run,
  syncDir,
  writeJsonAtomic,
} from '../lib/index.js';
import { readTar, type TarHeader } from './tar-reader.js';
import { Sys } from './sys.js';

export { readTar, type TarEntry, type TarHeader, type TarEntryType } from './tar-reader.js';
export { Sys } from './sys.js';
export {
  statInRoot,
  archiveFromRoot,
  extractToRoot,
  pathStatHeader,
  goFileMode,
  type PathStat,
  type StatOptions,
  type ArchiveOptions,
  type ExtractOptions,
} from './archive.js';
export { changes, diffTar, exportRootfs, ChangeKinds, type Change, type ChangeKind } from './diff.js';

export interface LayerInfo {
  chainId: string;
  diffId: string;
  /** Bytes of the regular files in the layer (Docker's layer size). */
  size: number;
  /** Bytes of the uncompressed tar (its length when exported again). */
  tarSize: number;
}

const hexOf = (id: string, what: string): string => {
  const m = /^(?:sha256:)?([0-9a-f]{64})$/.exec(id);
  if (!m) throw invalidArgument(`Cannot use ${what} "${id}": expected sha256:<64 hex>`);
  return m[1]!;
};

const containerIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Output chunk of Node's gunzip: zlib inflates on the thread pool one output chunk per round
 * trip, so its default 16 KiB costs ~20 000 round trips for a 300 MB layer; 1 MiB makes it ~300.
 */
const gunzipChunk = 1 << 20;

/**
 * isa-l's `igzip` (Debian package `isal`) inflates about twice as fast as zlib (0.75 s against
 * 1.4 s for the 300 MB of the registry bench's layers on this VM), and in a process of its own,
 * so a pull's hashing and tar work keep the daemon's thread. Looked up once; zlib without it.
 */
let igzipPath: string | null | undefined;
function igzip(): string | undefined {
  if (igzipPath === undefined) igzipPath = ['/usr/bin/igzip', '/usr/local/bin/igzip', '/bin/igzip'].find((p) => existsSync(p)) ?? null;
  return igzipPath ?? undefined;
}

export interface DecompressOptions {
  signal?: AbortSignal;
  /** How gzip is inflated: `auto` (igzip when installed, else zlib) or `zlib`. */
  gunzip?: 'auto' | 'zlib';
}

/**
 * A plain tar stream from a layer blob that may be gzip (1f 8b), zstd (28 b5 2f fd) or already
 * uncompressed. zstd goes through the `zstd` command because Node 20's zlib lacks it; gzip
 * through `igzip` when installed. The result hands out chunks as they come (object mode: a
 * reader never gets them glued together by a copy). Destroying it (or a failure) stops reading
 * `input`, destroys it and kills a decompressor process.
 */
export function decompressIfNeeded(input: NodeJS.ReadableStream | AsyncIterable<Buffer>, opts: DecompressOptions = {}): Readable {
  const out = new PassThrough({ readableObjectMode: true, readableHighWaterMark: 16, writableHighWaterMark: gunzipChunk });
  const iterator = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  let finished = false;
  const closed = new AbortController();
  const stopInput = () => {
    closed.abort();
    if (finished) return;
    finished = true;
    void iterator.return?.(undefined)?.catch(() => {});
    (input as Readable).destroy?.();
  };
  out.on('close', stopInput);
  // The input can fail before the caller starts reading: the error is kept (stream.errored) and
  // surfaces when it does, instead of being an uncaught 'error' event now.
  out.on('error', () => {});
  void (async () => {
    let head = Buffer.alloc(0);
    let ended = false;
    while (head.length < 4) {
      const r = await iterator.next();
      if (r.done) {
        ended = true;
        break;
      }
      head = Buffer.concat([head, typeof r.value === 'string' ? Buffer.from(r.value) : r.value]);
    }
    const rest = async function* () {
      if (head.length) yield head;
      if (ended) return;
      for (;;) {
        const r = await iterator.next();
        if (r.done) return;
        yield typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      }
    };
    const source = Readable.from(rest(), { objectMode: false });
    // Copy into `out` by hand: a pipeline ending in `out` would destroy it with the raw error
    // before it could be given a clear message.
    // Chunk by chunk as read ('data' events): iterating a byte stream glues the chunks it has
    // buffered into one with a copy (300 MB of copies per large pull).
    const pump = (from: Readable) =>
      new Promise<void>((resolve, reject) => {
        const done = (err?: unknown) => {
          from.off('data', onData);
          from.off('end', onEnd);
          from.off('error', done);
          out.off('drain', onDrain);
          closed.signal.removeEventListener('abort', onClosed);
          if (err === undefined) resolve();
          else reject(err);
        };
        const onData = (chunk: Buffer) => {
          if (opts.signal?.aborted) {
            from.destroy();
            done(new BaleiaError('Cancelled', 'Cannot decompress layer: cancelled'));
          } else if (!out.write(chunk)) from.pause();
        };
        const onDrain = () => from.resume();
        const onEnd = () => done();
        const onClosed = () => {
          from.destroy();
          done(new BaleiaError('Cancelled', 'Cannot decompress layer: the reader went away'));
        };
        if (closed.signal.aborted) return onClosed();
        from.on('data', onData);
        from.on('end', onEnd);
        from.on('error', done);
        out.on('drain', onDrain);
        closed.signal.addEventListener('abort', onClosed, { once: true });
      });
    const viaCommand = async (command: string, args: string[], what: string) => {
      const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], signal: opts.signal });
      const kill = () => child.kill('SIGKILL');
      closed.signal.addEventListener('abort', kill, { once: true });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<void>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (code) =>
          code === 0 ? resolve() : reject(invalidArgument(`Cannot decompress ${what} layer: corrupt or truncated data (${stderr.trim().split('\n')[0] || `exit status ${code}`})`)),
        );
      });
      child.stdin.on('error', () => {});
      // A failing source is the error to report (the command would only see a truncated input);
      // a command that exits early makes the writes fail with EPIPE: its exit status says why.
      const feed = pipeline(source, child.stdin).catch((err: unknown) => {
        if (errnoCode(err) === 'EPIPE' || errnoCode(err) === 'ERR_STREAM_DESTROYED') return;
        throw err;
      });
      try {
        await Promise.all([feed, pump(child.stdout), exited]);
      } finally {
        closed.signal.removeEventListener('abort', kill);
      }
    };
    if (head[0] === 0x1f && head[1] === 0x8b) {
      const command = opts.gunzip === 'zlib' ? undefined : igzip();
      if (command) await viaCommand(command, ['-d', '-c'], 'gzip');
      else {
        const gunzip = zlib.createGunzip({ chunkSize: gunzipChunk });
        await Promise.all([pipeline(source, gunzip), pump(gunzip)]);
      }
    } else if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
      await viaCommand('zstd', ['-d', '-c', '-q'], 'zstd');
    } else {
      await pump(source);
    }
    finished = true;
    out.end();
  })().catch((err: unknown) => {
    const e = errnoCode(err) === 'Z_DATA_ERROR' || errnoCode(err) === 'Z_BUF_ERROR'
      ? invalidArgument('Cannot decompress gzip layer: corrupt or truncated data', { cause: err })
      : err;
    out.destroy(e as Error);
  });
  return out;
}

/** Entries in mountinfo escape space, tab, newline and backslash as \ooo. */
async function mountPoints(): Promise<Set<string>> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const set = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) set.add(field.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return set;
}

/** A layer extracted and hashed but not yet in place: see Snapshotter.prepareLayer. */
export interface PreparedLayer {
  diffId: string;
  size: number;
  tarSize: number;
  commit(chainId: string): Promise<LayerInfo>;
  discard(): Promise<void>;
}

export class Snapshotter {
  readonly #root: string;
  readonly #layers: string;
  readonly #links: string;
  readonly #containers: string;
  readonly #empty: string;

  constructor(root: string) {
    this.#root = path.join(root, 'snapshots');
    this.#layers = path.join(this.#root, 'layers');
    this.#links = path.join(this.#root, 'l');
    this.#containers = path.join(this.#root, 'containers');
    this.#empty = path.join(this.#root, 'empty');
  }

  /** Creates the directories and removes half-applied layers left by a crash. */
  async init(): Promise<void> {
    for (const dir of [this.#layers, this.#links, this.#containers, this.#empty]) await fs.mkdir(dir, { recursive: true });
    for (const name of await fs.readdir(this.#layers)) {
      const dir = path.join(this.#layers, name);
      if (name.startsWith('.tmp-') || name.startsWith('.del-')) await fs.rm(dir, { recursive: true, force: true });
      else if (!(await readJsonIfExists<LayerInfo>(path.join(dir, 'meta.json')))) await fs.rm(dir, { recursive: true, force: true });
    }
    for (const name of await fs.readdir(this.#links)) {
      const link = path.join(this.#links, name);
      try {
        await fs.stat(link);
      } catch {
        await fs.rm(link, { force: true }); // dangling: its layer is gone
      }
    }
  }

  async hasLayer(chainId: string): Promise<boolean> {
    try {
      await fs.access(path.join(this.#layers, hexOf(chainId, 'chain ID'), 'meta.json'));
      return true;
    } catch {
      return false;
    }
  }

  layerPath(chainId: string): string {
    return path.join(this.#layers, hexOf(chainId, 'chain ID'), 'fs');
  }

  async layerInfo(chainId: string): Promise<LayerInfo> {
    const info = await readJsonIfExists<LayerInfo>(path.join(this.#layers, hexOf(chainId, 'chain ID'), 'meta.json'));
    if (!info) throw new BaleiaError('NotFound', `No such layer: ${chainId}`);
    return info;
  }

  async listLayers(): Promise<string[]> {
    const names = await fs.readdir(this.#layers);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /**
   * Extracts an uncompressed layer tar as the layer `chainId`. Atomic: on any error nothing of
   * the layer remains. If the layer already exists (or appears meanwhile from a concurrent
   * apply), the tar is still read to compute its diffID and the existing layer is kept.
   */
  async applyLayer(
    chainId: string,
    tar: NodeJS.ReadableStream | AsyncIterable<Buffer>,
    opts: { signal?: AbortSignal; expectedDiffId?: string; beforeCommit?: () => Promise<void> } = {},
  ): Promise<LayerInfo> {
    const hex = hexOf(chainId, 'chain ID');
    const target = path.join(this.#layers, hex);
    // Hashed (on a worker thread) as the extraction reads it: no extra stream stage.
    const hash = new Sha256();
    let tarSize = 0;
    const source = tar as AsyncIterable<Buffer | string>;
    const hashed = (async function* () {
      for await (const c of source) {
        const chunk = typeof c === 'string' ? Buffer.from(c) : c;
        hash.update(chunk);
        tarSize += chunk.length;
        await hash.ready();
        yield chunk;
      }
    })();
    const stop = () => {
      hash.dispose();
      void hashed.return(undefined).catch(() => {});
      (tar as Readable).destroy?.();
    };
    const checkDiff = (diffId: string) => {
      if (opts.expectedDiffId && opts.expectedDiffId !== diffId) {
        throw invalidArgument(`Cannot apply layer "${chainId}": diff ID mismatch, expected "${opts.expectedDiffId}", got "${diffId}"`);
      }
    };

    if (await this.hasLayer(chainId)) {
      try {
        for await (const _ of hashed) if (opts.signal?.aborted) throw cancelled(chainId);
      } catch (err) {
        stop();
        throw err;
      }
      const diffId = await hash.digest();
      checkDiff(diffId);
      await opts.beforeCommit?.();
      return { ...(await this.layerInfo(chainId)), diffId };
    }

    const tmp = path.join(this.#layers, `.tmp-${randomBytes(8).toString('hex')}`);
    const fsDir = path.join(tmp, 'fs');
    await fs.mkdir(fsDir, { recursive: true, mode: 0o755 });
    const sys = new Sys();
    try {
      const size = await extract(fsDir, hashed, sys, opts.signal);
      const diffId = await hash.digest();
      checkDiff(diffId);
      // The caller's last word (a pull: the compressed blob matched its digest) before the layer exists.
      await opts.beforeCommit?.();
      const info: LayerInfo = { chainId: `sha256:${hex}`, diffId, size, tarSize };
      await writeJsonAtomic(path.join(tmp, 'meta.json'), info); // fsyncs tmp/ too
      try {
        await fs.rename(tmp, target);
      } catch (err) {
        // A concurrent apply won the race: its layer is the same content.
        if (errnoCode(err) === 'ENOTEMPTY' || errnoCode(err) === 'EEXIST') {
          await fs.rm(tmp, { recursive: true, force: true });
          return { ...(await this.layerInfo(chainId)), diffId };
        }
        throw err;
      }
      await syncDir(this.#layers);
      return info;
    } catch (err) {
      stop();
      await fs.rm(tmp, { recursive: true, force: true });
      if (opts.signal?.aborted && !(err instanceof BaleiaError && err.kind === 'Cancelled')) throw cancelled(chainId, err);
      throw err;
    } finally {
      await sys.close();
    }
  }

  /**
   * Extracts a layer tar before its chain ID is known (`docker load` reads a layer before the
   * manifest that places it): the result is invisible until `commit(chainId)` renames it into
   * place, and `discard()` removes it. A crash leaves a `.tmp-` directory that init() removes.
   */
  async prepareLayer(tar: AsyncIterable<Buffer>, opts: { signal?: AbortSignal; diffId?: Promise<string> } = {}): Promise<PreparedLayer> {
    // `diffId`: the caller hashes these very bytes already (an uncompressed member staged as a
    // blob: its digest is its diff ID), so they are not hashed twice.
    const hash = opts.diffId ? undefined : new Sha256();
    let tarSize = 0;
    const hashed = (async function* () {
      for await (const chunk of tar) {
        tarSize += chunk.length;
        if (hash) {
          hash.update(chunk);
          await hash.ready();
        }
        yield chunk;
      }
    })();
    const tmp = path.join(this.#layers, `.tmp-${randomBytes(8).toString('hex')}`);
    const fsDir = path.join(tmp, 'fs');
    await fs.mkdir(fsDir, { recursive: true, mode: 0o755 });
    const sys = new Sys();
    let size: number;
    let diffId: string;
    try {
      size = await extract(fsDir, hashed, sys, opts.signal);
      diffId = hash ? await hash.digest() : await opts.diffId!;
    } catch (err) {
      hash?.dispose();
      void hashed.return(undefined).catch(() => {});
      await fs.rm(tmp, { recursive: true, force: true });
      throw err;
    } finally {
      await sys.close();
    }
    let done = false;
    return {
      diffId,
      size,
      tarSize,
      commit: async (chainId: string) => {
        if (done) throw internal('Cannot commit a prepared layer twice');
        done = true;
        const hex = hexOf(chainId, 'chain ID');
        const info: LayerInfo = { chainId: `sha256:${hex}`, diffId, size, tarSize };
        try {
          await writeJsonAtomic(path.join(tmp, 'meta.json'), info);
          await fs.rename(tmp, path.join(this.#layers, hex));
        } catch (err) {
          await fs.rm(tmp, { recursive: true, force: true });
          // The layer exists already (an earlier image, a concurrent apply): same content.
          if (errnoCode(err) === 'ENOTEMPTY' || errnoCode(err) === 'EEXIST') return { ...(await this.layerInfo(chainId)), diffId };
          throw err;
        }
        await syncDir(this.#layers);
        return info;
      },
      discard: async () => {
        if (done) return;
        done = true;
        await fs.rm(tmp, { recursive: true, force: true });
      },
    };
  }

  /** Removes a layer; a missing layer is not an error. The caller checks that no image uses it. */
  async removeLayer(chainId: string): Promise<void> {
    const hex = hexOf(chainId, 'chain ID');
    const dir = path.join(this.#layers, hex);
    const doomed = path.join(this.#layers, `.del-${hex}-${randomBytes(4).toString('hex')}`);
    await fs.rm(path.join(this.#links, hex.slice(0, 16)), { force: true });
    try {
      await fs.rename(dir, doomed); // disappears at once; the slow delete cannot leave half a layer
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    await fs.rm(doomed, { recursive: true, force: true });
  }

  containerUpperPath(id: string): string {
    return path.join(this.#containerDir(id), 'upper');
  }

  containerMergedPath(id: string): string {
    return path.join(this.#containerDir(id), 'merged');
  }

  /**
   * Mounts overlay(lowers bottom→top, upper) at containers/<id>/merged and returns that path.
   * Already mounted → the path. lowerdir/upperdir/workdir are given relative to the snapshots
   * dir (mount runs there) so the option string stays within one page.
   */
  async mountContainer(id: string, lowerChainIds: string[], opts: { readonly?: boolean; signal?: AbortSignal } = {}): Promise<string> {
    const dir = this.#containerDir(id);
    const merged = path.join(dir, 'merged');
    if ((await mountPoints()).has(merged)) return merged;
    const lowers: string[] = [];
    for (const chainId of lowerChainIds) {
      if (!(await this.hasLayer(chainId))) throw new BaleiaError('NotFound', `Cannot mount container "${id}": no such layer "${chainId}"`);
      lowers.push(`l/${await this.#ensureLink(chainId)}`);
    }
    // overlay lists the uppermost lower first
    lowers.reverse();
    if (lowers.length === 0) lowers.push('empty');
    for (const sub of ['upper', 'work', 'merged']) await fs.mkdir(path.join(dir, sub), { recursive: true, mode: 0o755 });
    const rel = path.relative(this.#root, dir);
    const options = [`lowerdir=${lowers.join(':')}`, `upperdir=${rel}/upper`, `workdir=${rel}/work`];
    if (opts.readonly) options.unshift('ro');
    const optionString = options.join(',');
    if (optionString.length > 4000) {
      throw invalidArgument(`Cannot mount container "${id}": ${lowerChainIds.length} layers exceed the overlay mount option limit`);
    }
    const tryMount = (extra: string[]) =>
      run('mount', ['-t', 'overlay', 'overlay', '-o', [...extra, optionString].join(','), merged], { cwd: this.#root, signal: opts.signal });
    try {
      // index=off: the same lower is shared by many mounts with different uppers (Docker does the same)
      await tryMount(['index=off']);
    } catch {
      try {
        await tryMount([]);
      } catch (err) {
        throw new BaleiaError('Internal', `Cannot mount container "${id}": overlay mount failed`, { cause: err });
      }
    }
    return merged;
  }

  /** Unmounts the container rootfs; not mounted is fine. A busy mount is detached lazily. */
  async unmountContainer(id: string): Promise<void> {
    const merged = path.join(this.#containerDir(id), 'merged');
    for (let i = 0; i < 8 && (await mountPoints()).has(merged); i++) {
      const r = await run('umount', [merged], { allowFailure: true });
      if (r.code !== 0 && (await mountPoints()).has(merged)) {
        await run('umount', ['-l', merged], { allowFailure: true });
      }
    }
    if ((await mountPoints()).has(merged)) throw internal(`Cannot unmount container "${id}": ${merged} is still mounted`);
  }

  async removeContainer(id: string): Promise<void> {
    await this.unmountContainer(id);
    const dir = this.#containerDir(id);
    const doomed = path.join(this.#containers, `.del-${id}-${randomBytes(4).toString('hex')}`);
    try {
      await fs.rename(dir, doomed);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    await fs.rm(doomed, { recursive: true, force: true });
  }

  /** Bytes of the files under a dir (apparent sizes, each hardlinked inode once; dirs not counted). */
  async diskUsage(dir: string): Promise<number> {
    const seen = new Set<string>();
    let total = 0;
    const walk = async (p: string): Promise<void> => {
      let entries: string[];
      try {
        entries = await fs.readdir(p);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return;
        throw err;
      }
      for (const name of entries) {
        const child = path.join(p, name);
        let st: Stats;
        try {
          st = await fs.lstat(child);
        } catch {
          continue;
        }
        if (st.isDirectory()) {
          await walk(child);
          continue;
        }
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1) {
          if (seen.has(key)) continue;
          seen.add(key);
        }
        total += st.size;
      }
    };
    await walk(dir);
    return total;
  }

  #containerDir(id: string): string {
    if (!containerIdPattern.test(id)) throw invalidArgument(`Cannot use container ID "${id}": invalid characters`);
    return path.join(this.#containers, id);
  }

  async #ensureLink(chainId: string): Promise<string> {
    const hex = hexOf(chainId, 'chain ID');
    const short = hex.slice(0, 16);
    const link = path.join(this.#links, short);
    const want = `../layers/${hex}/fs`;
    try {
      const have = await fs.readlink(link);
      if (have === want) return short;
      throw internal(`Cannot link layer "${chainId}": short name "${short}" already names another layer`);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    const tmp = path.join(this.#links, `.tmp-${randomBytes(6).toString('hex')}`);
    await fs.symlink(want, tmp);
    await fs.rename(tmp, link);
    return short;
  }
}

const cancelled = (chainId: string, cause?: unknown) =>
  new BaleiaError('Cancelled', `Cannot apply layer "${chainId}": cancelled`, { cause });

// ---------------------------------------------------------------------------------------------
// Extraction

const whiteoutPrefix = '.wh.';
const opaqueMarker = '.wh..wh..opq';

/** Splits a tar entry name into safe components, or refuses it. Leading `/` and `.` are dropped. */
function safeComponents(name: string, what: string): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw invalidArgument(`Cannot apply layer: ${what} "${name}" escapes the layer (contains "..")`);
  }
  if (parts.some((p) => p.includes('\0'))) throw invalidArgument(`Cannot apply layer: ${what} "${name}" contains a NUL byte`);
  return parts;
}

/**
 * Walks the parent components of `parts` inside `root`, creating missing dirs, refusing a
 * component that is a symlink (it could point anywhere) or not a directory.
 */
async function ensureParents(root: string, parts: string[], entryName: string, verified: Set<string>): Promise<void> {
  let cur = root;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = path.join(cur, parts[i]!);
    if (verified.has(cur)) continue;
    let st: Stats | undefined;
    try {
      st = await fs.lstat(cur);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    if (!st) {
      await fs.mkdir(cur, { mode: 0o755 });
    } else if (st.isSymbolicLink()) {
      throw invalidArgument(`Cannot apply layer: entry "${entryName}" lies under the symlink "${parts.slice(0, i + 1).join('/')}"`);
    } else if (!st.isDirectory()) {
      throw invalidArgument(`Cannot apply layer: entry "${entryName}" lies under "${parts.slice(0, i + 1).join('/')}", which is not a directory`);
    }
    verified.add(cur);
  }
}

/** Removes whatever is at p (unless it is a dir and keepDir), and forgets verified dirs under it. */
async function clear(p: string, keepDir: boolean, verified: Set<string>): Promise<void> {
  let st: Stats;
  try {
    st = await fs.lstat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  if (st.isDirectory()) {
    if (keepDir) return;
    for (const v of verified) if (v === p || v.startsWith(p + '/')) verified.delete(v);
  }
  await fs.rm(p, { recursive: true, force: true });
}

async function extract(root: string, tar: AsyncIterable<Buffer>, sys: Sys, signal?: AbortSignal): Promise<number> {
  let size = 0;
  const verified = new Set<string>();
  const dirTimes = new Map<string, number>();
  // A new inode gets our uid/gid, or the gid of a setgid parent: chown only when that differs
  // from the entry's owner (one syscall less per entry for the usual root:root layer).
  const self = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const setgidDirs = new Set<string>();
  const underSetgid = (dir: string) => setgidDirs.size > 0 && [...setgidDirs].some((d) => dir === d || dir.startsWith(d + '/'));
  const needsChown = (header: TarHeader, parent: string) => header.uid !== self.uid || header.gid !== self.gid || underSetgid(parent);
  const noteSetgid = (dir: string, header: TarHeader) => {
    if (header.mode & 0o2000) setgidDirs.add(dir);
    else setgidDirs.delete(dir);
  };
  // Create first and look only when the name is taken (a later entry replacing an earlier one).
  const create = async <T>(p: string, make: () => Promise<T>): Promise<T> => {
    try {
      return await make();
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      await clear(p, false, verified);
      return make();
    }
  };
  for await (const { header, body } of readTar(tar)) {
    if (signal?.aborted) throw new BaleiaError('Cancelled', 'Cannot apply layer: cancelled');
    const parts = safeComponents(header.name, 'entry');
    if (parts.length === 0) {
      // the layer root itself ("./"): only its metadata applies
      if (header.type !== 'directory') throw invalidArgument(`Cannot apply layer: entry "${header.name}" replaces the layer root`);
      await applyMeta(root, header, sys, true);
      noteSetgid(root, header);
      dirTimes.set(root, header.mtime);
      continue;
    }
    const base = parts[parts.length - 1]!;
    // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) carries nothing for overlay.
    if (parts.some((p) => p.startsWith('.wh..wh.') && p !== opaqueMarker)) continue;
    await ensureParents(root, parts, header.name, verified);
    const parent = path.join(root, ...parts.slice(0, -1));

    if (base === opaqueMarker) {
      await sys.setxattr(parent, 'trusted.overlay.opaque', Buffer.from('y'));
      continue;
    }
    if (base.startsWith(whiteoutPrefix)) {
      const hidden = base.slice(whiteoutPrefix.length);
      if (hidden === '' || hidden === '.' || hidden === '..') {
        throw invalidArgument(`Cannot apply layer: whiteout "${header.name}" names no file`);
      }
      const p = path.join(parent, hidden);
      await clear(p, false, verified);
      await sys.mknod(p, { type: 'char', mode: 0, major: 0, minor: 0 });
      await fs.lchown(p, header.uid, header.gid);
      continue;
    }

    const p = path.join(root, ...parts);
    const t = header.mtime;
    switch (header.type) {
      case 'directory': {
        let fresh = true;
        try {
          await fs.mkdir(p, { mode: 0o755 });
        } catch (err) {
          if (errnoCode(err) !== 'EEXIST') throw err;
          await clear(p, true, verified); // a directory stays (merged, with its owner); anything else goes
          fresh = await fs.mkdir(p, { mode: 0o755 }).then(
            () => true,
            (e: unknown) => {
              if (errnoCode(e) !== 'EEXIST') throw e;
              return false;
            },
          );
        }
        verified.add(p);
        await applyMeta(p, header, sys, !fresh || needsChown(header, parent));
        noteSetgid(p, header);
        dirTimes.set(p, t);
        continue;
      }
      case 'file': {
        // O_EXCL: an existing name (a symlink included) is never followed, only replaced.
        const handle = await create(p, () => fs.open(p, 'wx', 0o600));
        try {
          await writeBody(handle, body);
          // Through the open file: owner, then mode (chown clears setuid/setgid), xattrs, times.
          if (needsChown(header, parent)) await handle.chown(header.uid, header.gid);
          await handle.chmod(header.mode & 0o7777);
          await setXattrs(p, header, sys);
          await handle.utimes(t, t);
        } finally {
          await handle.close();
        }
        size += header.size;
        continue;
      }
      case 'symlink': {
        await create(p, () => fs.symlink(header.linkname, p));
        if (needsChown(header, parent)) await fs.lchown(p, header.uid, header.gid);
        await setXattrs(p, header, sys);
        await fs.lutimes(p, t, t);
        continue;
      }
      case 'link': {
        const targetParts = safeComponents(header.linkname, 'hardlink target');
        if (targetParts.length === 0) throw invalidArgument(`Cannot apply layer: hardlink "${header.name}" points at the layer root`);
        await ensureParents(root, targetParts, header.name, verified);
        const target = path.join(root, ...targetParts);
        let st: Stats;
        try {
          st = await fs.lstat(target);
        } catch (err) {
          throw invalidArgument(`Cannot apply layer: hardlink "${header.name}" points at "${header.linkname}", which is not in the layer`, { cause: err });
        }
        if (st.isDirectory()) throw invalidArgument(`Cannot apply layer: hardlink "${header.name}" points at the directory "${header.linkname}"`);
        if (target === p) continue;
        await create(p, () => fs.link(target, p));
        continue; // the link shares the target's inode and metadata
      }
      case 'char':
      case 'block': {
        await clear(p, false, verified);
        await sys.mknod(p, { type: header.type, mode: header.mode, major: header.devmajor, minor: header.devminor });
        break;
      }
      case 'fifo': {
        await clear(p, false, verified);
        await sys.mkfifo(p, header.mode);
        break;
      }
      default:
        continue; // unknown entry kinds (volume labels, …) are skipped as Docker does
    }
    await applyMeta(p, header, sys, true);
    await fs.lutimes(p, t, t);
  }
  // Directory times last, deepest first: creating children changed them.
  const dirs = [...dirTimes.keys()].sort((a, b) => b.length - a.length);
  for (const d of dirs) {
    const t = dirTimes.get(d)!;
    await fs.utimes(d, t, t);
  }
  return size;
}

/** A file's data gathered into writes of about this size (one thread-pool round trip each). */
const fileWriteBatch = 1 << 20;

/** Writes a tar entry's body into `handle`, in batches (writev) rather than chunk by chunk. */
async function writeBody(handle: FileHandle, body: AsyncIterable<Buffer>): Promise<void> {
  let batch: Buffer[] = [];
  let bytes = 0;
  const flush = async () => {
    let rest = batch;
    batch = [];
    bytes = 0;
    while (rest.length > 0) {
      const { bytesWritten } = await handle.writev(rest);
      let n = bytesWritten;
      while (rest.length > 0 && n >= rest[0]!.length) n -= rest.shift()!.length;
      if (n > 0) rest[0] = rest[0]!.subarray(n);
    }
  };
  for await (const chunk of body) {
    batch.push(chunk);
    bytes += chunk.length;
    if (bytes >= fileWriteBatch) await flush();
  }
  await flush();
}

/** Ownership (when `chown`), then mode (chown clears setuid/setgid), then xattrs. */
async function applyMeta(p: string, header: TarHeader, sys: Sys, chown: boolean): Promise<void> {
  if (chown) await fs.lchown(p, header.uid, header.gid);
  if (header.type !== 'symlink') await fs.chmod(p, header.mode & 0o7777);
  await setXattrs(p, header, sys);
}

async function setXattrs(p: string, header: TarHeader, sys: Sys): Promise<void> {
  for (const [name, value] of header.xattrs) {
    try {
      await sys.setxattr(p, name, value);
    } catch (err) {
      // Docker ignores xattrs the filesystem cannot hold; everything else is an error.
      if (errnoCode(err) === 'ENOTSUP' || errnoCode(err) === 'EOPNOTSUPP') continue;
      throw invalidArgument(`Cannot apply layer: cannot set xattr "${name}" on "${header.name}"`, { cause: err });
    }
  }
}
