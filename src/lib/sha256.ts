/**
 * sha256 of a stream, computed on a worker thread once it is large: a pull hashes every layer
 * twice (the compressed blob against the manifest, the tar against the config's diff ID), about
 * 1.5 s of CPU for 400 MB on this VM (OpenSSL without SHA extensions does ~240 MB/s), which on
 * the daemon's thread would be most of the pull. The first MiB is hashed here: a small blob never
 * costs a message.
 *
 *   const h = new Sha256();
 *   for await (const chunk of stream) { h.update(chunk); await h.ready(); }
 *   const digest = await h.digest();   // 'sha256:<hex>'
 *
 * `update` keeps a reference to what it is given until it copies it into a message: the caller
 * must not change a chunk afterwards. `ready()` holds the caller back while more than 4 MiB
 * wait for the worker (little backlog: the digest is ready soon after the last byte). Workers (at most two, the CPUs
 * these machines have to spare) start on first use, keep the process alive only while they
 * have work, and stop after a second without any.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { internal } from './errors.js';

/** Below this a hash stays on the calling thread. */
const localLimit = 1 << 20;
/** Bytes gathered into one message. */
const messageBytes = 1 << 20;
/** Bytes a hash may have waiting for its worker before `ready()` holds the caller. */
const maxBehind = 4 << 20;
/** Message buffers: a message is ≥ 1 MiB and one more chunk; those come back to be reused. */
const bufferBytes = 2 << 20;
const maxSpare = 16;
const spare: ArrayBuffer[] = [];

const workerSource = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'update') {
    let h = hashes.get(m.id);
    if (!h) hashes.set(m.id, (h = createHash('sha256')));
    h.update(new Uint8Array(m.data, 0, m.length));
    parentPort.postMessage({ op: 'ack', id: m.id, bytes: m.length, data: m.data }, [m.data]);
  } else if (m.op === 'digest') {
    const h = hashes.get(m.id) ?? createHash('sha256');
    hashes.delete(m.id);
    parentPort.postMessage({ op: 'digest', id: m.id, hex: h.digest('hex') });
  } else if (m.op === 'drop') {
    hashes.delete(m.id);
  }
});
`;

interface Job {
  behind: number;
  waiters: Array<() => void>;
  done?: { resolve: (hex: string) => void; reject: (err: unknown) => void };
  failed?: unknown;
}

/**
 * A worker with nothing to do for this long is stopped: a thread and its buffers hold ~25 MB
 * that an idle daemon should not. A new one is ready in ~50 ms, while the first MiB of the next
 * large hash is hashed on the calling thread anyway.
 */
let idleMs = 1000;

/** Hashing threads running now, and how long one may idle before it stops (tests). */
export function hashThreads(): number {
  return pool.length;
}
export function setHashThreadIdleMs(ms: number): void {
  idleMs = ms;
  for (const w of pool) w.rearm();
}

class HashWorker {
  readonly #worker: Worker;
  readonly #jobs = new Map<number, Job>();
  #busy = 0;
  #idle: NodeJS.Timeout | undefined;
  dead = false;

  constructor() {
    this.#worker = new Worker(workerSource, { eval: true });
    this.#worker.unref();
    this.#worker.on('message', (m: { op: string; id: number; bytes?: number; hex?: string; data?: ArrayBuffer }) => {
      this.#release(); // every message answers one request (also those of a dropped job)
      if (m.data && m.data.byteLength === bufferBytes && spare.length < maxSpare) spare.push(m.data);
      const job = this.#jobs.get(m.id);
      if (!job) return;
      if (m.op === 'ack') {
        job.behind -= m.bytes ?? 0;
        if (job.behind <= maxBehind) for (const w of job.waiters.splice(0)) w();
      } else if (m.op === 'digest') {
        this.#jobs.delete(m.id);
        job.done?.resolve(m.hex ?? '');
        this.#idleCheck();
      }
    });
    const fail = (err: unknown) => {
      this.dead = true;
      const e = internal('Cannot compute a sha256 digest: the hashing thread stopped', { cause: err });
      for (const job of this.#jobs.values()) {
        job.failed = e;
        job.done?.reject(e);
        for (const w of job.waiters.splice(0)) w();
      }
      this.#jobs.clear();
      const at = pool.indexOf(this);
      if (at >= 0) pool.splice(at, 1);
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  }

  /** Bytes not hashed yet, over all jobs: where a new hash goes. */
  get load(): number {
    let n = 0;
    for (const j of this.#jobs.values()) n += j.behind;
    return n + this.#jobs.size;
  }

  open(id: number): Job {
    clearTimeout(this.#idle);
    this.#idle = undefined;
    const job: Job = { behind: 0, waiters: [] };
    this.#jobs.set(id, job);
    return job;
  }

  /** Hands `data` (its first `length` bytes) over to the worker, which sends it back when hashed. */
  update(id: number, data: ArrayBuffer, length: number): void {
    const job = this.#jobs.get(id);
    if (!job) return;
    job.behind += length;
    this.#hold();
    this.#worker.postMessage({ op: 'update', id, data, length }, [data]);
  }

  digest(id: number): Promise<string> {
    const job = this.#jobs.get(id);
    if (!job) return Promise.reject(internal('Cannot compute a sha256 digest: the hashing thread stopped'));
    if (job.failed) return Promise.reject(job.failed);
    return new Promise((resolve, reject) => {
      job.done = { resolve, reject };
      this.#hold();
      this.#worker.postMessage({ op: 'digest', id });
    });
  }

  drop(id: number): void {
    if (!this.#jobs.delete(id)) return;
    this.#worker.postMessage({ op: 'drop', id });
    this.#idleCheck();
  }

  rearm(): void {
    clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#idleCheck();
  }

  /** Stops the thread once it has had no job for idleMs; the next hash starts a new one. */
  #idleCheck(): void {
    if (this.#busy > 0 || this.#jobs.size > 0 || this.#idle || this.dead) return;
    this.#idle = setTimeout(() => {
      this.#idle = undefined;
      if (this.#busy > 0 || this.#jobs.size > 0 || this.dead) return;
      this.dead = true;
      const at = pool.indexOf(this);
      if (at >= 0) pool.splice(at, 1);
      if (pool.length === 0) spare.length = 0;
      void this.#worker.terminate();
    }, idleMs);
    this.#idle.unref();
  }

  // Referenced (keeps the process alive) exactly while a reply is awaited.
  #hold(): void {
    if (this.#busy++ === 0) this.#worker.ref();
  }

  #release(): void {
    if (--this.#busy === 0) {
      this.#worker.unref();
      this.#idleCheck();
    }
  }
}

const pool: HashWorker[] = [];
const poolSize = Math.max(1, Math.min(2, availableParallelism()));
let nextId = 1;

function pickWorker(): HashWorker {
  if (pool.length < poolSize) {
    const w = new HashWorker();
    pool.push(w);
    return w;
  }
  return pool.reduce((a, b) => (b.load < a.load ? b : a));
}

export class Sha256 {
  #worker: HashWorker | undefined;
  #job: Job | undefined;
  readonly #id = nextId++;
  /** Chunks not sent yet (all of them while the total is under 1 MiB: those never leave). */
  #gathered: Buffer[] = [];
  #gatheredBytes = 0;
  #finished = false;

  /** Adds `chunk`; the caller must not change it afterwards (it is copied only when sent). */
  update(chunk: Uint8Array): void {
    if (this.#finished) throw internal('Cannot update a sha256 digest after it was taken');
    if (chunk.length === 0) return;
    this.#gathered.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#gatheredBytes += chunk.length;
    if (!this.#worker) {
      if (this.#gatheredBytes <= localLimit) return;
      this.#worker = pickWorker();
      this.#job = this.#worker.open(this.#id);
    }
    if (this.#gatheredBytes >= messageBytes) this.#send();
  }

  /** Resolves once the worker is no more than 4 MiB behind (at once when it is not). */
  ready(): Promise<void> {
    const job = this.#job;
    if (job?.failed) return Promise.reject(job.failed);
    if (!job || job.behind <= maxBehind) return Promise.resolve();
    return new Promise<void>((resolve) => job.waiters.push(resolve)).then(() => {
      if (job.failed) throw job.failed;
    });
  }

  /** `sha256:<hex>` of everything given. */
  async digest(): Promise<string> {
    if (this.#finished) throw internal('Cannot take a sha256 digest twice');
    this.#finished = true;
    if (!this.#worker) {
      const h = createHash('sha256');
      for (const b of this.#gathered) h.update(b);
      this.#gathered = [];
      return 'sha256:' + h.digest('hex');
    }
    this.#send();
    return 'sha256:' + (await this.#worker.digest(this.#id));
  }

  /** Forgets the hash (an abandoned stream), so the worker drops its state. */
  dispose(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#gathered = [];
    this.#worker?.drop(this.#id);
  }

  #send(): void {
    if (this.#gatheredBytes === 0) return;
    // One copy: it gathers the chunks into memory handed over to the worker (and back: buffers
    // are reused, no allocation and page faults per MiB).
    const length = this.#gatheredBytes;
    const data = length <= bufferBytes ? (spare.pop() ?? new ArrayBuffer(bufferBytes)) : new ArrayBuffer(length);
    const view = new Uint8Array(data, 0, length);
    let off = 0;
    for (const b of this.#gathered) {
      view.set(b, off);
      off += b.length;
    }
    this.#gathered = [];
    this.#gatheredBytes = 0;
    this.#worker!.update(this.#id, data, length);
  }
}
