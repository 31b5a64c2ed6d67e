/**
 * Running sha256 hashes of uploads, computed in a worker thread (hash-worker.ts). sha256 is the
 * largest piece of work a push gives the server (about 1 s per 250 MB on one core without SHA
 * extensions); on the event loop it delays every other request. The worker reads the bytes in
 * place, from the shared slab (slabs.ts) the store also writes the file from; each slab is sent
 * to the worker once.
 *
 * Lifecycle of one upload, chunk by chunk (a chunk is one PATCH or the body of the final PUT):
 *
 *   if (hasher.begin(id, offset)) {                 // false: bytes before `offset` are not
 *     ok = await hasher.update(id, slab, length)    //   hashed here (after a restart)
 *     ok ? hasher.commit(id, offset + n) : hasher.drop(id)   // or abort(id) if the chunk failed
 *   }
 *   const digest = await hasher.digest(id, size)     // undefined: hash the file instead
 *   hasher.drop(id)
 *
 * If the worker dies, the hashes it held are forgotten (digest answers undefined) and the next
 * upload starts a new one.
 */
import { Worker } from 'node:worker_threads';
import type { HashReply, HashRequest } from './hash-worker.js';
import type { Slab } from './slabs.js';

export class UploadHasher {
  #worker: Worker | undefined;
  /** Slabs the current worker has been sent, and the number it knows each by. */
  #sent = new Map<SharedArrayBuffer, number>();
  /** Bumped when a worker goes away: chunks begun on it no longer count. */
  #generation = 0;
  #seq = 0;
  readonly #waiting = new Map<number, (reply: HashReply | undefined) => void>();
  /** Upload id → offset its committed hash in the worker has reached. */
  readonly #offsets = new Map<string, number>();
  /** Upload id → generation its current chunk began in. */
  readonly #chunks = new Map<string, number>();
  #closed = false;

  /**
   * Starts hashing a chunk at `offset`: true when the upload's hash is at `offset` (or it is
   * 0); false when it is not known here, and the chunk is not hashed.
   */
  begin(id: string, offset: number): boolean {
    if (this.#closed || (offset !== 0 && this.#offsets.get(id) !== offset)) {
      this.drop(id);
      return false;
    }
    this.#post({ op: 'begin', id, fresh: offset === 0 });
    this.#chunks.set(id, this.#generation);
    return true;
  }

  /**
   * Hashes the next `length` bytes of the chunk, from `slab`; false when they could not be (the
   * worker went away). The slab must not change until this resolves.
   */
  async update(id: string, slab: Slab, length: number): Promise<boolean> {
    if (this.#chunks.get(id) !== this.#generation) return false;
    const seq = ++this.#seq;
    let reply: HashReply | undefined;
    if (slab.shared) {
      let number = this.#sent.get(slab.shared);
      if (number === undefined) {
        number = this.#sent.size;
        this.#post({ op: 'slab', slab: number, memory: slab.shared });
        this.#sent.set(slab.shared, number);
      }
      reply = await this.#request(seq, { op: 'update', id, seq, slab: number, length }, []);
    } else {
      // Not shared (past the pool's cap): a copy of its own, moved to the worker.
      const data = new Uint8Array(slab.buffer.subarray(0, length));
      reply = await this.#request(seq, { op: 'update', id, seq, data }, [data.buffer as ArrayBuffer]);
    }
    return reply !== undefined && this.#chunks.get(id) === this.#generation;
  }

  /** The chunk is acknowledged: the upload's hash is now at `offset`. */
  commit(id: string, offset: number): void {
    if (this.#chunks.get(id) !== this.#generation) {
      this.drop(id);
      return;
    }
    this.#chunks.delete(id);
    this.#post({ op: 'commit', id });
    this.#offsets.set(id, offset);
  }

  /** The chunk was cut short: the upload's hash stays where it was. */
  abort(id: string): void {
    if (this.#chunks.get(id) === this.#generation) this.#post({ op: 'abort', id });
    this.#chunks.delete(id);
  }

  /** `sha256:<hex>` of the upload's first `offset` bytes, or undefined when not known here. */
  async digest(id: string, offset: number): Promise<string | undefined> {
    if (this.#offsets.get(id) !== offset || this.#chunks.has(id)) return undefined;
    const generation = this.#generation;
    const seq = ++this.#seq;
    const reply = await this.#request(seq, { op: 'digest', id, seq }, []);
    return reply?.hex !== undefined && generation === this.#generation ? `sha256:${reply.hex}` : undefined;
  }

  drop(id: string): void {
    this.#chunks.delete(id);
    if (this.#offsets.delete(id) && this.#worker) this.#post({ op: 'drop', id });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#lost();
    await worker?.terminate();
  }

  #post(message: HashRequest, transfer: ArrayBuffer[] = []): void {
    this.#start().postMessage(message, transfer);
  }

  #request(seq: number, message: HashRequest, transfer: ArrayBuffer[]): Promise<HashReply | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiting.set(seq, resolve);
      this.#post(message, transfer);
      if (this.#waiting.size === 1) this.#worker?.ref();
    });
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    // Idle, it must not keep a process alive; while a request waits on it, it does.
    worker.unref();
    worker.on('message', (reply: HashReply) => {
      const resolve = this.#waiting.get(reply.seq);
      this.#waiting.delete(reply.seq);
      if (this.#waiting.size === 0) worker.unref();
      resolve?.(reply);
    });
    worker.on('error', () => {});
    worker.on('exit', () => {
      if (this.#worker === worker) this.#lost();
    });
    this.#worker = worker;
    return worker;
  }

  /** The worker is gone: forget what it held and answer everything still waiting. */
  #lost(): void {
    this.#worker = undefined;
    this.#sent = new Map();
    this.#generation++;
    this.#offsets.clear();
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const resolve of waiting) resolve(undefined);
  }
}
