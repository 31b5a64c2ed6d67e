/**
 * A container on its networks: the network mode and legacy links checked at create, the
 * sandbox (network namespace) and endpoints made at start, live connect/disconnect, and the
 * files that tell the container who it is on the network (/etc/hostname, /etc/hosts,
 * /etc/resolv.conf, kept beside the record and bind-mounted over the rootfs).
 *
 *   create: checkMode, checkLinks → start: createSandbox ∥ attach → writeEtcFiles → … exit: the
 *   manager removes the sandbox (NetworkManager.removeSandbox)
 *
 * The network module owns namespaces, IPAM, CNI and DNS; this file only says what a container
 * asks of it. Containers are found through `lookup` and records saved through `save`: the
 * container manager owns both.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import { BaleiaError, conflict, invalidArgument, isKind, readTextIfExists, type Owner } from '../lib/index.js';
import { hostsFile, resolvConf, usableHostResolvers, type NetworkManager } from '../network/index.js';
import type { SpecInput } from '../runtime/index.js';
import { linkHostsEntry, parseLink, storedLink, type Link, type ResolvedLink } from './links.js';
import type { EventBus } from './events.js';
import type { Json } from './container-config.js';
import type { ContainerRecord } from './containers.js';

export interface ContainerNetworkingOptions {
  network: NetworkManager;
  events: EventBus;
  /** A container by id, name or unique id prefix (NotFound otherwise). */
  lookup: (idOrName: string) => ContainerRecord;
  save: (record: ContainerRecord) => Promise<void>;
}

export class ContainerNetworking {
  readonly #network: NetworkManager;
  readonly #events: EventBus;
  readonly #lookup: (idOrName: string) => ContainerRecord;
  readonly #save: (record: ContainerRecord) => Promise<void>;

  constructor(options: ContainerNetworkingOptions) {
    this.#network = options.network;
    this.#events = options.events;
    this.#lookup = options.lookup;
    this.#save = options.save;
  }

  async checkMode(mode: string): Promise<void> {
    if (['default', 'bridge', 'host', 'none'].includes(mode)) return;
    if (mode.startsWith('container:')) {
      this.#lookup(mode.slice('container:'.length));
      return;
    }
    await this.#network.inspect(mode);
  }

  /** `--link name[:alias]` at create: each linked container must exist; stored as Docker does. */
  checkLinks(links: string[] | null, linkerName: string): string[] | null {
    if (!links || links.length === 0) return null;
    return links.map((text) => {
      let link: Link;
      try {
        link = parseLink(text);
      } catch (err) {
        throw invalidArgument((err as Error).message);
      }
      let target: ContainerRecord;
      try {
        target = this.#lookup(link.name);
      } catch (err) {
        if (isKind(err, 'NotFound')) throw invalidArgument(`could not get container for ${link.name}: No such container: ${link.name}`);
        throw err;
      }
      if (`/${link.name}` !== target.Name) link = { ...link, name: target.Name.slice(1) };
      if (target.Name === linkerName) throw invalidArgument(`Cannot link to ${linkerName}: a container cannot link to itself`);
      return storedLink(link, linkerName);
    });
  }

  /**
   * The links of a starting container: each linked container must be running; its address is
   * the one on a network both share (the default bridge for legacy links).
   */
  resolveLinks(record: ContainerRecord): ResolvedLink[] {
    const primary = record.HostConfig.NetworkMode === 'default' ? 'bridge' : record.HostConfig.NetworkMode;
    return (record.HostConfig.Links ?? []).map((text) => {
      const link = parseLink(text);
      const target = this.#lookup(link.name);
      if (!target.State.Running) throw conflict(`Cannot link to a non running container: ${target.Name} AS ${record.Name}/${link.alias}`);
      const endpoints = this.#network.endpoints(target.Id);
      const ip = endpoints[primary]?.IPAddress || Object.values(endpoints).find((e) => e.IPAddress)?.IPAddress;
      if (!ip) throw conflict(`Cannot link to ${target.Name}: it has no address on the ${primary} network`);
      return { ...link, id: target.Id, ip, exposedPorts: Object.keys(target.Config.ExposedPorts ?? {}), env: target.Config.Env ?? [] };
    });
  }

  /**
   * The container's network namespace, made before runc creates the container (the spec names
   * it by path); undefined for host, none and container:<id>, where runc has nothing to join.
   */
  async createSandbox(record: ContainerRecord, owner: Owner): Promise<string | undefined> {
    const mode = record.HostConfig.NetworkMode;
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) return undefined;
    const netns = await this.#network.createSandbox(record.Id);
    owner.defer(() => this.#network.removeSandbox(record.Id));
    return netns;
  }

  /** The network namespace the spec names: the sandbox, the host's, or another container's. */
  specNetwork(record: ContainerRecord, netns: string | undefined): SpecInput['network'] {
    const networkMode = record.HostConfig.NetworkMode;
    let network: SpecInput['network'] = netns ? { mode: 'path', path: netns } : { mode: 'new' };
    if (networkMode === 'host') network = { mode: 'host' };
    else if (networkMode.startsWith('container:')) {
      const other = this.#lookup(networkMode.slice('container:'.length));
      if (!other.State.Running) throw conflict(`cannot join network of a non running container: ${other.Id}`);
      network = { mode: 'path', path: this.#network.sandboxPath(other.Id) ?? `/proc/${other.State.Pid}/ns/net` };
    }
    return network;
  }

  /**
   * Joins the container's sandbox to its networks: an endpoint on the primary network (and on
   * any other in EndpointsConfig), then its published ports. It may run while runc creates the
   * container: the container's process only runs at `start`, so the interfaces must exist
   * before start, not before create. The caller's owner removes the sandbox on failure.
   */
  async attach(record: ContainerRecord): Promise<{ ip?: string; gateway?: string }> {
    const mode = record.HostConfig.NetworkMode;
    const id = record.Id;
    const primary = mode === 'default' ? 'bridge' : mode;
    const configs = ((record.NetworkingConfig.EndpointsConfig ?? {}) as Record<string, Json | null>);
    const others = Object.keys(configs).filter((n) => n !== primary && n !== mode && n !== 'default');
    let ip: string | undefined;
    let gateway: string | undefined;
    for (const net of [primary, ...others]) {
      const ep = (configs[net] ?? (net === primary ? configs[mode] ?? configs.default : undefined) ?? {}) as Json;
      const ipam = (ep.IPAMConfig ?? {}) as Json;
      const endpoint = await this.#network.connect(id, net, {
        name: record.Name.slice(1),
        hostname: record.Config.Hostname,
        aliases: Array.isArray(ep.Aliases) ? ep.Aliases.map(String) : undefined,
        ipv4Address: typeof ipam.IPv4Address === 'string' && ipam.IPv4Address ? ipam.IPv4Address : undefined,
        macAddress: typeof ep.MacAddress === 'string' && ep.MacAddress ? ep.MacAddress : undefined,
      });
      this.#events.publish('network', 'connect', endpoint.NetworkID, { container: id, name: net, type: 'bridge' });
      if (net === primary) {
        ip = endpoint.IPAddress;
        gateway = endpoint.Gateway;
      }
    }
    // Nothing to publish, no firewall rewrite (it costs tens of ms on every start).
    const bindings = record.HostConfig.PortBindings ?? {};
    if (Object.keys(bindings).length > 0 || record.HostConfig.PublishAllPorts) {
      await this.#network.publish(id, bindings, {
        exposed: Object.keys(record.Config.ExposedPorts ?? {}),
        publishAll: Boolean(record.HostConfig.PublishAllPorts),
      });
    }
    return { ip, gateway };
  }

  /** Live connect (running) or recorded for the next start (created, stopped). */
  async connect(record: ContainerRecord, network: string, endpointConfig: Json): Promise<void> {
    const net = (await this.#network.inspect(network)) as { Name: string; Id: string; Driver: string };
    if (net.Driver === 'host' || net.Driver === 'null') throw new BaleiaError('Forbidden', `container cannot be disconnected from host network or connected to host network`);
    const configs = ((record.NetworkingConfig.EndpointsConfig ??= {}) as Record<string, Json>);
    if (record.State.Running && this.#network.sandboxPath(record.Id)) {
      const ipam = (endpointConfig.IPAMConfig ?? {}) as Json;
      await this.#network.connect(record.Id, net.Name, {
        name: record.Name.slice(1),
        hostname: record.Config.Hostname,
        aliases: Array.isArray(endpointConfig.Aliases) ? endpointConfig.Aliases.map(String) : undefined,
        ipv4Address: typeof ipam.IPv4Address === 'string' && ipam.IPv4Address ? ipam.IPv4Address : undefined,
      });
      // Joining a user network brings the embedded DNS (written in place: the file is bind-mounted).
      await this.#writeResolvConf(record, record.HostConfig.NetworkMode);
    } else if (record.State.Running) {
      throw conflict(`Cannot connect container ${record.Id} to ${net.Name}: it runs in network mode ${record.HostConfig.NetworkMode}`);
    }
    configs[net.Name] = endpointConfig;
    await this.#save(record);
    this.#events.publish('network', 'connect', net.Id, { container: record.Id, name: net.Name, type: net.Driver });
  }

  async disconnect(record: ContainerRecord, network: string, options: { force?: boolean } = {}): Promise<void> {
    const net = (await this.#network.inspect(network)) as { Name: string; Id: string; Driver: string };
    const configs = ((record.NetworkingConfig.EndpointsConfig ??= {}) as Record<string, Json>);
    if (record.State.Running && this.#network.sandboxPath(record.Id)) {
      await this.#network.disconnect(record.Id, net.Name, options);
    } else if (!(net.Name in configs) && !(record.HostConfig.NetworkMode === net.Name || (record.HostConfig.NetworkMode === 'default' && net.Name === 'bridge'))) {
      if (!options.force) throw invalidArgument(`container ${record.Id} is not connected to network ${net.Name}`);
    }
    delete configs[net.Name];
    await this.#save(record);
    this.#events.publish('network', 'disconnect', net.Id, { container: record.Id, name: net.Name, type: net.Driver });
  }

  /** Endpoints and published ports of a running container, for inspect and ps. */
  view(id: string): { endpoints: Record<string, Json>; ports: Record<string, unknown> } {
    return { endpoints: this.#network.endpoints(id) as unknown as Record<string, Json>, ports: this.#network.ports(id) };
  }

  /** Makes sure hostname, hosts and resolv.conf exist (runc bind-mounts them) without writing them. */
  async touchEtcFiles(record: ContainerRecord): Promise<void> {
    for (const file of [record.HostnamePath, record.HostsPath, record.ResolvConfPath]) await (await fs.open(file, 'a')).close();
  }

  async writeEtcFiles(record: ContainerRecord, networkMode: string, attached?: { ip?: string; gateway?: string }, links: ResolvedLink[] = []): Promise<void> {
    const hostname = networkMode === 'host' ? os.hostname() : record.Config.Hostname;
    await fs.writeFile(record.HostnamePath, `${hostname}\n`);
    const extraHosts = (record.HostConfig.ExtraHosts ?? []).flatMap((extra) => {
      const sep = extra.indexOf(':');
      if (sep <= 0) return [];
      const target = extra.slice(sep + 1);
      // `host-gateway`: the host as the container reaches it, its bridge's gateway.
      const ip = target === 'host-gateway' ? attached?.gateway ?? '127.0.0.1' : target;
      return [{ name: extra.slice(0, sep), ip }];
    });
    extraHosts.push(...links.map(linkHostsEntry));
    let hosts: string;
    if (networkMode === 'host') hosts = (await readTextIfExists('/etc/hosts')) + extraHosts.map((h) => `${h.ip}\t${h.name}\n`).join('');
    else hosts = hostsFile({ hostname: record.Config.Hostname, domainname: record.Config.Domainname || undefined, ip: attached?.ip, extraHosts });
    await fs.writeFile(record.HostsPath, hosts);
    await this.#writeResolvConf(record, networkMode);
  }

  async #writeResolvConf(record: ContainerRecord, networkMode: string): Promise<void> {
    const hostResolv = await readTextIfExists('/etc/resolv.conf');
    const dns = record.HostConfig.Dns ?? [];
    const search = record.HostConfig.DnsSearch ?? [];
    const options = record.HostConfig.DnsOptions ?? [];
    let resolv: string;
    if (networkMode === 'host' && dns.length === 0 && search.length === 0 && options.length === 0) resolv = hostResolv;
    else {
      const host = usableHostResolvers(hostResolv);
      const embedded = this.#network.dnsServerFor(record.Id);
      resolv = resolvConf({
        nameservers: embedded ? [embedded] : dns.length ? dns : host.nameservers,
        search: search.length ? search : host.search,
        options: options.length ? options : host.options,
      });
    }
    await fs.writeFile(record.ResolvConfPath, resolv);
  }
}
