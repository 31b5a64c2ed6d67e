/**
 * `run`/`create` flags and the create body they become (`POST /containers/create`), in the shapes
 * the docker CLI sends at API 1.41: Config, HostConfig and NetworkingConfig.
 */
import { readFileSync } from 'node:fs';
import type { FlagSpec, ParsedFlags } from './flags.js';
import { UsageError } from './flags.js';
import { memSwapBytes, nanoCpus, parseGoDuration, ramInBytes } from './units.js';
import { keyValues } from './common.js';

export const containerFlags: FlagSpec[] = [
  { long: 'add-host', type: 'list', description: 'Add a custom host-to-IP mapping (host:ip)' },
  { long: 'attach', short: 'a', type: 'list', description: 'Attach to STDIN, STDOUT or STDERR' },
  { long: 'cap-add', type: 'list', description: 'Add Linux capabilities' },
  { long: 'cap-drop', type: 'list', description: 'Drop Linux capabilities' },
  { long: 'cgroup-parent', type: 'string', description: 'Optional parent cgroup for the container' },
  { long: 'cgroupns', type: 'string', description: 'Cgroup namespace to use (host|private)' },
  { long: 'cidfile', type: 'string', description: 'Write the container ID to the file' },
  { long: 'cpu-period', type: 'int', description: 'Limit CPU CFS (Completely Fair Scheduler) period' },
  { long: 'cpu-quota', type: 'int', description: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
  { long: 'cpu-shares', short: 'c', type: 'int', description: 'CPU shares (relative weight)' },
  { long: 'cpus', type: 'string', valueName: 'decimal', description: 'Number of CPUs' },
  { long: 'cpuset-cpus', type: 'string', description: 'CPUs in which to allow execution (0-3, 0,1)' },
  { long: 'cpuset-mems', type: 'string', description: 'MEMs in which to allow execution (0-3, 0,1)' },
  { long: 'device', type: 'list', description: 'Add a host device to the container' },
  { long: 'dns', type: 'list', description: 'Set custom DNS servers' },
  { long: 'dns-option', type: 'list', description: 'Set DNS options' },
  { long: 'dns-search', type: 'list', description: 'Set custom DNS search domains' },
  { long: 'domainname', type: 'string', description: 'Container NIS domain name' },
  { long: 'entrypoint', type: 'string', description: 'Overwrite the default ENTRYPOINT of the image' },
  { long: 'env', short: 'e', type: 'list', description: 'Set environment variables' },
  { long: 'env-file', type: 'list', description: 'Read in a file of environment variables' },
  { long: 'expose', type: 'list', description: 'Expose a port or a range of ports' },
  { long: 'group-add', type: 'list', description: 'Add additional groups to join' },
  { long: 'health-cmd', type: 'string', description: 'Command to run to check health' },
  { long: 'health-interval', type: 'string', valueName: 'duration', description: 'Time between running the check (ms|s|m|h)' },
  { long: 'health-retries', type: 'int', description: 'Consecutive failures needed to report unhealthy' },
  { long: 'health-start-period', type: 'string', valueName: 'duration', description: 'Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)' },
  { long: 'health-timeout', type: 'string', valueName: 'duration', description: 'Maximum time to allow one check to run (ms|s|m|h)' },
  { long: 'hostname', short: 'h', type: 'string', description: 'Container host name' },
  { long: 'init', type: 'bool', description: 'Run an init inside the container that forwards signals and reaps processes' },
  { long: 'interactive', short: 'i', type: 'bool', description: 'Keep STDIN open even if not attached' },
  { long: 'ip', type: 'string', description: 'IPv4 address (e.g., 172.30.100.104)' },
  { long: 'ip6', type: 'string', description: 'IPv6 address (e.g., 2001:db8::33)' },
  { long: 'ipc', type: 'string', description: 'IPC mode to use' },
  { long: 'isolation', type: 'string', description: 'Container isolation technology' },
  { long: 'label', short: 'l', type: 'list', description: 'Set meta data on a container' },
  { long: 'label-file', type: 'list', description: 'Read in a line delimited file of labels' },
  { long: 'link', type: 'list', description: 'Add link to another container' },
  { long: 'log-driver', type: 'string', description: 'Logging driver for the container' },
  { long: 'log-opt', type: 'list', description: 'Log driver options' },
  { long: 'mac-address', type: 'string', description: 'Container MAC address (e.g., 92:d0:c6:0a:29:33)' },
  { long: 'memory', short: 'm', type: 'string', valueName: 'bytes', description: 'Memory limit' },
  { long: 'memory-reservation', type: 'string', valueName: 'bytes', description: 'Memory soft limit' },
  { long: 'memory-swap', type: 'string', valueName: 'bytes', description: "Swap limit equal to memory plus swap: '-1' to enable unlimited swap" },
  { long: 'memory-swappiness', type: 'int', description: 'Tune container memory swappiness (0 to 100)', default: -1 },
  { long: 'mount', type: 'list', valueName: 'mount', description: 'Attach a filesystem mount to the container' },
  { long: 'name', type: 'string', description: 'Assign a name to the container' },
  { long: 'network', type: 'string', valueName: 'network', description: 'Connect a container to a network' },
  { long: 'net', type: 'string', description: 'Connect a container to a network', hidden: true },
  { long: 'network-alias', type: 'list', description: 'Add network-scoped alias for the container' },
  { long: 'no-healthcheck', type: 'bool', description: 'Disable any container-specified HEALTHCHECK' },
  { long: 'oom-kill-disable', type: 'bool', description: 'Disable OOM Killer' },
  { long: 'oom-score-adj', type: 'int', description: "Tune host's OOM preferences (-1000 to 1000)" },
  { long: 'pid', type: 'string', description: 'PID namespace to use' },
  { long: 'pids-limit', type: 'int', description: 'Tune container pids limit (set -1 for unlimited)' },
  { long: 'platform', type: 'string', description: 'Set platform if server is multi-platform capable' },
  { long: 'privileged', type: 'bool', description: 'Give extended privileges to this container' },
  { long: 'publish', short: 'p', type: 'list', description: "Publish a container's port(s) to the host" },
  { long: 'publish-all', short: 'P', type: 'bool', description: 'Publish all exposed ports to random ports' },
  { long: 'pull', type: 'string', description: 'Pull image before running ("always", "missing", "never")', default: 'missing' },
  { long: 'quiet', short: 'q', type: 'bool', description: 'Suppress the pull output' },
  { long: 'read-only', type: 'bool', description: "Mount the container's root filesystem as read only" },
  { long: 'restart', type: 'string', description: 'Restart policy to apply when a container exits', default: 'no' },
  { long: 'rm', type: 'bool', description: 'Automatically remove the container and its associated anonymous volumes when it exits' },
  { long: 'runtime', type: 'string', description: 'Runtime to use for this container' },
  { long: 'security-opt', type: 'list', description: 'Security Options' },
  { long: 'shm-size', type: 'string', valueName: 'bytes', description: 'Size of /dev/shm' },
  { long: 'stop-signal', type: 'string', description: 'Signal to stop the container' },
  { long: 'stop-timeout', type: 'int', description: 'Timeout (in seconds) to stop a container' },
  { long: 'storage-opt', type: 'list', description: 'Storage driver options for the container' },
  { long: 'sysctl', type: 'list', valueName: 'map', description: 'Sysctl options' },
  { long: 'tmpfs', type: 'list', description: 'Mount a tmpfs directory' },
  { long: 'tty', short: 't', type: 'bool', description: 'Allocate a pseudo-TTY' },
  { long: 'ulimit', type: 'list', valueName: 'ulimit', description: 'Ulimit options' },
  { long: 'user', short: 'u', type: 'string', description: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  { long: 'userns', type: 'string', description: 'User namespace to use' },
  { long: 'uts', type: 'string', description: 'UTS namespace to use' },
  { long: 'volume', short: 'v', type: 'list', description: 'Bind mount a volume' },
  { long: 'volume-driver', type: 'string', description: 'Optional volume driver for the container' },
  { long: 'volumes-from', type: 'list', description: 'Mount volumes from the specified container(s)' },
  { long: 'workdir', short: 'w', type: 'string', description: 'Working directory inside the container' },
];

export const runOnlyFlags: FlagSpec[] = [
  { long: 'detach', short: 'd', type: 'bool', description: 'Run container in background and print container ID' },
  { long: 'detach-keys', type: 'string', description: 'Override the key sequence for detaching a container' },
  { long: 'sig-proxy', type: 'bool', description: 'Proxy received signals to the process', default: true },
];

export interface CreateRequest {
  name?: string;
  platform?: string;
  body: {
    [key: string]: unknown;
    HostConfig: Record<string, unknown>;
    NetworkingConfig: { EndpointsConfig: Record<string, unknown> };
  };
  /** The user asked for these output streams. */
  attach: { stdin: boolean; stdout: boolean; stderr: boolean };
  tty: boolean;
  autoRemove: boolean;
}

/** Lines of an env or label file: `#` comments and blanks skipped; `K` alone takes the host's value. */
export function parseKvFile(text: string, options: { fromEnv?: (k: string) => string | undefined } = {}): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s+/, '').replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    if (!line.includes('=') && options.fromEnv) {
      const value = options.fromEnv(line.trim());
      if (value !== undefined) out.push(`${line.trim()}=${value}`);
      continue;
    }
    out.push(line);
  }
  return out;
}

/** `net_admin` → `CAP_NET_ADMIN`; `ALL` stays (the docker CLI normalises before sending). */
export function normalizeCapability(cap: string): string {
  const upper = cap.trim().toUpperCase();
  return upper === 'ALL' || upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}


interface PortMapping {
  port: string;
  binding?: { HostIp: string; HostPort: string };
}

function parseRange(text: string, what: string, spec: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) throw new UsageError(`invalid ${what}: ${spec}`);
  const start = Number(m[1]);
  const end = m[2] ? Number(m[2]) : start;
  if (end < start || end > 65535) throw new UsageError(`invalid ${what} range: ${spec}`);
  return [start, end];
}

/** docker's nat.ParsePortSpec: `[ip:][hostPort:]containerPort[/proto]`, ranges allowed. */
export function parsePortSpec(spec: string): PortMapping[] {
  let rest = spec;
  let proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    proto = rest.slice(slash + 1).toLowerCase();
    rest = rest.slice(0, slash);
    if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new UsageError(`invalid proto: ${proto}`);
  }
  let ip = '';
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new UsageError(`invalid IP address: ${spec}`);
    ip = rest.slice(1, close);
    rest = rest.slice(close + 2);
    const parts = rest.split(':');
    return build(ip, parts.length === 2 ? parts[0]! : '', parts.at(-1)!);
  }
  const parts = rest.split(':');
  if (parts.length === 1) return build('', '', parts[0]!, false);
  if (parts.length === 2) return build('', parts[0]!, parts[1]!);
  if (parts.length === 3) return build(parts[0]!, parts[1]!, parts[2]!);
  // An unbracketed IPv6 address: everything before the last two parts.
  return build(parts.slice(0, -2).join(':'), parts.at(-2)!, parts.at(-1)!);

  function build(hostIp: string, hostPort: string, containerPort: string, bind = true): PortMapping[] {
    if (containerPort === '') throw new UsageError(`no port specified: ${spec}<empty>`);
    const [cs, ce] = parseRange(containerPort, 'containerPort', containerPort);
    let hs = 0;
    let he = 0;
    if (hostPort !== '') [hs, he] = parseRange(hostPort, 'hostPort', hostPort);
    if (hostPort !== '' && he - hs !== ce - cs && ce !== cs) {
      throw new UsageError(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
    }
    const out: PortMapping[] = [];
    for (let p = cs; p <= ce; p++) {
      const port = `${p}/${proto}`;
      if (!bind && hostIp === '' && hostPort === '') {
        out.push({ port, binding: { HostIp: '', HostPort: '' } });
        continue;
      }
      let hp = '';
      if (hostPort !== '') hp = ce === cs && he !== hs ? `${hs}-${he}` : String(hs + (p - cs));
      out.push({ port, binding: { HostIp: hostIp, HostPort: hp } });
    }
    return out;
  }
}

function durationNs(flag: string, text: string | undefined): number {
  if (text === undefined || text === '') return 0;
  const ms = parseGoDuration(text);
  if (ms === undefined) throw new UsageError(`invalid argument "${text}" for "--${flag}" flag: time: invalid duration "${text}"`);
  return Math.round(ms * 1e6);
}

function parseDevice(spec: string): Record<string, string> {
  const parts = spec.split(':');
  const host = parts[0]!;
  let container = host;
  let perms = 'rwm';
  if (parts.length === 2) {
    if (/^[rwm]+$/.test(parts[1]!)) perms = parts[1]!;
    else container = parts[1]!;
  } else if (parts.length === 3) {
    container = parts[1]!;
    perms = parts[2]!;
  } else if (parts.length > 3) throw new UsageError(`invalid device specification: ${spec}`);
  return { PathOnHost: host, PathInContainer: container, CgroupPermissions: perms };
}

function parseUlimit(spec: string): { Name: string; Soft: number; Hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(spec);
  if (!m) throw new UsageError(`invalid argument "${spec}" for "--ulimit" flag: invalid ulimit argument: ${spec}`);
  const soft = Number(m[2]);
  return { Name: m[1]!, Soft: soft, Hard: m[3] !== undefined ? Number(m[3]) : soft };
}

export function parseRestart(text: string): { Name: string; MaximumRetryCount: number } {
  const [name, count] = text.split(':');
  if (!['no', 'always', 'unless-stopped', 'on-failure', ''].includes(name!)) {
    throw new UsageError(`invalid restart policy ${name}`);
  }
  if (count !== undefined && name !== 'on-failure') {
    throw new UsageError(`invalid restart policy format: maximum retry count can only be used with 'on-failure'`);
  }
  return { Name: name || 'no', MaximumRetryCount: count !== undefined ? Number(count) : 0 };
}

function parseMount(spec: string): Record<string, unknown> {
  const mount: Record<string, unknown> = { Type: 'volume' };
  const bindOptions: Record<string, unknown> = {};
  const volumeOptions: Record<string, unknown> = {};
  const tmpfsOptions: Record<string, unknown> = {};
  for (const field of spec.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? '' : field.slice(eq + 1);
    switch (key) {
      case 'type':
        mount.Type = value;
        break;
      case 'source':
      case 'src':
        mount.Source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        mount.Target = value;
        break;
      case 'readonly':
      case 'ro':
        mount.ReadOnly = eq < 0 || ['1', 'true'].includes(value.toLowerCase());
        break;
      case 'bind-propagation':
        bindOptions.Propagation = value;
        break;
      case 'volume-nocopy':
        volumeOptions.NoCopy = eq < 0 || value === 'true' || value === '1';
        break;
      case 'volume-opt': {
        const [k, ...v] = value.split('=');
        ((volumeOptions.DriverConfig ??= { Name: '', Options: {} }) as { Options: Record<string, string> }).Options[k!] = v.join('=');
        break;
      }
      case 'volume-label': {
        const [k, ...v] = value.split('=');
        ((volumeOptions.Labels ??= {}) as Record<string, string>)[k!] = v.join('=');
        break;
      }
      case 'tmpfs-size':
        tmpfsOptions.SizeBytes = ramInBytes(value);
        break;
      case 'tmpfs-mode':
        tmpfsOptions.Mode = Number.parseInt(value, 8);
        break;
      case 'consistency':
        mount.Consistency = value;
        break;
      default:
        throw new UsageError(`invalid argument "${spec}" for "--mount" flag: unexpected key '${key}' in '${field}'`);
    }
  }
  if (!mount.Target) throw new UsageError(`invalid argument "${spec}" for "--mount" flag: target is required`);
  if (Object.keys(bindOptions).length) mount.BindOptions = bindOptions;
  if (Object.keys(volumeOptions).length) mount.VolumeOptions = volumeOptions;
  if (Object.keys(tmpfsOptions).length) mount.TmpfsOptions = tmpfsOptions;
  return mount;
}

export interface BuildOptions {
  readFile?: (path: string) => string;
  env?: (key: string) => string | undefined;
  consoleSize?: [number, number];
  detach?: boolean;
}

/** Flags and `IMAGE [COMMAND] [ARG...]` → the create request. */
export function buildCreateRequest(flags: ParsedFlags, args: string[], options: BuildOptions = {}): CreateRequest {
  const readFile = options.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const env = options.env ?? ((k: string) => process.env[k]);
  const [image, ...cmd] = args;
  if (!image) throw new UsageError('requires at least 1 argument');
  const detach = options.detach ?? false;

  const stdin = flags.bool('interactive');
  const tty = flags.bool('tty');
  const attachList = flags.list('attach').map((s) => s.toLowerCase());
  for (const a of attachList) {
    if (!['stdin', 'stdout', 'stderr'].includes(a)) throw new UsageError(`invalid argument "${a}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`);
  }
  if (detach && attachList.length > 0) throw new UsageError('Conflicting options: -a and -d');
  let attach = { stdin: attachList.includes('stdin'), stdout: attachList.includes('stdout'), stderr: attachList.includes('stderr') };
  if (attachList.length === 0 && !detach) attach = { stdin, stdout: true, stderr: true };

  const envList = [
    ...flags.list('env-file').flatMap((f) => parseKvFile(readFile(f), { fromEnv: env })),
    ...flags.list('env').flatMap((e) => {
      if (e.includes('=')) return [e];
      const v = env(e);
      return v === undefined ? [] : [`${e}=${v}`];
    }),
  ];
  const labels = keyValues([...flags.list('label-file').flatMap((f) => parseKvFile(readFile(f))), ...flags.list('label')]);

  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const spec of flags.list('publish')) {
    for (const m of parsePortSpec(spec)) {
      exposed[m.port] = {};
      (bindings[m.port] ??= []).push(m.binding!);
    }
  }
  for (const spec of flags.list('expose')) {
    const [range, proto = 'tcp'] = spec.split('/');
    const [s, e] = parseRange(range!, 'range format for --expose', spec);
    for (let p = s; p <= e; p++) exposed[`${p}/${proto}`] = {};
  }

  const volumes: Record<string, object> = {};
  const binds: string[] = [];
  for (const spec of flags.list('volume')) {
    if (spec.includes(':')) binds.push(spec);
    else volumes[spec] = {};
  }
  const tmpfs: Record<string, string> = {};
  for (const spec of flags.list('tmpfs')) {
    const colon = spec.indexOf(':');
    if (colon < 0) tmpfs[spec] = '';
    else tmpfs[spec.slice(0, colon)] = spec.slice(colon + 1);
  }

  let entrypoint: string[] | null = null;
  if (flags.changed('entrypoint')) entrypoint = [flags.string('entrypoint') ?? ''];

  const restart = parseRestart(flags.string('restart') ?? 'no');
  const autoRemove = flags.bool('rm');
  if (autoRemove && restart.Name !== 'no') throw new UsageError('Conflicting options: --restart and --rm');

  let healthcheck: Record<string, unknown> | undefined;
  const healthCmd = flags.string('health-cmd');
  if (flags.bool('no-healthcheck')) {
    if (healthCmd) throw new UsageError('--no-healthcheck conflicts with --health-* options');
    healthcheck = { Test: ['NONE'] };
  } else if (
    healthCmd !== undefined ||
    ['health-interval', 'health-timeout', 'health-start-period', 'health-retries'].some((f) => flags.changed(f))
  ) {
    // Zero fields are left out (Go's omitempty): the image's values then apply.
    const fields: Record<string, unknown> = {
      Test: healthCmd ? ['CMD-SHELL', healthCmd] : undefined,
      Interval: durationNs('health-interval', flags.string('health-interval')),
      Timeout: durationNs('health-timeout', flags.string('health-timeout')),
      StartPeriod: durationNs('health-start-period', flags.string('health-start-period')),
      Retries: flags.int('health-retries') ?? 0,
    };
    healthcheck = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== 0));
  }

  const network = flags.string('network') ?? flags.string('net') ?? 'default';
  const endpoint: Record<string, unknown> = {};
  const aliases = flags.list('network-alias');
  if (aliases.length) endpoint.Aliases = aliases;
  const ip = flags.string('ip');
  const ip6 = flags.string('ip6');
  if (ip || ip6) endpoint.IPAMConfig = { ...(ip ? { IPv4Address: ip } : {}), ...(ip6 ? { IPv6Address: ip6 } : {}) };
  if (flags.list('link').length && network !== 'default' && network !== 'bridge') endpoint.Links = flags.list('link');
  const mac = flags.string('mac-address');
  if (mac) endpoint.MacAddress = mac;

  const memory = flags.string('memory');
  const memorySwap = flags.string('memory-swap');
  const memoryReservation = flags.string('memory-reservation');
  const cpus = flags.string('cpus');
  const shm = flags.string('shm-size');
  const logOpts = keyValues(flags.list('log-opt'));
  const sysctls = keyValues(flags.list('sysctl'));
  const storageOpts = keyValues(flags.list('storage-opt'));

  if (cpus && (flags.changed('cpu-period') || flags.changed('cpu-quota'))) {
    throw new UsageError('Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set');
  }

  const config: Record<string, unknown> = {
    Hostname: flags.string('hostname') ?? '',
    Domainname: flags.string('domainname') ?? '',
    User: flags.string('user') ?? '',
    AttachStdin: attach.stdin,
    AttachStdout: attach.stdout,
    AttachStderr: attach.stderr,
    ...(Object.keys(exposed).length ? { ExposedPorts: exposed } : {}),
    Tty: tty,
    OpenStdin: stdin,
    StdinOnce: stdin && attach.stdin,
    Env: envList.length ? envList : null,
    Cmd: cmd.length ? cmd : null,
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
    Image: image,
    Volumes: volumes,
    WorkingDir: flags.string('workdir') ?? '',
    Entrypoint: entrypoint,
    OnBuild: null,
    Labels: labels,
    ...(flags.string('stop-signal') ? { StopSignal: flags.string('stop-signal') } : {}),
    ...(flags.changed('stop-timeout') ? { StopTimeout: flags.int('stop-timeout') } : {}),
    ...(mac ? { MacAddress: mac } : {}),
  };

  const hostConfig: Record<string, unknown> = {
    Binds: binds.length ? binds : null,
    ContainerIDFile: flags.string('cidfile') ?? '',
    LogConfig: { Type: flags.string('log-driver') ?? '', Config: logOpts },
    NetworkMode: network,
    PortBindings: bindings,
    RestartPolicy: restart,
    AutoRemove: autoRemove,
    VolumeDriver: flags.string('volume-driver') ?? '',
    VolumesFrom: flags.list('volumes-from').length ? flags.list('volumes-from') : null,
    ConsoleSize: options.consoleSize ?? [0, 0],
    CapAdd: flags.list('cap-add').length ? flags.list('cap-add').map(normalizeCapability) : null,
    CapDrop: flags.list('cap-drop').length ? flags.list('cap-drop').map(normalizeCapability) : null,
    CgroupnsMode: flags.string('cgroupns') ?? '',
    Dns: flags.list('dns'),
    DnsOptions: flags.list('dns-option'),
    DnsSearch: flags.list('dns-search'),
    ExtraHosts: flags.list('add-host').length ? flags.list('add-host') : null,
    GroupAdd: flags.list('group-add').length ? flags.list('group-add') : null,
    IpcMode: flags.string('ipc') ?? '',
    Cgroup: '',
    Links: flags.list('link').length ? flags.list('link') : null,
    OomScoreAdj: flags.int('oom-score-adj') ?? 0,
    PidMode: flags.string('pid') ?? '',
    Privileged: flags.bool('privileged'),
    PublishAllPorts: flags.bool('publish-all'),
    ReadonlyRootfs: flags.bool('read-only'),
    SecurityOpt: flags.list('security-opt').length ? flags.list('security-opt') : null,
    ...(Object.keys(storageOpts).length ? { StorageOpt: storageOpts } : {}),
    ...(Object.keys(tmpfs).length ? { Tmpfs: tmpfs } : {}),
    UTSMode: flags.string('uts') ?? '',
    UsernsMode: flags.string('userns') ?? '',
    ShmSize: shm ? ramInBytes(shm) : 0,
    ...(Object.keys(sysctls).length ? { Sysctls: sysctls } : {}),
    ...(flags.string('runtime') ? { Runtime: flags.string('runtime') } : {}),
    Isolation: flags.string('isolation') ?? '',
    CpuShares: flags.int('cpu-shares') ?? 0,
    Memory: memory ? ramInBytes(memory) : 0,
    NanoCpus: cpus ? nanoCpus(cpus) : 0,
    CgroupParent: flags.string('cgroup-parent') ?? '',
    BlkioWeight: 0,
    BlkioWeightDevice: [],
    BlkioDeviceReadBps: [],
    BlkioDeviceWriteBps: [],
    BlkioDeviceReadIOps: [],
    BlkioDeviceWriteIOps: [],
    CpuPeriod: flags.int('cpu-period') ?? 0,
    CpuQuota: flags.int('cpu-quota') ?? 0,
    CpuRealtimePeriod: 0,
    CpuRealtimeRuntime: 0,
    CpusetCpus: flags.string('cpuset-cpus') ?? '',
    CpusetMems: flags.string('cpuset-mems') ?? '',
    Devices: flags.list('device').map(parseDevice),
    DeviceCgroupRules: null,
    DeviceRequests: null,
    MemoryReservation: memoryReservation ? ramInBytes(memoryReservation) : 0,
    MemorySwap: memorySwap ? memSwapBytes(memorySwap) : 0,
    MemorySwappiness: flags.int('memory-swappiness') ?? -1,
    OomKillDisable: flags.bool('oom-kill-disable'),
    PidsLimit: flags.int('pids-limit') ?? 0,
    Ulimits: flags.list('ulimit').map(parseUlimit),
    CpuCount: 0,
    CpuPercent: 0,
    IOMaximumIOps: 0,
    IOMaximumBandwidth: 0,
    ...(flags.list('mount').length ? { Mounts: flags.list('mount').map(parseMount) } : {}),
    ...(flags.changed('init') ? { Init: flags.bool('init') } : {}),
    MaskedPaths: null,
    ReadonlyPaths: null,
  };

  // As the docker CLI at 1.41: no --network gives a zeroed "default" endpoint; a named network
  // gets an entry only when endpoint options (aliases, IPs, links, MAC) were given.
  const zeroEndpoint = {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    MacAddress: '',
    DriverOpts: null,
    GwPriority: 0,
    NetworkID: '',
    EndpointID: '',
    Gateway: '',
    IPAddress: '',
    IPPrefixLen: 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: null,
  };
  const endpoints: Record<string, unknown> =
    network === 'default' && Object.keys(endpoint).length === 0
      ? { default: zeroEndpoint }
      : Object.keys(endpoint).length > 0
        ? { [network]: endpoint }
        : {};

  return {
    name: flags.string('name'),
    platform: flags.string('platform'),
    body: { ...config, HostConfig: hostConfig, NetworkingConfig: { EndpointsConfig: endpoints } },
    attach,
    tty,
    autoRemove,
  };
}
