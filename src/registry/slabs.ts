/**
 * Reused 1 MiB buffers ("slabs") for the bytes the server moves: an upload's batch is copied
 * into one, written to its file and hashed by the hasher's worker from the same memory (a slab
 * is a SharedArrayBuffer, so the worker reads it in place); a blob GET reads the file into two.
 *
 * Why not fresh buffers: V8 counts live buffer memory against a heap limit sized for the heap
 * (a few MB here), so tens of megabytes of request buffers alive at once set off a full
 * mark-compact collection every ~100 ms under load (measured: 47 in one 8-client push, ~1 s of
 * CPU). Pooled slabs are allocated once and stay.
 *
 *   const slab = pool.take();   // pooled, or a plain buffer of the same size past the cap
 *   …fill slab.buffer, use it…
 *   pool.give(slab);            // once nothing reads or writes it any more (else pool.discard)
 */

export interface Slab {
  readonly buffer: Buffer;
  /** Its memory; absent for a plain buffer made past the pool's cap (not shared, not pooled). */
  readonly shared?: SharedArrayBuffer;
}

export class SlabPool {
  readonly slabBytes: number;
  readonly maxSlabs: number;
  readonly #live = new Set<Slab>();
  readonly #free: Slab[] = [];

  constructor(options: { slabBytes?: number; maxSlabs?: number } = {}) {
    this.slabBytes = options.slabBytes ?? 1024 * 1024;
    this.maxSlabs = options.maxSlabs ?? 64;
  }

  take(): Slab {
    const free = this.#free.pop();
    if (free) return free;
    if (this.#live.size >= this.maxSlabs) return { buffer: Buffer.allocUnsafeSlow(this.slabBytes) };
    const shared = new SharedArrayBuffer(this.slabBytes);
    const slab: Slab = { buffer: Buffer.from(shared), shared };
    this.#live.add(slab);
    return slab;
  }

  /** Back to the pool, once nothing reads or writes it any more. */
  give(slab: Slab): void {
    if (this.#live.has(slab)) this.#free.push(slab);
  }

  /** Out of the pool for good (a write to a dead socket may still hold it); a new one replaces it. */
  discard(slab: Slab): void {
    this.#live.delete(slab);
  }
}
