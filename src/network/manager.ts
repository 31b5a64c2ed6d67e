/**
 * NetworkManager: baleia's network model (networks, endpoints, IPAM, published ports, embedded
 * DNS) and the plumbing behind it (bridges, netns, CNI plugins, iptables). See index.ts for the
 * lifecycle and the on-disk layout.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  BaleiaError,
  Owner,
  conflict,
  describeError,
  errnoCode,
  exists,
  invalidArgument,
  newId,
  notFound,
  readJsonIfExists,
  run,
  shortId,
  silentLogger,
  writeJsonAtomic,
  type Logger,
} from '../lib/index.js';
import { CniInvoker } from './cni.js';
import { DnsServer, type Upstream } from './dns.js';
import { Firewall, type FirewallState } from './firewall.js';
import {
  contains,
  formatCidr,
  formatIp,
  lowestFree,
  macForIp,
  mustParseCidr,
  overlaps,
  parseCidr,
  parseIp,
  splitPool,
  broadcast,
  type Cidr,
} from './ipam.js';
import { planPorts, reserve, reserveSpec, type Reservation } from './ports.js';

export interface NetworkManagerOptions {
  /** Records live in <root>/networks/. */
  root: string;
  /** Netns bind mounts live in <execRoot>/netns/<containerId>. */
  execRoot: string;
  logger?: Logger;
  /** The default `bridge` network; default { name: 'baleia0', subnet: '10.88.0.0/16' }. */
  defaultBridge?: { name: string; subnet: string };
  /** Pools user networks without --subnet take a /24 from; default ['10.89.0.0/16']. */
  addressPools?: string[];
  /** Prefix of our iptables chains; default 'BALEIA'. Tests use a unique one. */
  chainPrefix?: string;
  /** Prefix of user network bridge names (`br-<id>` cut to 15 chars); default 'br-'. */
  bridgePrefix?: string;
  /** Directory of the CNI plugin binaries; default '/usr/lib/cni'. */
  cniPath?: string;
  /** How long one CNI plugin call may take before it is killed and fails; default 30 s. */
  cniTimeoutMs?: number;
  /** The iptables binary (`iptables`, `iptables-legacy`); `<it>-restore` must exist beside it. */
  iptables?: string;
  /** Where the embedded DNS forwards names it does not know; default: the host's resolv.conf. */
  upstreamResolvers?: string[];
  /** Port of the embedded DNS servers; default 53. */
  dnsPort?: number;
}

/** Docker's EndpointSettings (NetworkSettings.Networks.<name>). */
export interface EndpointSettings {
  IPAMConfig: { IPv4Address?: string } | null;
  Links: string[] | null;
  Aliases: string[] | null;
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  MacAddress: string;
  DriverOpts: Record<string, string> | null;
}

export type PortMap = Record<string, Array<{ HostIp: string; HostPort: string }> | null>;

type Driver = 'bridge' | 'macvlan' | 'ipvlan' | 'host' | 'null';

interface NetworkRecord {
  Id: string;
  Name: string;
  Driver: Driver;
  Created: string;
  builtin: boolean;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  /** IPAM.Config as reported: what the user asked, with the subnet and gateway we chose. */
  ipamConfig: Array<{ Subnet: string; Gateway?: string; IPRange?: string }>;
  Internal: boolean;
  Attachable: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  bridge?: string;
  /** False when -o com.docker.network.bridge.name named a bridge that existed: it is not ours to delete. */
  ownsBridge?: boolean;
  parent?: string;
}

interface EndpointRecord {
  networkId: string;
  endpointId: string;
  ifname: string;
  ip: string;
  mac: string;
  name: string;
  hostname: string;
  aliases: string[];
  requestedIp?: string;
  /** 'adding' until the CNI ADD succeeded: a crash in between is undone by reconcile. */
  state: 'adding' | 'ready';
}

interface PortRecord {
  key: string;
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  containerPort: number;
  networkId: string;
  containerIp: string;
}

interface SandboxRecord {
  containerId: string;
  netns: string;
  endpoints: EndpointRecord[];
  ports: PortRecord[];
  unpublished: string[];
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const OPT_BRIDGE_NAME = 'com.docker.network.bridge.name';
const OPT_MTU = 'com.docker.network.driver.mtu';
const OPT_MASQ = 'com.docker.network.bridge.enable_ip_masquerade';
const OPT_HOST_IP = 'com.docker.network.bridge.host_binding_ipv4';

export class NetworkManager {
  readonly #o: Required<Pick<NetworkManagerOptions, 'root' | 'execRoot' | 'cniPath' | 'bridgePrefix'>> & NetworkManagerOptions;
  readonly #log: Logger;
  readonly #cni: CniInvoker;
  readonly #fw: Firewall;
  readonly #networks = new Map<string, NetworkRecord>();
  readonly #sandboxes = new Map<string, SandboxRecord>();
  readonly #dns = new Map<string, DnsServer>();
  readonly #reservations = new Map<string, Reservation[]>();
  #upstreams: Upstream[] = [];
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: NetworkManagerOptions) {
    this.#o = { cniPath: '/usr/lib/cni', bridgePrefix: 'br-', ...options };
    this.#log = options.logger ?? silentLogger;
    this.#cni = new CniInvoker(this.#o.cniPath, { logger: this.#log, timeoutMs: options.cniTimeoutMs });
    this.#fw = new Firewall({ prefix: options.chainPrefix ?? 'BALEIA', iptables: options.iptables, logger: this.#log });
  }

  get #dir() {
    const base = path.join(this.#o.root, 'networks');
    return { networks: path.join(base, 'networks'), sandboxes: path.join(base, 'sandboxes'), netns: path.join(this.#o.execRoot, 'netns') };
  }

  /** One mutation at a time: allocations, records and the iptables state stay consistent. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Load records, make sure the built-ins and every bridge exist, start DNS, write the rules. */
  init(): Promise<void> {
    return this.#serial(async () => {
      const d = this.#dir;
      for (const dir of [d.networks, d.sandboxes, d.netns]) await fs.mkdir(dir, { recursive: true });
      await fs.writeFile('/proc/sys/net/ipv4/ip_forward', '1').catch((err) => this.#log.warn('cannot enable ip_forward', { err }));
      this.#upstreams = (this.#o.upstreamResolvers ?? (await hostResolvers())).map(parseUpstream);
      for (const f of await fs.readdir(d.networks)) {
        if (!f.endsWith('.json')) continue;
        const rec = await readJsonIfExists<NetworkRecord>(path.join(d.networks, f));
        if (rec) this.#networks.set(rec.Id, rec);
      }
      for (const f of await fs.readdir(d.sandboxes)) {
        if (!f.endsWith('.json')) continue;
        const rec = await readJsonIfExists<SandboxRecord>(path.join(d.sandboxes, f));
        if (rec) this.#sandboxes.set(rec.containerId, rec);
      }
      await this.#ensureBuiltins();
      const def = [...this.#networks.values()].find((n) => n.builtin && n.Name === 'bridge')!;
      const foreign = (await hostRoutes(true)).filter((r) => r.dev !== def.bridge && overlaps(r.cidr, parseCidr(def.subnet!)!));
      if (foreign.length > 0) {
        this.#log.warn('the default bridge subnet overlaps a host route: containers may not reach those hosts; configure another subnet', { subnet: def.subnet, dev: foreign[0]!.dev });
      }
      for (const n of this.#networks.values()) {
        if (n.Driver !== 'bridge') continue;
        try {
          // A bridge made again (deleted by hand, or the host rebooted with records kept) lost its
          // veths: plumb the recorded endpoints whose netns still exists once more.
          if (await this.#ensureBridge(n)) await this.#replumb(n);
        } catch (err) {
          // One broken user network must not keep the daemon down; the default bridge must work.
          if (n.builtin) throw err;
          this.#log.error('cannot restore the bridge of a network', { network: n.Id, name: n.Name, err: describeError(err) });
          continue;
        }
        if (!n.builtin) await this.#startDns(n);
      }
      await this.#applyFirewall({ checkJumps: true });
      for (const sb of this.#sandboxes.values()) {
        const held: Reservation[] = [];
        for (const p of sb.ports) {
          try {
            held.push(await reserve(p.proto, p.hostIp, p.hostPort));
          } catch (err) {
            this.#log.warn('cannot hold published port again', { container: sb.containerId, port: `${p.hostIp}:${p.hostPort}/${p.proto}`, err });
          }
        }
        this.#reservations.set(sb.containerId, held);
      }
    });
  }

  /**
   * Keep the endpoints, ports and rules of `liveContainerIds`, remove everything of the others
   * (CNI DEL, netns, records), undo connects a crash interrupted, delete stray netns files, and
   * rewrite our chains once.
   */
  reconcile(liveContainerIds: Set<string>): Promise<void> {
    return this.#serial(async () => {
      for (const sb of [...this.#sandboxes.values()]) {
        if (!liveContainerIds.has(sb.containerId)) {
          await this.#teardownSandbox(sb.containerId);
          continue;
        }
        const half = sb.endpoints.filter((e) => e.state !== 'ready');
        for (const ep of half) await this.#cniDel(sb, ep);
        if (half.length > 0) {
          sb.endpoints = sb.endpoints.filter((e) => e.state === 'ready');
          await this.#saveSandbox(sb);
        }
      }
      for (const f of await fs.readdir(this.#dir.netns).catch(() => [] as string[])) {
        if (!this.#sandboxes.has(f)) await removeNetnsFile(path.join(this.#dir.netns, f));
      }
      await this.#applyFirewall({ checkJumps: true });
    });
  }

  /** Stop the DNS servers and release port reservations; bridges and rules stay for running containers. */
  async shutdown(): Promise<void> {
    await this.#serial(async () => {
      for (const s of this.#dns.values()) await s.stop();
      this.#dns.clear();
      for (const list of this.#reservations.values()) for (const r of list) await r.close();
      this.#reservations.clear();
    });
  }

  /**
   * Remove everything this manager made: every sandbox, every bridge (the default one too), our
   * iptables chains, the records. For tests and a full reset; not part of a normal shutdown.
   */
  async teardown(): Promise<void> {
    await this.#serial(async () => {
      for (const id of [...this.#sandboxes.keys()]) await this.#teardownSandbox(id).catch((err) => this.#log.warn('teardown sandbox', { err }));
      for (const s of this.#dns.values()) await s.stop();
      this.#dns.clear();
      for (const n of this.#networks.values()) if (n.bridge && n.ownsBridge !== false) await deleteLink(n.bridge);
      await this.#fw.destroy();
      await fs.rm(path.join(this.#o.root, 'networks'), { recursive: true, force: true });
      this.#networks.clear();
    });
  }

  // ---------------------------------------------------------------- networks (Docker API shapes)

  create(body: Record<string, unknown>): Promise<{ Id: string; Warning: string }> {
    return this.#serial(() => this.#create(body));
  }

  async #create(body: Record<string, unknown>): Promise<{ Id: string; Warning: string }> {
    const name = typeof body['Name'] === 'string' ? body['Name'] : '';
    if (!NAME_RE.test(name)) throw invalidArgument(`Invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (this.#byName(name)) throw conflict(`network with name ${name} already exists`);
    const driver = (typeof body['Driver'] === 'string' && body['Driver']) || 'bridge';
    if (driver === 'host' || driver === 'null') throw new BaleiaError('Forbidden', `only one instance of "${driver}" network is allowed`);
    if (driver !== 'bridge' && driver !== 'macvlan' && driver !== 'ipvlan') throw notFound(`plugin "${driver}" not found`);
    if (body['EnableIPv6'] === true) throw new BaleiaError('NotImplemented', `Cannot create network "${name}": IPv6 is not supported yet`);
    const ipam = (body['IPAM'] ?? {}) as { Driver?: string; Config?: Array<Record<string, unknown>> | null };
    if (ipam.Driver && ipam.Driver !== 'default') throw notFound(`plugin "${ipam.Driver}" not found`);
    const configs = (ipam.Config ?? []).filter((c) => !String(c['Subnet'] ?? '').includes(':'));
    if ((ipam.Config ?? []).length > configs.length) throw new BaleiaError('NotImplemented', `Cannot create network "${name}": IPv6 subnets are not supported yet`);
    if (configs.length > 1) throw new BaleiaError('NotImplemented', `Cannot create network "${name}": one IPv4 subnet per network is supported`);
    const options = stringMap(body['Options']);
    const labels = stringMap(body['Labels']);
    const requested = configs[0] ?? {};

    let subnet: Cidr;
    if (requested['Subnet']) {
      subnet = mustParseCidr(String(requested['Subnet']), 'subnet');
      if (subnet.prefix > 30) throw invalidArgument(`Invalid subnet "${formatCidr(subnet)}": it leaves no room for addresses, use a /30 or larger`);
      const clash = this.#overlapping(subnet);
      if (clash) throw new BaleiaError('Forbidden', `Pool overlaps with other one on this address space: ${formatCidr(subnet)} overlaps network "${clash.Name}" (${clash.subnet})`);
    } else {
      subnet = await this.#pickSubnet(name);
    }
    let gateway = subnet.base + 1;
    if (requested['Gateway']) {
      const gw = parseIp(String(requested['Gateway']));
      if (gw === undefined || !contains(subnet, gw) || gw === subnet.base || gw === broadcast(subnet)) {
        throw invalidArgument(`Invalid gateway "${String(requested['Gateway'])}": it must be a host address of subnet ${formatCidr(subnet)}`);
      }
      gateway = gw;
    }
    let ipRange: Cidr | undefined;
    if (requested['IPRange']) {
      ipRange = mustParseCidr(String(requested['IPRange']), 'ip-range');
      if (!contains(subnet, ipRange.base) || !contains(subnet, broadcast(ipRange))) {
        throw invalidArgument(`Invalid ip-range "${formatCidr(ipRange)}": it must lie inside subnet ${formatCidr(subnet)}`);
      }
    }
    const mtu = options[OPT_MTU];
    if (mtu !== undefined && !/^\d+$/.test(mtu)) throw invalidArgument(`Invalid option ${OPT_MTU} "${mtu}": expected a number`);

    const id = newId();
    const rec: NetworkRecord = {
      Id: id,
      Name: name,
      Driver: driver,
      Created: new Date().toISOString(),
      builtin: false,
      subnet: formatCidr(subnet),
      gateway: formatIp(gateway),
      ipRange: ipRange ? formatCidr(ipRange) : undefined,
      ipamConfig: [
        {
          Subnet: formatCidr(subnet),
          ...(requested['Gateway'] || !requested['Subnet'] ? { Gateway: formatIp(gateway) } : {}),
          ...(ipRange ? { IPRange: formatCidr(ipRange) } : {}),
        },
      ],
      Internal: body['Internal'] === true,
      Attachable: body['Attachable'] === true,
      Options: options,
      Labels: labels,
    };
    const owner = new Owner();
    try {
      if (driver === 'bridge') {
        const bridge = options[OPT_BRIDGE_NAME] || (this.#o.bridgePrefix + id).slice(0, 15);
        if (!/^[A-Za-z0-9_.-]{1,15}$/.test(bridge)) throw invalidArgument(`Invalid option ${OPT_BRIDGE_NAME} "${bridge}": use up to 15 letters, digits, ., _ or -`);
        if ([...this.#networks.values()].some((n) => n.bridge === bridge)) throw conflict(`Cannot create network "${name}": bridge "${bridge}" belongs to another network`);
        rec.bridge = bridge;
        await this.#cni.check('bridge');
        await this.#cni.check('static');
      } else {
        const parent = options['parent'] || (await defaultRouteInterface());
        if (!parent) throw invalidArgument(`Cannot create ${driver} network "${name}": no default route, give the parent interface with -o parent=IFACE`);
        if ((await run('ip', ['link', 'show', parent], { allowFailure: true })).code !== 0) {
          throw invalidArgument(`Cannot create ${driver} network "${name}": parent interface "${parent}" does not exist`);
        }
        rec.parent = parent;
        await this.#cni.check(driver);
        await this.#cni.check('static');
      }
      // The record comes first: a crash after it leaves a network that init() completes (bridge,
      // DNS, rules), never a bridge nobody knows.
      await writeJsonAtomic(path.join(this.#dir.networks, `${id}.json`), rec);
      owner.defer(() => fs.rm(path.join(this.#dir.networks, `${id}.json`), { force: true }));
      this.#networks.set(id, rec);
      owner.defer(() => this.#networks.delete(id));
      if (rec.bridge) {
        const made = await this.#ensureBridge(rec);
        if (made) owner.defer(() => deleteLink(rec.bridge!));
        if (!made) {
          rec.ownsBridge = false;
          await writeJsonAtomic(path.join(this.#dir.networks, `${id}.json`), rec);
        }
        await this.#startDns(rec, { strict: true });
        owner.defer(() => this.#stopDns(rec.Id));
      }
      await this.#applyFirewall();
      owner.release();
    } catch (err) {
      await owner.dispose();
      await this.#applyFirewall().catch(() => {});
      throw err;
    }
    this.#log.info('network created', { network: id, name, driver, subnet: rec.subnet });
    return { Id: id, Warning: '' };
  }

  async list(filters: Map<string, string[]>): Promise<object[]> {
    const allowed = new Set(['name', 'id', 'driver', 'label', 'type', 'scope', 'dangling']);
    for (const key of filters.keys()) if (!allowed.has(key)) throw invalidArgument(`Invalid filter "${key}"`);
    const any = (key: string, test: (v: string) => boolean) => {
      const values = filters.get(key);
      return !values || values.length === 0 || values.some(test);
    };
    const out: object[] = [];
    for (const n of this.#networks.values()) {
      const used = this.#members(n.Id).length > 0;
      const ok =
        any('name', (v) => n.Name.includes(v)) &&
        any('id', (v) => n.Id.startsWith(v)) &&
        any('driver', (v) => n.Driver === v) &&
        (filters.get('label') ?? []).every((v) => labelMatches(n.Labels, v)) &&
        any('type', (v) => (v === 'builtin' ? n.builtin : v === 'custom' ? !n.builtin : false)) &&
        any('scope', (v) => v === 'local') &&
        any('dangling', (v) => (isTrue(v) ? !used && !n.builtin : used || n.builtin));
      if (ok) out.push(this.#toApi(n, false));
    }
    return out.sort((a, b) => String((a as { Name: string }).Name).localeCompare(String((b as { Name: string }).Name)));
  }

  async inspect(idOrName: string): Promise<object> {
    return this.#toApi(this.#find(idOrName), true);
  }

  remove(idOrName: string): Promise<void> {
    return this.#serial(async () => {
      const n = this.#find(idOrName);
      if (n.builtin) throw new BaleiaError('Forbidden', `${n.Name} is a pre-defined network and cannot be removed`);
      if (this.#members(n.Id).length > 0) {
        throw new BaleiaError('Forbidden', `error while removing network: network ${n.Name} id ${n.Id} has active endpoints`);
      }
      await this.#removeNetwork(n);
    });
  }

  prune(filters: Map<string, string[]>): Promise<{ NetworksDeleted: string[] | null }> {
    return this.#serial(async () => {
      for (const key of filters.keys()) if (!['label', 'label!', 'until'].includes(key)) throw invalidArgument(`Invalid filter "${key}"`);
      const until = (filters.get('until') ?? []).map(parseUntil);
      const deleted: string[] = [];
      for (const n of [...this.#networks.values()]) {
        if (n.builtin || this.#members(n.Id).length > 0) continue;
        if (!(filters.get('label') ?? []).every((v) => labelMatches(n.Labels, v))) continue;
        if ((filters.get('label!') ?? []).some((v) => labelMatches(n.Labels, v))) continue;
        if (until.some((t) => Date.parse(n.Created) >= t)) continue;
        await this.#removeNetwork(n);
        deleted.push(n.Name);
      }
      return { NetworksDeleted: deleted.length > 0 ? deleted : null };
    });
  }

  async #removeNetwork(n: NetworkRecord): Promise<void> {
    await this.#stopDns(n.Id);
    this.#networks.delete(n.Id);
    await this.#applyFirewall();
    if (n.bridge && n.ownsBridge !== false) await deleteLink(n.bridge);
    await fs.rm(path.join(this.#dir.networks, `${n.Id}.json`), { force: true });
    this.#log.info('network removed', { network: n.Id, name: n.Name });
  }

  // ---------------------------------------------------------------- sandboxes and endpoints

  /** A new network namespace bind-mounted at <execRoot>/netns/<id> with `lo` up; returns its path. */
  createSandbox(containerId: string): Promise<string> {
    return this.#serial(async () => {
      const existing = this.#sandboxes.get(containerId);
      if (existing) return existing.netns;
      const file = path.join(this.#dir.netns, containerId);
      const owner = new Owner();
      try {
        await fs.writeFile(file, '', { flag: 'wx' }).catch((err) => {
          if (errnoCode(err) !== 'EEXIST') throw err;
        });
        owner.defer(() => removeNetnsFile(file));
        // unshare(1) bind-mounts the new netns on the file and runs the command inside it.
        await run('unshare', [`--net=${file}`, 'ip', 'link', 'set', 'lo', 'up']);
        const sb: SandboxRecord = { containerId, netns: file, endpoints: [], ports: [], unpublished: [] };
        await this.#saveSandbox(sb);
        this.#sandboxes.set(containerId, sb);
        owner.release();
        return file;
      } catch (err) {
        await owner.dispose();
        throw new BaleiaError('Internal', `Cannot create network namespace for container "${shortId(containerId)}"`, { cause: err });
      }
    });
  }

  /** The netns path of a sandbox (for `--network container:<id>`), or undefined. */
  sandboxPath(containerId: string): string | undefined {
    return this.#sandboxes.get(containerId)?.netns;
  }

  connect(
    containerId: string,
    network: string,
    opts: { name: string; hostname: string; aliases?: string[]; ipv4Address?: string; macAddress?: string },
  ): Promise<EndpointSettings> {
    return this.#serial(() => this.#connect(containerId, network, opts));
  }

  async #connect(
    containerId: string,
    network: string,
    opts: { name: string; hostname: string; aliases?: string[]; ipv4Address?: string; macAddress?: string },
  ): Promise<EndpointSettings> {
    const n = this.#find(network);
    if (n.Driver === 'host' || n.Driver === 'null') {
      throw invalidArgument(`Cannot connect container "${shortId(containerId)}" to network "${n.Name}": the host and none modes have no endpoints, start the container in that mode instead`);
    }
    const sb = this.#sandboxes.get(containerId);
    if (!sb) throw notFound(`Cannot connect container "${shortId(containerId)}" to network "${n.Name}": it has no network sandbox, create it first`);
    if (sb.endpoints.some((e) => e.networkId === n.Id)) {
      throw new BaleiaError('Forbidden', `endpoint with name ${opts.name} already exists in network ${n.Name}`);
    }
    const subnet = mustParseCidr(n.subnet!, 'subnet');
    const used = this.#usedIps(n);
    let ip: number | undefined;
    if (opts.ipv4Address) {
      ip = parseIp(opts.ipv4Address);
      if (ip === undefined || !contains(subnet, ip) || ip === subnet.base || ip === broadcast(subnet)) {
        throw invalidArgument(`Invalid address ${opts.ipv4Address}: it does not belong to any of network "${n.Name}"'s subnets (${n.subnet})`);
      }
      if (used.has(ip)) throw conflict(`Cannot connect container "${shortId(containerId)}" to network "${n.Name}": address ${opts.ipv4Address} is already in use`);
    } else {
      ip = lowestFree(subnet, n.ipRange ? mustParseCidr(n.ipRange, 'ip-range') : subnet, used);
      if (ip === undefined) throw new BaleiaError('Unavailable', `Cannot connect container "${shortId(containerId)}" to network "${n.Name}": no free address left in ${n.ipRange ?? n.subnet}`);
    }
    const taken = new Set(sb.endpoints.map((e) => e.ifname));
    let index = 0;
    while (taken.has(`eth${index}`)) index++;
    const ep: EndpointRecord = {
      networkId: n.Id,
      endpointId: newId(),
      ifname: `eth${index}`,
      ip: formatIp(ip),
      mac: opts.macAddress || macForIp(ip),
      name: opts.name.replace(/^\//, ''),
      hostname: opts.hostname,
      aliases: [...new Set(opts.aliases ?? [])],
      requestedIp: opts.ipv4Address,
      state: 'adding',
    };
    sb.endpoints.push(ep);
    await this.#saveSandbox(sb);
    try {
      const result = await this.#cni.exec({ command: 'ADD', containerId, netns: sb.netns, ifname: ep.ifname, config: this.#cniConfig(n, ep) });
      const iface = result.interfaces?.find((i) => i.name === ep.ifname && i.sandbox);
      if (iface?.mac) ep.mac = iface.mac;
      ep.state = 'ready';
      await this.#saveSandbox(sb);
    } catch (err) {
      await this.#cniDel(sb, ep);
      sb.endpoints = sb.endpoints.filter((e) => e !== ep);
      await this.#saveSandbox(sb).catch(() => {});
      throw new BaleiaError(err instanceof BaleiaError ? err.kind : 'Internal', `Cannot connect container "${shortId(containerId)}" to network "${n.Name}"`, { cause: err });
    }
    this.#log.info('endpoint connected', { container: containerId, network: n.Id, ip: ep.ip });
    return this.#settings(containerId, n, ep);
  }

  disconnect(containerId: string, network: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.#serial(async () => {
      const n = this.#find(network);
      const sb = this.#sandboxes.get(containerId);
      const ep = sb?.endpoints.find((e) => e.networkId === n.Id);
      if (!sb || !ep) {
        if (opts.force) return;
        throw invalidArgument(`Cannot disconnect container "${shortId(containerId)}" from network "${n.Name}": it is not connected`);
      }
      await this.#cniDel(sb, ep);
      sb.endpoints = sb.endpoints.filter((e) => e !== ep);
      const dropped = sb.ports.filter((p) => p.networkId === n.Id);
      if (dropped.length > 0) {
        sb.ports = sb.ports.filter((p) => p.networkId !== n.Id);
        const held = this.#reservations.get(containerId) ?? [];
        for (const p of dropped) {
          const r = held.find((r) => r.proto === p.proto && r.hostIp === p.hostIp && r.hostPort === p.hostPort);
          if (r) {
            await r.close();
            held.splice(held.indexOf(r), 1);
          }
        }
      }
      await this.#saveSandbox(sb);
      if (dropped.length > 0) await this.#applyFirewall();
      this.#log.info('endpoint disconnected', { container: containerId, network: n.Id });
    });
  }

  /**
   * Publish ports of a connected container (replacing what it published before): reserve each host
   * port, then DNAT it to the container's address on its first bridge network. Returns
   * NetworkSettings.Ports. On any failure nothing stays reserved or written.
   */
  publish(
    containerId: string,
    portBindings: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>,
    opts: { exposed?: string[]; publishAll?: boolean },
  ): Promise<PortMap> {
    return this.#serial(async () => {
      const sb = this.#sandboxes.get(containerId);
      if (!sb) throw notFound(`Cannot publish ports of container "${shortId(containerId)}": it has no network sandbox`);
      // Docker publishes on the container's first bridge network that can reach the outside.
      const target = sb.endpoints
        .map((e) => ({ e, n: this.#networks.get(e.networkId)! }))
        .find(({ e, n }) => e.state === 'ready' && n?.Driver === 'bridge' && !n.Internal);
      const plan = planPorts(portBindings, { ...opts, defaultHostIp: target?.n.Options[OPT_HOST_IP] });
      await this.#unpublish(sb);
      const result: PortMap = {};
      for (const key of plan.unpublished) result[key] = null;
      if (!target) {
        for (const s of plan.specs) result[s.key] = null;
        return result;
      }
      const held: Reservation[] = [];
      const records: PortRecord[] = [];
      try {
        for (const spec of plan.specs) {
          const r = await reserveSpec(spec, () => false);
          held.push(r);
          records.push({
            key: spec.key,
            proto: spec.proto,
            hostIp: spec.hostIp,
            hostPort: r.hostPort,
            containerPort: spec.containerPort,
            networkId: target.n.Id,
            containerIp: target.e.ip,
          });
        }
        sb.ports = records;
        sb.unpublished = plan.unpublished;
        await this.#saveSandbox(sb);
        await this.#applyFirewall();
        await forgetUdpFlows(records);
      } catch (err) {
        for (const r of held) await r.close();
        sb.ports = [];
        await this.#saveSandbox(sb).catch(() => {});
        await this.#applyFirewall().catch(() => {});
        throw err;
      }
      this.#reservations.set(containerId, held);
      for (const p of records) (result[p.key] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
      return result;
    });
  }

  /** NetworkSettings.Ports of a container as last published ({} when nothing was). */
  ports(containerId: string): PortMap {
    const sb = this.#sandboxes.get(containerId);
    const result: PortMap = {};
    if (!sb) return result;
    for (const key of sb.unpublished) result[key] = null;
    for (const p of sb.ports) (result[p.key] ??= [])!.push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
    return result;
  }

  async #unpublish(sb: SandboxRecord): Promise<void> {
    for (const r of this.#reservations.get(sb.containerId) ?? []) await r.close();
    this.#reservations.delete(sb.containerId);
    if (sb.ports.length === 0) return;
    const gone = sb.ports;
    sb.ports = [];
    await this.#saveSandbox(sb);
    await this.#applyFirewall();
    await forgetUdpFlows(gone);
  }

  /** NetworkSettings.Networks, keyed by network name. */
  endpoints(containerId: string): Record<string, EndpointSettings> {
    const out: Record<string, EndpointSettings> = {};
    for (const ep of this.#sandboxes.get(containerId)?.endpoints ?? []) {
      const n = this.#networks.get(ep.networkId);
      if (n && ep.state === 'ready') out[n.Name] = this.#settings(containerId, n, ep);
    }
    return out;
  }

  /** The embedded DNS address for resolv.conf: the gateway of the container's first user bridge network. */
  dnsServerFor(containerId: string): string | undefined {
    for (const ep of this.#sandboxes.get(containerId)?.endpoints ?? []) {
      const server = this.#dns.get(ep.networkId);
      if (server) return server.address;
    }
    return undefined;
  }

  /** Disconnect everything, unpublish, delete the netns. Idempotent; never throws for leftovers. */
  removeSandbox(containerId: string): Promise<void> {
    return this.#serial(() => this.#teardownSandbox(containerId));
  }

  async #teardownSandbox(containerId: string): Promise<void> {
    const sb = this.#sandboxes.get(containerId);
    const file = sb?.netns ?? path.join(this.#dir.netns, containerId);
    if (sb) {
      // The plugins reach the netns through an fd of ours, so its bind mount goes meanwhile (an
      // open fd keeps a mount busy: it is detached, and freed with the fd); each endpoint is its
      // own interface, so the plugins delete them side by side.
      const held = sb.endpoints.length > 0 ? await holdNetns(sb.netns) : undefined;
      const unmounted = removeNetnsFile(file, { lazy: held !== undefined });
      try {
        await Promise.all(sb.endpoints.map((ep) => this.#cniDel(sb, ep, { netns: held?.path ?? '' })));
      } finally {
        await held?.close();
        await unmounted;
      }
      for (const r of this.#reservations.get(containerId) ?? []) await r.close();
      this.#reservations.delete(containerId);
      this.#sandboxes.delete(containerId);
      if (sb.ports.length > 0) {
        await this.#applyFirewall();
        await forgetUdpFlows(sb.ports);
      }
    } else if (await exists(file)) {
      // A netns file without a record (a crash before it was written). Host and none containers,
      // and a second removal, have neither: nothing to unmount.
      await removeNetnsFile(file);
    }
    await fs.rm(path.join(this.#dir.sandboxes, `${containerId}.json`), { force: true });
  }

  // ---------------------------------------------------------------- internals

  async #replumb(n: NetworkRecord): Promise<void> {
    for (const { sb, ep } of this.#members(n.Id)) {
      if (ep.state !== 'ready' || !(await exists(sb.netns))) continue;
      await this.#cniDel(sb, ep);
      try {
        await this.#cni.exec({ command: 'ADD', containerId: sb.containerId, netns: sb.netns, ifname: ep.ifname, config: this.#cniConfig(n, ep) });
        this.#log.info('endpoint plumbed again', { container: sb.containerId, network: n.Id });
      } catch (err) {
        this.#log.error('cannot plumb an endpoint again', { container: sb.containerId, network: n.Id, err: describeError(err) });
      }
    }
  }

  /** CNI DEL of one endpoint; `netns` replaces the sandbox's path ('' when there is no netns). */
  async #cniDel(sb: SandboxRecord, ep: EndpointRecord, options: { netns?: string } = {}): Promise<void> {
    const n = this.#networks.get(ep.networkId);
    if (!n) return;
    // A netns file a crash left unmounted is a plain file: the plugin gets no netns then.
    const netns = options.netns ?? ((await isNetns(sb.netns)) ? sb.netns : '');
    try {
      await this.#cni.exec({ command: 'DEL', containerId: sb.containerId, netns, ifname: ep.ifname, config: this.#cniConfig(n, ep) });
    } catch (err) {
      this.#log.warn('cni DEL failed', { container: sb.containerId, network: n.Id, err: describeError(err) });
      // The veth dies with the netns anyway; remove the interface directly so a reused sandbox is clean.
      if (netns) await run('nsenter', [`--net=${netns}`, 'ip', 'link', 'del', ep.ifname], { allowFailure: true });
    }
  }

  #cniConfig(n: NetworkRecord, ep: EndpointRecord): Record<string, unknown> {
    const prefix = Number(n.subnet!.split('/')[1]);
    const ipam = {
      type: 'static',
      addresses: [{ address: `${ep.ip}/${prefix}`, gateway: n.gateway }],
      routes: n.Internal ? [] : [{ dst: '0.0.0.0/0', gw: n.gateway }],
    };
    const mtu = n.Options[OPT_MTU] ? Number(n.Options[OPT_MTU]) : undefined;
    const base = { cniVersion: '1.0.0', name: n.Name, ...(mtu ? { mtu } : {}) };
    if (n.Driver === 'bridge') {
      return {
        ...base,
        type: 'bridge',
        bridge: n.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam,
        runtimeConfig: { mac: ep.mac },
      };
    }
    if (n.Driver === 'macvlan') return { ...base, type: 'macvlan', master: n.parent, mode: n.Options['macvlan_mode'] || 'bridge', ipam };
    return { ...base, type: 'ipvlan', master: n.parent, mode: n.Options['ipvlan_mode'] || 'l2', ipam };
  }

  #settings(containerId: string, n: NetworkRecord, ep: EndpointRecord): EndpointSettings {
    return {
      IPAMConfig: ep.requestedIp ? { IPv4Address: ep.requestedIp } : null,
      Links: null,
      Aliases: n.builtin ? null : [...ep.aliases, shortId(containerId)],
      NetworkID: n.Id,
      EndpointID: ep.endpointId,
      Gateway: n.gateway ?? '',
      IPAddress: ep.ip,
      IPPrefixLen: Number(n.subnet?.split('/')[1] ?? 0),
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      MacAddress: ep.mac,
      DriverOpts: null,
    };
  }

  #toApi(n: NetworkRecord, withContainers: boolean): object {
    const containers: Record<string, object> = {};
    if (withContainers) {
      for (const { sb, ep } of this.#members(n.Id)) {
        containers[sb.containerId] = {
          Name: ep.name,
          EndpointID: ep.endpointId,
          MacAddress: ep.mac,
          IPv4Address: `${ep.ip}/${n.subnet!.split('/')[1]}`,
          IPv6Address: '',
        };
      }
    }
    return {
      Name: n.Name,
      Id: n.Id,
      Created: n.Created,
      Scope: 'local',
      Driver: n.Driver,
      EnableIPv6: false,
      IPAM: { Driver: 'default', Options: n.builtin ? null : {}, Config: n.ipamConfig },
      Internal: n.Internal,
      Attachable: n.Attachable,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: containers,
      Options: n.Options,
      Labels: n.Labels,
    };
  }

  #members(networkId: string): Array<{ sb: SandboxRecord; ep: EndpointRecord }> {
    const out: Array<{ sb: SandboxRecord; ep: EndpointRecord }> = [];
    for (const sb of this.#sandboxes.values()) for (const ep of sb.endpoints) if (ep.networkId === networkId) out.push({ sb, ep });
    return out;
  }

  #usedIps(n: NetworkRecord): Set<number> {
    const used = new Set<number>([parseIp(n.gateway!)!]);
    for (const { ep } of this.#members(n.Id)) used.add(parseIp(ep.ip)!);
    return used;
  }

  #byName(name: string): NetworkRecord | undefined {
    for (const n of this.#networks.values()) if (n.Name === name) return n;
    return undefined;
  }

  /** Docker's lookup order: full id, exact name, unique id prefix. */
  #find(idOrName: string): NetworkRecord {
    const byId = this.#networks.get(idOrName);
    if (byId) return byId;
    const byName = this.#byName(idOrName);
    if (byName) return byName;
    if (/^[0-9a-f]+$/.test(idOrName)) {
      const matches = [...this.#networks.values()].filter((n) => n.Id.startsWith(idOrName));
      if (matches.length === 1) return matches[0]!;
      if (matches.length > 1) throw invalidArgument(`network ${idOrName} is ambiguous (${matches.length} matches found based on ID prefix)`);
    }
    throw notFound(`network ${idOrName} not found`);
  }

  #overlapping(subnet: Cidr): NetworkRecord | undefined {
    for (const n of this.#networks.values()) {
      if (n.subnet && overlaps(subnet, parseCidr(n.subnet)!)) return n;
    }
    return undefined;
  }

  async #pickSubnet(name: string): Promise<Cidr> {
    const routes = await hostRoutes();
    for (const pool of this.#o.addressPools ?? ['10.89.0.0/16']) {
      for (const candidate of splitPool(mustParseCidr(pool, 'address pool'))) {
        if (this.#overlapping(candidate)) continue;
        if (routes.some((r) => overlaps(r, candidate))) continue;
        return candidate;
      }
    }
    throw new BaleiaError('Unavailable', `Cannot create network "${name}": the address pools are exhausted, remove unused networks or give --subnet`);
  }

  async #ensureBuiltins(): Promise<void> {
    const want = this.#o.defaultBridge ?? { name: 'baleia0', subnet: '10.88.0.0/16' };
    const subnet = mustParseCidr(want.subnet, 'default bridge subnet');
    for (const [name, driver] of [['bridge', 'bridge'], ['host', 'host'], ['none', 'null']] as const) {
      let rec = [...this.#networks.values()].find((n) => n.builtin && n.Name === name);
      const fresh = !rec;
      rec ??= {
        Id: newId(),
        Name: name,
        Driver: driver,
        Created: new Date().toISOString(),
        builtin: true,
        ipamConfig: [],
        Internal: false,
        Attachable: false,
        Options: {},
        Labels: {},
      };
      if (name === 'bridge') {
        const changed = rec.bridge !== want.name || rec.subnet !== formatCidr(subnet);
        if (changed && this.#members(rec.Id).length > 0) {
          this.#log.warn('default bridge settings changed while containers use it; keeping the old ones', { bridge: rec.bridge, subnet: rec.subnet });
        } else if (changed) {
          if (rec.bridge && rec.bridge !== want.name) await deleteLink(rec.bridge);
          rec.bridge = want.name;
          rec.subnet = formatCidr(subnet);
          rec.gateway = formatIp(subnet.base + 1);
          rec.ipamConfig = [{ Subnet: rec.subnet, Gateway: rec.gateway }];
          rec.Options = {
            'com.docker.network.bridge.default_bridge': 'true',
            'com.docker.network.bridge.enable_icc': 'true',
            'com.docker.network.bridge.enable_ip_masquerade': 'true',
            'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
            'com.docker.network.bridge.name': want.name,
            'com.docker.network.driver.mtu': '1500',
          };
        }
        if (!changed && !fresh) continue;
        const clash = [...this.#networks.values()].find((n) => n.Id !== rec!.Id && n.subnet && overlaps(parseCidr(n.subnet)!, subnet));
        if (clash) this.#log.warn('default bridge subnet overlaps a user network', { network: clash.Name });
      } else if (!fresh) {
        continue;
      }
      await writeJsonAtomic(path.join(this.#dir.networks, `${rec.Id}.json`), rec);
      this.#networks.set(rec.Id, rec);
    }
  }

  /** Create the bridge with the gateway address (true when it had to be created). */
  async #ensureBridge(n: NetworkRecord): Promise<boolean> {
    const bridge = n.bridge!;
    const prefix = n.subnet!.split('/')[1];
    const present = (await run('ip', ['link', 'show', 'dev', bridge], { allowFailure: true })).code === 0;
    if (!present) await run('ip', ['link', 'add', 'name', bridge, 'type', 'bridge']);
    try {
      // A bridge without a MAC of its own takes the lowest of its ports' MACs, so it would change
      // whenever a container leaves and neighbours would send to a stale MAC until ARP expires.
      await run('ip', ['link', 'set', 'dev', bridge, 'address', macForIp(parseIp(n.gateway!)!)]);
      await run('ip', ['addr', 'replace', `${n.gateway}/${prefix}`, 'dev', bridge]);
      if (n.Options[OPT_MTU]) await run('ip', ['link', 'set', 'dev', bridge, 'mtu', n.Options[OPT_MTU]]);
      await run('ip', ['link', 'set', 'dev', bridge, 'up']);
      // A published port reached on 127.0.0.1 is DNATed out of this bridge with a loopback source.
      await fs.writeFile(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1');
    } catch (err) {
      if (!present) await deleteLink(bridge);
      throw new BaleiaError('Internal', `Cannot set up bridge "${bridge}" of network "${n.Name}"`, { cause: err });
    }
    return !present;
  }

  async #startDns(n: NetworkRecord, options: { strict?: boolean } = {}): Promise<void> {
    if (this.#dns.has(n.Id) || n.Driver !== 'bridge' || n.builtin) return;
    const server = new DnsServer({
      address: n.gateway!,
      resolve: (name, clientIp) => this.#resolveName(n.Id, name, clientIp),
      reverse: (ip, clientIp) => this.#resolveAddress(n.Id, ip, clientIp),
      // An internal network has no way out, and DNS must not become one.
      upstreams: () => (n.Internal ? [] : this.#upstreams),
      logger: this.#log,
    });
    try {
      await server.start(this.#o.dnsPort ?? 53);
      this.#dns.set(n.Id, server);
    } catch (err) {
      const e = new BaleiaError('Unavailable', `Cannot start the embedded DNS of network "${n.Name}" on ${n.gateway}:${this.#o.dnsPort ?? 53}`, { cause: err });
      if (options.strict) throw e;
      this.#log.warn('embedded DNS not started', { network: n.Id, err: describeError(e) });
    }
  }

  async #stopDns(networkId: string): Promise<void> {
    await this.#dns.get(networkId)?.stop();
    this.#dns.delete(networkId);
  }

  /**
   * Names a container on `networkId` can resolve: container names, aliases and short ids of every
   * network the asking container is on, the network the query came in on first.
   */
  #resolveName(networkId: string, name: string, clientIp: string): string[] | undefined {
    const networks = this.#visibleNetworks(networkId, clientIp);
    // `<name>.<network>` names one network explicitly, as Docker's resolver allows.
    for (const id of networks) {
      const suffix = `.${this.#networks.get(id)!.Name.toLowerCase()}`;
      if (name.endsWith(suffix)) {
        const ips = this.#namesOn(id, name.slice(0, -suffix.length));
        if (ips.length > 0) return ips;
      }
    }
    for (const id of networks) {
      const ips = this.#namesOn(id, name);
      if (ips.length > 0) return ips;
    }
    return undefined;
  }

  /** The network a query came in on first, then the asking container's other DNS networks. */
  #visibleNetworks(networkId: string, clientIp: string): string[] {
    const asker = this.#members(networkId).find(({ ep }) => ep.ip === clientIp)?.sb;
    return [networkId, ...(asker?.endpoints.map((e) => e.networkId).filter((id) => id !== networkId && this.#dns.has(id)) ?? [])];
  }

  /** PTR answers: `<name>.<network>` of the endpoint with that address, as Docker answers. */
  #resolveAddress(networkId: string, ip: string, clientIp: string): string | undefined {
    for (const id of this.#visibleNetworks(networkId, clientIp)) {
      const hit = this.#members(id).find(({ ep }) => ep.state === 'ready' && ep.ip === ip);
      if (hit) return `${hit.ep.name}.${this.#networks.get(id)!.Name}`;
    }
    return undefined;
  }

  #namesOn(id: string, name: string): string[] {
    return this.#members(id)
      .filter(({ sb, ep }) => ep.state === 'ready' && (ep.name.toLowerCase() === name || ep.aliases.some((a) => a.toLowerCase() === name) || shortId(sb.containerId) === name || sb.containerId === name))
      .map(({ ep }) => ep.ip);
  }

  #firewallState(): FirewallState {
    const state: FirewallState = { networks: [], ports: [] };
    for (const n of this.#networks.values()) {
      if (n.Driver !== 'bridge' || !n.bridge) continue;
      state.networks.push({
        bridge: n.bridge,
        subnet: n.subnet!,
        internal: n.Internal,
        masquerade: n.Options[OPT_MASQ] !== 'false',
        icc: n.Options['com.docker.network.bridge.enable_icc'] !== 'false',
      });
    }
    for (const sb of this.#sandboxes.values()) {
      for (const p of sb.ports) {
        const n = this.#networks.get(p.networkId);
        if (!n?.bridge) continue;
        state.ports.push({ proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: p.containerIp, containerPort: p.containerPort, bridge: n.bridge });
      }
    }
    return state;
  }

  async #applyFirewall(options: { checkJumps?: boolean } = {}): Promise<void> {
    await this.#fw.apply(this.#firewallState(), options);
  }

  async #saveSandbox(sb: SandboxRecord): Promise<void> {
    await writeJsonAtomic(path.join(this.#dir.sandboxes, `${sb.containerId}.json`), sb);
  }

  /** Our rule lines in filter and nat (tests). */
  firewallRules(): Promise<string[]> {
    return this.#fw.listOurs();
  }
}

// ---------------------------------------------------------------- helpers

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v && typeof v === 'object') for (const [k, val] of Object.entries(v)) out[k] = String(val);
  return out;
}

function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf('=');
  if (eq < 0) return filter in labels;
  return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

function isTrue(v: string): boolean {
  return !['', '0', 'no', 'false', 'none'].includes(v.toLowerCase());
}

/** `until` as Docker takes it: a Go duration (`24h`, `90m`), a unix timestamp or a date. */
function parseUntil(v: string): number {
  const d = /^(\d+(?:\.\d+)?)(h|m|s)$/.exec(v);
  if (d) return Date.now() - Number(d[1]) * { h: 3600e3, m: 60e3, s: 1e3 }[d[2] as 'h' | 'm' | 's'];
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidArgument(`Invalid filter "until=${v}": expected a duration, a timestamp or a date`);
  return t;
}

async function deleteLink(name: string): Promise<void> {
  await run('ip', ['link', 'del', 'dev', name], { allowFailure: true });
}

/** statfs(2) magic of nsfs: the file is a bind-mounted namespace, not the empty file under it. */
const NSFS_MAGIC = 0x6e736673;

async function isNetns(file: string): Promise<boolean> {
  return (await fs.statfs(file).catch(() => undefined))?.type === NSFS_MAGIC;
}

/**
 * Holds a network namespace by an open fd of ours: other processes (the CNI plugins) reach it as
 * /proc/<our pid>/fd/<n> as long as the fd is open, also once its bind mount is gone.
 */
async function holdNetns(file: string): Promise<{ path: string; close(): Promise<void> } | undefined> {
  if (!(await isNetns(file))) return undefined;
  const handle = await fs.open(file, 'r').catch(() => undefined);
  if (!handle) return undefined;
  return { path: `/proc/${process.pid}/fd/${handle.fd}`, close: () => handle.close() };
}

/** Unmounts and deletes a netns file; `lazy` detaches a mount an open fd still keeps busy. */
async function removeNetnsFile(file: string, options: { lazy?: boolean } = {}): Promise<void> {
  await run('umount', [...(options.lazy ? ['--lazy'] : []), file], { allowFailure: true });
  await fs.rm(file, { force: true }).catch(() => {});
}

async function defaultRouteInterface(): Promise<string | undefined> {
  const r = await run('ip', ['-j', 'route', 'show', 'default'], { allowFailure: true });
  try {
    return (JSON.parse(r.stdout) as Array<{ dev?: string }>)[0]?.dev;
  } catch {
    return undefined;
  }
}

/** The host's IPv4 routes other than the default one (auto-picked subnets avoid them). */
async function hostRoutes(): Promise<Cidr[]>;
async function hostRoutes(withDev: true): Promise<Array<{ cidr: Cidr; dev: string }>>;
async function hostRoutes(withDev?: boolean): Promise<Cidr[] | Array<{ cidr: Cidr; dev: string }>> {
  const r = await run('ip', ['-j', '-4', 'route', 'show'], { allowFailure: true });
  let routes: Array<{ dst?: string; dev?: string }> = [];
  try {
    routes = JSON.parse(r.stdout) as Array<{ dst?: string; dev?: string }>;
  } catch {
    routes = [];
  }
  const out: Array<{ cidr: Cidr; dev: string }> = [];
  for (const route of routes) {
    const dst = route.dst ?? '';
    if (!dst || dst === 'default') continue;
    const [ip, len] = (dst.includes('/') ? dst : `${dst}/32`).split('/');
    const n = parseIp(ip!);
    if (n === undefined) continue;
    const prefix = Number(len);
    const base = prefix === 0 ? 0 : (n & ((0xffffffff << (32 - prefix)) >>> 0)) >>> 0;
    out.push({ cidr: { base, prefix }, dev: route.dev ?? '' });
  }
  return withDev ? out : out.map((x) => x.cidr);
}

async function hostResolvers(): Promise<string[]> {
  const text = await fs.readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((s): s is string => !!s);
}

function parseUpstream(s: string): Upstream {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(s);
  if (s.includes(':') && !s.includes('[') && s.split(':').length > 2) return { host: s, port: 53 };
  return { host: m?.[1] ?? s, port: m?.[2] ? Number(m[2]) : 53 };
}

/**
 * Drops the kernel's conntrack entries of published UDP ports. A UDP "flow" lives as long as
 * datagrams keep coming (30 s, 180 s once answered), and its NAT was decided by its first
 * packet: without this, a client that keeps its source port goes on reaching the address of a
 * container that is gone, even once another container publishes the same port. TCP needs
 * nothing: a new connection is a new flow. Uses conntrack(8) from conntrack-tools; without it
 * the entries only expire.
 */
async function forgetUdpFlows(ports: PortRecord[]): Promise<void> {
  const udp = ports.filter((p) => p.proto === 'udp');
  if (udp.length === 0) return;
  await Promise.all(
    udp.map((p) =>
      run('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', String(p.hostPort), ...(p.hostIp && p.hostIp !== '0.0.0.0' ? ['--orig-dst', p.hostIp] : [])], { allowFailure: true })
        // Missing tool: nothing to do but wait for the entries to expire.
        .catch(() => undefined),
    ),
  );
}
