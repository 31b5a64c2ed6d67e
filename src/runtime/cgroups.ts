/**
 * cgroups v1 and v2: detection, the container's directories, processes, statistics and OOM
 * counters. Parsers of the kernel's file formats are exported separately (pure) so both versions
 * are unit-tested whatever this host mounts.
 *
 * v1: one hierarchy per controller, e.g. /sys/fs/cgroup/memory/<cgroupsPath>/memory.limit_in_bytes.
 * v2: one unified hierarchy, e.g. /sys/fs/cgroup/<cgroupsPath>/memory.max.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../lib/index.js';

export interface CgroupInfo {
  version: 1 | 2;
  /** v2: the unified mount; v1: the parent of the controller mounts (usually /sys/fs/cgroup). */
  root: string;
  /** v1: controller → its mount point ('memory' → '/sys/fs/cgroup/memory'); v2: empty. */
  controllers: Record<string, string>;
}

const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * v2 when /sys/fs/cgroup itself is cgroup2 (pure v2 host); otherwise v1, with controller mounts
 * taken from /proc/self/mountinfo (a hybrid host's /sys/fs/cgroup/unified without controllers
 * does not count: runc uses v1 there).
 */
export async function detectCgroups(options: { mountinfo?: string; root?: string } = {}): Promise<CgroupInfo> {
  const root = options.root ?? '/sys/fs/cgroup';
  const stat = await fs.statfs(root);
  if (stat.type === CGROUP2_SUPER_MAGIC) return { version: 2, root, controllers: {} };
  const mountinfo = options.mountinfo ?? (await fs.readFile('/proc/self/mountinfo', 'utf8'));
  return { version: 1, root, controllers: parseV1Mounts(mountinfo) };
}

/** Controller → mount point from /proc/self/mountinfo lines of type `cgroup` (v1). */
export function parseV1Mounts(mountinfo: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (right[0] !== 'cgroup') continue;
    const mountPoint = left[4];
    for (const opt of (right[2] ?? '').split(',')) {
      const name = opt;
      if (['rw', 'ro', 'relatime', 'nosuid', 'nodev', 'noexec'].includes(name) || name.startsWith('release_agent')) continue;
      if (!out[name]) out[name] = mountPoint;
    }
  }
  return out;
}

/** The container's cgroup directory for one controller (v1) or the unified one (v2). */
export function cgroupDir(info: CgroupInfo, cgroupsPath: string, controller = 'memory'): string | undefined {
  if (info.version === 2) return path.join(info.root, cgroupsPath);
  const mount = info.controllers[controller];
  return mount ? path.join(mount, cgroupsPath) : undefined;
}

/** Every directory that runc creates for the container (all controllers on v1). */
export function allCgroupDirs(info: CgroupInfo, cgroupsPath: string): string[] {
  if (info.version === 2) return [path.join(info.root, cgroupsPath)];
  return [...new Set(Object.values(info.controllers))].map((m) => path.join(m, cgroupsPath));
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENODEV' || code === 'EINVAL' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') return undefined;
    throw err;
  }
}

const num = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined;
  const t = s.trim();
  if (t === '' || t === 'max') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
};

/** `key value` lines (memory.stat, cpu.stat, memory.events, cpuacct.stat) → record. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
  }
  return out;
}

export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/** v1 blkio.throttle.io_service_bytes: `8:0 Read 4096` lines (and a `Total` line). */
export function parseV1Blkio(text: string): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
    if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3], value: Number(m[4]) });
  }
  return out;
}

/** v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0` → Docker's read/write entries. */
export function parseV2IoStat(text: string): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of text.split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const kv = Object.fromEntries(pairs.map((p) => p.split('=')));
    out.push({ major: Number(m[1]), minor: Number(m[2]), op: 'read', value: Number(kv.rbytes ?? 0) });
    out.push({ major: Number(m[1]), minor: Number(m[2]), op: 'write', value: Number(kv.wbytes ?? 0) });
  }
  return out;
}

export interface CgroupStats {
  memory: { usage: number; maxUsage?: number; limit?: number; failcnt?: number; stats: Record<string, number> };
  /** Nanoseconds throughout. */
  cpu: {
    total: number;
    percpu: number[];
    user: number;
    kernel: number;
    throttling: { periods: number; throttledPeriods: number; throttledTime: number };
  };
  pids: { current: number; limit?: number };
  blkio: BlkioEntry[];
}

/** USER_HZ: cpuacct.stat counts in clock ticks, 100 per second on every Linux we run on. */
const userHz = 100;

/** Statistics from the container's cgroup; missing files count as zero. */
export async function readStats(info: CgroupInfo, cgroupsPath: string): Promise<CgroupStats> {
  if (info.version === 2) {
    const dir = path.join(info.root, cgroupsPath);
    const [current, peak, max, memStat, cpuStat, pidsCur, pidsMax, io] = await Promise.all(
      ['memory.current', 'memory.peak', 'memory.max', 'memory.stat', 'cpu.stat', 'pids.current', 'pids.max', 'io.stat'].map(
        (f) => readText(path.join(dir, f)),
      ),
    );
    return statsFromV2({ current, peak, max, memStat, cpuStat, pidsCur, pidsMax, io });
  }
  const file = (controller: string, name: string) => {
    const d = cgroupDir(info, cgroupsPath, controller);
    return d ? readText(path.join(d, name)) : Promise.resolve(undefined);
  };
  const [usage, maxUsage, limit, failcnt, memStat, cpuUsage, percpu, cpuacctStat, cpuStat, pidsCur, pidsMax, blkio] =
    await Promise.all([
      file('memory', 'memory.usage_in_bytes'), file('memory', 'memory.max_usage_in_bytes'),
      file('memory', 'memory.limit_in_bytes'), file('memory', 'memory.failcnt'), file('memory', 'memory.stat'),
      file('cpuacct', 'cpuacct.usage'), file('cpuacct', 'cpuacct.usage_percpu'), file('cpuacct', 'cpuacct.stat'),
      file('cpu', 'cpu.stat'), file('pids', 'pids.current'), file('pids', 'pids.max'),
      file('blkio', 'blkio.throttle.io_service_bytes'),
    ]);
  return statsFromV1({ usage, maxUsage, limit, failcnt, memStat, cpuUsage, percpu, cpuacctStat, cpuStat, pidsCur, pidsMax, blkio });
}

/** v1 file contents → stats (pure). */
export function statsFromV1(f: Record<string, string | undefined>): CgroupStats {
  const acct = parseFlatKeyed(f.cpuacctStat ?? '');
  const cpuStat = parseFlatKeyed(f.cpuStat ?? '');
  return {
    memory: {
      usage: num(f.usage) ?? 0,
      maxUsage: num(f.maxUsage),
      limit: num(f.limit),
      failcnt: num(f.failcnt),
      stats: parseFlatKeyed(f.memStat ?? ''),
    },
    cpu: {
      total: num(f.cpuUsage) ?? 0,
      percpu: (f.percpu ?? '').trim().split(/\s+/).filter(Boolean).map(Number),
      user: ((acct.user ?? 0) * 1e9) / userHz,
      kernel: ((acct.system ?? 0) * 1e9) / userHz,
      throttling: {
        periods: cpuStat.nr_periods ?? 0,
        throttledPeriods: cpuStat.nr_throttled ?? 0,
        throttledTime: cpuStat.throttled_time ?? 0,
      },
    },
    pids: { current: num(f.pidsCur) ?? 0, limit: num(f.pidsMax) },
    blkio: parseV1Blkio(f.blkio ?? ''),
  };
}

/** v2 file contents → stats (pure). */
export function statsFromV2(f: Record<string, string | undefined>): CgroupStats {
  const cpu = parseFlatKeyed(f.cpuStat ?? '');
  return {
    memory: {
      usage: num(f.current) ?? 0,
      maxUsage: num(f.peak),
      limit: num(f.max),
      stats: parseFlatKeyed(f.memStat ?? ''),
    },
    cpu: {
      total: (cpu.usage_usec ?? 0) * 1000,
      percpu: [],
      user: (cpu.user_usec ?? 0) * 1000,
      kernel: (cpu.system_usec ?? 0) * 1000,
      throttling: {
        periods: cpu.nr_periods ?? 0,
        throttledPeriods: cpu.nr_throttled ?? 0,
        throttledTime: (cpu.throttled_usec ?? 0) * 1000,
      },
    },
    pids: { current: num(f.pidsCur) ?? 0, limit: num(f.pidsMax) },
    blkio: parseV2IoStat(f.io ?? ''),
  };
}

/** Every pid in the container's cgroup and its sub-cgroups (for `top`). */
export async function cgroupPids(info: CgroupInfo, cgroupsPath: string): Promise<number[]> {
  const dir = info.version === 2 ? cgroupDir(info, cgroupsPath) : cgroupDir(info, cgroupsPath, info.controllers.pids ? 'pids' : 'memory');
  if (!dir) return [];
  const out: number[] = [];
  const walk = async (d: string): Promise<void> => {
    const text = await readText(path.join(d, 'cgroup.procs'));
    if (text === undefined) return;
    for (const l of text.split('\n')) if (l.trim()) out.push(Number(l));
    let entries: import('node:fs').Dirent[] = [];
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) await walk(path.join(d, e.name));
  };
  await walk(dir);
  return out;
}

/** How many OOM kills the container's memory cgroup has seen (v1 memory.oom_control, v2 memory.events). */
export async function oomKillCount(info: CgroupInfo, cgroupsPath: string): Promise<number> {
  const dir = cgroupDir(info, cgroupsPath, 'memory');
  if (!dir) return 0;
  const text = await readText(path.join(dir, info.version === 2 ? 'memory.events' : 'memory.oom_control'));
  return parseFlatKeyed(text ?? '').oom_kill ?? 0;
}

/** rmdir the container's cgroup directories, deepest first; absent ones are fine. */
export async function removeCgroupDirs(info: CgroupInfo, cgroupsPath: string): Promise<void> {
  for (const dir of allCgroupDirs(info, cgroupsPath)) {
    try {
      await fs.rmdir(dir);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }
}
