/**
 * baleia's iptables rules, always written as a whole from the desired state: the content of our
 * own chains is replaced atomically with `iptables-restore --noflush` (declaring a user chain
 * there flushes it, and each table commits in one transaction), so there is never a duplicate
 * nor a leftover, and a crashed daemon converges by writing the state once more.
 *
 * Chains (P = chain prefix):
 *   filter FORWARD    → P-FORWARD     accept our bridges' traffic, published ports, replies
 *          P-FORWARD  → P-ISOLATION-1 → P-ISOLATION-2   drop traffic between two of our bridges;
 *                                                       internal networks never leave theirs
 *   nat PREROUTING/OUTPUT (dst-type LOCAL) → P-PORTS     DNAT of published ports
 *   nat POSTROUTING  → P-POSTROUTING  masquerade egress, loopback clients (route_localnet), hairpin
 */
import { BaleiaError, run, type Logger } from '../lib/index.js';

export interface FirewallNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
  masquerade: boolean;
  /** Inter-container traffic on the bridge (`com.docker.network.bridge.enable_icc`); default true. */
  icc?: boolean;
}

export interface FirewallPort {
  proto: 'tcp' | 'udp';
  /** '' or 0.0.0.0 for every address. */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
  bridge: string;
}

export interface FirewallState {
  networks: FirewallNetwork[];
  ports: FirewallPort[];
}

/** The iptables-restore input for our chains (pure). */
export function renderRules(prefix: string, state: FirewallState): string {
  const c = chainNames(prefix);
  const filter: string[] = ['*filter', `:${c.forward} - [0:0]`, `:${c.iso1} - [0:0]`, `:${c.iso2} - [0:0]`];
  filter.push(`-A ${c.forward} -j ${c.iso1}`);
  for (const n of state.networks) {
    const b = n.bridge;
    if (n.internal) {
      filter.push(`-A ${c.iso1} -i ${b} ! -o ${b} -j DROP`, `-A ${c.iso1} ! -i ${b} -o ${b} -j DROP`);
    } else {
      filter.push(`-A ${c.iso1} -i ${b} ! -o ${b} -j ${c.iso2}`);
    }
    filter.push(`-A ${c.iso2} -o ${b} -j DROP`);
    filter.push(`-A ${c.forward} -o ${b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    for (const p of state.ports.filter((p) => p.bridge === b)) {
      filter.push(`-A ${c.forward} -d ${p.containerIp}/32 ! -i ${b} -o ${b} -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -j ACCEPT`);
    }
    if (!n.internal) filter.push(`-A ${c.forward} -i ${b} ! -o ${b} -j ACCEPT`);
    filter.push(`-A ${c.forward} -i ${b} -o ${b} -j ${n.icc === false ? 'DROP' : 'ACCEPT'}`);
  }
  filter.push('COMMIT');

  const nat: string[] = ['*nat', `:${c.ports} - [0:0]`, `:${c.post} - [0:0]`];
  for (const p of state.ports) {
    const dst = p.hostIp && p.hostIp !== '0.0.0.0' ? ` -d ${p.hostIp}/32` : '';
    nat.push(`-A ${c.ports}${dst} -p ${p.proto} -m ${p.proto} --dport ${p.hostPort} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`);
  }
  for (const n of state.networks) {
    if (!n.internal && n.masquerade) nat.push(`-A ${c.post} -s ${n.subnet} ! -o ${n.bridge} -j MASQUERADE`);
    // A client on 127.0.0.1 reaches a published port through OUTPUT DNAT; the bridge accepts the
    // loopback source only with route_localnet=1, and the reply needs a routable source.
    nat.push(`-A ${c.post} -s 127.0.0.0/8 -o ${n.bridge} -j MASQUERADE`);
  }
  for (const p of state.ports) {
    nat.push(`-A ${c.post} -s ${p.containerIp}/32 -d ${p.containerIp}/32 -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -j MASQUERADE`);
  }
  nat.push('COMMIT');
  return [...filter, ...nat].join('\n') + '\n';
}

export function chainNames(prefix: string) {
  return {
    forward: `${prefix}-FORWARD`,
    iso1: `${prefix}-ISOLATION-1`,
    iso2: `${prefix}-ISOLATION-2`,
    ports: `${prefix}-PORTS`,
    post: `${prefix}-POSTROUTING`,
  };
}

/** The jumps from the built-in chains into ours: [table, chain, rule…]. */
function jumps(prefix: string): Array<[string, string, string[]]> {
  const c = chainNames(prefix);
  return [
    ['filter', 'FORWARD', ['-j', c.forward]],
    ['nat', 'PREROUTING', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.ports]],
    ['nat', 'OUTPUT', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.ports]],
    ['nat', 'POSTROUTING', ['-j', c.post]],
  ];
}

export class Firewall {
  readonly #prefix: string;
  readonly #iptables: string;
  readonly #logger?: Logger;

  constructor(options: { prefix: string; iptables?: string; logger?: Logger }) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,14}$/.test(options.prefix)) {
      throw new BaleiaError('InvalidArgument', `Invalid iptables chain prefix "${options.prefix}": use up to 15 letters, digits or _`);
    }
    this.#prefix = options.prefix;
    this.#iptables = options.iptables ?? 'iptables';
    this.#logger = options.logger;
  }

  get prefix(): string {
    return this.#prefix;
  }

  #jumpsChecked = false;

  /**
   * Replace the content of our chains with `state`, then make sure each jump exists once (on the
   * first call, and whenever `checkJumps` asks: init and reconcile).
   */
  async apply(state: FirewallState, options: { checkJumps?: boolean } = {}): Promise<void> {
    const rules = renderRules(this.#prefix, state);
    const started = Date.now();
    await run(`${this.#iptables}-restore`, ['-w', '--noflush'], { input: rules }).catch((err) => {
      throw new BaleiaError('Internal', `Cannot write iptables chains "${this.#prefix}-*"`, { cause: err });
    });
    this.#logger?.debug('iptables-restore', { prefix: this.#prefix, rules: rules.split('\n').length, ms: Date.now() - started });
    if (options.checkJumps || !this.#jumpsChecked) {
      await this.#ensureJumps();
      this.#jumpsChecked = true;
    }
  }

  async #ensureJumps(): Promise<void> {
    for (const [table, chain, rule] of jumps(this.#prefix)) {
      const listed = await run(this.#iptables, ['-w', '-t', table, '-S', chain]);
      const wanted = `-A ${chain} ${rule.join(' ')}`;
      const count = listed.stdout.split('\n').filter((l) => l.trim() === wanted).length;
      for (let i = 1; i < count; i++) await run(this.#iptables, ['-w', '-t', table, '-D', chain, ...rule]);
      if (count === 0) await run(this.#iptables, ['-w', '-t', table, '-I', chain, '1', ...rule]);
    }
  }

  /** Remove the jumps and our chains entirely (tests, system reset). */
  async destroy(): Promise<void> {
    this.#jumpsChecked = false;
    for (const [table, chain, rule] of jumps(this.#prefix)) {
      for (let i = 0; i < 10; i++) {
        const r = await run(this.#iptables, ['-w', '-t', table, '-D', chain, ...rule], { allowFailure: true });
        if (r.code !== 0) break;
      }
    }
    const c = chainNames(this.#prefix);
    const tables: Array<[string, string[]]> = [
      ['filter', [c.forward, c.iso1, c.iso2]],
      ['nat', [c.ports, c.post]],
    ];
    for (const [table, chains] of tables) {
      for (const ch of chains) await run(this.#iptables, ['-w', '-t', table, '-F', ch], { allowFailure: true });
      for (const ch of chains) await run(this.#iptables, ['-w', '-t', table, '-X', ch], { allowFailure: true });
    }
  }

  /** Every rule line mentioning our prefix, in both tables (tests assert on it). */
  async listOurs(): Promise<string[]> {
    const out: string[] = [];
    for (const table of ['filter', 'nat']) {
      const r = await run(this.#iptables, ['-w', '-t', table, '-S'], { allowFailure: true });
      out.push(...r.stdout.split('\n').filter((l) => l.includes(`${this.#prefix}-`)).map((l) => `${table} ${l}`));
    }
    return out;
  }
}
