/**
 * IPv4 address arithmetic for baleia's own IPAM (pure): parse and check subnets, find a free
 * /24 in the address pools, pick the lowest free address of a range.
 */
import { BaleiaError } from '../lib/index.js';

export interface Cidr {
  /** Network address as an unsigned 32-bit integer. */
  base: number;
  prefix: number;
}

export function parseIp(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const mask = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** A CIDR whose host bits are zero; `10.1.2.3/24` is refused, as Docker refuses it. */
export function parseCidr(text: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  if (!m) return undefined;
  const ip = parseIp(m[1]!);
  const prefix = Number(m[2]);
  if (ip === undefined || prefix > 32) return undefined;
  if ((ip & mask(prefix)) >>> 0 !== ip) return undefined;
  return { base: ip, prefix };
}

export function mustParseCidr(text: string, what: string): Cidr {
  const cidr = parseCidr(text);
  if (!cidr) throw new BaleiaError('InvalidArgument', `Invalid ${what} "${text}": expected an IPv4 network such as 10.99.0.0/24`);
  return cidr;
}

export const formatCidr = (c: Cidr): string => `${formatIp(c.base)}/${c.prefix}`;
export const size = (c: Cidr): number => 2 ** (32 - c.prefix);
export const contains = (c: Cidr, ip: number): boolean => ((ip & mask(c.prefix)) >>> 0) === c.base;
export const overlaps = (a: Cidr, b: Cidr): boolean =>
  a.base < b.base + size(b) && b.base < a.base + size(a);
export const broadcast = (c: Cidr): number => c.base + size(c) - 1;

/** The /24s (or the given prefix) a pool is split into, in order. */
export function* splitPool(pool: Cidr, prefix = 24): Generator<Cidr> {
  if (pool.prefix > prefix) {
    yield pool;
    return;
  }
  const step = 2 ** (32 - prefix);
  for (let base = pool.base; base < pool.base + size(pool); base += step) yield { base, prefix };
}

/**
 * The lowest free host address of `range` inside `subnet`: never the network or broadcast
 * address of the subnet, never an address in `used`.
 */
export function lowestFree(subnet: Cidr, range: Cidr, used: Set<number>): number | undefined {
  const first = Math.max(range.base, subnet.base + 1);
  const last = Math.min(broadcast(range), subnet.prefix >= 31 ? broadcast(subnet) : broadcast(subnet) - 1);
  for (let ip = first; ip <= last; ip++) if (!used.has(ip)) return ip;
  return undefined;
}

/** Docker's MAC for an IPv4 endpoint: 02:42 followed by the four address bytes. */
export function macForIp(ip: number): string {
  return ['02', '42', ...[ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
