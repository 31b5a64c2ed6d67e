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
 * On disk, under the daemon root:
 *
 *   <root>/content/
 *     blobs/sha256/<hex>        immutable, verified blobs
 *     ingest/<random>/data      partial writes; removed by init() after a crash
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { BaleiaError, errnoCode, invalidArgument, notFound, syncDir } from '../lib/index.js';

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

export class ContentStore {
  readonly #blobs: string;
  readonly #ingest: string;

  constructor(root: string) {
    this.#blobs = path.join(root, 'content', 'blobs', 'sha256');
    this.#ingest = path.join(root, 'content', 'ingest');
  }

  /** Creates the directories and removes ingests left behind by a crash. */
  async init(): Promise<void> {
    await fs.mkdir(this.#blobs, { recursive: true });
    await fs.rm(this.#ingest, { recursive: true, force: true });
    await fs.mkdir(this.#ingest, { recursive: true });
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
    const target = this.path(digest);
    try {
      await fs.rename(file, target);
      await syncDir(path.dirname(target));
    } catch (err) {
      if (errnoCode(err) !== 'EXDEV') throw err;
      await this.ingest(createReadStream(file), { expected: digest });
      await fs.rm(file, { force: true });
    }
    return { digest, size };
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
