/**
 * The registry's store: repositories as directories of links over one ContentStore, resumable
 * uploads, tags, the referrers index and garbage collection. Blob bytes live only in content/,
 * verified before they are visible; a repository holds links (what it may serve), never bytes.
 * See index.ts for the on-disk tree.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { constants as fsConstants, createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { ContentStore, sha256Digest } from '../content/index.js';
import { describeError, errnoCode, isKind, readJsonIfExists, silentLogger, syncDir, writeFileAtomic, writeJsonAtomic, type Logger } from '../lib/index.js';
import { registryError } from './errors.js';
import { UploadHasher } from './hasher.js';
import { SlabPool } from './slabs.js';
import { checkDigest, isSupportedDigest, isTag, type Reference } from './names.js';
import { maxManifestSize, parseManifest, referrerDescriptor, requiredBlobs, type Descriptor } from './manifests.js';

export interface UploadState {
  id: string;
  name: string;
  startedAt: string;
  /** Bytes received, written and acknowledged; the data file is cut back to this after a crash. */
  offset: number;
}

/** Read size when an upload has to be hashed from its file (after a restart). */
const hashReadBytes = 1024 * 1024;

export interface StoredManifest {
  digest: string;
  mediaType: string;
  size: number;
  body: Buffer;
}

interface RevisionRecord {
  mediaType: string;
  size: number;
  subject?: string;
}

export interface GcOptions {
  /** Unreferenced blobs younger than this (blob or newest link mtime) are kept. */
  gracePeriodMs: number;
  /** Uploads idle for longer than this are purged. */
  uploadTtlMs?: number;
  dryRun?: boolean;
  now?: number;
}

export interface GcReport {
  marked: number;
  deleted: string[];
  bytesFreed: number;
  uploadsPurged: number;
}

const hexName = /^[0-9a-f]{64}$/;

/**
 * Readers (pushes that link blobs or store manifests) share the lock; garbage collection holds it
 * alone between mark and sweep, so nothing becomes referenced behind the marker's back.
 */
class GcLock {
  #readers = 0;
  #writer: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#writer) await this.#writer;
    this.#readers++;
    try {
      return await fn();
    } finally {
      if (--this.#readers === 0) this.#drained?.();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#writer) await this.#writer;
    let done!: () => void;
    this.#writer = new Promise<void>((resolve) => (done = resolve));
    try {
      if (this.#readers > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
      this.#drained = undefined;
      return await fn();
    } finally {
      this.#writer = undefined;
      done();
    }
  }
}

/** One operation at a time per key (an upload's PATCHes and PUT arrive on separate connections). */
class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => {});
    this.#tails.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/** A map that forgets its least recently used entries past `maxEntries` or `maxBytes`. */
class Lru<V> {
  readonly #map = new Map<string, { value: V; bytes: number }>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(options: { maxEntries: number; maxBytes?: number }) {
    this.#maxEntries = options.maxEntries;
    this.#maxBytes = options.maxBytes ?? Infinity;
  }

  get(key: string): V | undefined {
    const entry = this.#map.get(key);
    if (!entry) return undefined;
    this.#map.delete(key);
    this.#map.set(key, entry);
    return entry.value;
  }

  set(key: string, value: V, bytes = 0): void {
    if (bytes > this.#maxBytes) return;
    this.delete(key);
    this.#map.set(key, { value, bytes });
    this.#bytes += bytes;
    for (const [oldest, entry] of this.#map) {
      if (this.#map.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.#map.delete(oldest);
      this.#bytes -= entry.bytes;
    }
  }

  delete(key: string): void {
    const entry = this.#map.get(key);
    if (!entry) return;
    this.#map.delete(key);
    this.#bytes -= entry.bytes;
  }

  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
  }
}

async function readTextIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
    throw err;
  }
}

async function mtimeIfExists(file: string): Promise<number | undefined> {
  try {
    return (await fs.stat(file)).mtimeMs;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** `sha256:<hex>` of the first `size` bytes of a file (fewer if it is shorter). */
async function hashFile(file: string, size: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  if (size > 0) {
    try {
      for await (const chunk of createReadStream(file, { signal, end: size - 1, highWaterMark: hashReadBytes })) hash.update(chunk as Buffer);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }
  return `sha256:${hash.digest('hex')}`;
}

async function removeIfExists(file: string): Promise<boolean> {
  try {
    await fs.unlink(file);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

const hexOf = (digest: string) => digest.slice('sha256:'.length);
/** Key of a digest within a repository. */
const repoDigestKey = (name: string, digest: string) => `${name}@${digest}`;

/**
 * Replaces an upload's state file atomically (temp file + rename) but without fsync: upload
 * state is scratch that is never served. A killed process keeps it (the page cache survives);
 * after a power loss it may be missing, older or empty, and init() drops or cuts back what no
 * longer adds up. Blobs, links, manifests and tags are still fsynced before they are relied on.
 */
async function writeScratchJson(file: string, value: unknown): Promise<void> {
  const tmp = path.join(path.dirname(file), `.tmp-${path.basename(file)}-${randomBytes(6).toString('hex')}`);
  try {
    await fs.writeFile(tmp, JSON.stringify(value) + '\n', { mode: 0o644 });
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** Writes `length` bytes of `buffer` at `position` (pwrite may write less, e.g. near a full disk). */
async function writeAll(handle: fs.FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesWritten } = await handle.write(buffer, done, length - done, position + done);
    if (bytesWritten === 0) throw new Error(`Cannot write upload data at offset ${position + done}: no bytes written`);
    done += bytesWritten;
  }
}

export class RegistryStore {
  readonly content: ContentStore;
  readonly #root: string;
  readonly #repos: string;
  readonly #uploads: string;
  readonly #logger: Logger;
  readonly #gcLock = new GcLock();
  readonly #uploadLocks = new KeyedMutex();
  readonly #commitLocks = new KeyedMutex();
  /** State of the uploads this process started or touched (it is their only writer). */
  readonly #states = new Map<string, UploadState>();
  /** Uploads completed whose files are still being removed. */
  readonly #finished = new Set<string>();
  /** Work that goes on after its request was answered (upload directories, removals). */
  readonly #background = new Set<Promise<void>>();
  /**
   * What pulls read first, kept in memory like distribution's blob descriptor cache: tag →
   * digest and revision records per repository, manifest bodies by digest. This process is the
   * root's only writer: its manifest and tag changes update the caches under the repository's
   * lock (#manifestLocks) right after the disk, and bump #manifestEpoch; a read from disk is
   * kept only if no such change happened while it was reading.
   */
  readonly #manifestLocks = new KeyedMutex();
  readonly #tagCache = new Lru<string>({ maxEntries: 10_000 });
  readonly #revisionCache = new Lru<RevisionRecord>({ maxEntries: 10_000 });
  readonly #bodyCache = new Lru<Buffer>({ maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 });
  #manifestEpoch = 0;
  readonly #hasher = new UploadHasher();
  /**
   * Buffers for upload batches (socket chunks are gathered into 1 MiB writes: one write per
   * 16–64 KiB chunk costs the event loop more than the copy) and for blob GETs.
   */
  readonly slabs = new SlabPool();

  constructor(root: string, options: { logger?: Logger } = {}) {
    this.#root = root;
    this.content = new ContentStore(root);
    this.#repos = path.join(root, 'repositories');
    this.#uploads = path.join(root, 'uploads');
    this.#logger = options.logger ?? silentLogger;
  }

  get root(): string {
    return this.#root;
  }

  /** Creates the tree; drops what a crash left half-made (ingests, temp files, uploads without state). */
  async init(): Promise<void> {
    await this.content.init();
    await fs.mkdir(this.#repos, { recursive: true });
    await fs.mkdir(this.#uploads, { recursive: true });
    for (const id of await fs.readdir(this.#uploads)) {
      const dir = path.join(this.#uploads, id);
      const state = await readJsonIfExists<UploadState>(path.join(dir, 'state.json')).catch(() => undefined);
      // No data file yet: nothing written (it is made by the first chunk).
      const size = await fs.stat(path.join(dir, 'data')).then((s) => s.size, () => 0);
      // Data shorter than the acknowledged offset: acknowledged bytes were lost (power cut, since
      // uploads are not fsynced); the client has to start that upload again.
      if (!state || typeof state.offset !== 'number' || size < state.offset) {
        await fs.rm(dir, { recursive: true, force: true });
        continue;
      }
      for (const name of await fs.readdir(dir)) {
        if (name.startsWith('.tmp-')) await fs.rm(path.join(dir, name), { force: true });
      }
      // Bytes past the acknowledged offset belong to a chunk that never completed.
      if (size > state.offset) await fs.truncate(path.join(dir, 'data'), state.offset);
    }
  }

  #repo(name: string): string {
    return path.join(this.#repos, ...name.split('/'));
  }
  #layerLink(name: string, digest: string): string {
    return path.join(this.#repo(name), '_layers', 'sha256', hexOf(digest));
  }
  #revision(name: string, digest: string): string {
    return path.join(this.#repo(name), '_manifests', 'revisions', 'sha256', hexOf(digest));
  }
  #tagsDir(name: string): string {
    return path.join(this.#repo(name), '_manifests', 'tags');
  }
  #referrersDir(name: string, subject: string): string {
    return path.join(this.#repo(name), '_referrers', 'sha256', hexOf(subject));
  }
  #uploadDir(id: string): string {
    return path.join(this.#uploads, id);
  }

  // ---- repositories ----

  async repositoryExists(name: string): Promise<boolean> {
    const dir = this.#repo(name);
    return (await mtimeIfExists(path.join(dir, '_manifests'))) !== undefined || (await mtimeIfExists(path.join(dir, '_layers'))) !== undefined;
  }

  /** Every repository, in lexical order. */
  async listRepositories(): Promise<string[]> {
    const found: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      const entries = await readdirIfExists(dir);
      if (prefix && (entries.includes('_manifests') || entries.includes('_layers'))) found.push(prefix);
      for (const entry of entries) {
        if (entry.startsWith('_') || entry.startsWith('.')) continue;
        await walk(path.join(dir, entry), prefix ? `${prefix}/${entry}` : entry);
      }
    };
    await walk(this.#repos, '');
    return found.sort();
  }

  // ---- blobs ----

  /** The blob's size when `name` may serve it (a layer link or a manifest revision), else BLOB_UNKNOWN. */
  async blobSize(name: string, digest: string): Promise<number> {
    await this.#checkLinked(name, digest);
    try {
      return await this.content.size(digest);
    } catch (err) {
      if (!isKind(err, 'NotFound')) throw err;
    }
    throw registryError('BLOB_UNKNOWN', { detail: { digest } });
  }

  /** The blob opened for reading, with its size, when `name` may serve it; else BLOB_UNKNOWN. */
  async openBlob(name: string, digest: string): Promise<{ handle: fs.FileHandle; size: number }> {
    await this.#checkLinked(name, digest);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.content.path(digest), 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw registryError('BLOB_UNKNOWN', { detail: { digest } });
      throw err;
    }
    try {
      return { handle, size: (await handle.stat()).size };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async #checkLinked(name: string, digest: string): Promise<void> {
    // Both at once: a client asks about blobs it does not know to be there (HEAD before upload).
    const [layer, revision] = await Promise.all([mtimeIfExists(this.#layerLink(name, digest)), mtimeIfExists(this.#revision(name, digest))]);
    if (layer === undefined && revision === undefined) throw registryError('BLOB_UNKNOWN', { detail: { digest } });
  }

  /**
   * Refreshes a layer link's mtime: a client that saw the blob (HEAD) will refer to it soon, so
   * garbage collection's grace period counts from now.
   */
  async touchBlob(name: string, digest: string): Promise<void> {
    const now = new Date();
    await fs.utimes(this.#layerLink(name, digest), now, now).catch(() => {});
  }

  /**
   * Links a blob (already durable in content/) into a repository. Only the link's existence
   * counts, never its bytes, so it is written in place and not fsynced: putManifest syncs the
   * repository's link directory once before it stores a revision that relies on its links.
   * Until then a link lost to a power cut costs the client an upload again, nothing else.
   */
  async #link(name: string, digest: string): Promise<void> {
    const file = this.#layerLink(name, digest);
    try {
      await fs.writeFile(file, digest);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, digest);
    }
  }

  /** Links an existing blob of `from` into `name`; false when `from` cannot serve it. */
  async mountBlob(name: string, from: string, digest: string): Promise<boolean> {
    return this.#gcLock.shared(async () => {
      try {
        await this.blobSize(from, digest);
      } catch (err) {
        if (isKind(err, 'NotFound')) return false;
        throw err;
      }
      await this.#link(name, digest);
      return true;
    });
  }

  /** Removes the blob from `name` (the bytes go at the next garbage collection). */
  async deleteBlob(name: string, digest: string): Promise<void> {
    if (!(await removeIfExists(this.#layerLink(name, digest)))) throw registryError('BLOB_UNKNOWN', { detail: { digest } });
  }

  /** A blob pushed in one request (`POST ?digest=`): verified by the content store, then linked. */
  async putBlob(name: string, stream: NodeJS.ReadableStream, digest: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    checkDigest(digest);
    let size: number;
    try {
      ({ size } = await this.content.ingest(stream, { expected: digest, signal: options.signal }));
    } catch (err) {
      if (isKind(err, 'InvalidArgument')) throw registryError('DIGEST_INVALID', { detail: { digest }, cause: err });
      throw err;
    }
    await this.#gcLock.shared(async () => {
      await this.#link(name, digest);
      // Only a grace period shorter than this request could let the collector take the blob.
      if (!(await this.content.has(digest))) throw registryError('BLOB_UPLOAD_INVALID', { message: 'blob was collected before it was linked, push it again' });
    });
    return size;
  }

  // ---- uploads ----

  /**
   * Starts an upload. It is answered from memory: its directory and state file are made right
   * after, under the upload's lock, so a request that continues it waits for them (a client
   * needs a round trip before it can). If they cannot be made the upload is forgotten and its
   * next request answers BLOB_UPLOAD_UNKNOWN.
   */
  async startUpload(name: string): Promise<UploadState> {
    const state: UploadState = { id: randomUUID(), name, startedAt: new Date().toISOString(), offset: 0 };
    this.#states.set(state.id, state);
    const dir = this.#uploadDir(state.id);
    const made = this.#uploadLocks
      .run(state.id, async () => {
        try {
          await fs.mkdir(dir, { recursive: true });
          // A fresh directory: no temp file needed, a torn state.json is dropped by init().
          await fs.writeFile(path.join(dir, 'state.json'), JSON.stringify(state) + '\n', { flag: 'wx' });
        } catch (err) {
          this.#states.delete(state.id);
          this.#logger.error('registry upload could not be started', { upload: state.id, error: describeError(err) });
        }
      })
      .finally(() => this.#background.delete(made));
    this.#background.add(made);
    return state;
  }

  /** The upload's state: this process's copy (it is the only writer), else what is on disk. */
  async #state(name: string, id: string): Promise<UploadState> {
    const unknown = () => registryError('BLOB_UPLOAD_UNKNOWN', { detail: { uuid: id } });
    if (!/^[0-9a-f-]{36}$/.test(id) || this.#finished.has(id)) throw unknown();
    let state = this.#states.get(id);
    if (!state) {
      state = await readJsonIfExists<UploadState>(path.join(this.#uploadDir(id), 'state.json'));
      if (state) this.#states.set(id, state);
    }
    if (!state || state.name !== name) throw unknown();
    return state;
  }

  async uploadStatus(name: string, id: string): Promise<UploadState> {
    return this.#state(name, id);
  }

  /**
   * Appends a chunk at the upload's offset. `start` (from Content-Range) must equal the offset:
   * chunks arrive in order or not at all (416). A chunk cut short (client gone, error) is cut
   * back out, so the upload stays at its last acknowledged offset and can be resumed.
   */
  async appendUpload(
    name: string,
    id: string,
    stream: NodeJS.ReadableStream,
    options: { start?: number; length?: number; signal?: AbortSignal } = {},
  ): Promise<UploadState> {
    return this.#uploadLocks.run(id, () => this.#append(name, id, stream, options));
  }

  /**
   * Copies the chunk into 1 MiB slabs, each written to the file and hashed (in the hasher's
   * worker) while the next fills from the socket, so the final PUT need not read the upload
   * again. Nothing is fsynced here: the finished blob is, once, before it becomes visible.
   */
  async #append(
    name: string,
    id: string,
    stream: NodeJS.ReadableStream,
    options: { start?: number; length?: number; signal?: AbortSignal },
  ): Promise<UploadState> {
    const state = await this.#state(name, id);
    if (options.start !== undefined && options.start !== state.offset) {
      throw registryError('RANGE_INVALID', {
        message: `chunk starts at ${options.start}, the upload is at ${state.offset}`,
        detail: { offset: state.offset, start: options.start },
        headers: { Range: rangeHeader(state.offset) },
      });
    }
    // The running hash goes on only from where it stopped; after a restart the PUT hashes the file.
    let hashed = this.#hasher.begin(id, state.offset);
    // Opened with the first full slab: an empty chunk (the usual final PUT) touches no file.
    let handle: fs.FileHandle | undefined;
    let written = 0;
    let inFlight: Promise<void> | undefined;
    let slab = this.slabs.take();
    let filled = 0;
    try {
      // The full slab goes to the file and the hasher at once while the next one fills.
      const flush = async () => {
        await inFlight;
        if (!handle) {
          handle = await fs.open(path.join(this.#uploadDir(id), 'data'), fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
          // What is past the acknowledged offset is a chunk that never completed (crash).
          await handle.truncate(state.offset);
        }
        const full = slab;
        const length = filled;
        const position = state.offset + written;
        slab = this.slabs.take();
        filled = 0;
        written += length;
        inFlight = Promise.all([writeAll(handle, full.buffer, length, position), hashed && this.#hasher.update(id, full, length)])
          .then(([, ok]) => {
            if (!ok) hashed = false;
          })
          .finally(() => this.slabs.give(full));
        inFlight.catch(() => {}); // awaited at the next flush or after the loop
      };
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (options.length !== undefined && written + filled + chunk.length > options.length) {
          throw registryError('SIZE_INVALID', { message: `chunk is longer than its range of ${options.length} bytes` });
        }
        for (let at = 0; at < chunk.length; ) {
          const n = chunk.copy(slab.buffer, filled, at);
          filled += n;
          at += n;
          if (filled === slab.buffer.length) await flush();
        }
      }
      if (filled > 0) await flush();
      await inFlight;
      if (options.length !== undefined && written !== options.length) {
        throw registryError('SIZE_INVALID', { message: `chunk has ${written} bytes, its range says ${options.length}` });
      }
    } catch (err) {
      this.#hasher.abort(id);
      await inFlight?.catch(() => {});
      await handle?.truncate(state.offset).catch(() => {});
      throw err;
    } finally {
      this.slabs.give(slab);
      await handle?.close();
    }
    if (written === 0) {
      this.#hasher.abort(id);
      return state;
    }
    const next = { ...state, offset: state.offset + written };
    try {
      await writeScratchJson(path.join(this.#uploadDir(id), 'state.json'), next);
    } catch (err) {
      this.#hasher.abort(id);
      throw err;
    }
    this.#states.set(id, next);
    if (hashed) this.#hasher.commit(id, next.offset);
    else this.#hasher.drop(id);
    return next;
  }

  /**
   * Completes an upload with an optional last chunk: only data whose sha256 matches `digest`
   * becomes a visible blob; a mismatch answers DIGEST_INVALID and ends the upload, as
   * docker/distribution does. The digest comes from the hash kept while the chunks arrived
   * (the file is read again only after a restart). It resolves once the file is fsynced and
   * renamed into content/ (unless the same blob is already there: a concurrent push of it won)
   * and linked into `name`.
   */
  async finishUpload(
    name: string,
    id: string,
    digest: string,
    last?: { stream: NodeJS.ReadableStream; start?: number; length?: number; signal?: AbortSignal },
  ): Promise<{ digest: string; size: number }> {
    return this.#uploadLocks.run(id, async () => {
      checkDigest(digest);
      let state = await this.#state(name, id);
      if (last) state = await this.#append(name, id, last.stream, last);
      const data = path.join(this.#uploadDir(id), 'data');
      const actual = (await this.#hasher.digest(id, state.offset)) ?? (await hashFile(data, state.offset, last?.signal));
      if (actual !== digest) {
        await this.#dropUpload(id);
        throw registryError('DIGEST_INVALID', {
          detail: { digest },
          cause: new Error(`Cannot commit upload "${id}": digest mismatch, expected "${digest}", got "${actual}"`),
        });
      }
      // Verified. The 201 goes only once the blob is fsynced, renamed into content/ and linked
      // into `name`, so a blob a client was told is stored survives a crash of this process
      // (and of the machine). A commit that fails before its rename leaves the upload as it
      // was, resumable. Then the upload is over and its files are removed before the answer
      // too: left for later, removing the data of 7 duplicate uploads of each layer (8 clients
      // pushing one image) ran into the pulls that followed (bench: pull 1.13× of
      // distribution's time with it deferred, 1.00× without). A crash in between leaves an
      // upload nobody continues, purged like any idle one.
      await this.#gcLock.shared(async () => {
        await this.#commitBlob(data, digest, state.offset);
        await this.#link(name, digest);
      });
      this.#finished.add(id);
      this.#states.delete(id);
      this.#hasher.drop(id);
      const cleanup = this.#dropUpload(id)
        .catch((err) => this.#logger.warn('registry upload cleanup failed', { upload: id, error: describeError(err) }))
        .finally(() => {
          this.#finished.delete(id);
          this.#background.delete(cleanup);
        });
      this.#background.add(cleanup);
      await cleanup;
      return { digest, size: state.offset };
    });
  }

  /**
   * Moves a verified upload of `size` bytes into content/ (fsync, then rename), one commit per
   * digest at a time; when the blob is already there the upload is left to be dropped.
   */
  async #commitBlob(data: string, digest: string, size: number): Promise<void> {
    await this.#commitLocks.run(digest, async () => {
      if (await this.content.has(digest)) return;
      const handle = await fs.open(data, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
      try {
        const actual = (await handle.stat()).size;
        // Longer: a chunk cut short whose bytes could not be cut back. Shorter: bytes were lost.
        if (actual > size) await handle.truncate(size);
        if (actual < size) throw registryError('BLOB_UPLOAD_INVALID', { message: `upload data has ${actual} bytes, ${size} were acknowledged: push it again` });
        await handle.datasync();
        await handle.chmod(0o444);
      } finally {
        await handle.close();
      }
      const target = this.content.path(digest);
      try {
        await fs.rename(data, target);
      } catch (err) {
        await fs.chmod(data, 0o644).catch(() => {});
        // uploads/ on another filesystem than content/: let the content store copy and check it.
        if (errnoCode(err) !== 'EXDEV') throw err;
        await this.content.ingest(createReadStream(data), { expected: digest });
        return;
      }
      await syncDir(path.dirname(target));
    });
  }

  /** Forgets an upload and removes its directory (data, state, leftovers of a crash). */
  async #dropUpload(id: string): Promise<void> {
    this.#states.delete(id);
    this.#hasher.drop(id);
    const dir = this.#uploadDir(id);
    const unlink = (file: string) => fs.unlink(path.join(dir, file)).catch((err: unknown) => {
      if (errnoCode(err) !== 'ENOENT') throw err;
    });
    try {
      await Promise.all([unlink('data'), unlink('state.json')]);
      await fs.rmdir(dir);
    } catch {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  async cancelUpload(name: string, id: string): Promise<void> {
    await this.#uploadLocks.run(id, async () => {
      await this.#state(name, id);
      await this.#dropUpload(id);
    });
  }

  /** Starts the hash threads ahead of the first uploads (a server calls it; `registry gc` need not). */
  startHashing(): void {
    this.#hasher.start();
  }

  /** Waits for the work still going on after its answer; stops the hash threads. */
  async close(): Promise<void> {
    await Promise.all(this.#background);
    await this.#hasher.close();
  }

  // ---- manifests ----

  async #resolve(name: string, ref: Reference): Promise<string> {
    if (ref.digest !== undefined) return ref.digest;
    const key = `${name}:${ref.tag}`;
    const cached = this.#tagCache.get(key);
    if (cached !== undefined) return cached;
    const epoch = this.#manifestEpoch;
    const text = await readTextIfExists(path.join(this.#tagsDir(name), ref.tag));
    const digest = text?.trim();
    if (!digest || !isSupportedDigest(digest)) throw registryError('MANIFEST_UNKNOWN', { detail: { tag: ref.tag } });
    if (epoch === this.#manifestEpoch) this.#tagCache.set(key, digest);
    return digest;
  }

  async #revisionRecord(name: string, digest: string): Promise<RevisionRecord | undefined> {
    const key = repoDigestKey(name, digest);
    const cached = this.#revisionCache.get(key);
    if (cached) return cached;
    const epoch = this.#manifestEpoch;
    const text = await readTextIfExists(this.#revision(name, digest));
    if (text === undefined) return undefined;
    const record = JSON.parse(text) as RevisionRecord;
    if (epoch === this.#manifestEpoch) this.#revisionCache.set(key, record);
    return record;
  }

  async getManifest(name: string, ref: Reference, options: { body?: boolean } = {}): Promise<StoredManifest> {
    const digest = await this.#resolve(name, ref);
    const record = await this.#revisionRecord(name, digest);
    if (!record) throw registryError('MANIFEST_UNKNOWN', { detail: ref.tag !== undefined ? { tag: ref.tag, digest } : { digest } });
    let body: Buffer = Buffer.alloc(0);
    if (options.body !== false) {
      // By digest, so never stale: the bytes are what their name says.
      const cached = this.#bodyCache.get(digest);
      body = cached ?? (await this.content.read(digest));
      if (!cached) this.#bodyCache.set(digest, body, body.length);
    }
    return { digest, mediaType: record.mediaType, size: record.size, body };
  }

  /**
   * Stores a manifest after checking it: known media type, at most 4 MiB, every referenced
   * blob linked in this repository (or, for an index, every child manifest stored here).
   */
  async putManifest(
    name: string,
    ref: Reference,
    body: Buffer,
    contentType: string | undefined,
  ): Promise<{ digest: string; subject?: string }> {
    if (body.length > maxManifestSize) {
      throw registryError('MANIFEST_INVALID', { status: 413, message: `manifest is larger than ${maxManifestSize} bytes` });
    }
    const digest = sha256Digest(body);
    if (ref.digest !== undefined && ref.digest !== digest) {
      throw registryError('DIGEST_INVALID', { message: `manifest digest is ${digest}, not ${ref.digest}`, detail: { digest: ref.digest } });
    }
    const manifest = parseManifest(body, contentType);
    return this.#gcLock.shared(async () => {
      const unknown: Descriptor[] = [];
      for (const d of requiredBlobs(manifest)) {
        const ok = (await mtimeIfExists(this.#layerLink(name, d.digest))) !== undefined && (await this.content.has(d.digest));
        if (!ok) unknown.push(d);
      }
      for (const d of manifest.manifests) {
        if (!(await this.#revisionRecord(name, d.digest))) unknown.push(d);
      }
      if (unknown.length > 0) {
        throw registryError('MANIFEST_BLOB_UNKNOWN', {
          message: `manifest references ${unknown.length === 1 ? `"${unknown[0]!.digest}"` : `${unknown.length} blobs`} unknown to the repository`,
          detail: { digests: unknown.map((d) => d.digest) },
        });
      }
      // The links this revision relies on were not fsynced one by one (see #link).
      if (requiredBlobs(manifest).length > 0) await syncDir(path.dirname(this.#layerLink(name, digest)));
      await this.content.writeBlob(body, { expected: digest });
      this.#bodyCache.set(digest, body, body.length);
      const record: RevisionRecord = { mediaType: manifest.mediaType, size: body.length };
      if (manifest.subject) record.subject = manifest.subject.digest;
      await this.#manifestLocks.run(name, async () => {
        const revision = this.#revision(name, digest);
        await fs.mkdir(path.dirname(revision), { recursive: true });
        await writeJsonAtomic(revision, record);
        this.#manifestEpoch++;
        this.#revisionCache.set(repoDigestKey(name, digest), record);
        if (manifest.subject) {
          const dir = this.#referrersDir(name, manifest.subject.digest);
          await fs.mkdir(dir, { recursive: true });
          await writeJsonAtomic(path.join(dir, hexOf(digest)), referrerDescriptor(manifest, digest, body.length));
        }
        if (ref.tag !== undefined) {
          await fs.mkdir(this.#tagsDir(name), { recursive: true });
          await writeFileAtomic(path.join(this.#tagsDir(name), ref.tag), digest);
          this.#manifestEpoch++;
          this.#tagCache.set(`${name}:${ref.tag}`, digest);
        }
      });
      return { digest, subject: manifest.subject?.digest };
    });
  }

  /** By tag: removes the tag. By digest: removes the manifest, every tag on it, its referrer entry. */
  async deleteManifest(name: string, ref: Reference): Promise<void> {
    await this.#manifestLocks.run(name, async () => {
      if (ref.tag !== undefined) {
        const removed = await removeIfExists(path.join(this.#tagsDir(name), ref.tag));
        this.#manifestEpoch++;
        this.#tagCache.delete(`${name}:${ref.tag}`);
        if (!removed) throw registryError('MANIFEST_UNKNOWN', { detail: { tag: ref.tag } });
        return;
      }
      const digest = ref.digest;
      const record = await this.#revisionRecord(name, digest);
      if (!record) throw registryError('MANIFEST_UNKNOWN', { detail: { digest } });
      for (const tag of await this.listTags(name)) {
        const target = (await readTextIfExists(path.join(this.#tagsDir(name), tag)))?.trim();
        if (target !== digest) continue;
        await removeIfExists(path.join(this.#tagsDir(name), tag));
        this.#manifestEpoch++;
        this.#tagCache.delete(`${name}:${tag}`);
      }
      if (record.subject) await removeIfExists(path.join(this.#referrersDir(name, record.subject), hexOf(digest)));
      await removeIfExists(this.#revision(name, digest));
      this.#manifestEpoch++;
      this.#revisionCache.delete(repoDigestKey(name, digest));
    });
  }

  /** Tags in lexical order; NAME_UNKNOWN for a repository never pushed to. */
  async listTags(name: string): Promise<string[]> {
    if (!(await this.repositoryExists(name))) throw registryError('NAME_UNKNOWN', { detail: { name } });
    return (await readdirIfExists(this.#tagsDir(name))).filter(isTag).sort();
  }

  /** Descriptors of the manifests whose `subject` is `digest`, optionally of one artifact type. */
  async referrers(name: string, digest: string, options: { artifactType?: string } = {}): Promise<Descriptor[]> {
    const dir = this.#referrersDir(name, digest);
    const out: Descriptor[] = [];
    for (const entry of (await readdirIfExists(dir)).filter((n) => hexName.test(n)).sort()) {
      const d = await readJsonIfExists<Descriptor>(path.join(dir, entry));
      if (!d) continue;
      if (options.artifactType !== undefined && d.artifactType !== options.artifactType) continue;
      out.push(d);
    }
    return out;
  }

  // ---- garbage collection ----

  /**
   * Mark and sweep. Marks every manifest revision of every repository and what it references;
   * sweeps unmarked blobs whose blob file and newest link are older than the grace period (so a
   * blob pushed but not yet referenced by its manifest survives), removing their links too;
   * purges uploads idle longer than `uploadTtlMs`. Pushes wait while it runs.
   */
  async collectGarbage(options: GcOptions): Promise<GcReport> {
    return this.#gcLock.exclusive(async () => {
      const now = options.now ?? Date.now();
      const marked = new Set<string>();
      const links = new Map<string, { newest: number; files: string[] }>();
      for (const name of await this.listRepositories()) {
        const revisions = path.join(this.#repo(name), '_manifests', 'revisions', 'sha256');
        for (const hex of (await readdirIfExists(revisions)).filter((n) => hexName.test(n))) {
          const digest = `sha256:${hex}`;
          marked.add(digest);
          // A manifest that cannot be read stops the collection: sweeping on a partial mark loses data.
          const value = JSON.parse((await this.content.read(digest)).toString('utf8')) as Record<string, unknown>;
          for (const d of [value.config, ...(Array.isArray(value.layers) ? value.layers : []), ...(Array.isArray(value.manifests) ? value.manifests : [])]) {
            const ref = (d as { digest?: unknown } | undefined)?.digest;
            if (typeof ref === 'string') marked.add(ref);
          }
        }
        const layers = path.join(this.#repo(name), '_layers', 'sha256');
        for (const hex of (await readdirIfExists(layers)).filter((n) => hexName.test(n))) {
          const file = path.join(layers, hex);
          const mtime = (await mtimeIfExists(file)) ?? 0;
          const entry = links.get(hex) ?? { newest: 0, files: [] };
          entry.newest = Math.max(entry.newest, mtime);
          entry.files.push(file);
          links.set(hex, entry);
        }
      }
      const report: GcReport = { marked: marked.size, deleted: [], bytesFreed: 0, uploadsPurged: 0 };
      for (const digest of await this.content.list()) {
        if (marked.has(digest)) continue;
        const hex = hexOf(digest);
        const blobTime = await mtimeIfExists(this.content.path(digest));
        if (blobTime === undefined) continue;
        const link = links.get(hex);
        if (now - Math.max(blobTime, link?.newest ?? 0) < options.gracePeriodMs) continue;
        report.deleted.push(digest);
        report.bytesFreed += (await fs.stat(this.content.path(digest)).catch(() => ({ size: 0 }))).size;
        if (options.dryRun) continue;
        for (const file of link?.files ?? []) await removeIfExists(file);
        await this.content.delete(digest);
      }
      // Links whose blob is gone (removed by hand, or a crash mid-sweep) would answer HEAD wrongly.
      if (!options.dryRun) {
        for (const [hex, link] of links) {
          if (!(await this.content.has(`sha256:${hex}`))) for (const file of link.files) await removeIfExists(file);
        }
      }
      if (options.uploadTtlMs !== undefined) {
        for (const id of await readdirIfExists(this.#uploads)) {
          const mtime = await mtimeIfExists(path.join(this.#uploadDir(id), 'state.json'));
          if (mtime !== undefined && now - mtime < options.uploadTtlMs) continue;
          report.uploadsPurged++;
          if (!options.dryRun) await this.#dropUpload(id);
        }
      }
      if (!options.dryRun && report.deleted.length > 0) await syncDir(path.dirname(this.content.path(report.deleted[0]!)));
      this.#logger.info('registry garbage collection', { marked: report.marked, deleted: report.deleted.length, bytesFreed: report.bytesFreed, uploadsPurged: report.uploadsPurged });
      return report;
    });
  }
}

/** The `Range` header of an upload: inclusive end, `0-0` while empty (docker/distribution's form). */
export function rangeHeader(offset: number): string {
  return `0-${Math.max(offset - 1, 0)}`;
}
