/**
 * Published ports: parse Docker's PortBindings and hold each host port with a socket of our own,
 * so a port taken by someone else fails early with a clear error (EADDRINUSE), and nobody takes
 * ours while the DNAT rule forwards it. The socket never carries traffic: the nat rules rewrite
 * the destination before the packet reaches it.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { BaleiaError, errnoCode } from '../lib/index.js';
import { parseIp } from './ipam.js';

export interface PortSpec {
  proto: 'tcp' | 'udp';
  containerPort: number;
  hostIp: string;
  /** Inclusive range of acceptable host ports; [0,0] means any free port ≥ 32768. */
  hostPorts: [number, number];
}

export function parsePortKey(key: string): { proto: 'tcp' | 'udp'; port: number } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(key.trim());
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) throw new BaleiaError('InvalidArgument', `Invalid port "${key}": expected PORT[/tcp|udp]`);
  const proto = (m[2] ?? 'tcp').toLowerCase();
  if (proto === 'sctp') throw new BaleiaError('NotImplemented', `Cannot publish port "${key}": sctp is not supported`);
  return { proto: proto as 'tcp' | 'udp', port };
}

export function parseHostPort(text: string | undefined, key: string): [number, number] {
  const t = (text ?? '').trim();
  if (t === '' || t === '0') return [0, 0];
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(t);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m?.[2] ? Number(m[2]) : lo;
  if (!m || lo < 1 || hi > 65535 || hi < lo) throw new BaleiaError('InvalidArgument', `Invalid host port "${t}" for "${key}": expected PORT or START-END`);
  return [lo, hi];
}

/** PortBindings + exposed ports (+ -P) → one spec per binding, and the exposed-only keys. */
export function planPorts(
  bindings: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>,
  options: { exposed?: string[]; publishAll?: boolean; defaultHostIp?: string },
): { specs: Array<PortSpec & { key: string }>; unpublished: string[] } {
  const specs: Array<PortSpec & { key: string }> = [];
  const unpublished: string[] = [];
  const keyOf = (k: string) => {
    const { proto, port } = parsePortKey(k);
    return { key: `${port}/${proto}`, proto, port };
  };
  const seen = new Set<string>();
  for (const [rawKey, list] of Object.entries(bindings ?? {})) {
    const { key, proto, port } = keyOf(rawKey);
    seen.add(key);
    const entries = list && list.length > 0 ? list : [{}];
    for (const b of entries) {
      const hostIp = (b.HostIp ?? '').trim() || options.defaultHostIp || '0.0.0.0';
      if (parseIp(hostIp) === undefined) {
        throw new BaleiaError(net.isIPv6(hostIp) ? 'NotImplemented' : 'InvalidArgument', `Invalid host IP "${hostIp}" for "${key}": expected an IPv4 address`);
      }
      specs.push({ key, proto, containerPort: port, hostIp, hostPorts: parseHostPort(b.HostPort, key) });
    }
  }
  for (const raw of options.exposed ?? []) {
    const { key, proto, port } = keyOf(raw);
    if (seen.has(key)) continue;
    seen.add(key);
    if (options.publishAll) specs.push({ key, proto, containerPort: port, hostIp: options.defaultHostIp || '0.0.0.0', hostPorts: [0, 0] });
    else unpublished.push(key);
  }
  return { specs, unpublished };
}

export interface Reservation {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  close(): Promise<void>;
}

/** Hold `hostIp:port` (exclusive); rejects with the errno error when taken. */
export async function reserve(proto: 'tcp' | 'udp', hostIp: string, port: number): Promise<Reservation> {
  if (proto === 'tcp') {
    const server = net.createServer((sock) => sock.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: hostIp, exclusive: true, backlog: 1 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => {});
    return { proto, hostIp, hostPort: port, close: () => new Promise((r) => server.close(() => r())) };
  }
  const sock = dgram.createSocket({ type: 'udp4' });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ port, address: hostIp, exclusive: true }, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  sock.on('error', () => {});
  sock.on('message', () => {});
  return { proto, hostIp, hostPort: port, close: () => new Promise((r) => sock.close(() => r())) };
}

const RANDOM_LOW = 32768;
const RANDOM_HIGH = 60999;

/** Reserve one port of `spec.hostPorts` (or a random one ≥ 32768), never one of `avoid`. */
export async function reserveSpec(spec: PortSpec, avoid: (port: number) => boolean): Promise<Reservation> {
  const [lo, hi] = spec.hostPorts;
  const candidates: number[] = [];
  if (lo === 0) {
    const start = RANDOM_LOW + Math.floor(Math.random() * (RANDOM_HIGH - RANDOM_LOW));
    for (let i = 0; i < 200; i++) candidates.push(RANDOM_LOW + ((start - RANDOM_LOW + i * 7919) % (RANDOM_HIGH - RANDOM_LOW + 1)));
  } else {
    for (let p = lo; p <= hi; p++) candidates.push(p);
  }
  let last: unknown;
  for (const port of candidates) {
    if (avoid(port)) continue;
    try {
      return await reserve(spec.proto, spec.hostIp, port);
    } catch (err) {
      last = err;
      if (errnoCode(err) !== 'EADDRINUSE' && errnoCode(err) !== 'EACCES') break;
    }
  }
  const wanted = lo === 0 ? 'a free port' : lo === hi ? `port ${lo}` : `a port in ${lo}-${hi}`;
  const code = errnoCode(last);
  throw new BaleiaError(
    code === 'EADDRNOTAVAIL' ? 'InvalidArgument' : 'Conflict',
    `Cannot publish ${spec.containerPort}/${spec.proto} on ${spec.hostIp}: ${wanted} ${code === 'EADDRINUSE' || last === undefined ? 'is already allocated' : 'cannot be bound'}`,
    { cause: last },
  );
}
