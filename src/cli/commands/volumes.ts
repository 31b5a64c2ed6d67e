/**
 * `baleia volume create|ls|inspect|rm|prune`, shaped like the docker CLI's output.
 */
import type { Command, CommandGroup } from '../command.js';
import { confirm, filtersJson, forEachTarget, keyValues } from '../common.js';
import { formatList } from '../format.js';
import { humanSize } from '../units.js';
import { inspectObjects } from './inspect.js';

interface Volume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string> | null;
  Options: Record<string, string> | null;
  Scope: string;
}


export const volumeCreateCommand: Command = {
  name: 'create',
  usage: '[OPTIONS] [VOLUME]',
  description: 'Create a volume',
  flags: [
    { long: 'driver', short: 'd', type: 'string', description: 'Specify volume driver name' },
    { long: 'label', type: 'list', description: 'Set metadata for a volume' },
    { long: 'opt', short: 'o', type: 'list', description: 'Set driver specific options' },
    { long: 'name', type: 'string', description: 'Specify volume name', hidden: true },
  ],
  args: { max: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    const volume = await client.json<Volume>('POST', '/volumes/create', {
      body: {
        Name: args[0] ?? flags.string('name') ?? '',
        Driver: flags.string('driver') ?? 'local',
        DriverOpts: keyValues(flags.list('opt')),
        Labels: keyValues(flags.list('label')),
      },
    });
    cli.out(`${volume.Name}\n`);
  },
};

export const volumeListCommand: Command = {
  name: 'ls',
  aliases: ['list'],
  usage: '[OPTIONS]',
  description: 'List volumes',
  flags: [
    { long: 'filter', short: 'f', type: 'list', description: "Provide filter values (e.g. 'dangling=true')" },
    { long: 'format', type: 'string', description: 'Format output using a custom template' },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Only display volume names' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const client = await cli.client();
    const { Volumes } = await client.json<{ Volumes: Volume[] | null }>('GET', '/volumes', {
      query: { filters: filtersJson(flags.list('filter')) },
    });
    const rows = (Volumes ?? [])
      .sort((a, b) => (a.Name < b.Name ? -1 : 1))
      .map((v) => ({
        Name: () => v.Name,
        Driver: () => v.Driver,
        Scope: () => v.Scope,
        Mountpoint: () => v.Mountpoint,
        CreatedAt: () => v.CreatedAt,
        Labels: () => Object.entries(v.Labels ?? {}).map(([k, val]) => `${k}=${val}`).join(','),
        Label: (key: string) => v.Labels?.[key] ?? '',
        Size: () => 'N/A',
        Links: () => 'N/A',
      }));
    const format = flags.bool('quiet') ? '{{.Name}}' : flags.string('format');
    cli.out(
      formatList(rows, {
        format,
        defaultFormat: 'table {{.Driver}}\t{{.Name}}',
        headers: { Name: 'VOLUME NAME', Driver: 'DRIVER', Mountpoint: 'MOUNTPOINT', CreatedAt: 'CREATED', Labels: 'LABELS' },
      }),
    );
  },
};

export const volumeInspectCommand: Command = {
  name: 'inspect',
  usage: '[OPTIONS] VOLUME [VOLUME...]',
  description: 'Display detailed information on one or more volumes',
  flags: [{ long: 'format', short: 'f', type: 'string', description: 'Format output using a custom template' }],
  args: { min: 1 },
  run: (cli, { flags, args }) => inspectObjects(cli, args, { type: 'volume', format: flags.string('format') }),
};

export const volumeRemoveCommand: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: '[OPTIONS] VOLUME [VOLUME...]',
  description: 'Remove one or more volumes',
  flags: [{ long: 'force', short: 'f', type: 'bool', description: 'Force the removal of one or more volumes' }],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      await client.call('DELETE', `/volumes/${encodeURIComponent(name)}`, { query: { force: flags.bool('force') ? '1' : undefined } });
      return name;
    });
  },
};

export const volumePruneCommand: Command = {
  name: 'prune',
  usage: '[OPTIONS]',
  description: 'Remove unused local volumes',
  flags: [
    { long: 'filter', type: 'list', description: 'Provide filter values (e.g. "label=<label>")' },
    { long: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    if (!flags.bool('force') && !(await confirm(cli, 'WARNING! This will remove all local volumes not used by at least one container.'))) return 0;
    const client = await cli.client();
    const report = await client.json<{ VolumesDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/volumes/prune', {
      query: { filters: filtersJson(flags.list('filter')) },
    });
    const deleted = report.VolumesDeleted ?? [];
    if (deleted.length) cli.out(`Deleted Volumes:\n${deleted.map((d) => `${d}\n`).join('')}\n`);
    cli.out(`Total reclaimed space: ${humanSize(report.SpaceReclaimed ?? 0)}\n`);
    return 0;
  },
};

export const volumeGroup: CommandGroup = {
  name: 'volume',
  description: 'Manage volumes',
  commands: [volumeCreateCommand, volumeInspectCommand, volumeListCommand, volumePruneCommand, volumeRemoveCommand],
};
