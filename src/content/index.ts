/**
 * content: the content-addressed blob store. It owns immutable blobs named by their sha256
 * digest (layers as they were shipped, image configs, manifests) and the ingests that become
 * them. It does not know what a blob means; image/ and registry/ give blobs meaning.
 *
 * A blob is written to an ingest, hashed while it streams in, checked against the expected
 * digest and size, fsynced, and only then renamed into place: a visible blob is always whole
 * and always matches its name.
 *
 *   const store = new ContentStore('/var/lib/baleia'); await store.init();
 *   const { digest } = await store.ingest(stream, { expected: 'sha256:…' });
 *   const bytes = await store.read(digest);
 *
 * A download whose digest is known up front (a pull) uses a resumable ingest instead, named by
 * that digest and kept across restarts, so a later attempt re-hashes what is there and asks the
 * registry only for the rest:
 *
 *   const w = await store.openIngest('sha256:…', { expectedSize });
 *   for await (const chunk of w.kept()) …   // the bytes an earlier attempt left (now hashed)
 *   await w.write(chunk); …                 // fetched from offset w.offset on (Range)
 *   await w.commit();                       // size + digest checked, fsynced, renamed into blobs/
 *   // or: await w.close() (keep the bytes for next time) / await w.discard()
 *
 * On disk, under the daemon root:
 *
 *   <root>/content/
 *     blobs/sha256/<hex>        immutable, verified blobs
 *     ingest/<random>/data      partial writes of ingest()/writeBlob(); removed by init()
 *     ingest/<hex>/data         a resumable download of blob <hex>; kept by init() until it is
 *                               older than `ingestMaxAge` (or the blob exists)
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc, createReadStream, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { BaleiaError, Sha256, errnoCode, internal, invalidArgument, notFound, syncDir } from '../lib/index.js';

const digestPattern = /^sha256:([0-9a-f]{64})$/;

/** The hex part of a `sha256:<hex>` digest; InvalidArgument for anything else. */
export function digestHex(digest: string): string {
  const m = digestPattern.exec(digest);
  if (!m) {
    if (/^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/.test(digest)) {
      throw invalidArgument(`Cannot use digest "${digest}": unsupported digest algorithm, only sha256 is supported`);
    }
    throw invalidArgument(`Cannot use digest "${digest}": invalid digest format`);
  }
  return m[1]!;
}

export function isDigest(s: string): boolean {
  return digestPattern.test(s);
}

/** `sha256:<hex>` of the given bytes. */
export function sha256Digest(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** How long a resumable ingest nobody finished is kept (containerd expires them after a day too). */
const defaultIngestMaxAge = 24 * 60 * 60 * 1000;

export class ContentStore {
  readonly #blobs: string;
  readonly #ingest: string;
  readonly #ingestMaxAge: number;
  /** Resumable ingests open in this process, by hex: the promise settles when the writer lets go. */
  readonly #writers = new Map<string, Promise<void>>();

  constructor(root: string, opts: { ingestMaxAge?: number } = {}) {
    this.#blobs = path.join(root, 'content', 'blobs', 'sha256');
    this.#ingest = path.join(root, 'content', 'ingest');
    this.#ingestMaxAge = opts.ingestMaxAge ?? defaultIngestMaxAge;
  }

  /**
   * Creates the directories and removes what a crash left: every ingest of ingest()/writeBlob(),
   * and resumable ingests that are expired or whose blob is already stored.
   */
  async init(): Promise<void> {
    await fs.mkdir(this.#blobs, { recursive: true });
    await fs.mkdir(this.#ingest, { recursive: true });
    const now = Date.now();
    for (const name of await fs.readdir(this.#ingest)) {
      const dir = path.join(this.#ingest, name);
      if (/^[0-9a-f]{64}$/.test(name) && !(await this.has(`sha256:${name}`))) {
        const st = await fs.stat(path.join(dir, 'data')).catch(() => undefined);
        if (st?.isFile() && now - st.mtimeMs < this.#ingestMaxAge) continue;
      }
      await fs.rm(dir, { recursive: true, force: true });
    }
    // A blob renamed into place is whole; temp files beside blobs are not (none are made today).
    for (const name of await fs.readdir(this.#blobs)) {
      if (!/^[0-9a-f]{64}$/.test(name)) await fs.rm(path.join(this.#blobs, name), { force: true, recursive: true });
    }
  }

  path(digest: string): string {
    return path.join(this.#blobs, digestHex(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await fs.access(this.path(digest));
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  async size(digest: string): Promise<number> {
    try {
      return (await fs.stat(this.path(digest))).size;
    } catch (err) {
      throw this.#wrap(err, digest);
    }
  }

  async writeBlob(data: Uint8Array, opts: { expected?: string } = {}): Promise<{ digest: string; size: number }> {
    const digest = sha256Digest(data);
    if (opts.expected !== undefined && opts.expected !== digest) {
      digestHex(opts.expected);
      throw invalidArgument(`Cannot write blob: digest mismatch, expected "${opts.expected}", got "${digest}"`);
    }
    const target = this.path(digest);
    if (await this.has(digest)) return { digest, size: data.length };
    const dir = await this.#newIngestDir();
    try {
      const tmp = path.join(dir, 'data');
      const handle = await fs.open(tmp, 'wx', 0o444);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.#commit(tmp, target);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    return { digest, size: data.length };
  }

  /**
   * Streams a blob in, verifying digest and size before it becomes visible. Without `expected`
   * the blob is named by what was read.
   */
  async ingest(
    stream: NodeJS.ReadableStream,
    opts: { expected?: string; expectedSize?: number; signal?: AbortSignal } = {},
  ): Promise<{ digest: string; size: number }> {
    if (opts.expected !== undefined) digestHex(opts.expected);
    const hash = createHash('sha256');
    let size = 0;
    const expectedSize = opts.expectedSize;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (expectedSize !== undefined && size > expectedSize) {
          cb(invalidArgument(`Cannot ingest blob${opts.expected ? ` "${opts.expected}"` : ''}: more than the expected ${expectedSize} bytes`));
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    // Listen for the source's errors now: it may fail before the ingest file is open.
    stream.on('error', (e: Error) => counter.destroy(e));
    counter.on('error', () => {}); // surfaced by the iteration below
    stream.pipe(counter);
    const dir = await this.#newIngestDir();
    try {
      const tmp = path.join(dir, 'data');
      const handle = await fs.open(tmp, 'wx', 0o444);
      try {
        // handle.write, not a write stream: a stream with autoClose:false never ends a pipeline
        for await (const chunk of counter) {
          if (opts.signal?.aborted) throw opts.signal.reason;
          await handle.write(chunk as Buffer);
        }
        await handle.sync();
      } catch (err) {
        if (opts.signal?.aborted) throw new BaleiaError('Cancelled', 'Cannot ingest blob: cancelled', { cause: err });
        throw err;
      } finally {
        await handle.close();
      }
      const digest = 'sha256:' + hash.digest('hex');
      if (expectedSize !== undefined && size !== expectedSize) {
        throw invalidArgument(`Cannot ingest blob${opts.expected ? ` "${opts.expected}"` : ''}: size mismatch, expected ${expectedSize} bytes, got ${size}`);
      }
      if (opts.expected !== undefined && opts.expected !== digest) {
        throw invalidArgument(`Cannot ingest blob: digest mismatch, expected "${opts.expected}", got "${digest}"`);
      }
      await this.#commit(tmp, this.path(digest));
      return { digest, size };
    } finally {
      stream.unpipe?.(counter);
      counter.destroy();
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Moves in a file whose digest the caller computed from the very bytes it wrote and then
   * fsynced (a staged `docker load` member in the daemon's own work directory): no second
   * hashing pass. The file must be on the store's filesystem; anything not yet hashed by its
   * writer goes through importFile or ingest instead.
   */
  async adoptFile(file: string, digest: string): Promise<void> {
    await this.#moveIn(file, digest);
  }

  /**
   * Moves a file that the caller wrote (and fsynced) into the store, hashing it again so the
   * blob is verified before it is visible. The file is consumed (renamed or removed).
   */
  async importFile(file: string, opts: { expected?: string; signal?: AbortSignal } = {}): Promise<{ digest: string; size: number }> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(file, { signal: opts.signal })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    const digest = 'sha256:' + hash.digest('hex');
    if (opts.expected !== undefined && opts.expected !== digest) {
      throw invalidArgument(`Cannot import blob: digest mismatch, expected "${opts.expected}", got "${digest}"`);
    }
    await this.#moveIn(file, digest);
    return { digest, size };
  }

  /** Renames a verified file into place; across filesystems it is copied (and hashed) instead. */
  async #moveIn(file: string, digest: string): Promise<void> {
    const target = this.path(digest);
    try {
      await fs.rename(file, target);
      await syncDir(path.dirname(target));
    } catch (err) {
      if (errnoCode(err) !== 'EXDEV') throw err;
      await this.ingest(createReadStream(file), { expected: digest });
      await fs.rm(file, { force: true });
    }
  }

  async read(digest: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.path(digest));
    } catch (err) {
      throw this.#wrap(err, digest);
    }
  }

  /** A stream of the blob; a missing blob errors the stream with NotFound. */
  createReadStream(digest: string): NodeJS.ReadableStream {
    const stream = createReadStream(this.path(digest));
    const wrap = this.#wrap.bind(this);
    const origEmit = stream.emit.bind(stream);
    stream.emit = ((event: string, ...args: unknown[]) => {
      if (event === 'error') return origEmit('error', wrap(args[0], digest));
      return origEmit(event, ...args);
    }) as typeof stream.emit;
    return stream;
  }

  /** Removes the blob; removing a missing blob is not an error. */
  async delete(digest: string): Promise<void> {
    await fs.rm(this.path(digest), { force: true });
  }

  async list(): Promise<string[]> {
    const names = await fs.readdir(this.#blobs);
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /**
   * The resumable ingest of the blob `expected`: bytes an earlier attempt wrote (maybe before a
   * restart) are kept and offered by `kept()`. One writer per digest at a time: a second
   * openIngest of the same digest waits until the first commits, closes or discards.
   */
  async openIngest(expected: string, opts: { expectedSize?: number; signal?: AbortSignal } = {}): Promise<BlobWriter> {
    const hex = digestHex(expected);
    for (let held = this.#writers.get(hex); held; held = this.#writers.get(hex)) {
      await held;
      if (opts.signal?.aborted) throw new BaleiaError('Cancelled', `Cannot ingest blob "${expected}": cancelled`, { cause: opts.signal.reason });
    }
    let release!: () => void;
    this.#writers.set(hex, new Promise<void>((resolve) => (release = resolve)));
    const letGo = () => {
      this.#writers.delete(hex);
      release();
    };
    try {
      const dir = path.join(this.#ingest, hex);
      await fs.mkdir(dir, { recursive: true });
      const file = path.join(dir, 'data');
      const handle = await fs.open(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
      let size: number;
      try {
        size = (await handle.stat()).size;
        if (opts.expectedSize !== undefined && size > opts.expectedSize) {
          await handle.truncate(0);
          size = 0;
        }
      } catch (err) {
        await handle.close();
        throw err;
      }
      return new BlobWriter({ expected, expectedSize: opts.expectedSize, dir, handle, offset: size, target: this.path(expected), release: letGo });
    } catch (err) {
      letGo();
      throw err;
    }
  }

  async #newIngestDir(): Promise<string> {
    const dir = path.join(this.#ingest, randomBytes(8).toString('hex'));
    await fs.mkdir(dir, { recursive: true });
    return dir;
  }

  async #commit(tmp: string, target: string): Promise<void> {
    // rename over an existing blob is harmless: same name, same bytes.
    await fs.rename(tmp, target);
    await syncDir(path.dirname(target));
  }

  #wrap(err: unknown, digest: string): unknown {
    if (errnoCode(err) === 'ENOENT') return notFound(`No such blob: ${digest}`, { cause: err });
    return err;
  }
}

/** Writes smaller than this are gathered and written together (fewer thread-pool round trips). */
const writeBatch = 1 << 20;

/**
 * One resumable ingest (see ContentStore.openIngest): read `kept()` to the end first (it hashes
 * those bytes), then `write()` what follows, then exactly one of commit / close / discard.
 */
export class BlobWriter {
  /** Bytes on disk when the ingest was opened: fetch from here on. */
  readonly offset: number;
  readonly #expected: string;
  readonly #expectedSize: number | undefined;
  readonly #dir: string;
  readonly #target: string;
  readonly #handle: FileHandle;
  readonly #release: () => void;
  /** Hashed on a worker thread: a layer's blob is tens of MB. */
  readonly #hash = new Sha256();
  /** Bytes hashed so far (kept ones included). */
  #size = 0;
  /** Bytes on disk. */
  #written: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #writing: Promise<void> = Promise.resolve();
  /** The early fsync after the last expected byte. */
  #synced: Promise<void> | undefined;
  #done = false;

  constructor(opts: { expected: string; expectedSize?: number; dir: string; handle: FileHandle; offset: number; target: string; release: () => void }) {
    this.#expected = opts.expected;
    this.#expectedSize = opts.expectedSize;
    this.#dir = opts.dir;
    this.#handle = opts.handle;
    this.offset = opts.offset;
    this.#written = opts.offset;
    this.#target = opts.target;
    this.#release = opts.release;
  }

  /** Bytes hashed so far. */
  get size(): number {
    return this.#size;
  }

  /** The bytes an earlier attempt left, in chunks, hashed as they are read. */
  async *kept(opts: { signal?: AbortSignal } = {}): AsyncGenerator<Buffer> {
    while (this.#size < this.offset) {
      if (opts.signal?.aborted) throw new BaleiaError('Cancelled', `Cannot ingest blob "${this.#expected}": cancelled`, { cause: opts.signal.reason });
      const buf = Buffer.allocUnsafe(Math.min(writeBatch, this.offset - this.#size));
      const { bytesRead } = await this.#handle.read(buf, 0, buf.length, this.#size);
      if (bytesRead === 0) throw internal(`Cannot resume blob "${this.#expected}": the ingest file shrank`);
      const chunk = buf.subarray(0, bytesRead);
      this.#hash.update(chunk);
      this.#size += bytesRead;
      await this.#hash.ready();
      yield chunk;
    }
  }

  /** Hashes `chunk` and appends it (written in batches; the caller must not change it afterwards). */
  async write(chunk: Buffer): Promise<void> {
    if (this.#size < this.offset) throw internal(`Cannot write blob "${this.#expected}": the kept bytes were not read first`);
    if (this.#expectedSize !== undefined && this.#size + chunk.length > this.#expectedSize) {
      throw invalidArgument(`Cannot ingest blob "${this.#expected}": more than the expected ${this.#expectedSize} bytes`);
    }
    this.#hash.update(chunk);
    this.#size += chunk.length;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#size === this.#expectedSize) {
      // The last byte: write and fsync now, while the caller still works on the data (a pull's
      // extraction ends a little after its download); commit checks the digest and waits for it.
      this.#synced = this.#flush().then(() => this.#handle.sync());
      this.#synced.catch(() => {});
    } else if (this.#pendingBytes >= writeBatch) await this.#flush();
    await this.#hash.ready();
  }

  /**
   * Checks size and digest; a match is fsynced and renamed into the store, a mismatch removes
   * the ingest and is InvalidArgument.
   */
  async commit(): Promise<{ digest: string; size: number }> {
    this.#finish();
    try {
      await this.#flush();
      const digest = await this.#hash.digest();
      if (this.#expectedSize !== undefined && this.#size !== this.#expectedSize) {
        throw invalidArgument(`Cannot ingest blob "${this.#expected}": size mismatch, expected ${this.#expectedSize} bytes, got ${this.#size}`);
      }
      if (digest !== this.#expected) throw invalidArgument(`Cannot ingest blob: digest mismatch, expected "${this.#expected}", got "${digest}"`);
      await (this.#synced ?? this.#handle.sync());
      await this.#handle.chmod(0o444);
      await this.#handle.close();
      await fs.rename(path.join(this.#dir, 'data'), this.#target);
      await syncDir(path.dirname(this.#target));
      await fs.rm(this.#dir, { recursive: true, force: true });
      return { digest, size: this.#size };
    } catch (err) {
      this.#dropHash();
      await this.#synced?.catch(() => {});
      await this.#handle.close().catch(() => {});
      await fs.rm(this.#dir, { recursive: true, force: true });
      throw err;
    } finally {
      this.#release();
    }
  }

  /** Stops writing and keeps what was written for a later attempt (an empty ingest is removed). */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#finish();
    this.#dropHash();
    try {
      await this.#flush().catch(() => {});
      await this.#synced?.catch(() => {});
      await this.#handle.close().catch(() => {});
      if (this.#written === 0) await fs.rm(this.#dir, { recursive: true, force: true });
    } finally {
      this.#release();
    }
  }

  /** Stops writing and removes the ingest. */
  async discard(): Promise<void> {
    if (this.#done) return;
    this.#finish();
    this.#dropHash();
    try {
      await this.#writing;
      await this.#synced?.catch(() => {});
      await this.#handle.close().catch(() => {});
      await fs.rm(this.#dir, { recursive: true, force: true });
    } finally {
      this.#release();
    }
  }

  #finish(): void {
    if (this.#done) throw internal(`Cannot finish blob "${this.#expected}" twice`);
    this.#done = true;
  }

  #dropHash(): void {
    this.#hash.dispose();
  }

  /** Writes what is gathered; flushes run one after another (a commit waits for a write in flight). */
  #flush(): Promise<void> {
    const run = this.#writing.then(() => this.#write());
    this.#writing = run.catch(() => {});
    return run;
  }

  async #write(): Promise<void> {
    const bufs = this.#pending;
    if (bufs.length === 0) return;
    this.#pending = [];
    this.#pendingBytes = 0;
    let position = this.#written;
    let rest = bufs;
    while (rest.length > 0) {
      const { bytesWritten } = await this.#handle.writev(rest, position);
      position += bytesWritten;
      rest = dropBytes(rest, bytesWritten);
    }
    this.#written = position;
  }
}

/** `bufs` without its first `n` bytes. */
function dropBytes(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i]!.length) n -= bufs[i++]!.length;
  const rest = bufs.slice(i);
  if (n > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}
