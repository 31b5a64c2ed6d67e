/**
 * The worker side of UploadHasher (hasher.ts): the running sha256 of each upload, so hashing
 * runs on another core than the server's event loop. Messages are handled in the order sent.
 *
 *   slab   {slab, memory} a shared slab (slabs.ts) that `update` messages refer to by number
 *   begin  {id, fresh}   fork the upload's hash for a new chunk (fresh: from zero bytes)
 *   update {id, data | slab+length}   hash the next bytes of the chunk; replies {seq} when done
 *   commit {id}          the chunk is acknowledged: its hash becomes the upload's
 *   abort  {id}          the chunk was cut: the upload's hash stays where it was
 *   digest {id}          replies {seq, hex} of the upload's hash (hex absent if unknown)
 *   drop   {id}          forget the upload
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

export type HashRequest =
  | { op: 'slab'; slab: number; memory: SharedArrayBuffer }
  | { op: 'begin'; id: string; fresh: boolean }
  | { op: 'update'; id: string; seq: number; data?: Uint8Array; slab?: number; length?: number }
  | { op: 'commit'; id: string }
  | { op: 'abort'; id: string }
  | { op: 'digest'; id: string; seq: number }
  | { op: 'drop'; id: string };

export interface HashReply {
  seq: number;
  hex?: string;
}

const slabs: Uint8Array[] = [];
const committed = new Map<string, Hash>();
const pending = new Map<string, Hash>();

function handle(message: HashRequest): HashReply | undefined {
  switch (message.op) {
    case 'begin': {
      const base = message.fresh ? createHash('sha256') : committed.get(message.id)?.copy();
      if (base) pending.set(message.id, base);
      else pending.delete(message.id);
      return undefined;
    }
    case 'slab':
      slabs[message.slab] = new Uint8Array(message.memory);
      return undefined;
    case 'update': {
      const data = message.data ?? slabs[message.slab!]!.subarray(0, message.length);
      pending.get(message.id)?.update(data);
      return { seq: message.seq };
    }
    case 'commit': {
      const hash = pending.get(message.id);
      pending.delete(message.id);
      if (hash) committed.set(message.id, hash);
      else committed.delete(message.id);
      return undefined;
    }
    case 'abort':
      pending.delete(message.id);
      return undefined;
    case 'digest':
      return { seq: message.seq, hex: committed.get(message.id)?.copy().digest('hex') };
    case 'drop':
      pending.delete(message.id);
      committed.delete(message.id);
      return undefined;
  }
}

parentPort?.on('message', (message: HashRequest) => {
  const reply = handle(message);
  if (reply) parentPort!.postMessage(reply);
});
