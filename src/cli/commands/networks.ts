/**
 * `baleia network create|ls|inspect|rm|prune|connect|disconnect`, shaped like the docker CLI.
 */
import type { Command, CommandGroup } from '../command.js';
import { confirm, filtersJson, forEachTarget, keyValues } from '../common.js';
import { formatList } from '../format.js';
import { inspectObjects } from './inspect.js';

interface Network {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
  Created: string;
  Internal: boolean;
  Labels: Record<string, string> | null;
}


export const networkCreateCommand: Command = {
  name: 'create',
  usage: '[OPTIONS] NETWORK',
  description: 'Create a network',
  flags: [
    { long: 'attachable', type: 'bool', description: 'Enable manual container attachment' },
    { long: 'driver', short: 'd', type: 'string', description: 'Driver to manage the Network (bridge, macvlan, ipvlan)', default: 'bridge' },
    { long: 'gateway', type: 'list', description: 'IPv4 Gateway for the master subnet' },
    { long: 'internal', type: 'bool', description: 'Restrict external access to the network' },
    { long: 'ip-range', type: 'list', description: 'Allocate container ip from a sub-range' },
    { long: 'label', type: 'list', description: 'Set metadata on a network' },
    { long: 'opt', short: 'o', type: 'list', description: 'Set driver specific options' },
    { long: 'subnet', type: 'list', description: 'Subnet in CIDR format that represents a network segment' },
  ],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const subnets = flags.list('subnet');
    const gateways = flags.list('gateway');
    const ranges = flags.list('ip-range');
    const client = await cli.client();
    const result = await client.json<{ Id: string }>('POST', '/networks/create', {
      body: {
        Name: args[0],
        Driver: flags.string('driver') ?? 'bridge',
        Scope: '',
        IPAM: {
          Driver: 'default',
          Options: {},
          Config: subnets.map((Subnet, i) => ({ Subnet, ...(gateways[i] ? { Gateway: gateways[i] } : {}), ...(ranges[i] ? { IPRange: ranges[i] } : {}) })),
        },
        Internal: flags.bool('internal'),
        Attachable: flags.bool('attachable'),
        Ingress: false,
        ConfigOnly: false,
        ConfigFrom: null,
        Options: keyValues(flags.list('opt')),
        Labels: keyValues(flags.list('label')),
      },
    });
    cli.out(`${result.Id}\n`);
  },
};

export const networkListCommand: Command = {
  name: 'ls',
  aliases: ['list'],
  usage: '[OPTIONS]',
  description: 'List networks',
  flags: [
    { long: 'filter', short: 'f', type: 'list', description: 'Provide filter values (e.g. "driver=bridge")' },
    { long: 'format', type: 'string', description: 'Format output using a custom template' },
    { long: 'no-trunc', type: 'bool', description: 'Do not truncate the output' },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Only display network IDs' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const client = await cli.client();
    const list = await client.json<Network[]>('GET', '/networks', { query: { filters: filtersJson(flags.list('filter')) } });
    const id = (n: Network) => (flags.bool('no-trunc') ? n.Id : n.Id.slice(0, 12));
    const rows = list
      .sort((a, b) => (a.Name < b.Name ? -1 : 1))
      .map((n) => ({
        ID: () => id(n),
        Name: () => n.Name,
        Driver: () => n.Driver,
        Scope: () => n.Scope,
        Internal: () => String(n.Internal),
        CreatedAt: () => n.Created,
        Labels: () => Object.entries(n.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
        Label: (key: string) => n.Labels?.[key] ?? '',
      }));
    cli.out(
      formatList(rows, {
        format: flags.bool('quiet') ? '{{.ID}}' : flags.string('format'),
        defaultFormat: 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}',
        headers: { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', Internal: 'INTERNAL', CreatedAt: 'CREATED', Labels: 'LABELS' },
      }),
    );
  },
};

export const networkInspectCommand: Command = {
  name: 'inspect',
  usage: '[OPTIONS] NETWORK [NETWORK...]',
  description: 'Display detailed information on one or more networks',
  flags: [{ long: 'format', short: 'f', type: 'string', description: 'Format output using a custom template' }],
  args: { min: 1 },
  run: (cli, { flags, args }) => inspectObjects(cli, args, { type: 'network', format: flags.string('format') }),
};

export const networkRemoveCommand: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: 'NETWORK [NETWORK...]',
  description: 'Remove one or more networks',
  flags: [{ long: 'force', short: 'f', type: 'bool', description: 'Do not error if the network does not exist' }],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      try {
        await client.call('DELETE', `/networks/${encodeURIComponent(name)}`);
      } catch (err) {
        if (flags.bool('force') && (err as { status?: number }).status === 404) return undefined;
        throw err;
      }
      return name;
    });
  },
};

export const networkPruneCommand: Command = {
  name: 'prune',
  usage: '[OPTIONS]',
  description: 'Remove all unused networks',
  flags: [
    { long: 'filter', type: 'list', description: 'Provide filter values (e.g. "until=<timestamp>")' },
    { long: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    if (!flags.bool('force') && !(await confirm(cli, 'WARNING! This will remove all custom networks not used by at least one container.'))) return 0;
    const client = await cli.client();
    const report = await client.json<{ NetworksDeleted?: string[] | null }>('POST', '/networks/prune', { query: { filters: filtersJson(flags.list('filter')) } });
    if (report.NetworksDeleted?.length) cli.out(`Deleted Networks:\n${report.NetworksDeleted.map((n) => `${n}\n`).join('')}`);
    return 0;
  },
};

export const networkConnectCommand: Command = {
  name: 'connect',
  usage: '[OPTIONS] NETWORK CONTAINER',
  description: 'Connect a container to a network',
  flags: [
    { long: 'alias', type: 'list', description: 'Add network-scoped alias for the container' },
    { long: 'ip', type: 'string', description: 'IPv4 address (e.g., "172.30.100.104")' },
  ],
  args: { min: 2, max: 2 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    const ip = flags.string('ip');
    await client.call('POST', `/networks/${encodeURIComponent(args[0]!)}/connect`, {
      body: {
        Container: args[1],
        EndpointConfig: { ...(ip ? { IPAMConfig: { IPv4Address: ip } } : {}), ...(flags.list('alias').length ? { Aliases: flags.list('alias') } : {}) },
      },
    });
  },
};

export const networkDisconnectCommand: Command = {
  name: 'disconnect',
  usage: '[OPTIONS] NETWORK CONTAINER',
  description: 'Disconnect a container from a network',
  flags: [{ long: 'force', short: 'f', type: 'bool', description: 'Force the container to disconnect from a network' }],
  args: { min: 2, max: 2 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    await client.call('POST', `/networks/${encodeURIComponent(args[0]!)}/disconnect`, { body: { Container: args[1], Force: flags.bool('force') } });
  },
};

export const networkGroup: CommandGroup = {
  name: 'network',
  description: 'Manage networks',
  commands: [networkConnectCommand, networkCreateCommand, networkDisconnectCommand, networkInspectCommand, networkListCommand, networkPruneCommand, networkRemoveCommand],
};
