/**
 * Container commands that do not hijack streams: ps, logs, stop, kill, restart, rm, wait, top,
 * pause, unpause, rename, port, container prune, container inspect.
 */
import { isKind } from '../../lib/index.js';
import { demuxStdcopy } from '../../api/client.js';
import type { Command } from '../command.js';
import { confirm, errorText, filtersJson, forEachTarget } from '../common.js';
import type { Cli } from '../context.js';
import { formatList, sortedFields, tabwrite } from '../format.js';
import { UsageError } from '../flags.js';
import { parseReference, familiarName } from '../reference.js';
import { apiTimestamp, goTimeString, humanSize, timeAgo } from '../units.js';
import { inspectObjects } from './inspect.js';

const enc = encodeURIComponent;

export interface ContainerSummary {
  Id: string;
  Names?: string[] | null;
  Image: string;
  ImageID?: string;
  Command: string;
  Created: number;
  Ports?: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> | null;
  Labels?: Record<string, string> | null;
  State: string;
  Status: string;
  SizeRw?: number;
  SizeRootFs?: number;
  Mounts?: Array<{ Type?: string; Name?: string; Source?: string; Driver?: string }> | null;
  NetworkSettings?: { Networks?: Record<string, unknown> | null } | null;
}

/** docker's formatter.Ellipsis: cut to `max` display characters, the last one an ellipsis. */
export function ellipsis(text: string, max: number): string {
  const chars = [...text];
  if (chars.length <= max) return text;
  if (max <= 1) return chars.slice(0, max).join('');
  return chars.slice(0, max - 1).join('') + '…';
}

/**
 * docker's DisplayablePorts: ports sorted by private port, IP, public port, type; a port published
 * on the same number groups into ranges per IP and type; other mappings are listed one by one.
 */
export function displayPorts(ports: NonNullable<ContainerSummary['Ports']>): string {
  const sorted = [...ports].sort(
    (a, b) =>
      a.PrivatePort - b.PrivatePort ||
      ((a.IP ?? '') < (b.IP ?? '') ? -1 : (a.IP ?? '') > (b.IP ?? '') ? 1 : 0) ||
      (a.PublicPort ?? 0) - (b.PublicPort ?? 0) ||
      (a.Type < b.Type ? -1 : a.Type > b.Type ? 1 : 0),
  );
  const joinHostPort = (ip: string, port: string) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
  const formGroup = (key: string, first: number, last: number) => {
    const slash = key.lastIndexOf('/');
    const ip = slash >= 0 ? key.slice(0, slash) : '';
    const type = slash >= 0 ? key.slice(slash + 1) : key;
    let group = first === last ? `${first}` : `${first}-${last}`;
    if (ip) group = `${joinHostPort(ip, group)}->${group}`;
    return `${group}/${type}`;
  };
  const groups = new Map<string, { first: number; last: number }>();
  const result: string[] = [];
  const hostMappings: string[] = [];
  for (const port of sorted) {
    const current = port.PrivatePort;
    let key = port.Type;
    if (port.IP) {
      if (port.PublicPort !== current) {
        hostMappings.push(`${joinHostPort(port.IP, String(port.PublicPort ?? 0))}->${port.PrivatePort}/${port.Type}`);
        continue;
      }
      key = `${port.IP}/${port.Type}`;
    }
    const group = groups.get(key);
    if (!group) {
      groups.set(key, { first: current, last: current });
      continue;
    }
    if (current === group.last + 1) {
      group.last = current;
      continue;
    }
    result.push(formGroup(key, group.first, group.last));
    groups.set(key, { first: current, last: current });
  }
  for (const [key, g] of groups) result.push(formGroup(key, g.first, g.last));
  return [...result, ...hostMappings].join(', ');
}

/** Go's strconv.Quote: a double-quoted string with Go escapes. */
export function goQuote(text: string): string {
  const named: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '"': '\\"', '\\': '\\\\' };
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (named[ch]) out += named[ch];
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

/** The `docker ps` formatting context of one container. */
export function containerContext(c: ContainerSummary, options: { trunc: boolean; now?: number }) {
  const trunc = options.trunc;
  const labels = c.Labels ?? {};
  const image = (() => {
    if (!c.Image) return '<no image>';
    if (!trunc) return c.Image;
    if (c.ImageID && shortId(c.ImageID) === shortId(c.Image)) return shortId(c.Image);
    try {
      const ref = parseReference(c.Image);
      if (ref.digest) return ref.tag !== undefined ? `${familiarName(ref)}:${ref.tag}` : familiarName(ref);
    } catch {
      // Not a reference (an id prefix, say): shown as is.
    }
    return c.Image;
  })();
  const names = (c.Names ?? [])
    .map((n) => n.replace(/^\//, ''))
    .filter((n) => !trunc || !n.includes('/'));
  const mounts = (c.Mounts ?? []).map((m) => {
    const name = m.Name || m.Source || '';
    return trunc ? ellipsis(name, 15) : name;
  });
  const fields = {
    Command: goQuote(trunc ? ellipsis(c.Command, 20) : c.Command),
    CreatedAt: goTimeString(c.Created),
    ID: trunc ? shortId(c.Id) : c.Id,
    Image: image,
    Labels: Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    LocalVolumes: String((c.Mounts ?? []).filter((m) => m.Driver === 'local').length),
    Mounts: mounts.join(','),
    Names: names.join(','),
    Networks: Object.keys(c.NetworkSettings?.Networks ?? {})
      .sort()
      .join(','),
    Platform: null,
    Ports: displayPorts(c.Ports ?? []),
    RunningFor: timeAgo(c.Created, options.now),
    Size:
      (c.SizeRootFs ?? 0) > 0
        ? `${humanSize(c.SizeRw ?? 0, 3)} (virtual ${humanSize(c.SizeRootFs ?? 0, 3)})`
        : humanSize(c.SizeRw ?? 0, 3),
    State: c.State,
    Status: c.Status,
  };
  return Object.assign(sortedFields(fields), {}) as typeof fields & { Label?: (k: string) => string };
}

export const containerHeaders: Record<string, string> = {
  ID: 'CONTAINER ID',
  Image: 'IMAGE',
  Command: 'COMMAND',
  CreatedAt: 'CREATED AT',
  RunningFor: 'CREATED',
  Ports: 'PORTS',
  State: 'STATE',
  Status: 'STATUS',
  Size: 'SIZE',
  Names: 'NAMES',
  Labels: 'LABELS',
  Label: 'LABEL',
  Mounts: 'MOUNTS',
  Networks: 'NETWORKS',
  LocalVolumes: 'LOCAL VOLUMES',
};

export const psCommand: Command = {
  name: 'ps',
  aliases: ['ls', 'list'],
  usage: '[OPTIONS]',
  description: 'List containers',
  flags: [
    { long: 'all', short: 'a', type: 'bool', description: 'Show all containers (default shows just running)' },
    { long: 'filter', short: 'f', type: 'list', valueName: 'filter', description: 'Filter output based on conditions provided' },
    { long: 'format', type: 'string', description: "Format output using a custom template:\n'table', 'table TEMPLATE', 'json' or a Go template" },
    { long: 'last', short: 'n', type: 'int', description: 'Show n last created containers (includes all states)', default: -1 },
    { long: 'latest', short: 'l', type: 'bool', description: 'Show the latest created container (includes all states)' },
    { long: 'no-trunc', type: 'bool', description: "Don't truncate output" },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Only display container IDs' },
    { long: 'size', short: 's', type: 'bool', description: 'Display total file sizes' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const client = await cli.client();
    let last = flags.int('last') ?? -1;
    if (flags.bool('latest') && last === -1) last = 1;
    const format = flags.string('format');
    const size = flags.bool('size') || (format !== undefined && format.includes('.Size'));
    const list = await client.json<ContainerSummary[]>('GET', '/containers/json', {
      query: {
        all: flags.bool('all') ? 1 : undefined,
        filters: filtersJson(flags.list('filter')),
        limit: last > 0 ? last : undefined,
        size: size ? 1 : undefined,
      },
    });
    const trunc = !flags.bool('no-trunc');
    const now = Date.now();
    const rows = list.map((c) => {
      const ctx = containerContext(c, { trunc, now });
      Object.defineProperty(ctx, 'Label', { value: (k: string) => (c.Labels ?? {})[k] ?? '', enumerable: false });
      return ctx;
    });
    let defaultFormat = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}';
    if (flags.bool('size')) defaultFormat += '\t{{.Size}}';
    const effective = flags.bool('quiet') && !format ? '{{.ID}}' : format;
    cli.out(formatList(rows, { format: effective, defaultFormat, headers: containerHeaders }));
  },
};

export const logsCommand: Command = {
  name: 'logs',
  usage: '[OPTIONS] CONTAINER',
  description: 'Fetch the logs of a container',
  flags: [
    { long: 'details', type: 'bool', description: 'Show extra details provided to logs' },
    { long: 'follow', short: 'f', type: 'bool', description: 'Follow log output' },
    { long: 'since', type: 'string', description: 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
    { long: 'tail', short: 'n', type: 'string', description: 'Number of lines to show from the end of the logs', default: 'all' },
    { long: 'timestamps', short: 't', type: 'bool', description: 'Show timestamps' },
    { long: 'until', type: 'string', description: 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
  ],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    const name = enc(args[0]!);
    const container = await client.json<{ Id: string; Config: { Tty: boolean } }>('GET', `/containers/${name}/json`);
    const since = flags.string('since');
    const until = flags.string('until');
    const res = await client.request('GET', `/containers/${enc(container.Id)}/logs`, {
      query: {
        details: flags.bool('details') ? 1 : undefined,
        follow: flags.bool('follow') ? 1 : undefined,
        since: since ? apiTimestamp(since) : undefined,
        stderr: 1,
        stdout: 1,
        tail: flags.string('tail') ?? 'all',
        timestamps: flags.bool('timestamps') ? 1 : undefined,
        until: until ? apiTimestamp(until) : undefined,
      },
    });
    if (container.Config.Tty) {
      for await (const chunk of res.body) cli.io.stdout.write(chunk as Buffer);
    } else {
      await demuxStdcopy(res.body, (stream, payload) => (stream === 2 ? cli.io.stderr : cli.io.stdout).write(payload));
    }
  },
};

export const stopCommand: Command = {
  name: 'stop',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Stop one or more running containers',
  flags: [
    { long: 'signal', short: 's', type: 'string', description: 'Signal to send to the container' },
    { long: 'time', short: 't', type: 'int', description: 'Seconds to wait before killing the container' },
  ],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      try {
        await client.call('POST', `/containers/${enc(name)}/stop`, {
          query: { signal: flags.string('signal'), t: flags.changed('time') ? flags.int('time') : undefined },
        });
      } catch (err) {
        if (!isKind(err, 'NotModified')) throw err;
      }
      return name;
    });
  },
};

export const restartCommand: Command = {
  name: 'restart',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Restart one or more containers',
  flags: stopCommand.flags,
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      await client.call('POST', `/containers/${enc(name)}/restart`, {
        query: { signal: flags.string('signal'), t: flags.changed('time') ? flags.int('time') : undefined },
      });
      return name;
    });
  },
};

export const killCommand: Command = {
  name: 'kill',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Kill one or more running containers',
  flags: [{ long: 'signal', short: 's', type: 'string', description: 'Signal to send to the container' }],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      await client.call('POST', `/containers/${enc(name)}/kill`, { query: { signal: flags.string('signal') || undefined } });
      return name;
    });
  },
};

export const rmCommand: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Remove one or more containers',
  flags: [
    { long: 'force', short: 'f', type: 'bool', description: 'Force the removal of a running container (uses SIGKILL)' },
    { long: 'link', short: 'l', type: 'bool', description: 'Remove the specified link' },
    { long: 'volumes', short: 'v', type: 'bool', description: 'Remove anonymous volumes associated with the container' },
  ],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      const target = name.replace(/^\//, '');
      if (target === '') throw new UsageError('Container name cannot be empty');
      try {
        await client.call('DELETE', `/containers/${enc(target)}`, {
          query: {
            force: flags.bool('force') ? 1 : undefined,
            link: flags.bool('link') ? 1 : undefined,
            v: flags.bool('volumes') ? 1 : undefined,
          },
        });
      } catch (err) {
        // `rm -f` of something already gone is not an error, as in the docker CLI.
        if (flags.bool('force') && isKind(err, 'NotFound')) return undefined;
        throw err;
      }
      return name;
    });
  },
};

export const waitCommand: Command = {
  name: 'wait',
  usage: 'CONTAINER [CONTAINER...]',
  description: 'Block until one or more containers stop, then print their exit codes',
  flags: [],
  args: { min: 1 },
  async run(cli, { args }) {
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      const res = await client.json<{ StatusCode: number; Error?: { Message?: string } | null }>('POST', `/containers/${enc(name)}/wait`);
      if (res.Error?.Message) throw new Error(res.Error.Message);
      return String(res.StatusCode);
    });
  },
};

export const topCommand: Command = {
  name: 'top',
  usage: 'CONTAINER [ps OPTIONS]',
  description: 'Display the running processes of a container',
  flags: [],
  stopAtPositional: true,
  args: { min: 1 },
  async run(cli, { args }) {
    const client = await cli.client();
    const [name, ...psArgs] = args;
    const top = await client.json<{ Titles: string[]; Processes: string[][] | null }>('GET', `/containers/${enc(name!)}/top`, {
      query: { ps_args: psArgs.length ? psArgs.join(' ') : undefined },
    });
    cli.out(tabwrite([top.Titles.join('\t'), ...(top.Processes ?? []).map((p) => p.join('\t'))], { minWidth: 20, padding: 3 }));
  },
};

function simpleAction(name: string, description: string, action: string): Command {
  return {
    name,
    usage: 'CONTAINER [CONTAINER...]',
    description,
    flags: [],
    args: { min: 1 },
    async run(cli, { args }) {
      const client = await cli.client();
      return forEachTarget(cli, args, async (target) => {
        await client.call('POST', `/containers/${enc(target)}/${action}`);
        return target;
      });
    },
  };
}

export const pauseCommand = simpleAction('pause', 'Pause all processes within one or more containers', 'pause');
export const unpauseCommand = simpleAction('unpause', 'Unpause all processes within one or more containers', 'unpause');

export const renameCommand: Command = {
  name: 'rename',
  usage: 'CONTAINER NEW_NAME',
  description: 'Rename a container',
  flags: [],
  args: { min: 2, max: 2 },
  async run(cli, { args }) {
    const client = await cli.client();
    const [oldName, newName] = args as [string, string];
    if (!newName.trim()) throw new UsageError('Error: Neither old nor new names may be empty');
    try {
      await client.call('POST', `/containers/${enc(oldName)}/rename`, { query: { name: newName } });
    } catch (err) {
      cli.err(`${errorText(err)}\n`);
      cli.err(`Error: failed to rename container named ${oldName}\n`);
      return 1;
    }
  },
};

export const portCommand: Command = {
  name: 'port',
  usage: 'CONTAINER [PRIVATE_PORT[/PROTO]]',
  description: 'List port mappings or a specific mapping for the container',
  flags: [],
  args: { min: 1, max: 2 },
  async run(cli, { args }) {
    const client = await cli.client();
    const c = await client.json<{ NetworkSettings: { Ports?: Record<string, Array<{ HostIp: string; HostPort: string }> | null> | null } }>(
      'GET',
      `/containers/${enc(args[0]!)}/json`,
    );
    const ports = c.NetworkSettings?.Ports ?? {};
    const hostPort = (b: { HostIp: string; HostPort: string }) =>
      `${b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp || '0.0.0.0'}:${b.HostPort}`;
    if (args[1]) {
      const [port, proto = 'tcp'] = args[1].split('/');
      const bindings = ports[`${port}/${proto}`];
      if (!bindings || bindings.length === 0) {
        cli.err(`Error: No public port '${port}/${proto}' published for ${args[0]}\n`);
        return 1;
      }
      for (const b of bindings) cli.out(`${hostPort(b)}\n`);
      return 0;
    }
    const keys = Object.keys(ports).sort((a, b) => {
      const [pa, ta] = a.split('/');
      const [pb, tb] = b.split('/');
      return Number(pa) - Number(pb) || (ta ?? '').localeCompare(tb ?? '');
    });
    for (const key of keys) for (const b of ports[key] ?? []) cli.out(`${key} -> ${hostPort(b)}\n`);
    return 0;
  },
};

export const containerPruneCommand: Command = {
  name: 'prune',
  usage: '[OPTIONS]',
  description: 'Remove all stopped containers',
  flags: [
    { long: 'filter', type: 'list', valueName: 'filter', description: 'Provide filter values (e.g. "until=<timestamp>")' },
    { long: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    if (!flags.bool('force') && !(await confirm(cli, 'WARNING! This will remove all stopped containers.'))) {
      return 0;
    }
    const client = await cli.client();
    const report = await client.json<{ ContainersDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/containers/prune', {
      query: { filters: filtersJson(flags.list('filter')) },
    });
    const deleted = report.ContainersDeleted ?? [];
    if (deleted.length) cli.out(`Deleted Containers:\n${deleted.join('\n')}\n\n`);
    cli.out(`Total reclaimed space: ${humanSize(report.SpaceReclaimed ?? 0)}\n`);
    return 0;
  },
};

export const containerInspectCommand: Command = {
  name: 'inspect',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Display detailed information on one or more containers',
  flags: [
    { long: 'format', short: 'f', type: 'string', description: 'Format output using a custom template' },
    { long: 'size', short: 's', type: 'bool', description: 'Display total file sizes' },
  ],
  args: { min: 1 },
  run: (cli, { flags, args }) =>
    inspectObjects(cli, args, { type: 'container', format: flags.string('format'), size: flags.bool('size') }),
};

export async function confirmOrForce(cli: Cli, force: boolean, message: string): Promise<boolean> {
  return force || confirm(cli, message);
}
