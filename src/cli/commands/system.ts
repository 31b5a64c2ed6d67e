/**
 * System commands: version, info, system df, events, login, logout, daemon.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { describeError } from '../../lib/index.js';
import { clientApiVersion, JsonSplitter } from '../../api/client.js';
import type { Command } from '../command.js';
import { confirm, configDir, dockerHubAuthKey, errorText, filtersJson, readConfigFile } from '../common.js';
import type { Cli } from '../context.js';
import { formatList, tabwrite } from '../format.js';
import { UsageError } from '../flags.js';
import { Template } from '../template.js';
import { apiTimestamp, bytesSize, humanSize, rfc3339NanoFixed, timeAgo } from '../units.js';

export const cliVersion = '0.1.0';

interface VersionInfo {
  Version?: string;
  ApiVersion?: string;
  MinAPIVersion?: string;
  GitCommit?: string;
  GoVersion?: string;
  Os?: string;
  Arch?: string;
  KernelVersion?: string;
  BuildTime?: string;
  Experimental?: boolean;
  Platform?: { Name?: string };
  Components?: Array<{ Name: string; Version: string; Details?: Record<string, string> }>;
}

export const versionCommand: Command = {
  name: 'version',
  usage: '[OPTIONS]',
  description: 'Show the baleia version information',
  flags: [{ long: 'format', short: 'f', type: 'string', description: 'Format output using a custom template' }],
  args: { max: 0 },
  async run(cli, { flags }) {
    const clientInfo = {
      Platform: { Name: 'baleia' },
      Version: cliVersion,
      ApiVersion: clientApiVersion,
      DefaultAPIVersion: clientApiVersion,
      NodeVersion: process.version,
      Os: process.platform,
      Arch: os.arch() === 'x64' ? 'amd64' : os.arch(),
    };
    let server: VersionInfo | undefined;
    let serverError: unknown;
    try {
      const client = await cli.client();
      server = await client.json<VersionInfo>('GET', '/version');
      clientInfo.ApiVersion = client.apiVersion ?? clientApiVersion;
    } catch (err) {
      serverError = err;
    }
    const format = flags.string('format');
    if (format) {
      cli.out(new Template(format).execute({ Client: clientInfo, Server: server ?? null }) + '\n');
      return serverError ? 1 : 0;
    }
    const lines = [
      'Client:',
      ` Version:\t${clientInfo.Version}`,
      ` API version:\t${clientInfo.ApiVersion}${server?.ApiVersion && server.ApiVersion !== clientInfo.ApiVersion ? ` (downgraded from ${server.ApiVersion})` : ''}`,
      ` Node version:\t${clientInfo.NodeVersion}`,
      ` OS/Arch:\t${clientInfo.Os}/${clientInfo.Arch}`,
    ];
    cli.out(tabwrite(lines, { minWidth: 0, padding: 1 }).replace(/\t/g, ' '));
    if (server) {
      const engine = server.Components?.find((c) => c.Name === 'Engine');
      const d = engine?.Details ?? {};
      const rows = [
        '',
        `Server:${server.Platform?.Name ? ` ${server.Platform.Name}` : ''}`,
        ' Engine:',
        `  Version:\t${engine?.Version ?? server.Version ?? ''}`,
        `  API version:\t${d.ApiVersion ?? server.ApiVersion ?? ''} (minimum version ${d.MinAPIVersion ?? server.MinAPIVersion ?? ''})`,
        `  Go version:\t${d.GoVersion ?? server.GoVersion ?? ''}`,
        `  Git commit:\t${d.GitCommit ?? server.GitCommit ?? ''}`,
        `  Built:\t${d.BuildTime ?? server.BuildTime ?? ''}`,
        `  OS/Arch:\t${d.Os ?? server.Os ?? ''}/${d.Arch ?? server.Arch ?? ''}`,
        `  Experimental:\t${d.Experimental ?? String(server.Experimental ?? false)}`,
      ];
      for (const c of server.Components ?? []) {
        if (c.Name === 'Engine') continue;
        rows.push(` ${c.Name}:`, `  Version:\t${c.Version}`);
        if (c.Details?.GitCommit) rows.push(`  GitCommit:\t${c.Details.GitCommit}`);
      }
      cli.out(tabwrite(rows, { minWidth: 0, padding: 1 }));
      return 0;
    }
    cli.err(`${errorText(serverError)}\n`);
    return 1;
  },
};

type Info = Record<string, unknown> & {
  Plugins?: Record<string, string[] | null>;
  Runtimes?: Record<string, unknown>;
  DriverStatus?: Array<[string, string]> | null;
  Warnings?: string[] | null;
  Labels?: string[] | null;
  RegistryConfig?: { InsecureRegistryCIDRs?: string[] | null; Mirrors?: string[] | null } | null;
};

export const infoCommand: Command = {
  name: 'info',
  usage: '[OPTIONS]',
  description: 'Display system-wide information',
  flags: [{ long: 'format', short: 'f', type: 'string', description: 'Format output using a custom template' }],
  args: { max: 0 },
  async run(cli, { flags }) {
    const client = await cli.client();
    const info = await client.json<Info>('GET', '/info');
    const format = flags.string('format');
    if (format) {
      cli.out(new Template(format === 'json' ? '{{json .}}' : format).execute(format.includes('.Server') || format.includes('.Client') ? { Server: info, Client: { Version: cliVersion } } : info) + '\n');
      return;
    }
    const s = (k: string) => (info[k] === undefined || info[k] === null ? '' : String(info[k]));
    const out: string[] = ['Client:', ` Version:    ${cliVersion}`, ` Context:    default`, ` Debug Mode: ${cli.debug}`, '', 'Server:'];
    out.push(` Containers: ${s('Containers')}`, `  Running: ${s('ContainersRunning')}`, `  Paused: ${s('ContainersPaused')}`, `  Stopped: ${s('ContainersStopped')}`);
    out.push(` Images: ${s('Images')}`, ` Server Version: ${s('ServerVersion')}`, ` Storage Driver: ${s('Driver')}`);
    for (const [k, v] of info.DriverStatus ?? []) out.push(`  ${k}: ${v}`);
    out.push(` Logging Driver: ${s('LoggingDriver')}`, ` Cgroup Driver: ${s('CgroupDriver')}`, ` Cgroup Version: ${s('CgroupVersion')}`);
    out.push(' Plugins:');
    for (const kind of ['Volume', 'Network', 'Log']) {
      const list = info.Plugins?.[kind];
      if (list) out.push(`  ${kind}: ${list.join(' ')}`);
    }
    const swarm = (info.Swarm as { LocalNodeState?: string } | undefined)?.LocalNodeState;
    out.push(` Swarm: ${swarm ?? 'inactive'}`);
    out.push(` Runtimes: ${Object.keys(info.Runtimes ?? {}).sort().join(' ')}`, ` Default Runtime: ${s('DefaultRuntime')}`);
    out.push(` Init Binary: ${s('InitBinary')}`);
    const commit = (k: string) => (info[k] as { ID?: string } | undefined)?.ID ?? '';
    out.push(` containerd version: ${commit('ContainerdCommit')}`, ` runc version: ${commit('RuncCommit')}`, ` init version: ${commit('InitCommit')}`);
    const secopts = (info.SecurityOptions as string[] | undefined) ?? [];
    if (secopts.length) {
      out.push(' Security Options:');
      for (const opt of secopts) {
        const fields = Object.fromEntries(opt.split(',').map((kv) => kv.split('=') as [string, string]));
        out.push(`  ${fields.name ?? opt}`);
        for (const [k, v] of Object.entries(fields)) if (k !== 'name') out.push(`   ${k[0]!.toUpperCase()}${k.slice(1)}: ${v}`);
      }
    }
    out.push(` Kernel Version: ${s('KernelVersion')}`, ` Operating System: ${s('OperatingSystem')}`, ` OSType: ${s('OSType')}`);
    out.push(` Architecture: ${s('Architecture')}`, ` CPUs: ${s('NCPU')}`, ` Total Memory: ${bytesSize(Number(info.MemTotal ?? 0))}`);
    out.push(` Name: ${s('Name')}`, ` ID: ${s('ID')}`, ` Docker Root Dir: ${s('DockerRootDir')}`, ` Debug Mode: ${info.Debug === true}`);
    if (info.HttpProxy) out.push(` HTTP Proxy: ${s('HttpProxy')}`);
    if (info.HttpsProxy) out.push(` HTTPS Proxy: ${s('HttpsProxy')}`);
    if (info.NoProxy) out.push(` No Proxy: ${s('NoProxy')}`);
    if (info.Labels?.length) {
      out.push(' Labels:');
      for (const l of info.Labels) out.push(`  ${l}`);
    }
    out.push(` Experimental: ${info.ExperimentalBuild === true}`);
    const insecure = info.RegistryConfig?.InsecureRegistryCIDRs ?? [];
    if (insecure.length) {
      out.push(' Insecure Registries:');
      for (const r of insecure) out.push(`  ${r}`);
    }
    const mirrors = info.RegistryConfig?.Mirrors ?? [];
    if (mirrors.length) {
      out.push(' Registry Mirrors:');
      for (const m of mirrors) out.push(`  ${m}`);
    }
    out.push(` Live Restore Enabled: ${info.LiveRestoreEnabled === true}`, '');
    cli.out(out.join('\n') + '\n');
    const warnings = info.Warnings ?? [];
    if (warnings.length) cli.err(warnings.join('\n') + '\n');
  },
};

export const dfCommand: Command = {
  name: 'df',
  usage: '[OPTIONS]',
  description: 'Show docker disk usage',
  flags: [
    { long: 'format', type: 'string', description: 'Format output using a custom template' },
    { long: 'verbose', short: 'v', type: 'bool', description: 'Show detailed information on space usage' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const client = await cli.client();
    type Df = {
      LayersSize?: number;
      Images?: Array<{ Size: number; SharedSize?: number; Containers?: number }> | null;
      Containers?: Array<{ State: string; SizeRw?: number }> | null;
      Volumes?: Array<{ Name?: string; UsageData?: { Size: number; RefCount: number } | null }> | null;
      BuildCache?: Array<{ Size: number; InUse?: boolean; Shared?: boolean }> | null;
    };
    const df = await client.json<Df>('GET', '/system/df');
    const images = df.Images ?? [];
    const containers = df.Containers ?? [];
    const volumes = df.Volumes ?? [];
    const cache = df.BuildCache ?? [];
    const pct = (part: number, total: number) => (total > 0 ? ` (${Math.trunc((part * 100) / total)}%)` : '');
    const layers = df.LayersSize ?? images.reduce((a, i) => a + i.Size - Math.max(0, i.SharedSize ?? 0), 0);
    const activeImages = images.filter((i) => (i.Containers ?? 0) > 0);
    // As the docker CLI: an image whose shared size is unknown (-1) counts as reclaimable.
    const imageReclaim = layers - activeImages.filter((i) => (i.SharedSize ?? -1) !== -1).reduce((a, i) => a + i.Size - (i.SharedSize ?? 0), 0);
    const cSize = containers.reduce((a, c) => a + (c.SizeRw ?? 0), 0);
    const cActive = containers.filter((c) => c.State === 'running');
    const cReclaim = cSize - cActive.reduce((a, c) => a + (c.SizeRw ?? 0), 0);
    const vSize = volumes.reduce((a, v) => a + Math.max(0, v.UsageData?.Size ?? 0), 0);
    const vActive = volumes.filter((v) => (v.UsageData?.RefCount ?? 0) > 0);
    const vReclaim = vSize - vActive.reduce((a, v) => a + Math.max(0, v.UsageData?.Size ?? 0), 0);
    const bSize = cache.reduce((a, b) => a + b.Size, 0);
    const bReclaim = cache.filter((b) => !b.InUse && !b.Shared).reduce((a, b) => a + b.Size, 0);
    const rows = [
      { Type: 'Images', TotalCount: String(images.length), Active: String(activeImages.length), Size: humanSize(layers), Reclaimable: `${humanSize(imageReclaim)}${pct(imageReclaim, layers)}` },
      { Type: 'Containers', TotalCount: String(containers.length), Active: String(cActive.length), Size: humanSize(cSize), Reclaimable: `${humanSize(cReclaim)}${pct(cReclaim, cSize)}` },
      { Type: 'Local Volumes', TotalCount: String(volumes.length), Active: String(vActive.length), Size: humanSize(vSize), Reclaimable: `${humanSize(vReclaim)}${pct(vReclaim, vSize)}` },
      { Type: 'Build Cache', TotalCount: String(cache.length), Active: String(cache.filter((b) => b.InUse).length), Size: humanSize(bSize), Reclaimable: humanSize(bReclaim) },
    ];
    if (flags.bool('verbose')) {
      type ImageRow = { RepoTags?: string[] | null; Id: string; Created: number; Size: number; SharedSize?: number; Containers?: number };
      type ContainerRow = { Id: string; Image: string; Command: string; Mounts?: Array<{ Type: string }>; SizeRw?: number; Created: number; Status: string; Names: string[] };
      const imageRows = (images as ImageRow[]).flatMap((i) =>
        (i.RepoTags?.length ? i.RepoTags : ['<none>:<none>']).map((t) => {
          const colon = t.lastIndexOf(':');
          const shared = Math.max(0, i.SharedSize ?? 0);
          return {
            Repository: () => t.slice(0, colon),
            Tag: () => t.slice(colon + 1),
            ID: () => i.Id.replace(/^sha256:/, '').slice(0, 12),
            CreatedSince: () => timeAgo(i.Created),
            Size: () => humanSize(i.Size),
            SharedSize: () => humanSize(shared),
            UniqueSize: () => humanSize(i.Size - shared),
            Containers: () => String(i.Containers ?? 0),
          };
        }),
      );
      cli.out('Images space usage:\n\n');
      cli.out(formatList(imageRows, {
        format: undefined,
        defaultFormat: 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}',
        headers: { Repository: 'REPOSITORY', Tag: 'TAG', ID: 'IMAGE ID', CreatedSince: 'CREATED', Size: 'SIZE', SharedSize: 'SHARED SIZE', UniqueSize: 'UNIQUE SIZE', Containers: 'CONTAINERS' },
      }));
      const containerRows = (containers as unknown as ContainerRow[]).map((c) => ({
        ID: () => c.Id.slice(0, 12),
        Image: () => c.Image,
        Command: () => JSON.stringify(c.Command.length > 20 ? `${c.Command.slice(0, 19)}…` : c.Command),
        LocalVolumes: () => String((c.Mounts ?? []).filter((m) => m.Type === 'volume').length),
        Size: () => humanSize(c.SizeRw ?? 0),
        CreatedSince: () => timeAgo(c.Created),
        Status: () => c.Status,
        Names: () => (c.Names[0] ?? '').replace(/^\//, ''),
      }));
      cli.out('\nContainers space usage:\n\n');
      cli.out(formatList(containerRows, {
        format: undefined,
        defaultFormat: 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.CreatedSince}}\t{{.Status}}\t{{.Names}}',
        headers: { ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', LocalVolumes: 'LOCAL VOLUMES', Size: 'SIZE', CreatedSince: 'CREATED', Status: 'STATUS', Names: 'NAMES' },
      }));
      cli.out('\nLocal Volumes space usage:\n\n');
      cli.out(
        formatList(
          volumes.map((v) => ({ Name: () => v.Name ?? '', Links: () => String(v.UsageData?.RefCount ?? 0), Size: () => humanSize(Math.max(0, v.UsageData?.Size ?? 0)) })),
          { format: undefined, defaultFormat: 'table {{.Name}}\t{{.Links}}\t{{.Size}}', headers: { Name: 'VOLUME NAME', Links: 'LINKS', Size: 'SIZE' } },
        ),
      );
      cli.out(`\nBuild cache usage: ${humanSize(bSize)}\n`);
      return;
    }
    cli.out(
      formatList(rows, {
        format: flags.string('format'),
        defaultFormat: 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}',
        headers: { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' },
      }),
    );
  },
};

interface EventMessage {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number | string;
  status?: string;
  id?: string;
  from?: string;
  scope?: string;
}

/** `2026-11-28T15:01:14.185590150Z container start <id> (image=busybox, name=x)` */
export function formatEvent(e: EventMessage, timeNano: bigint): string {
  const attrs = Object.entries(e.Actor?.Attributes ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  return `${rfc3339NanoFixed(timeNano)} ${e.Type ?? ''} ${e.Action ?? ''} ${e.Actor?.ID ?? ''}${attrs.length ? ` (${attrs.join(', ')})` : ''}`;
}

export const eventsCommand: Command = {
  name: 'events',
  usage: '[OPTIONS]',
  description: 'Get real time events from the server',
  flags: [
    { long: 'filter', short: 'f', type: 'list', valueName: 'filter', description: 'Filter output based on conditions provided' },
    { long: 'format', type: 'string', description: 'Format output using a custom template' },
    { long: 'since', type: 'string', description: 'Show all events created since timestamp' },
    { long: 'until', type: 'string', description: 'Stream events until this timestamp' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const client = await cli.client();
    const since = flags.string('since');
    const until = flags.string('until');
    const res = await client.request('GET', '/events', {
      query: {
        filters: filtersJson(flags.list('filter')),
        since: since ? apiTimestamp(since) : undefined,
        until: until ? apiTimestamp(until) : undefined,
      },
    });
    const format = flags.string('format');
    const template = format ? new Template(format === 'json' ? '{{json .}}' : format) : undefined;
    const splitter = new JsonSplitter();
    for await (const chunk of res.body) {
      for (const text of splitter.push((chunk as Buffer).toString('utf8'))) {
        const event = JSON.parse(text) as EventMessage;
        // timeNano has more digits than a double holds: read them from the text.
        const nano = /"timeNano"\s*:\s*(\d+)/.exec(text)?.[1];
        const ns = nano ? BigInt(nano) : BigInt(event.time ?? 0) * 1_000_000_000n;
        if (!template) {
          cli.out(formatEvent(event, ns) + '\n');
          continue;
        }
        let line = template.execute(event);
        // Put back the nanosecond digits that the double lost.
        if (nano && event.timeNano !== undefined) line = line.split(String(event.timeNano)).join(nano);
        cli.out(line + '\n');
      }
    }
  },
};

function configFile(): string {
  return path.join(configDir(), 'config.json');
}

function writeConfig(config: Record<string, unknown>): void {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  writeFileSync(configFile(), JSON.stringify(config, null, '\t') + '\n', { mode: 0o600 });
}

async function prompt(cli: Cli, question: string): Promise<string> {
  cli.out(question);
  const rl = createInterface({ input: cli.io.stdin });
  const answer = await new Promise<string>((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(''));
  });
  rl.close();
  return answer.trim();
}

export const loginCommand: Command = {
  name: 'login',
  usage: '[OPTIONS] [SERVER]',
  description: 'Authenticate to a registry',
  flags: [
    { long: 'password', short: 'p', type: 'string', description: 'Password or Personal Access Token (PAT)' },
    { long: 'password-stdin', type: 'bool', description: 'Take the Password or Personal Access Token (PAT) from stdin' },
    { long: 'username', short: 'u', type: 'string', description: 'Username' },
  ],
  args: { max: 1 },
  async run(cli, { flags, args }) {
    const server = args[0] ?? dockerHubAuthKey;
    let username = flags.string('username');
    let password = flags.string('password');
    if (flags.bool('password-stdin')) {
      if (password) throw new UsageError('--password and --password-stdin are mutually exclusive');
      if (!username) throw new UsageError('Must provide --username with --password-stdin');
      const chunks: Buffer[] = [];
      for await (const c of cli.io.stdin) chunks.push(c as Buffer);
      password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    } else if (password) {
      cli.err('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
    }
    if (!username) username = await prompt(cli, 'Username: ');
    if (!password) password = await prompt(cli, 'Password: ');
    if (!username || !password) throw new UsageError('Error: Non-null Username and Password Required');
    const client = await cli.client();
    const res = await client.json<{ Status?: string; IdentityToken?: string }>('POST', '/auth', {
      body: { username, password, serveraddress: server },
    });
    const config = readConfigFile(configFile()) as { auths?: Record<string, Record<string, string>> };
    config.auths ??= {};
    config.auths[server] = res.IdentityToken
      ? { auth: Buffer.from(`${username}:`).toString('base64'), identitytoken: res.IdentityToken }
      : { auth: Buffer.from(`${username}:${password}`).toString('base64') };
    writeConfig(config);
    cli.out(`${res.Status ?? 'Login Succeeded'}\n`);
  },
};

export const logoutCommand: Command = {
  name: 'logout',
  usage: '[SERVER]',
  description: 'Log out from a registry',
  flags: [],
  args: { max: 1 },
  async run(cli, { args }) {
    const server = args[0] ?? dockerHubAuthKey;
    const config = readConfigFile(configFile()) as { auths?: Record<string, unknown> };
    if (!config.auths?.[server]) {
      cli.out(`Not logged in to ${server}\n`);
      return;
    }
    cli.out(`Removing login credentials for ${server}\n`);
    delete config.auths[server];
    writeConfig(config);
  },
};

export const daemonCommand: Command = {
  name: 'daemon',
  usage: '[--root DIR] [--exec-root DIR] [-H unix://PATH] [--log-level LEVEL] [OPTIONS]',
  description: 'Run the baleia daemon (baleiad) in the foreground',
  // Every flag belongs to the daemon, which parses its own argv (src/daemon.ts): these are listed
  // for --help only.
  flags: [
    { long: 'root', type: 'string', default: '/var/lib/baleia', valueName: 'dir', description: 'Images, containers, volumes and logs (also --data-root)' },
    { long: 'exec-root', type: 'string', default: '/run/baleia', valueName: 'dir', description: 'Runtime state and sockets' },
    { long: 'host', short: 'H', type: 'string', default: 'unix:///run/baleia/baleia.sock', valueName: 'unix://path', description: 'API socket ($BALEIA_HOST)' },
    { long: 'log-level', short: 'l', type: 'string', default: 'info', valueName: 'level', description: 'debug, info, warn or error (JSON lines on stderr); -D is debug' },
    { long: 'insecure-registry', type: 'list', valueName: 'host', description: 'host:port or CIDR reached over plain HTTP (loopback always is)' },
    { long: 'registry-mirror', type: 'list', valueName: '[registry=]url', description: 'Pull mirror for a registry (Docker Hub without registry=)' },
    { long: 'bridge-name', type: 'string', default: 'baleia0', valueName: 'name', description: 'Linux bridge of the default bridge network' },
    { long: 'bridge-subnet', type: 'string', default: '10.210.0.0/16', valueName: 'cidr', description: 'Subnet of the default bridge (also --bip)' },
    { long: 'default-address-pool', type: 'list', valueName: 'cidr', description: 'Where user networks without --subnet take a /24 (default 10.211.0.0/16)' },
    { long: 'iptables-chain-prefix', type: 'string', default: 'BALEIA', valueName: 'prefix', description: "Prefix of baleia's iptables chains" },
    { long: 'bridge-prefix', type: 'string', default: 'br-', valueName: 'prefix', description: "Prefix of user networks' bridge names" },
    { long: 'network-plugin-timeout', type: 'string', default: '30s', valueName: 'duration', description: 'A CNI plugin call still running after this is killed' },
  ],
  stopAtPositional: true,
  async run() {
    throw new UsageError('daemon is dispatched before flag parsing');
  },
};

/** Run baleiad in this process with the daemon's own argv. */
export async function runDaemon(argv: string[]): Promise<void> {
  const url = pathToFileURL(new URL('../../daemon.js', import.meta.url).pathname).href;
  let mod: { main?: (argv: string[]) => Promise<void> };
  try {
    mod = (await import(url)) as { main?: (argv: string[]) => Promise<void> };
  } catch (err) {
    throw new UsageError(`Cannot start the daemon: ${describeError(err)}`);
  }
  if (typeof mod.main !== 'function') throw new UsageError('Cannot start the daemon: daemon.js exports no main()');
  await mod.main(argv);
}

export function readJsonFile(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

export const systemPruneCommand: Command = {
  name: 'prune',
  usage: '[OPTIONS]',
  description: 'Remove unused data',
  flags: [
    { long: 'all', short: 'a', type: 'bool', description: 'Remove all unused images not just dangling ones' },
    { long: 'filter', type: 'list', valueName: 'filter', description: 'Provide filter values (e.g. "label=<key>=<value>")' },
    { long: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
    { long: 'volumes', type: 'bool', description: 'Prune anonymous volumes' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const all = flags.bool('all');
    const volumes = flags.bool('volumes');
    const warning = [
      'WARNING! This will remove:',
      '  - all stopped containers',
      '  - all networks not used by at least one container',
      ...(volumes ? ['  - all anonymous volumes not used by at least one container'] : []),
      all ? '  - all images without at least one container associated to them' : '  - all dangling images',
      '  - unused build cache',
    ].join('\n');
    if (!flags.bool('force') && !(await confirm(cli, warning))) return 0;
    const client = await cli.client();
    const filters = flags.list('filter');
    let reclaimed = 0;
    // The docker CLI's order: containers, networks, volumes, images, build cache.
    const containers = await client.json<{ ContainersDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/containers/prune', { query: { filters: filtersJson(filters) } });
    reclaimed += containers.SpaceReclaimed ?? 0;
    if (containers.ContainersDeleted?.length) cli.out(`Deleted Containers:\n${containers.ContainersDeleted.map((c) => `${c}\n`).join('')}\n`);
    const networks = await client.json<{ NetworksDeleted?: string[] | null }>('POST', '/networks/prune', { query: { filters: filtersJson(filters) } });
    if (networks.NetworksDeleted?.length) cli.out(`Deleted Networks:\n${networks.NetworksDeleted.map((n) => `${n}\n`).join('')}\n`);
    if (volumes) {
      const v = await client.json<{ VolumesDeleted?: string[] | null; SpaceReclaimed?: number }>('POST', '/volumes/prune', { query: { filters: filtersJson(filters) } });
      reclaimed += v.SpaceReclaimed ?? 0;
      if (v.VolumesDeleted?.length) cli.out(`Deleted Volumes:\n${v.VolumesDeleted.map((n) => `${n}\n`).join('')}\n`);
    }
    const images = await client.json<{ ImagesDeleted?: Array<{ Untagged?: string; Deleted?: string }> | null; SpaceReclaimed?: number }>('POST', '/images/prune', {
      query: { filters: filtersJson(filters, { dangling: [all ? 'false' : 'true'] }) },
    });
    reclaimed += images.SpaceReclaimed ?? 0;
    if (images.ImagesDeleted?.length) {
      cli.out('Deleted Images:\n');
      for (const d of images.ImagesDeleted) {
        if (d.Untagged) cli.out(`untagged: ${d.Untagged}\n`);
        if (d.Deleted) cli.out(`deleted: ${d.Deleted}\n`);
      }
      cli.out('\n');
    }
    const cache = await client.json<{ SpaceReclaimed?: number }>('POST', '/build/prune', {});
    reclaimed += cache.SpaceReclaimed ?? 0;
    cli.out(`Total reclaimed space: ${humanSize(reclaimed)}\n`);
    return 0;
  },
};
