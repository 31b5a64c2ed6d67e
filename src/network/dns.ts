/**
 * The embedded DNS server: one UDP socket and one TCP listener per user network, bound to the
 * network's gateway address on port 53 (so a container reaches it with a plain resolv.conf
 * `nameserver <gateway>` and no tricks inside its netns). It answers A queries for the names the
 * `resolve` callback knows and forwards everything else, unchanged, to the upstream resolvers.
 *
 * Wire facts relied on (RFC 1035): a 12-byte header (id, flags, qd/an/ns/ar counts), questions as
 * length-prefixed labels ending in a zero byte, a name may be a 0xC0 pointer; over TCP every
 * message is prefixed with its length as a 16-bit big-endian integer.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../lib/index.js';

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const TYPE_PTR = 12;
export const RCODE_NOERROR = 0;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_REFUSED = 5;

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DnsQuery {
  id: number;
  flags: number;
  questions: DnsQuestion[];
  /** Bytes of the header and question section, for echoing them back. */
  questionEnd: number;
}

function readName(buf: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let next = -1;
  for (let hops = 0; hops < 64; hops++) {
    const len = buf[offset];
    if (len === undefined) throw new Error('name runs past the message');
    if (len === 0) {
      if (next < 0) next = offset + 1;
      return { name: labels.join('.'), next };
    }
    if ((len & 0xc0) === 0xc0) {
      if (next < 0) next = offset + 2;
      offset = buf.readUInt16BE(offset) & 0x3fff;
      continue;
    }
    labels.push(buf.toString('latin1', offset + 1, offset + 1 + len));
    offset += 1 + len;
  }
  throw new Error('name has too many labels');
}

export function decodeQuery(buf: Buffer): DnsQuery {
  if (buf.length < 12) throw new Error('message shorter than its header');
  const qdcount = buf.readUInt16BE(4);
  const questions: DnsQuestion[] = [];
  let offset = 12;
  for (let i = 0; i < qdcount; i++) {
    const { name, next } = readName(buf, offset);
    if (next + 4 > buf.length) throw new Error('question runs past the message');
    questions.push({ name, type: buf.readUInt16BE(next), class: buf.readUInt16BE(next + 2) });
    offset = next + 4;
  }
  return { id: buf.readUInt16BE(0), flags: buf.readUInt16BE(2), questions, questionEnd: offset };
}

export function encodeName(name: string): Buffer {
  const parts = name.split('.').filter(Boolean).map((l) => {
    const b = Buffer.from(l, 'latin1');
    return Buffer.concat([Buffer.from([b.length]), b]);
  });
  return Buffer.concat([...parts, Buffer.from([0])]);
}

/** A query message (tests and the forwarder's health checks). */
export function encodeQuery(id: number, name: string, type = TYPE_A): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([header, encodeName(name), tail]);
}

/** A response to `query` (its first question) with A records for `addresses`. */
export function encodeResponse(query: Buffer, parsed: DnsQuery, rcode: number, addresses: string[] = [], ttl = 600): Buffer {
  const header = Buffer.from(query.subarray(0, 12));
  const rd = parsed.flags & 0x0100;
  const opcode = parsed.flags & 0x7800;
  header.writeUInt16BE(0x8000 | opcode | 0x0400 | rd | 0x0080 | rcode, 2); // QR AA RD RA
  header.writeUInt16BE(Math.min(parsed.questions.length, 1), 4);
  header.writeUInt16BE(addresses.length, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(0, 10);
  const question = parsed.questions.length > 0 ? query.subarray(12, parsed.questionEnd) : Buffer.alloc(0);
  const answers = addresses.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the first question's name
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
    return rr;
  });
  return Buffer.concat([header, question, ...answers]);
}

/** A response to `query` with one PTR record naming `target` (reverse lookups of endpoints). */
export function encodePtrResponse(query: Buffer, parsed: DnsQuery, target: string, ttl = 600): Buffer {
  const head = encodeResponse(query, parsed, RCODE_NOERROR);
  head.writeUInt16BE(1, 6);
  const rdata = encodeName(target);
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(TYPE_PTR, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(ttl, 6);
  rr.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rr, rdata]);
}

/** The rcode and A addresses of a response (tests). */
export function decodeResponse(buf: Buffer): { id: number; rcode: number; addresses: string[] } {
  const q = decodeQuery(buf);
  const ancount = buf.readUInt16BE(6);
  const addresses: string[] = [];
  let offset = q.questionEnd;
  for (let i = 0; i < ancount; i++) {
    const { next } = readName(buf, offset);
    const type = buf.readUInt16BE(next);
    const rdlen = buf.readUInt16BE(next + 8);
    if (type === TYPE_A && rdlen === 4) addresses.push([...buf.subarray(next + 10, next + 14)].join('.'));
    offset = next + 10 + rdlen;
  }
  return { id: q.id, rcode: buf.readUInt16BE(2) & 0xf, addresses };
}

export type Resolve = (name: string, clientIp: string) => string[] | undefined;
/** The name of the endpoint with address `ip` as `clientIp` may see it, or undefined. */
export type ResolveAddress = (ip: string, clientIp: string) => string | undefined;

export interface Upstream {
  host: string;
  port: number;
}

/** Send `query` to each upstream in turn over UDP; the first answer wins. */
export async function forward(query: Buffer, upstreams: Upstream[], timeoutMs = 2000): Promise<Buffer | undefined> {
  for (const up of upstreams) {
    const answer = await new Promise<Buffer | undefined>((resolve) => {
      const sock = dgram.createSocket(net.isIPv6(up.host) ? 'udp6' : 'udp4');
      const done = (b: Buffer | undefined) => {
        clearTimeout(timer);
        sock.close();
        resolve(b);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      sock.on('error', () => done(undefined));
      sock.on('message', (msg) => {
        if (msg.length >= 2 && msg.readUInt16BE(0) === query.readUInt16BE(0)) done(msg);
      });
      // A connected socket hears the ICMP "port unreachable" of a dead resolver as ECONNREFUSED.
      sock.connect(up.port, up.host, () => sock.send(query));
    });
    if (answer) return answer;
  }
  return undefined;
}

export class DnsServer {
  readonly #address: string;
  readonly #resolve: Resolve;
  readonly #reverse?: ResolveAddress;
  readonly #upstreams: () => Upstream[];
  readonly #logger?: Logger;
  #udp?: dgram.Socket;
  #tcp?: net.Server;
  readonly #sockets = new Set<net.Socket>();

  constructor(options: { address: string; resolve: Resolve; reverse?: ResolveAddress; upstreams: () => Upstream[]; logger?: Logger }) {
    this.#address = options.address;
    this.#resolve = options.resolve;
    this.#reverse = options.reverse;
    this.#upstreams = options.upstreams;
    this.#logger = options.logger;
  }

  get address(): string {
    return this.#address;
  }

  /** The bound port (useful after start(0)). */
  get port(): number {
    return this.#udp?.address().port ?? 0;
  }

  /** Bind UDP and TCP on `port`; 0 picks a port free for both (tests). */
  async start(port = 53): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#bind(port);
      } catch (err) {
        if (port !== 0 || attempt >= 20 || (err as { code?: string }).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  async #bind(port: number): Promise<void> {
    const udp = dgram.createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, this.#address, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', (err) => this.#logger?.warn('dns socket error', { address: this.#address, err }));
    udp.on('message', (msg, rinfo) => {
      void this.answer(msg, rinfo.address).then((reply) => {
        // The server may have stopped while a forwarded query was out.
        if (reply && this.#udp === udp) udp.send(reply, rinfo.port, rinfo.address, () => {});
      });
    });
    this.#udp = udp;
    const tcp = net.createServer((sock) => this.#serveTcp(sock));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(udp.address().port, this.#address, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      udp.close();
      this.#udp = undefined;
      throw err;
    }
    this.#tcp = tcp;
  }

  #serveTcp(sock: net.Socket): void {
    this.#sockets.add(sock);
    sock.on('close', () => this.#sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setTimeout(10_000, () => sock.destroy());
    let pending = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const msg = pending.subarray(2, 2 + pending.readUInt16BE(0));
        pending = pending.subarray(2 + msg.length);
        void this.answer(Buffer.from(msg), sock.remoteAddress ?? '').then((reply) => {
          if (!reply || sock.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          sock.write(Buffer.concat([len, reply]));
        });
      }
    });
  }

  /** The reply to one query message, or undefined for garbage (dropped, as resolvers do). */
  async answer(msg: Buffer, clientIp: string): Promise<Buffer | undefined> {
    let parsed: DnsQuery;
    try {
      parsed = decodeQuery(msg);
    } catch {
      return undefined;
    }
    if (parsed.flags & 0x8000) return undefined; // a response, not a query
    const q = parsed.questions[0];
    if (!q || parsed.questions.length !== 1) return encodeResponse(msg, parsed, 4 /* NOTIMP */);
    const name = q.name.replace(/\.$/, '').toLowerCase();
    const client = clientIp.replace(/^::ffff:/, '');
    const arpa = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa$/.exec(name);
    if (arpa && q.type === TYPE_PTR && this.#reverse) {
      const target = this.#reverse([arpa[4], arpa[3], arpa[2], arpa[1]].join('.'), client);
      if (target) return encodePtrResponse(msg, parsed, target);
    }
    const known = this.#resolve(name, client);
    if (known) return encodeResponse(msg, parsed, RCODE_NOERROR, q.type === TYPE_A ? known : []);
    const upstreams = this.#upstreams();
    if (upstreams.length === 0) return encodeResponse(msg, parsed, RCODE_REFUSED);
    const upstream = await forward(msg, upstreams);
    return upstream ?? encodeResponse(msg, parsed, RCODE_SERVFAIL);
  }

  async stop(): Promise<void> {
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = undefined;
    this.#tcp = undefined;
    for (const s of this.#sockets) s.destroy();
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
    if (tcp) await new Promise<void>((r) => tcp.close(() => r()));
  }
}
