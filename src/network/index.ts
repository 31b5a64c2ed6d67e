/**
 * network: baleia's container networking. It owns the network model (Docker's network objects,
 * endpoints, IPAM, published ports), the Linux plumbing behind it (bridges, network namespaces,
 * CNI plugin calls, iptables chains) and the embedded DNS. It does not own containers: the engine
 * tells it which containers exist and when they start and stop, and writes hosts/resolv.conf
 * into the container with the helpers exported here.
 *
 * Vocabulary: network; sandbox = a container's netns; endpoint = its interface on one network;
 * published port = a host port DNATed to an endpoint. Lifecycle:
 *
 *   const nm = new NetworkManager({ root, execRoot, chainPrefix: 'BALEIA' });
 *   await nm.init();                                  // daemon start: load, bridges, DNS, rules
 *   await nm.reconcile(new Set(liveContainerIds));    // after the engine re-adopted containers
 *   const netns = await nm.createSandbox(id);         // before `runc create`: the spec's network
 *                                                     // namespace gets `path: netns`
 *   await nm.connect(id, 'bridge', { name: 'web', hostname: 'web', aliases: ['www'] });
 *   const ports = await nm.publish(id, hostConfig.PortBindings, { exposed, publishAll });
 *                                                     // connect and publish before `runc start`
 *                                                     // (the engine runs them during `runc create`)
 *   resolvConf({ nameservers: [nm.dnsServerFor(id) ?? ...hostResolvers] })  // into the container
 *   ...                                               // running: connect/disconnect live
 *   await nm.removeSandbox(id);                       // after the container stopped (the engine
 *                                                     // runs it beside `runc delete`)
 *   await nm.shutdown();                              // daemon stop: DNS off, rules stay
 *
 * Network modes: `host` → no sandbox (the spec keeps the host netns); `none` → createSandbox only;
 * `container:<id>` → join `nm.sandboxPath(otherId)`. connect() refuses host/none.
 *
 * On disk:
 *
 *   <root>/networks/
 *     networks/<network-id>.json     one record per network (built-ins bridge/host/none too)
 *     sandboxes/<container-id>.json  netns path, endpoints (address, MAC, aliases), published ports
 *   <execRoot>/netns/<container-id>  the container's netns, bind-mounted (unshare --net=<file>)
 *
 * Address allocations are not stored separately: they are the endpoints of the sandbox records,
 * each written atomically before the CNI ADD (state 'adding') and after it ('ready'); reconcile
 * undoes an 'adding' one. Kernel state: one Linux bridge per bridge network (the default one
 * named in the options, user networks `<bridgePrefix><id>` cut to 15 characters, each with a fixed
 * MAC and route_localnet=1), veths made by the CNI `bridge` plugin with `static` IPAM (macvlan and
 * ipvlan networks use those plugins on `-o parent=`), the embedded DNS on each user bridge's
 * gateway:53 (UDP+TCP, in baleiad), a reservation socket per published host port, and the
 * iptables chains `<prefix>-FORWARD`, `-ISOLATION-1/2` (filter), `-PORTS`, `-POSTROUTING` (nat),
 * always rewritten whole from the records (see firewall.ts).
 */
export { NetworkManager } from './manager.js';
export type { NetworkManagerOptions, EndpointSettings, PortMap } from './manager.js';
export { resolvConf, hostsFile, usableHostResolvers } from './resolv.js';
