/**
 * The OCI runtime spec builder (pure: no fs, no processes). Everything the container's isolation
 * is made of is decided here: namespaces, mounts, capabilities, seccomp, masked paths, device
 * rules, rlimits and cgroup resources. Host facts it needs (cgroup version, the host's bounding
 * capabilities and rlimits, resolved device numbers) come in through `SpecInput`; the driver side
 * (`host.ts`) reads them.
 */
import { invalidArgument } from '../lib/index.js';
import { capabilitySet } from './capabilities.js';
import { defaultSeccompProfile, seccompToOci, type DockerSeccompProfile } from './seccomp.js';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/**
 * A device to create in the container, with its numbers already resolved (`resolveDevice` in
 * host.ts reads them from the host), or an `UnresolvedDevice` naming the host path only: the
 * spec builder does not stat, so it leaves a `{ path, pathOnHost, cgroupPermissions }` entry in
 * `linux.devices` that `Runtime.create` resolves (and adds the cgroup rule for) before runc sees it.
 */
export interface UnresolvedDevice {
  pathOnHost: string;
  pathInContainer: string;
  cgroupPermissions: string;
}

export interface SpecDevice {
  pathInContainer: string;
  type: 'c' | 'b' | 'p' | 'u';
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
  /** 'rwm' or a subset; defaults to 'rwm'. */
  cgroupPermissions?: string;
}

export interface SpecResources {
  memory?: number;
  memorySwap?: number;
  memoryReservation?: number;
  oomKillDisable?: boolean;
  memorySwappiness?: number;
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  nanoCpus?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: number;
  blkioWeight?: number;
}

export interface Rlimit {
  soft: number;
  hard: number;
}

export interface SpecInput {
  id: string;
  /** Absolute path of the container's root filesystem (the merged overlay). */
  rootfs: string;
  readonlyRootfs?: boolean;
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids?: number[] };
  terminal: boolean;
  hostname: string;
  domainname?: string;
  /** 'new' = an own network namespace with only `lo`; 'path' = join a namespace bind-mounted at path. */
  network: { mode: 'new' } | { mode: 'host' } | { mode: 'path'; path: string };
  ipcMode?: 'private' | 'host' | 'shareable';
  pidMode?: 'private' | 'host';
  utsMode?: 'private' | 'host';
  /** e.g. '/baleia/<id>': a path under each v1 controller's root, or under the v2 root. */
  cgroupsPath: string;
  /** The host's cgroup version (from `detectCgroups`); 2 adds a cgroup namespace like Docker. Default 1. */
  cgroupVersion?: 1 | 2;
  resources: SpecResources;
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  /** The host's bounding capabilities (`hostCapabilities()`): privileged/'ALL' never ask for more. */
  hostCapabilities?: string[];
  seccomp?: 'default' | 'unconfined' | DockerSeccompProfile | object;
  noNewPrivileges?: boolean;
  devices?: Array<SpecDevice | UnresolvedDevice>;
  /** Every host device, for privileged containers (`hostDevices()` in host.ts). */
  privilegedDevices?: SpecDevice[];
  sysctls?: Record<string, string>;
  /** Docker names: 'nofile', 'nproc', 'core', 'memlock', 'stack', … */
  ulimits?: Array<{ name: string; soft: number; hard: number }>;
  /** Bytes; default 64 MiB. */
  shmSize?: number;
  /** Extra mounts: binds, volumes, tmpfs, /etc/hosts, /etc/resolv.conf, /etc/hostname. */
  mounts?: OciMount[];
  /** Run tini as pid 1, bind-mounted read-only at /sbin/docker-init from `initPath`. */
  init?: boolean;
  initPath?: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  /** Defaults for rlimits, from the host's hard limits (`hostRlimits()`): we cannot raise above them. */
  hostRlimits?: { nofile?: Rlimit; nproc?: Rlimit };
  /** Node's `process.arch` spelling, for the seccomp architecture list; default 'x64'. */
  arch?: string;
  oomScoreAdj?: number;
  annotations?: Record<string, string>;
}

export const initPathInContainer = '/sbin/docker-init';
export const defaultShmSize = 64 * 1024 * 1024;

export const defaultMaskedPaths = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
export const defaultReadonlyPaths = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Docker's default device cgroup rules: deny everything, allow mknod and the usual character devices. */
const defaultDeviceRules = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // /dev/null
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // /dev/zero
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // /dev/full
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // /dev/random
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // /dev/urandom
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // /dev/tty
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, // /dev/console
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // /dev/ptmx
  { allow: true, type: 'c', major: 136, access: 'rwm' }, // /dev/pts/*
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }, // /dev/net/tun
];

const rlimitNames: Record<string, string> = {
  core: 'RLIMIT_CORE', cpu: 'RLIMIT_CPU', data: 'RLIMIT_DATA', fsize: 'RLIMIT_FSIZE',
  locks: 'RLIMIT_LOCKS', memlock: 'RLIMIT_MEMLOCK', msgqueue: 'RLIMIT_MSGQUEUE', nice: 'RLIMIT_NICE',
  nofile: 'RLIMIT_NOFILE', nproc: 'RLIMIT_NPROC', rss: 'RLIMIT_RSS', rtprio: 'RLIMIT_RTPRIO',
  rttime: 'RLIMIT_RTTIME', sigpending: 'RLIMIT_SIGPENDING', stack: 'RLIMIT_STACK', as: 'RLIMIT_AS',
};

/** Mount destinations sort parents first so a bind at /a/b is not hidden by a later one at /a. */
const depth = (p: string) => p.split('/').filter(Boolean).length;

function defaultMounts(input: SpecInput): OciMount[] {
  const privileged = !!input.privileged;
  const shmSize = input.shmSize ?? defaultShmSize;
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
    // runc mounts the container's own cgroup here: cgroup2 in the cgroup namespace on v2, a tmpfs with
    // one bind per controller on v1 (so memory.limit_in_bytes inside shows the container's limit).
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', privileged ? 'rw' : 'ro'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  ];
  if (input.ipcMode === 'host') {
    mounts.push({ destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'nosuid', 'noexec', 'nodev'] });
  } else {
    mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSize}`] });
  }
  return mounts;
}

const isResolved = (d: SpecDevice | UnresolvedDevice): d is SpecDevice => 'major' in d && typeof d.major === 'number';

function buildResources(input: SpecInput): Record<string, unknown> {
  const out = resourceLimits(input.resources ?? {});
  const devices: Array<Record<string, unknown>> = input.privileged
    ? [{ allow: true, access: 'rwm' }]
    : defaultDeviceRules.map((d) => ({ ...d }));
  for (const d of input.devices ?? []) {
    if (!isResolved(d)) continue;
    devices.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.cgroupPermissions || 'rwm' });
  }
  out.devices = devices;
  return out;
}

/** The OCI `linux.resources` limits (memory, cpu, pids, blockIO) — also what `runc update` takes. */
export function resourceLimits(r: SpecResources): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const memory: Record<string, unknown> = {};
  if (r.memory !== undefined && r.memory > 0) {
    memory.limit = r.memory;
    // Docker: without an explicit MemorySwap the container may use as much swap as memory.
    if (r.memorySwap === undefined || r.memorySwap === 0) memory.swap = r.memory * 2;
  }
  if (r.memorySwap !== undefined && r.memorySwap !== 0) {
    if (r.memorySwap > 0 && r.memory !== undefined && r.memorySwap < r.memory) {
      throw invalidArgument('Cannot set memory limit: the memory+swap limit must be larger than the memory limit');
    }
    memory.swap = r.memorySwap;
  }
  if (r.memoryReservation) memory.reservation = r.memoryReservation;
  if (r.oomKillDisable) memory.disableOOMKiller = true;
  if (r.memorySwappiness !== undefined && r.memorySwappiness >= 0) memory.swappiness = r.memorySwappiness;
  if (Object.keys(memory).length > 0) out.memory = memory;

  const cpu: Record<string, unknown> = {};
  if (r.cpuShares) cpu.shares = r.cpuShares;
  if (r.nanoCpus) {
    if (r.cpuQuota) throw invalidArgument('Cannot set CPU limits: NanoCPUs and CPUQuota cannot both be set');
    cpu.period = 100000;
    cpu.quota = Math.round((r.nanoCpus * 100000) / 1e9);
  } else {
    if (r.cpuQuota) cpu.quota = r.cpuQuota;
    if (r.cpuPeriod) cpu.period = r.cpuPeriod;
  }
  if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (r.cpusetMems) cpu.mems = r.cpusetMems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;

  if (r.pidsLimit !== undefined && r.pidsLimit !== 0) out.pids = { limit: r.pidsLimit < 0 ? -1 : r.pidsLimit };
  if (r.blkioWeight) out.blockIO = { weight: r.blkioWeight };
  return out;
}

function rlimits(input: SpecInput): Array<{ type: string; soft: number; hard: number }> {
  const byType = new Map<string, { type: string; soft: number; hard: number }>();
  const nofile = input.hostRlimits?.nofile;
  // Docker containers get nofile soft = hard; take the host's hard limit, the highest we may set.
  if (nofile) byType.set('RLIMIT_NOFILE', { type: 'RLIMIT_NOFILE', soft: nofile.hard, hard: nofile.hard });
  const nproc = input.hostRlimits?.nproc;
  if (nproc) byType.set('RLIMIT_NPROC', { type: 'RLIMIT_NPROC', soft: nproc.soft, hard: nproc.hard });
  for (const u of input.ulimits ?? []) {
    const type = rlimitNames[u.name.toLowerCase()];
    if (!type) throw invalidArgument(`Cannot set ulimit "${u.name}": unknown resource`);
    if (u.soft > u.hard && u.hard >= 0) {
      throw invalidArgument(`Cannot set ulimit "${u.name}": soft limit ${u.soft} is above hard limit ${u.hard}`);
    }
    const toOci = (v: number) => (v < 0 ? 2 ** 64 - 1 : v);
    byType.set(type, { type, soft: toOci(u.soft), hard: toOci(u.hard) });
  }
  return [...byType.values()];
}

/** The complete OCI `config.json` for one container. */
export function buildSpec(input: SpecInput): Record<string, unknown> {
  if (!input.rootfs.startsWith('/')) throw invalidArgument(`Cannot build spec for "${input.id}": rootfs must be absolute`);
  if (input.args.length === 0) throw invalidArgument(`Cannot build spec for "${input.id}": no command specified`);
  const privileged = !!input.privileged;
  const caps = capabilitySet({
    privileged,
    capAdd: input.capAdd,
    capDrop: input.capDrop,
    available: input.hostCapabilities,
  });

  const args = input.init ? [initPathInContainer, '--', ...input.args] : [...input.args];

  const namespaces: Array<{ type: string; path?: string }> = [{ type: 'mount' }];
  if (input.pidMode !== 'host') namespaces.push({ type: 'pid' });
  if (input.network.mode === 'new') namespaces.push({ type: 'network' });
  else if (input.network.mode === 'path') namespaces.push({ type: 'network', path: input.network.path });
  if (input.ipcMode !== 'host') namespaces.push({ type: 'ipc' });
  if (input.utsMode !== 'host') namespaces.push({ type: 'uts' });
  if ((input.cgroupVersion ?? 1) === 2) namespaces.push({ type: 'cgroup' });

  const userMounts = [...(input.mounts ?? [])];
  if (input.init) {
    userMounts.push({ destination: initPathInContainer, type: 'bind', source: input.initPath ?? '/usr/bin/tini-static',
      options: ['bind', 'ro', 'nosuid', 'nodev'] });
  }
  const userDestinations = new Set(userMounts.map((m) => m.destination.replace(/\/+$/, '') || '/'));
  // A user mount replaces a default one at the same place (e.g. a bigger /dev/shm).
  const mounts = [
    ...defaultMounts(input).filter((m) => !userDestinations.has(m.destination)),
    ...userMounts.map((m, i) => ({ m, i })).sort((a, b) => depth(a.m.destination) - depth(b.m.destination) || a.i - b.i).map((x) => x.m),
  ];

  let seccomp: unknown;
  const arch = input.arch ?? 'x64';
  if (!privileged && input.seccomp !== 'unconfined') {
    const profile = input.seccomp === undefined || input.seccomp === 'default' ? defaultSeccompProfile : (input.seccomp as DockerSeccompProfile);
    if (typeof profile.defaultAction !== 'string') throw invalidArgument('Cannot use seccomp profile: "defaultAction" is missing');
    seccomp = seccompToOci(profile, { capabilities: caps, arch });
  }

  const devices = [...(privileged ? input.privilegedDevices ?? [] : []), ...(input.devices ?? [])];
  const seenDevices = new Set<string>();
  const ociDevices = devices
    .filter((d) => !seenDevices.has(d.pathInContainer) && seenDevices.add(d.pathInContainer))
    .map((d) => !isResolved(d) ? { path: d.pathInContainer || d.pathOnHost, pathOnHost: d.pathOnHost, cgroupPermissions: d.cgroupPermissions || 'rwm' } : ({
      path: d.pathInContainer,
      type: d.type,
      major: d.major,
      minor: d.minor,
      fileMode: d.fileMode ?? 0o666,
      uid: d.uid ?? 0,
      gid: d.gid ?? 0,
    }));

  const process: Record<string, unknown> = {
    terminal: input.terminal,
    user: {
      uid: input.user.uid,
      gid: input.user.gid,
      ...(input.user.additionalGids?.length ? { additionalGids: input.user.additionalGids } : {}),
    },
    args,
    env: input.env,
    cwd: input.cwd || '/',
    // Inheritable and ambient stay empty (CVE-2022-24769): exec'd binaries get only file caps.
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    rlimits: rlimits(input),
    noNewPrivileges: !!input.noNewPrivileges,
  };
  if (input.oomScoreAdj !== undefined) process.oomScoreAdj = input.oomScoreAdj;

  const linux: Record<string, unknown> = {
    namespaces,
    cgroupsPath: input.cgroupsPath,
    resources: buildResources(input),
    maskedPaths: privileged ? [] : input.maskedPaths ?? defaultMaskedPaths,
    readonlyPaths: privileged ? [] : input.readonlyPaths ?? defaultReadonlyPaths,
  };
  if (ociDevices.length > 0) linux.devices = ociDevices;
  if (seccomp) linux.seccomp = seccomp;
  if (input.sysctls && Object.keys(input.sysctls).length > 0) linux.sysctl = { ...input.sysctls };

  return {
    ociVersion: '1.0.2-dev',
    process,
    root: { path: input.rootfs, readonly: !!input.readonlyRootfs },
    ...(input.utsMode !== 'host' ? { hostname: input.hostname } : {}),
    ...(input.utsMode !== 'host' && input.domainname ? { domainname: input.domainname } : {}),
    mounts,
    linux,
    ...(input.annotations ? { annotations: input.annotations } : {}),
  };
}
