/**
 * `baleia stats` (live or `--no-stream`) and `baleia update`, computed and printed as the docker
 * CLI does: CPU % from the deltas against `precpu_stats`, memory without the page cache.
 */
import type { Command } from '../command.js';
import { forEachTarget } from '../common.js';
import { parseRestart } from '../container-options.js';
import { formatList } from '../format.js';
import { UsageError } from '../flags.js';
import { bytesSize, humanSize, memSwapBytes, nanoCpus, ramInBytes } from '../units.js';

interface StatsJson {
  id: string;
  name: string;
  read: string;
  pids_stats?: { current?: number };
  cpu_stats?: CpuStats;
  precpu_stats?: CpuStats;
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  blkio_stats?: { io_service_bytes_recursive?: Array<{ op: string; value: number }> | null };
  networks?: Record<string, { rx_bytes: number; tx_bytes: number }>;
}
interface CpuStats {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] };
  system_cpu_usage?: number;
  online_cpus?: number;
}

/** One row of the stats table, with docker's formulas. */
export function statsRow(s: StatsJson): Record<string, () => string> {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpus = s.cpu_stats?.online_cpus || s.cpu_stats?.cpu_usage?.percpu_usage?.length || 1;
  const cpu = cpuDelta > 0 && sysDelta > 0 ? (cpuDelta / sysDelta) * cpus * 100 : 0;
  const stats = s.memory_stats?.stats ?? {};
  // docker: usage minus the inactive file cache (v1 total_inactive_file, v2 inactive_file).
  const cache = stats.total_inactive_file ?? stats.inactive_file ?? 0;
  const used = Math.max(0, (s.memory_stats?.usage ?? 0) - (cache < (s.memory_stats?.usage ?? 0) ? cache : 0));
  const limit = s.memory_stats?.limit ?? 0;
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    rx += n.rx_bytes;
    tx += n.tx_bytes;
  }
  let read = 0;
  let write = 0;
  for (const e of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    if (/^r/i.test(e.op)) read += e.value;
    else if (/^w/i.test(e.op)) write += e.value;
  }
  const running = s.read !== '0001-01-01T00:00:00Z';
  return {
    Container: () => s.id.slice(0, 12),
    ID: () => s.id.slice(0, 12),
    Name: () => s.name.replace(/^\//, ''),
    CPUPerc: () => (running ? `${cpu.toFixed(2)}%` : '--'),
    MemUsage: () => (running ? `${bytesSize(used)} / ${bytesSize(limit)}` : '-- / --'),
    MemPerc: () => (running ? `${(limit ? (used / limit) * 100 : 0).toFixed(2)}%` : '--'),
    NetIO: () => (running ? `${humanSize(rx, 3)} / ${humanSize(tx, 3)}` : '--'),
    BlockIO: () => (running ? `${humanSize(read, 3)} / ${humanSize(write, 3)}` : '--'),
    PIDs: () => (running ? String(s.pids_stats?.current ?? 0) : '--'),
  };
}

const statsFormat = 'table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}';
const statsHeaders = {
  ID: 'CONTAINER ID', Container: 'CONTAINER', Name: 'NAME', CPUPerc: 'CPU %', MemUsage: 'MEM USAGE / LIMIT', MemPerc: 'MEM %',
  NetIO: 'NET I/O', BlockIO: 'BLOCK I/O', PIDs: 'PIDS',
};

export const statsCommand: Command = {
  name: 'stats',
  usage: '[OPTIONS] [CONTAINER...]',
  description: 'Display a live stream of container(s) resource usage statistics',
  flags: [
    { long: 'all', short: 'a', type: 'bool', description: 'Show all containers (default shows just running)' },
    { long: 'format', type: 'string', description: 'Format output using a custom template' },
    { long: 'no-stream', type: 'bool', description: 'Disable streaming stats and only pull the first result' },
    { long: 'no-trunc', type: 'bool', description: 'Do not truncate output' },
  ],
  async run(cli, { flags, args }) {
    const client = await cli.client();
    let targets = args;
    if (targets.length === 0) {
      const list = await client.json<Array<{ Id: string }>>('GET', '/containers/json', { query: { all: flags.bool('all') ? '1' : undefined } });
      targets = list.map((c) => c.Id);
    }
    const render = async () => {
      const rows = await Promise.all(
        targets.map(async (t) => statsRow(await client.json<StatsJson>('GET', `/containers/${encodeURIComponent(t)}/stats`, { query: { stream: '0' } }))),
      );
      return formatList(rows, { format: flags.string('format'), defaultFormat: statsFormat, headers: statsHeaders });
    };
    if (flags.bool('no-stream')) {
      cli.out(await render());
      return 0;
    }
    // Live: redraw about once a second until interrupted.
    for (;;) {
      const text = await render();
      cli.out(`\x1b[2J\x1b[H${text}`);
    }
  },
};

export const updateCommand: Command = {
  name: 'update',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Update configuration of one or more containers',
  flags: [
    { long: 'cpus', type: 'string', description: 'Number of CPUs' },
    { long: 'cpu-shares', short: 'c', type: 'int', description: 'CPU shares (relative weight)' },
    { long: 'cpu-period', type: 'int', description: 'Limit CPU CFS period' },
    { long: 'cpu-quota', type: 'int', description: 'Limit CPU CFS quota' },
    { long: 'cpuset-cpus', type: 'string', description: 'CPUs in which to allow execution (0-3, 0,1)' },
    { long: 'cpuset-mems', type: 'string', description: 'MEMs in which to allow execution (0-3, 0,1)' },
    { long: 'memory', short: 'm', type: 'string', description: 'Memory limit' },
    { long: 'memory-reservation', type: 'string', description: 'Memory soft limit' },
    { long: 'memory-swap', type: 'string', description: 'Swap limit equal to memory plus swap: -1 to enable unlimited swap' },
    { long: 'pids-limit', type: 'int', description: 'Tune container pids limit (set -1 for unlimited)' },
    { long: 'restart', type: 'string', description: 'Restart policy to apply when a container exits' },
  ],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const body: Record<string, unknown> = {};
    const num = (name: string) => flags.int(name);
    if (flags.string('cpus')) body.NanoCpus = nanoCpus(flags.string('cpus')!);
    if (num('cpu-shares') !== undefined) body.CpuShares = num('cpu-shares');
    if (num('cpu-period') !== undefined) body.CpuPeriod = num('cpu-period');
    if (num('cpu-quota') !== undefined) body.CpuQuota = num('cpu-quota');
    if (flags.string('cpuset-cpus')) body.CpusetCpus = flags.string('cpuset-cpus');
    if (flags.string('cpuset-mems')) body.CpusetMems = flags.string('cpuset-mems');
    if (flags.string('memory')) body.Memory = ramInBytes(flags.string('memory')!);
    if (flags.string('memory-reservation')) body.MemoryReservation = ramInBytes(flags.string('memory-reservation')!);
    if (flags.string('memory-swap')) body.MemorySwap = memSwapBytes(flags.string('memory-swap')!);
    if (num('pids-limit') !== undefined) body.PidsLimit = num('pids-limit');
    if (flags.string('restart')) body.RestartPolicy = parseRestart(flags.string('restart')!);
    if (Object.keys(body).length === 0) throw new UsageError('you must provide one or more flags when using this command');
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      await client.json('POST', `/containers/${encodeURIComponent(name)}/update`, { body });
      return name;
    });
  },
};
