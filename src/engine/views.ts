/**
 * The JSON shapes clients read (pure): container inspect and list entries, image inspect and
 * list entries, human `Status` strings. Fields nobody fills yet are emitted zero-valued.
 */
import type { ImageRecord, ImageConfig } from '../image/index.js';
import type { ContainerRecord } from './containers.js';
import type { Json } from './container-config.js';

export interface NetworkView {
  endpoints: Record<string, Json>;
  ports: Record<string, unknown>;
}

export function containerInspect(
  c: ContainerRecord,
  extra: { execIds: string[]; sizeRw?: number; sizeRootFs?: number; upperDir?: string; network?: NetworkView },
): Json {
  const networks = networksOf(c, extra.network);
  const primary = (Object.values(networks)[0] ?? {}) as Json;
  const onBridge = c.HostConfig.NetworkMode === 'default' || c.HostConfig.NetworkMode === 'bridge';
  return {
    Id: c.Id,
    Created: c.Created,
    Path: c.Path,
    Args: c.Args,
    State: c.State,
    Image: c.Image,
    ResolvConfPath: c.ResolvConfPath,
    HostnamePath: c.HostnamePath,
    HostsPath: c.HostsPath,
    LogPath: c.LogPath,
    Name: c.Name,
    RestartCount: c.RestartCount,
    Driver: 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: extra.execIds.length ? extra.execIds : null,
    HostConfig: c.HostConfig,
    GraphDriver: { Name: 'overlay2', Data: extra.upperDir ? { UpperDir: extra.upperDir } : null },
    ...(extra.sizeRw !== undefined ? { SizeRw: extra.sizeRw, SizeRootFs: extra.sizeRootFs ?? extra.sizeRw } : {}),
    Mounts: mounts(c),
    Config: c.Config,
    NetworkSettings: {
      Bridge: '',
      SandboxID: '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: c.State.Running ? { ...ports(c), ...(extra.network?.ports ?? {}) } : {},
      SandboxKey: c.State.Running && c.HostConfig.NetworkMode !== 'host' ? `/proc/${c.State.Pid}/ns/net` : '',
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      // The legacy top-level fields describe the default bridge only, as in Docker.
      EndpointID: onBridge ? primary.EndpointID ?? '' : '',
      Gateway: onBridge ? primary.Gateway ?? '' : '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: onBridge ? primary.IPAddress ?? '' : '',
      IPPrefixLen: onBridge ? primary.IPPrefixLen ?? 0 : 0,
      IPv6Gateway: '',
      MacAddress: onBridge ? primary.MacAddress ?? '' : '',
      Networks: networks,
    },
  };
}

/** NetworkSettings.Networks: live endpoints while running, else the configured networks, zeroed. */
function networksOf(c: ContainerRecord, view: NetworkView | undefined): Json {
  if (view && Object.keys(view.endpoints).length) return view.endpoints;
  const mode = c.HostConfig.NetworkMode;
  if (mode.startsWith('container:')) return {};
  const out: Json = { [mode === 'default' ? 'bridge' : mode]: endpoint(c) };
  for (const name of Object.keys(((c.NetworkingConfig.EndpointsConfig ?? {}) as Json))) if (name !== 'default' && name !== mode) out[name] = endpoint(c);
  return out;
}

function endpoint(_c: ContainerRecord): Json {
  return {
    IPAMConfig: null, Links: null, Aliases: null, NetworkID: '', EndpointID: '', Gateway: '', IPAddress: '',
    IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, MacAddress: '', DriverOpts: null,
  };
}

/** Exposed ports with no publication yet: `{"80/tcp": null}`. */
function ports(c: ContainerRecord): Json {
  const out: Json = {};
  for (const port of Object.keys(c.Config.ExposedPorts ?? {})) out[port] = null;
  return out;
}

function mounts(c: ContainerRecord): Json[] {
  return (c.MountPoints ?? []).map((m) =>
    m.Type === 'volume'
      ? { Type: 'volume', Name: m.Name, Source: m.Source, Destination: m.Destination, Driver: m.Driver ?? 'local', Mode: m.Mode || 'z', RW: m.RW, Propagation: '' }
      : m.Type === 'bind'
        ? { Type: 'bind', Source: m.Source, Destination: m.Destination, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation || 'rprivate' }
        : { Type: 'tmpfs', Source: '', Destination: m.Destination, Mode: m.Mode, RW: m.RW, Propagation: '' },
  );
}

export function containerSummary(c: ContainerRecord, extra: { sizeRw?: number; sizeRootFs?: number; now?: number; network?: NetworkView }): Json {
  const command = [c.Path, ...c.Args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ');
  const networkName = c.HostConfig.NetworkMode === 'default' ? 'bridge' : c.HostConfig.NetworkMode;
  return {
    Id: c.Id,
    Names: [c.Name],
    Image: c.Config.Image,
    ImageID: c.Image,
    Command: command,
    Created: Math.floor(Date.parse(c.Created) / 1000),
    Ports: summaryPorts(c, extra.network?.ports),
    Labels: c.Config.Labels,
    State: c.State.Status,
    Status: humanStatus(c, extra.now ?? Date.now()),
    HostConfig: { NetworkMode: c.HostConfig.NetworkMode },
    NetworkSettings: { Networks: networkName.startsWith('container:') ? {} : networksOf(c, extra.network) },
    Mounts: mounts(c),
    ...(extra.sizeRw !== undefined ? { SizeRw: extra.sizeRw, SizeRootFs: extra.sizeRootFs ?? extra.sizeRw } : {}),
  };
}

/** ps `Ports`: published ones with IP and PublicPort (integers), then the exposed rest. */
function summaryPorts(c: ContainerRecord, published: Record<string, unknown> | undefined): Json[] {
  const out: Json[] = [];
  const keys = new Set([...Object.keys(c.Config.ExposedPorts ?? {}), ...Object.keys(published ?? {})]);
  for (const key of keys) {
    const [port, type = 'tcp'] = key.split('/');
    const bindings = (published?.[key] as Array<{ HostIp: string; HostPort: string }> | null | undefined) ?? [];
    if (bindings.length === 0) out.push({ PrivatePort: Number(port), Type: type });
    for (const b of bindings) out.push({ IP: b.HostIp || '0.0.0.0', PrivatePort: Number(port), PublicPort: Number(b.HostPort), Type: type });
  }
  return out;
}

/** `Up 14 seconds`, `Exited (0) 30 seconds ago`, `Created`, `Up 2 minutes (Paused)`. */
export function humanStatus(c: ContainerRecord, now: number): string {
  const s = c.State;
  switch (s.Status) {
    case 'created':
      return 'Created';
    case 'running': {
      const health = s.Health ? (s.Health.Status === 'starting' ? ' (health: starting)' : ` (${s.Health.Status})`) : '';
      return `Up ${humanDuration(now - Date.parse(s.StartedAt))}${health}`;
    }
    case 'paused':
      return `Up ${humanDuration(now - Date.parse(s.StartedAt))} (Paused)`;
    case 'restarting':
      return `Restarting (${s.ExitCode}) ${humanDuration(now - Date.parse(s.FinishedAt))} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    default:
      return s.FinishedAt.startsWith('0001') ? 'Created' : `Exited (${s.ExitCode}) ${humanDuration(now - Date.parse(s.FinishedAt))} ago`;
  }
}

/** go-units HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(seconds / 3600);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(hours / 24 / 365)} years`;
}

export function imageSummary(img: ImageRecord, config: ImageConfig, containers: number): Json {
  const cfg = (config.config ?? {}) as Json;
  return {
    Containers: containers,
    Created: Math.floor(Date.parse(img.created) / 1000) || 0,
    Id: img.id,
    Labels: (cfg.Labels as Json | undefined) ?? null,
    ParentId: img.parent ?? '',
    RepoDigests: img.repoDigests.length ? img.repoDigests : img.repoTags.length ? [] : ['<none>@<none>'],
    RepoTags: img.repoTags.length ? img.repoTags : ['<none>:<none>'],
    SharedSize: -1,
    Size: img.size,
    VirtualSize: img.size,
  };
}

export function imageInspect(img: ImageRecord, config: ImageConfig): Json {
  const cfg = (config.config ?? {}) as Json;
  const fullConfig = {
    Hostname: '', Domainname: '', User: '', AttachStdin: false, AttachStdout: false, AttachStderr: false,
    Tty: false, OpenStdin: false, StdinOnce: false, Env: null, Cmd: null, Image: '', Volumes: null,
    WorkingDir: '', Entrypoint: null, OnBuild: null, Labels: null,
    ...cfg,
  };
  return {
    Id: img.id,
    RepoTags: img.repoTags,
    RepoDigests: img.repoDigests,
    Parent: img.parent ?? '',
    Comment: (config.comment as string | undefined) ?? '',
    Created: img.created,
    Container: (config.container as string | undefined) ?? '',
    // compose 1.29 reads ContainerConfig.Volumes when it recreates a container.
    ContainerConfig: (config.container_config as Json | undefined) ?? fullConfig,
    DockerVersion: (config.docker_version as string | undefined) ?? '',
    Author: (config.author as string | undefined) ?? '',
    Config: fullConfig,
    Architecture: (config.architecture as string | undefined) ?? 'amd64',
    ...(config.variant ? { Variant: config.variant } : {}),
    Os: (config.os as string | undefined) ?? 'linux',
    Size: img.size,
    VirtualSize: img.size,
    GraphDriver: { Name: 'overlay2', Data: null },
    RootFS: { Type: 'layers', Layers: img.layers.map((l) => l.diffId) },
    Metadata: { LastTagTime: img.lastTagTime ?? '0001-01-01T00:00:00Z' },
  };
}
