/**
 * Running sha256 hashes of uploads, computed in worker threads (hash-worker.ts). sha256 is the
 * largest piece of work a push gives the server (about 1 s per 300 MB on one core without SHA
 * extensions): on the event loop it delays every other request, and in one thread it caps
 * concurrent pushes at one core. Each upload stays on one thread (the least busy when it
 * starts), which reads its bytes in place from the shared slab (slabs.ts) the store also
 * writes the file from; each slab is sent to a thread once.
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
 * If a thread dies, the hashes it held are forgotten (digest answers undefined) and the next
 * upload given to it starts a new one.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { HashReply, HashRequest } from './hash-worker.js';
import type { Slab } from './slabs.js';

/** One worker thread, started on first use and again after it died. */
class HashThread {
  #worker: Worker | undefined;
  /** Bumped when the worker goes away: what it held no longer counts. */
  generation = 0;
  /** Uploads assigned to this thread. */
  uploads = 0;
  #seq = 0;
  readonly #waiting = new Map<number, (reply: HashReply | undefined) => void>();
  /** Slabs the current worker has been sent, and the number it knows each by. */
  #sent = new Map<SharedArrayBuffer, number>();
  readonly #onLost: (thread: HashThread) => void;

  constructor(onLost: (thread: HashThread) => void) {
    this.#onLost = onLost;
  }

  post(message: HashRequest, transfer: ArrayBuffer[] = []): void {
    this.start().postMessage(message, transfer);
  }

  /** Sends a request that the worker answers; undefined if the worker went away first. */
  request(make: (seq: number) => HashRequest, transfer: ArrayBuffer[] = []): Promise<HashReply | undefined> {
    const seq = ++this.#seq;
    return new Promise((resolve) => {
      this.#waiting.set(seq, resolve);
      this.post(make(seq), transfer);
      if (this.#waiting.size === 1) this.#worker?.ref();
    });
  }

  /** The number this thread's worker knows a shared slab by (sending it the first time). */
  slabNumber(shared: SharedArrayBuffer): number {
    let number = this.#sent.get(shared);
    if (number === undefined) {
      number = this.#sent.size;
      this.post({ op: 'slab', slab: number, memory: shared });
      this.#sent.set(shared, number);
    }
    return number;
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#lost();
    await worker?.terminate();
  }

  start(): Worker {
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
    this.generation++;
    this.uploads = 0;
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const resolve of waiting) resolve(undefined);
    this.#onLost(this);
  }
}

interface Upload {
  thread: HashThread;
  /** The thread's generation when the upload was given to it. */
  generation: number;
  /** Bytes its committed hash covers; undefined before the first commit. */
  offset?: number;
  /** A chunk has begun and is not committed or aborted yet. */
  open: boolean;
}

export class UploadHasher {
  readonly #threads: HashThread[];
  readonly #uploads = new Map<string, Upload>();
  #closed = false;

  /** `threads`: default one per core, at most 4. */
  constructor(options: { threads?: number } = {}) {
    const count = Math.max(1, options.threads ?? Math.min(4, os.availableParallelism()));
    const onLost = (thread: HashThread) => {
      for (const [id, upload] of this.#uploads) if (upload.thread === thread) this.#uploads.delete(id);
    };
    this.#threads = Array.from({ length: count }, () => new HashThread(onLost));
  }

  /**
   * Starts hashing a chunk at `offset`: true when the upload's hash is at `offset` (or it is
   * 0); false when it is not known here, and the chunk is not hashed.
   */
  begin(id: string, offset: number): boolean {
    let upload = this.#live(id);
    if (this.#closed || (offset !== 0 && upload?.offset !== offset)) {
      this.drop(id);
      return false;
    }
    if (offset === 0) {
      this.drop(id);
      const thread = this.#threads.reduce((a, b) => (b.uploads < a.uploads ? b : a));
      thread.uploads++;
      upload = { thread, generation: thread.generation, open: false };
      this.#uploads.set(id, upload);
    }
    upload!.thread.post({ op: 'begin', id, fresh: offset === 0 });
    upload!.open = true;
    return true;
  }

  /**
   * Hashes the next `length` bytes of the chunk, from `slab`; false when they could not be (the
   * thread went away). The slab must not change until this resolves.
   */
  async update(id: string, slab: Slab, length: number): Promise<boolean> {
    const upload = this.#live(id);
    if (!upload?.open) return false;
    const { thread } = upload;
    let reply: HashReply | undefined;
    if (slab.shared) {
      const number = thread.slabNumber(slab.shared);
      reply = await thread.request((seq) => ({ op: 'update', id, seq, slab: number, length }));
    } else {
      // Not shared (past the pool's cap): a copy of its own, moved to the worker.
      const data = new Uint8Array(slab.buffer.subarray(0, length));
      reply = await thread.request((seq) => ({ op: 'update', id, seq, data }), [data.buffer as ArrayBuffer]);
    }
    return reply !== undefined && this.#live(id) === upload;
  }

  /** The chunk is acknowledged: the upload's hash is now at `offset`. */
  commit(id: string, offset: number): void {
    const upload = this.#live(id);
    if (!upload?.open) {
      this.drop(id);
      return;
    }
    upload.thread.post({ op: 'commit', id });
    upload.open = false;
    upload.offset = offset;
  }

  /** The chunk was cut short: the upload's hash stays where it was. */
  abort(id: string): void {
    const upload = this.#live(id);
    if (!upload?.open) return;
    upload.thread.post({ op: 'abort', id });
    upload.open = false;
  }

  /** `sha256:<hex>` of the upload's first `offset` bytes, or undefined when not known here. */
  async digest(id: string, offset: number): Promise<string | undefined> {
    const upload = this.#live(id);
    if (!upload || upload.open || upload.offset !== offset) return undefined;
    const reply = await upload.thread.request((seq) => ({ op: 'digest', id, seq }));
    return reply?.hex !== undefined && this.#live(id) === upload ? `sha256:${reply.hex}` : undefined;
  }

  drop(id: string): void {
    const upload = this.#uploads.get(id);
    if (!upload) return;
    this.#uploads.delete(id);
    if (upload.generation !== upload.thread.generation) return;
    upload.thread.uploads--;
    upload.thread.post({ op: 'drop', id });
  }

  /** Starts the threads now rather than with the first uploads (a thread takes ~50 ms to boot). */
  start(): void {
    if (!this.#closed) for (const thread of this.#threads) thread.start();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#threads.map((t) => t.close()));
  }

  /** The upload's record if its thread still holds what it was given. */
  #live(id: string): Upload | undefined {
    const upload = this.#uploads.get(id);
    if (upload && upload.generation !== upload.thread.generation) {
      this.#uploads.delete(id);
      return undefined;
    }
    return upload;
  }
}
