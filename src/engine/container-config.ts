/**
 * Pure rules that turn a Docker create request into the container's stored Config and HostConfig:
 * merging with the image's config (Env, Cmd/Entrypoint, Labels, …), Docker's defaults, and the
 * validation dockerd performs at create time. No I/O here.
 */
import { BaleiaError } from '../lib/index.js';

export type Json = Record<string, unknown>;

export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts: Record<string, object> | null;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Healthcheck?: Json;
  Image: string;
  Volumes: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: string[] | null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
}

export interface HostConfig extends Json {
  NetworkMode: string;
  RestartPolicy: { Name: string; MaximumRetryCount: number };
  AutoRemove: boolean;
  Binds: string[] | null;
  Privileged: boolean;
  ReadonlyRootfs: boolean;
  CapAdd: string[] | null;
  CapDrop: string[] | null;
  SecurityOpt: string[] | null;
  Init: boolean | null;
  ShmSize: number;
  Memory: number;
  MemorySwap: number;
  MemoryReservation: number;
  MemorySwappiness: number | null;
  OomKillDisable: boolean | null;
  NanoCpus: number;
  CpuShares: number;
  CpuQuota: number;
  CpuPeriod: number;
  CpusetCpus: string;
  CpusetMems: string;
  PidsLimit: number | null;
  Ulimits: Array<{ Name: string; Soft: number; Hard: number }> | null;
  Devices: Array<{ PathOnHost: string; PathInContainer: string; CgroupPermissions: string }> | null;
  Sysctls: Record<string, string> | null;
  LogConfig: { Type: string; Config: Record<string, string> };
  PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> | null;
  IpcMode: string;
  PidMode: string;
  UTSMode: string;
  ExtraHosts: string[] | null;
  /** Legacy links, stored as `/linked:/linker/alias`. */
  Links: string[] | null;
  Dns: string[] | null;
  DnsSearch: string[] | null;
  DnsOptions: string[] | null;
}

export const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const strings = (v: unknown): string[] | null =>
  Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : null;
const record = (v: unknown): Record<string, string> =>
  v && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Json).map(([k, x]) => [k, String(x)]))
    : {};
const num = (v: unknown, name: string): number => {
  if (v === undefined || v === null) return 0;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new BaleiaError('InvalidArgument', `Invalid value for ${name}: ${JSON.stringify(v)}`);
  return n;
};

/** Merges `KEY=VALUE` lists: later entries override earlier ones with the same key. */
export function mergeEnv(base: string[], over: string[]): string[] {
  const out = new Map<string, string>();
  for (const entry of [...base, ...over]) {
    const eq = entry.indexOf('=');
    const key = eq < 0 ? entry : entry.slice(0, eq);
    out.delete(key);
    out.set(key, entry);
  }
  return [...out.values()];
}

const namePattern = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function validateName(name: string): string {
  if (!namePattern.test(name))
    throw new BaleiaError('InvalidArgument', `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return name.startsWith('/') ? name : `/${name}`;
}

export interface MergeInput {
  id: string;
  body: Json;
  imageConfig: Json; // the image config's `config` object
  ncpu: number;
}

/** Builds the stored Config + HostConfig from a create request and the image's config. */
export function mergeCreate(input: MergeInput): { config: ContainerConfig; hostConfig: HostConfig; path: string; args: string[] } {
  const body = input.body;
  const image = input.imageConfig;
  const userEntrypoint = body.Entrypoint === undefined || body.Entrypoint === null ? null : strings(body.Entrypoint);
  const userCmd = strings(body.Cmd);
  let entrypoint: string[] | null;
  let cmd: string[] | null;
  if (userEntrypoint !== null) {
    // `--entrypoint ""` resets the image's entrypoint; a new entrypoint drops the image's Cmd.
    entrypoint = userEntrypoint.length === 1 && userEntrypoint[0] === '' ? null : userEntrypoint;
    cmd = userCmd && userCmd.length > 0 ? userCmd : null;
  } else {
    entrypoint = strings(image.Entrypoint);
    cmd = userCmd && userCmd.length > 0 ? userCmd : strings(image.Cmd);
  }
  const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (argv.length === 0) throw new BaleiaError('InvalidArgument', 'No command specified');

  let env = mergeEnv(strings(image.Env) ?? [], strings(body.Env) ?? []);
  if (!env.some((e) => e.startsWith('PATH='))) env = [defaultPath, ...env];

  const workingDir = (typeof body.WorkingDir === 'string' && body.WorkingDir) || (image.WorkingDir as string) || '';
  if (workingDir && !workingDir.startsWith('/'))
    throw new BaleiaError('InvalidArgument', `the working directory '${workingDir}' is invalid, it needs to be an absolute path`);

  const exposed = { ...((image.ExposedPorts as Json) ?? {}), ...((body.ExposedPorts as Json) ?? {}) } as Record<string, object>;
  const volumes = { ...((image.Volumes as Json) ?? {}), ...((body.Volumes as Json) ?? {}) } as Record<string, object>;

  const config: ContainerConfig = {
    Hostname: (typeof body.Hostname === 'string' && body.Hostname) || input.id.slice(0, 12),
    Domainname: typeof body.Domainname === 'string' ? body.Domainname : '',
    User: (typeof body.User === 'string' && body.User) || (image.User as string) || '',
    AttachStdin: Boolean(body.AttachStdin),
    AttachStdout: Boolean(body.AttachStdout),
    AttachStderr: Boolean(body.AttachStderr),
    ExposedPorts: Object.keys(exposed).length > 0 ? exposed : null,
    Tty: Boolean(body.Tty),
    OpenStdin: Boolean(body.OpenStdin),
    StdinOnce: Boolean(body.StdinOnce),
    Env: env,
    Cmd: cmd,
    Image: String(body.Image ?? ''),
    Volumes: Object.keys(volumes).length > 0 ? volumes : null,
    WorkingDir: workingDir,
    Entrypoint: entrypoint,
    OnBuild: strings(image.OnBuild),
    Labels: { ...record(image.Labels), ...record(body.Labels) },
  };
  const stopSignal = (typeof body.StopSignal === 'string' && body.StopSignal) || (image.StopSignal as string) || '';
  if (stopSignal) config.StopSignal = stopSignal;
  if (typeof body.StopTimeout === 'number') config.StopTimeout = body.StopTimeout;
  const health = (body.Healthcheck as Json | undefined) ?? (image.Healthcheck as Json | undefined);
  if (health) config.Healthcheck = health;

  const hostConfig = normalizeHostConfig((body.HostConfig as Json | undefined) ?? {}, input.ncpu);
  return { config, hostConfig, path: argv[0]!, args: argv.slice(1) };
}

/** Docker's defaults and create-time validation of HostConfig. */
export function normalizeHostConfig(hc: Json, ncpu: number): HostConfig {
  const memory = num(hc.Memory, 'Memory');
  let memorySwap = num(hc.MemorySwap, 'MemorySwap');
  if (memory < 0 || (memory > 0 && memory < 6 * 1024 * 1024))
    throw new BaleiaError('InvalidArgument', 'Minimum memory limit allowed is 6MB');
  if (memory > 0 && memorySwap > 0 && memorySwap < memory)
    throw new BaleiaError('InvalidArgument', 'Minimum memoryswap limit should be larger than memory limit, see usage');
  if (memorySwap > 0 && memory === 0)
    throw new BaleiaError('InvalidArgument', 'You should always set the Memory limit when using Memoryswap limit, see usage');
  if (memory > 0 && memorySwap === 0) memorySwap = 2 * memory;
  const reservation = num(hc.MemoryReservation, 'MemoryReservation');
  if (reservation < 0 || (reservation > 0 && reservation < 6 * 1024 * 1024))
    throw new BaleiaError('InvalidArgument', 'Minimum memory reservation allowed is 6MB');
  if (memory > 0 && reservation > memory)
    throw new BaleiaError('InvalidArgument', 'Minimum memory limit can not be less than memory reservation limit, see usage');
  const nanoCpus = num(hc.NanoCpus, 'NanoCpus');
  const cpuQuota = num(hc.CpuQuota, 'CpuQuota');
  const cpuPeriod = num(hc.CpuPeriod, 'CpuPeriod');
  if (nanoCpus > 0 && cpuPeriod > 0)
    throw new BaleiaError('InvalidArgument', 'Conflicting options: Nano CPUs and CPU Period cannot both be set');
  if (nanoCpus > 0 && cpuQuota > 0)
    throw new BaleiaError('InvalidArgument', 'Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  if (nanoCpus < 0 || nanoCpus > ncpu * 1e9)
    throw new BaleiaError('InvalidArgument', `Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
  if (cpuPeriod !== 0 && (cpuPeriod < 1000 || cpuPeriod > 1000000))
    throw new BaleiaError('InvalidArgument', 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  if (cpuQuota !== 0 && cpuQuota !== -1 && cpuQuota < 1000)
    throw new BaleiaError('InvalidArgument', 'CPU cfs quota can not be less than 1ms (i.e. 1000)');
  const cpusetCpus = typeof hc.CpusetCpus === 'string' ? hc.CpusetCpus : '';
  if (cpusetCpus && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(cpusetCpus))
    throw new BaleiaError('InvalidArgument', `Invalid value ${cpusetCpus} for cpuset cpus`);
  for (const part of cpusetCpus ? cpusetCpus.split(',') : []) {
    const top = Number(part.split('-').pop());
    if (top >= ncpu)
      throw new BaleiaError('InvalidArgument', `Requested CPUs are not available - requested ${cpusetCpus}, available: 0-${ncpu - 1}`);
  }
  const shm = num(hc.ShmSize, 'ShmSize');
  if (shm < 0) throw new BaleiaError('InvalidArgument', 'SHM size can not be less than 0');
  const swappiness = hc.MemorySwappiness === undefined || hc.MemorySwappiness === null ? null : num(hc.MemorySwappiness, 'MemorySwappiness');
  if (swappiness !== null && swappiness !== -1 && (swappiness < 0 || swappiness > 100))
    throw new BaleiaError('InvalidArgument', `Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
  const restart = (hc.RestartPolicy as Json | undefined) ?? {};
  const restartName = (typeof restart.Name === 'string' && restart.Name) || 'no';
  if (!['no', 'always', 'on-failure', 'unless-stopped'].includes(restartName))
    throw new BaleiaError('InvalidArgument', `invalid restart policy '${restartName}'`);
  if (hc.AutoRemove && restartName !== 'no')
    throw new BaleiaError('InvalidArgument', 'can\'t create \'AutoRemove\' container with restart policy');
  const logConfig = (hc.LogConfig as Json | undefined) ?? {};
  const logType = (typeof logConfig.Type === 'string' && logConfig.Type) || 'json-file';
  if (!['json-file', 'local', 'k8s-file', 'none'].includes(logType))
    throw new BaleiaError('InvalidArgument', `logger: no log driver named '${logType}' is registered`);
  const ulimits = Array.isArray(hc.Ulimits) ? (hc.Ulimits as Json[]).map((u) => ({ Name: String(u.Name), Soft: num(u.Soft, 'Ulimit'), Hard: num(u.Hard, 'Ulimit') })) : null;
  for (const u of ulimits ?? [])
    if (u.Soft > u.Hard) throw new BaleiaError('InvalidArgument', `ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
  const networkMode = (typeof hc.NetworkMode === 'string' && hc.NetworkMode) || 'default';
  return {
    ...hc,
    Binds: strings(hc.Binds),
    NetworkMode: networkMode,
    PortBindings: (hc.PortBindings as HostConfig['PortBindings']) ?? {},
    RestartPolicy: { Name: restartName, MaximumRetryCount: num(restart.MaximumRetryCount, 'MaximumRetryCount') },
    AutoRemove: Boolean(hc.AutoRemove),
    Privileged: Boolean(hc.Privileged),
    ReadonlyRootfs: Boolean(hc.ReadonlyRootfs),
    CapAdd: strings(hc.CapAdd),
    CapDrop: strings(hc.CapDrop),
    SecurityOpt: strings(hc.SecurityOpt),
    Init: hc.Init === undefined ? null : (hc.Init as boolean | null),
    ShmSize: shm || 64 * 1024 * 1024,
    Memory: memory,
    MemorySwap: memorySwap,
    MemoryReservation: reservation,
    MemorySwappiness: swappiness,
    OomKillDisable: hc.OomKillDisable === undefined ? false : (hc.OomKillDisable as boolean | null),
    NanoCpus: nanoCpus,
    CpuShares: num(hc.CpuShares, 'CpuShares'),
    CpuQuota: cpuQuota,
    CpuPeriod: cpuPeriod,
    CpusetCpus: cpusetCpus,
    CpusetMems: typeof hc.CpusetMems === 'string' ? hc.CpusetMems : '',
    PidsLimit: hc.PidsLimit === undefined || hc.PidsLimit === null ? null : num(hc.PidsLimit, 'PidsLimit'),
    Ulimits: ulimits,
    Devices: Array.isArray(hc.Devices) ? (hc.Devices as HostConfig['Devices']) : [],
    Sysctls: (hc.Sysctls as Record<string, string> | undefined) ?? null,
    LogConfig: { Type: logType, Config: record(logConfig.Config) },
    IpcMode: (typeof hc.IpcMode === 'string' && hc.IpcMode) || 'private',
    PidMode: typeof hc.PidMode === 'string' ? hc.PidMode : '',
    UTSMode: typeof hc.UTSMode === 'string' ? hc.UTSMode : '',
    ExtraHosts: strings(hc.ExtraHosts),
    Links: strings(hc.Links),
    Dns: strings(hc.Dns) ?? [],
    DnsSearch: strings(hc.DnsSearch) ?? [],
    DnsOptions: strings(hc.DnsOptions) ?? [],
  };
}

/** `docker update`: `current` with the resources and restart policy that `body` sets, validated. */
export function updateHostConfig(current: HostConfig, body: Json, ncpu: number): HostConfig {
  const resourceKeys = [
    'Memory', 'MemorySwap', 'MemoryReservation', 'NanoCpus', 'CpuShares', 'CpuQuota', 'CpuPeriod', 'CpusetCpus',
    'CpusetMems', 'PidsLimit', 'BlkioWeight', 'KernelMemory', 'CpuRealtimePeriod', 'CpuRealtimeRuntime',
  ];
  const changes: Json = {};
  for (const key of resourceKeys) {
    const v = body[key];
    if (v !== undefined && v !== null && v !== 0 && v !== '') changes[key] = v;
  }
  if (body.RestartPolicy && typeof body.RestartPolicy === 'object' && (body.RestartPolicy as Json).Name) changes.RestartPolicy = body.RestartPolicy;
  const merged = { ...current, ...changes };
  // Only Memory given: the old swap limit may no longer fit; Docker keeps swap at twice memory.
  if (changes.Memory !== undefined && changes.MemorySwap === undefined && current.MemorySwap > 0 && current.MemorySwap < (changes.Memory as number))
    merged.MemorySwap = 2 * (changes.Memory as number);
  if (changes.NanoCpus !== undefined) {
    merged.CpuQuota = 0;
    merged.CpuPeriod = 0;
  }
  // Checked before normalizing, whose message speaks of creating a container.
  const policy = (merged.RestartPolicy as { Name?: string } | undefined)?.Name;
  if (merged.AutoRemove && policy && policy !== 'no') throw new BaleiaError('InvalidArgument', 'Restart policy cannot be updated because AutoRemove is enabled for the container');
  return normalizeHostConfig(merged, ncpu);
}

/** Resolves `user[:group]` against the container's /etc/passwd and /etc/group contents. */
export function resolveUser(
  spec: string,
  passwd: string,
  group: string,
): { uid: number; gid: number; additionalGids: number[] } {
  const [userPart = '', groupPart] = spec.split(':');
  const users = passwd.split('\n').filter(Boolean).map((l) => l.split(':'));
  const groups = group.split('\n').filter(Boolean).map((l) => l.split(':'));
  let uid: number;
  let gid = 0;
  let name: string | undefined;
  if (userPart === '') {
    uid = 0;
    name = 'root';
  } else if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    const entry = users.find((u) => Number(u[2]) === uid);
    if (entry) {
      gid = Number(entry[3]);
      name = entry[0];
    }
  } else {
    const entry = users.find((u) => u[0] === userPart);
    if (!entry) throw new BaleiaError('InvalidArgument', `unable to find user ${userPart}: no matching entries in passwd file`);
    uid = Number(entry[2]);
    gid = Number(entry[3]);
    name = entry[0];
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const entry = groups.find((g) => g[0] === groupPart);
      if (!entry) throw new BaleiaError('InvalidArgument', `unable to find group ${groupPart}: no matching entries in group file`);
      gid = Number(entry[2]);
    }
  }
  const additionalGids = name
    ? groups.filter((g) => (g[3] ?? '').split(',').includes(name!)).map((g) => Number(g[2])).filter((g) => g !== gid)
    : [];
  return { uid, gid, additionalGids };
}

/** Parses a signal given as `TERM`, `SIGTERM` or `15`; undefined when unknown. */
export function signalNumber(signal: string | number): number | undefined {
  if (typeof signal === 'number') return signal > 0 && signal < 65 ? signal : undefined;
  const s = signal.trim().toUpperCase();
  if (/^\d+$/.test(s)) return signalNumber(Number(s));
  const table: Record<string, number> = {
    HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12,
    PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23,
    XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, POLL: 29, PWR: 30, SYS: 31,
  };
  const name = s.startsWith('SIG') ? s.slice(3) : s;
  if (name in table) return table[name];
  const rt = /^RTMIN(\+(\d+))?$/.exec(name);
  if (rt) return 34 + Number(rt[2] ?? 0);
  return undefined;
}

/** The runtime's resource limits from a HostConfig (zero means unset, as in Docker's API). */
export function specResources(hc: HostConfig) {
  return {
    memory: hc.Memory || undefined,
    memorySwap: hc.MemorySwap || undefined,
    memoryReservation: hc.MemoryReservation || undefined,
    oomKillDisable: hc.OomKillDisable ?? undefined,
    memorySwappiness: hc.MemorySwappiness !== null && hc.MemorySwappiness >= 0 ? hc.MemorySwappiness : undefined,
    cpuShares: hc.CpuShares || undefined,
    cpuQuota: hc.CpuQuota || undefined,
    cpuPeriod: hc.CpuPeriod || undefined,
    nanoCpus: hc.NanoCpus || undefined,
    cpusetCpus: hc.CpusetCpus || undefined,
    cpusetMems: hc.CpusetMems || undefined,
    pidsLimit: hc.PidsLimit && hc.PidsLimit > 0 ? hc.PidsLimit : undefined,
  };
}
