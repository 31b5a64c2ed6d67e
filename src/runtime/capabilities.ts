/**
 * Linux capabilities by name and number (pure). Numbers are the kernel's (linux/capability.h);
 * they matter when reading `CapBnd` from /proc/<pid>/status.
 */
import { invalidArgument } from '../lib/index.js';

export const allCapabilities = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;

/** Docker's default set: enough for package managers and daemons that drop privileges. */
export const defaultCapabilities = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** `net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`; 'ALL' stays 'ALL'. */
export function normalizeCapability(name: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!(allCapabilities as readonly string[]).includes(full)) {
    throw invalidArgument(`Cannot use capability "${name}": unknown capability`);
  }
  return full;
}

/**
 * The capability set of a process: Docker's rule is "start from the default set (or all when
 * privileged), add capAdd, then drop capDrop"; 'ALL' in capAdd means every capability, 'ALL' in
 * capDrop empties the set before capAdd is applied. `available` (the host's bounding set) caps
 * what privileged/'ALL' expand to, since asking for a capability we lack makes runc fail.
 */
export function capabilitySet(options: {
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  available?: readonly string[];
}): string[] {
  const everything = (options.available ?? allCapabilities).filter((c) =>
    (allCapabilities as readonly string[]).includes(c),
  );
  if (options.privileged) return allCapabilities.filter((c) => everything.includes(c));
  const add = (options.capAdd ?? []).map(normalizeCapability);
  const drop = (options.capDrop ?? []).map(normalizeCapability);
  let set = new Set<string>(drop.includes('ALL') ? [] : defaultCapabilities);
  for (const c of drop) set.delete(c);
  if (add.includes('ALL')) set = new Set(everything);
  for (const c of add) if (c !== 'ALL') set.add(c);
  if (!drop.includes('ALL')) for (const c of drop) set.delete(c);
  return allCapabilities.filter((c) => set.has(c));
}

/** Capability names present in a `CapBnd`-style hex mask (from /proc/<pid>/status). */
export function capabilitiesFromMask(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim()}`);
  return allCapabilities.filter((_c, i) => (mask >> BigInt(i)) & 1n);
}
