/**
 * Docker's stats object from the runtime's cgroup sample (v1 or v2), the host's /proc/stat
 * (system CPU time) and the container's own /proc/<pid>/net/dev (its network namespace).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import type { Runtime } from '../runtime/index.js';
import type { Json } from './container-config.js';
import type { ContainerRecord } from './containers.js';

/** Sum of all CPU time of the host in nanoseconds (the `cpu` line of /proc/stat, in USER_HZ=100 ticks). */
export async function systemCpuUsage(): Promise<number> {
  const text = await fs.readFile('/proc/stat', 'utf8');
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line.trim().split(/\s+/).slice(1, 8).reduce((a, v) => a + Number(v), 0);
  return ticks * 1e7;
}

/** Interfaces of the container's network namespace except lo, as Docker's `networks` object. */
export async function networkStats(pid: number): Promise<Json | undefined> {
  const text = await fs.readFile(`/proc/${pid}/net/dev`, 'utf8').catch(() => '');
  const out: Json = {};
  for (const line of text.split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest || !name || name.trim() === 'lo') continue;
    const f = rest.trim().split(/\s+/).map(Number);
    out[name.trim()] = {
      rx_bytes: f[0], rx_packets: f[1], rx_errors: f[2], rx_dropped: f[3],
      tx_bytes: f[8], tx_packets: f[9], tx_errors: f[10], tx_dropped: f[11],
    };
  }
  return Object.keys(out).length ? out : undefined;
}

export async function sampleStats(runtime: Runtime, cgroup: string, record: ContainerRecord): Promise<Json & { read: string; cpu_stats: Json }> {
  const [sample, system] = await Promise.all([runtime.stats(cgroup), systemCpuUsage()]);
  const networks = record.State.Pid ? await networkStats(record.State.Pid) : undefined;
  const limit = sample.memory.limit && sample.memory.limit < 2 ** 62 ? sample.memory.limit : os.totalmem();
  return {
    read: new Date().toISOString(),
    name: record.Name,
    id: record.Id,
    num_procs: 0,
    pids_stats: { current: sample.pids.current, ...(sample.pids.limit ? { limit: sample.pids.limit } : {}) },
    blkio_stats: {
      io_service_bytes_recursive: sample.blkio.length ? sample.blkio : null,
      io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null,
      io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null,
    },
    storage_stats: {},
    cpu_stats: {
      cpu_usage: {
        total_usage: sample.cpu.total,
        ...(sample.cpu.percpu.length ? { percpu_usage: sample.cpu.percpu } : {}),
        usage_in_kernelmode: sample.cpu.kernel,
        usage_in_usermode: sample.cpu.user,
      },
      system_cpu_usage: system,
      online_cpus: os.cpus().length,
      throttling_data: {
        periods: sample.cpu.throttling.periods,
        throttled_periods: sample.cpu.throttling.throttledPeriods,
        throttled_time: sample.cpu.throttling.throttledTime,
      },
    },
    memory_stats: {
      usage: sample.memory.usage,
      ...(sample.memory.maxUsage !== undefined ? { max_usage: sample.memory.maxUsage } : {}),
      ...(sample.memory.failcnt !== undefined ? { failcnt: sample.memory.failcnt } : {}),
      stats: sample.memory.stats,
      limit,
    },
    ...(networks ? { networks } : {}),
  };
}

/** What Docker answers for a container that is not running: the shape with zeros. */
export function zeroStats(record: ContainerRecord): Json {
  const cpu = { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
  return {
    read: '0001-01-01T00:00:00Z', preread: '0001-01-01T00:00:00Z', name: record.Name, id: record.Id, num_procs: 0,
    pids_stats: {}, blkio_stats: { io_service_bytes_recursive: null }, storage_stats: {},
    cpu_stats: cpu, precpu_stats: cpu, memory_stats: {},
  };
}
