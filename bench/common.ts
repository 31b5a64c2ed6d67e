/**
 * bench/common.ts — what the benches share: cleanup on exit/signals (processes, mounts, cgroups,
 * runc state), running commands with timings, starting a reference dockerd and a baleiad on
 * private roots and sockets, the docker and baleia clients, memory sampling, medians.
 * Importing this module installs the exit/SIGINT/SIGTERM/SIGHUP handlers that run the cleanups.
 */
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { daemonNodeFlags } from '../src/lib/node-flags.js';

export type EngineName = 'baleia' | 'docker';
export type ClientName = 'docker' | 'baleia';

// ---------------------------------------------------------------------------------------------
// Paths and small helpers

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
export const cliMain = path.join(repoRoot, 'dist/src/cli/main.js');
export const daemonMain = path.join(repoRoot, 'dist/src/daemon.js');
export const dockerCli = '/usr/local/bin/docker';
export const setupScript = path.join(repoRoot, 'bench/setup-docker.sh');

export const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
export const alive = (pid: number | undefined): boolean => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0); treat it as gone.
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
};
/** A short error summary: the first line that names an error (a crash's stack is long), else the last lines. */
export const firstLine = (s: string) => {
  const lines = s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const named = lines.find((l) => /^(\w*Error|error)\b|Error:|Error response/.test(l));
  return (named ?? lines.slice(-3).join(' | ')).slice(0, 300);
};

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: synchronous steps, run in reverse order exactly once (normal end, error, signal, exit)

export const cleanups: Array<{ what: string; fn: () => void }> = [];
export let cleaning = false;
export function onCleanup(what: string, fn: () => void): void {
  cleanups.push({ what, fn });
}
export function runCleanups(): void {
  if (cleaning) return;
  cleaning = true;
  while (cleanups.length) {
    const { what, fn } = cleanups.pop()!;
    try {
      fn();
    } catch (err) {
      log(`cleanup (${what}) failed: ${(err as Error).message}`);
    }
  }
}
process.on('exit', runCleanups);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    log(`${sig}: cleaning up`);
    runCleanups();
    process.exit(128 + (os.constants.signals[sig] ?? 0));
  });
}

/** All processes: pid → {ppid, comm, cmdline}. */
export function processTable(): Map<number, { ppid: number; comm: string; cmdline: string }> {
  const table = new Map<number, { ppid: number; comm: string; cmdline: string }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(open + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      } catch {
        // kernel thread or gone
      }
      table.set(Number(name), { ppid, comm, cmdline });
    } catch {
      // exited meanwhile
    }
  }
  return table;
}

/** Sends `signal` to every process whose command line mentions `marker` and whose comm matches. */
export function killMatching(marker: string, comm: RegExp, signal: NodeJS.Signals = 'SIGKILL'): number {
  let n = 0;
  for (const [pid, p] of processTable()) {
    if (pid === process.pid || !comm.test(p.comm) || !p.cmdline.includes(marker)) continue;
    try {
      process.kill(pid, signal);
      n++;
    } catch {
      // gone
    }
  }
  return n;
}

export function stopProcess(pid: number | undefined, graceMs: number): void {
  if (!alive(pid)) return;
  try {
    process.kill(pid!, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) sleepSync(50);
  if (alive(pid)) {
    try {
      process.kill(pid!, 'SIGKILL');
    } catch {
      // gone
    }
    const d2 = Date.now() + 5000;
    while (alive(pid) && Date.now() < d2) sleepSync(50);
  }
}

export function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Lazily unmounts every mount at or below `dir`, deepest first. */
export function umountUnder(dir: string): number {
  let n = 0;
  for (let round = 0; round < 5; round++) {
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => !!m)
      .map(unescapeMount)
      .filter((m) => m === dir || m.startsWith(dir + '/'))
      .sort((a, b) => b.length - a.length);
    if (!mounts.length) break;
    for (const m of mounts) {
      spawnSync('umount', ['-l', m], { stdio: 'ignore' });
      n++;
    }
  }
  return n;
}

/** Kills what is left in a cgroup directory (every v1 controller and the v2 mount), then removes it. */
export function removeCgroupTree(relative: string): void {
  const base = '/sys/fs/cgroup';
  if (!existsSync(base)) return;
  const hierarchies = [base, ...readdirSync(base).map((c) => path.join(base, c))];
  for (const h of hierarchies) {
    const dir = path.join(h, relative);
    if (!existsSync(dir)) continue;
    const dirs: string[] = [];
    const walk = (d: string) => {
      dirs.push(d);
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    };
    try {
      walk(dir);
    } catch {
      continue;
    }
    for (const d of dirs) {
      try {
        for (const pid of readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone
          }
      } catch {
        // no procs file
      }
    }
    for (const d of dirs.sort((a, b) => b.length - a.length)) {
      for (let i = 0; i < 20; i++) {
        if (spawnSync('rmdir', [d], { stdio: 'ignore' }).status === 0 || !existsSync(d)) break;
        sleepSync(50);
      }
    }
  }
}

export function runcCleanup(runcRoot: string): void {
  if (!existsSync(runcRoot)) return;
  for (const id of readdirSync(runcRoot)) {
    spawnSync('runc', ['--root', runcRoot, 'kill', id, 'KILL'], { stdio: 'ignore', timeout: 10_000 });
    spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id], { stdio: 'ignore', timeout: 10_000 });
  }
}

// ---------------------------------------------------------------------------------------------
// Running commands

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Set by each bench's main(): the environment every command gets, --verbose, the default per-command timeout. */
export const settings = { baseEnv: {} as NodeJS.ProcessEnv, verbose: false, commandTimeoutMs: 60_000 };

export function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = settings.commandTimeoutMs): Promise<RunResult> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const done = (code: number, extra = '') => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      const r = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') + extra, ms };
      if (settings.verbose) log(`${ms.toFixed(0).padStart(6)} ms  rc=${code}  ${path.basename(command)} ${args.join(' ')}${code ? `  ${firstLine(r.stderr)}` : ''}`);
      resolve(r);
    };
    child.on('error', (e) => done(-1, e.message));
    child.on('close', (code, signal) => done(code ?? (signal === 'SIGKILL' ? 137 : -1), signal === 'SIGKILL' ? ' (killed: timeout)' : ''));
  });
}

/** Raw Engine API call over a unix socket (readiness probe, version info). */
export function apiGet(socket: string, urlPath: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: urlPath, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export async function waitForPing(socket: string, pid: () => number | undefined, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!alive(pid())) throw new Error(`${what} exited before answering on ${socket}`);
    try {
      const r = await apiGet(socket, '/_ping', 1000);
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(25);
  }
  throw new Error(`${what} did not answer /_ping on ${socket} within ${timeoutMs} ms (${last})`);
}

// ---------------------------------------------------------------------------------------------
// Engines

export interface Engine {
  name: EngineName;
  socket: string;
  /** The daemon process(es) whose memory counts (plus descendants minus per-container monitors). */
  daemonPid(): number | undefined;
  /** Per-container monitor processes (conmon / containerd-shim) of this engine. */
  monitorPids(): number[];
  startupMs: number;
  logFile: string;
  version: string;
  /** baleiad only: the network it was given. */
  network?: BaleiaNetwork;
}

export interface Client {
  name: ClientName;
  label: string;
  command: string;
  prefix: string[];
  env(engine: Engine): NodeJS.ProcessEnv;
}

export function makeClients(tmp: string): Record<ClientName, Client> {
  const dockerConfig = path.join(tmp, 'docker-client-config');
  const baleiaConfig = path.join(tmp, 'baleia-client-config');
  mkdirSync(dockerConfig, { recursive: true });
  mkdirSync(baleiaConfig, { recursive: true });
  return {
    docker: {
      name: 'docker',
      label: 'docker CLI',
      command: dockerCli,
      prefix: [],
      env: (e) => ({ ...settings.baseEnv, DOCKER_HOST: `unix://${e.socket}`, DOCKER_CONFIG: dockerConfig, DOCKER_CLI_HINTS: 'false' }),
    },
    baleia: {
      name: 'baleia',
      label: 'baleia CLI',
      command: process.execPath,
      prefix: [cliMain],
      env: (e) => ({ ...settings.baseEnv, BALEIA_HOST: `unix://${e.socket}`, BALEIA_CONFIG: baleiaConfig }),
    },
  };
}

export function cli(client: Client, engine: Engine, args: string[], timeoutMs?: number): Promise<RunResult> {
  return runCommand(client.command, [...client.prefix, ...args], client.env(engine), timeoutMs);
}

export async function mustCli(client: Client, engine: Engine, args: string[], timeoutMs?: number): Promise<RunResult> {
  const r = await cli(client, engine, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${client.label} → ${engine.name}: \`${args.join(' ')}\` exited ${r.code}: ${firstLine(r.stderr || r.stdout)}`);
  return r;
}

/** A /24 in 10.0.0.0/8 that no local address or route uses, for docker's private bridge. */
export function freeSubnet(): string {
  const used = spawnSync('ip', ['-4', '-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout +
    spawnSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }).stdout;
  for (let tries = 0; tries < 200; tries++) {
    const b = 200 + Math.floor(Math.random() * 50);
    const c = Math.floor(Math.random() * 250) + 1;
    if (!used.includes(`10.${b}.${c}.`)) return `10.${b}.${c}`;
  }
  throw new Error('no free 10.x.y.0/24 subnet for the bench bridge');
}

/** What startDocker needs: install docker.io when missing, give dockerd a private default bridge, more dockerd flags. */
export interface DockerOptions {
  install: boolean;
  defaultNetwork: boolean;
  extraArgs?: string[];
}

export async function startDocker(tmp: string, o: DockerOptions): Promise<Engine> {
  if (!which('dockerd') || !which('containerd')) {
    if (!o.install) throw new Error('dockerd/containerd missing: run bench/setup-docker.sh (apt-get install -y docker.io)');
    log('dockerd missing: running bench/setup-docker.sh');
    const r = spawnSync('bash', [setupScript], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('bench/setup-docker.sh failed');
  }
  const dir = path.join(tmp, 'docker');
  const dataRoot = path.join(dir, 'data');
  const execRoot = path.join(dir, 'exec');
  const socket = path.join(dir, 'docker.sock');
  const pidfile = path.join(dir, 'dockerd.pid');
  const configFile = path.join(dir, 'daemon.json');
  const logFile = path.join(dir, 'dockerd.log');
  const cgroupParent = `/${path.basename(tmp)}-docker`;
  mkdirSync(dataRoot, { recursive: true });
  mkdirSync(execRoot, { recursive: true });
  // dockerd 20.10 would otherwise create /etc/docker/key.json (its deprecated trust key).
  writeFileSync(configFile, JSON.stringify({ 'deprecated-key-path': path.join(dir, 'key.json') }) + '\n');

  // The default network: a private bridge of our own with no iptables, NAT or forwarding, so a
  // container on it reaches nothing but the bridge. `--network none` is what both engines compare.
  let bridge = 'none';
  if (o.defaultNetwork) {
    bridge = `bb${process.pid.toString(36).slice(-5)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 15);
    const subnet = freeSubnet();
    const ip = (args: string[]) => {
      const r = spawnSync('ip', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
    };
    ip(['link', 'add', 'name', bridge, 'type', 'bridge']);
    const br = bridge;
    onCleanup('bridge', () => spawnSync('ip', ['link', 'del', br], { stdio: 'ignore' }));
    ip(['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    ip(['link', 'set', bridge, 'up']);
  }

  const args = [
    '--data-root', dataRoot,
    '--exec-root', execRoot,
    '--pidfile', pidfile,
    '-H', `unix://${socket}`,
    '--config-file', configFile,
    '--bridge', bridge,
    '--iptables=false',
    '--ip-masq=false',
    '--ip-forward=false',
    '--userland-proxy=false',
    '--cgroup-parent', cgroupParent,
    '--storage-driver', 'overlay2',
    '--log-level', 'warn',
    ...(o.extraArgs ?? []),
  ];
  const logFd = openSync(logFile, 'a');
  const t0 = process.hrtime.bigint();
  let proc: ChildProcess;
  try {
    proc = spawn(which('dockerd')!, args, { detached: true, stdio: ['ignore', logFd, logFd], env: settings.baseEnv });
  } finally {
    closeSync(logFd);
  }
  proc.unref();
  const pid = proc.pid;

  onCleanup('docker', () => {
    const env = { ...settings.baseEnv, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(tmp, 'docker-client-config') };
    if (alive(pid)) {
      const ids = spawnSync(dockerCli, ['ps', '-aq'], { env, encoding: 'utf8', timeout: 20_000 }).stdout?.split('\n').filter(Boolean) ?? [];
      for (let i = 0; i < ids.length; i += 50)
        spawnSync(dockerCli, ['rm', '-f', ...ids.slice(i, i + 50)], { env, stdio: 'ignore', timeout: 120_000 });
    }
    stopProcess(pid, 30_000);
    // Whatever survived: shims and containerd of this exec root, container processes, mounts.
    killMatching(execRoot, /^containerd/);
    runcCleanup(path.join(execRoot, 'runtime-runc', 'moby'));
    removeCgroupTree(cgroupParent);
    umountUnder(dir);
  });

  const engine: Engine = {
    name: 'docker',
    socket,
    daemonPid: () => pid,
    monitorPids: () =>
      [...processTable()].filter(([, p]) => p.comm.startsWith('containerd-shim') && p.cmdline.includes(execRoot)).map(([id]) => id),
    startupMs: 0,
    logFile,
    version: '',
  };
  try {
    await waitForPing(socket, () => pid, 'dockerd', 60_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- ${logFile} ---\n${tail(logFile)}`);
  }
  engine.startupMs = Number(process.hrtime.bigint() - t0) / 1e6;
  try {
    const v = JSON.parse((await apiGet(socket, '/version')).body) as { Version?: string; ApiVersion?: string };
    engine.version = `dockerd ${v.Version} (API ${v.ApiVersion})`;
  } catch {
    engine.version = 'dockerd ?';
  }
  return engine;
}

/** The bridge, subnets and iptables chain prefix a bench baleiad owns (and the bench removes). */
export interface BaleiaNetwork {
  bridge: string;
  subnet: string;
  pool: string;
  chainPrefix: string;
}

/**
 * Starts a baleiad on its own root, socket and network: a bridge, subnets, bridge-name prefix
 * and iptables chain prefix of its own (never the default baleia0/BALEIA-*), removed after it
 * stops even when it leaves them; `onNetworkCleanup` hears what was left and removed.
 */
export async function startBaleia(
  tmp: string,
  extraArgs: string[] = [],
  opts: { taken?: Set<string>; onNetworkCleanup?: (note: string) => void } = {},
): Promise<Engine> {
  const tag = randomBytes(3).toString('hex');
  const taken = opts.taken ?? new Set<string>();
  const network: BaleiaNetwork = { bridge: `bn${tag}`, subnet: pickSubnet(taken), pool: pickSubnet(taken), chainPrefix: `BN${tag.toUpperCase()}` };
  const bridgePrefix = `bo${tag}-`;
  // Registered before the daemon's own cleanup, so it runs after baleiad has been stopped.
  onCleanup('baleia network', () => {
    const left = bridges().filter((b) => b === network.bridge || b.startsWith(bridgePrefix));
    for (const b of left) spawnSync('ip', ['link', 'del', b], { stdio: 'ignore' });
    const found = removeIptables((c) => c.startsWith(`${network.chainPrefix}-`), left);
    opts.onNetworkCleanup?.(
      `baleiad (stopped with SIGTERM) left ${found.chains.length} chains${found.chains.length ? ` (${found.chains.join(' ')})` : ''}, ${found.rules.length} jump rules and ${left.length} bridges${left.length ? ` (${left.join(' ')})` : ''}: removed by the bench`,
    );
  });
  extraArgs = [
    '--bridge-name', network.bridge, '--bridge-prefix', bridgePrefix, '--iptables-chain-prefix', network.chainPrefix,
    '--bridge-subnet', network.subnet, '--default-address-pool', network.pool, ...extraArgs,
  ];
  if (!existsSync(daemonMain) || !existsSync(cliMain))
    throw new Error(`baleia is not built (${path.relative(repoRoot, daemonMain)} / ${path.relative(repoRoot, cliMain)} missing): npm run build`);
  // Short paths: conmon's attach sockets live under the exec root and a unix socket path has at
  // most 107 bytes, so /tmp/bb-XXXXXX/b/r leaves room for containers/<64 hex>/attach.
  const dir = path.join(tmp, 'b');
  const root = path.join(dir, 'root');
  const execRoot = path.join(dir, 'r');
  const socket = path.join(dir, 'baleia.sock');
  const logFile = path.join(dir, 'baleiad.log');
  mkdirSync(dir, { recursive: true });
  const logFd = openSync(logFile, 'a');
  const t0 = process.hrtime.bigint();
  let proc: ChildProcess;
  try {
    proc = spawn(process.execPath, [...daemonNodeFlags, daemonMain, '--root', root, '--exec-root', execRoot, '-H', `unix://${socket}`, '--log-level', 'warn', ...extraArgs], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: settings.baseEnv,
    });
  } finally {
    closeSync(logFd);
  }
  proc.unref();
  const pid = proc.pid;

  onCleanup('baleia', () => {
    const env = { ...settings.baseEnv, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(tmp, 'docker-client-config') };
    if (alive(pid)) {
      const ids = spawnSync(dockerCli, ['ps', '-aq'], { env, encoding: 'utf8', timeout: 20_000 }).stdout?.split('\n').filter(Boolean) ?? [];
      for (let i = 0; i < ids.length; i += 50)
        spawnSync(dockerCli, ['rm', '-f', ...ids.slice(i, i + 50)], { env, stdio: 'ignore', timeout: 120_000 });
    }
    stopProcess(pid, 15_000);
    // Containers outlive baleiad: their conmons, runc state, cgroups and mounts go explicitly.
    killMatching(dir, /conmon/);
    runcCleanup(path.join(execRoot, 'runc'));
    const containers = path.join(root, 'containers');
    for (const id of existsSync(containers) ? readdirSync(containers) : []) removeCgroupTree(path.join('baleia', id));
    umountUnder(dir);
  });

  const engine: Engine = {
    name: 'baleia',
    socket,
    daemonPid: () => pid,
    monitorPids: () => [...processTable()].filter(([, p]) => p.comm === 'conmon' && p.cmdline.includes(dir)).map(([id]) => id),
    startupMs: 0,
    logFile,
    version: '',
    network,
  };
  try {
    await waitForPing(socket, () => pid, 'baleiad', 30_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- ${logFile} ---\n${tail(logFile)}`);
  }
  engine.startupMs = Number(process.hrtime.bigint() - t0) / 1e6;
  try {
    const v = JSON.parse((await apiGet(socket, '/version')).body) as { Version?: string; ApiVersion?: string };
    engine.version = `baleiad ${v.Version} (API ${v.ApiVersion})`;
  } catch {
    engine.version = 'baleiad ?';
  }
  return engine;
}

export function tail(file: string, bytes = 2500): string {
  try {
    const s = readFileSync(file, 'utf8');
    return s.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------
// Memory

export function vmRssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export const monitorComm = /^(conmon|containerd-shim|runc)/;

/** RSS (kB) of a daemon and its descendants, leaving out per-container monitors and what runs under them. */
export function daemonRss(rootPid: number | undefined): { kb: number; parts: string[] } {
  if (!rootPid || !alive(rootPid)) return { kb: 0, parts: [] };
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [pid, p] of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
  const parts: string[] = [];
  let kb = 0;
  const visit = (pid: number) => {
    const p = table.get(pid);
    if (!p || monitorComm.test(p.comm)) return;
    const rss = vmRssKb(pid);
    kb += rss;
    parts.push(`${p.comm} ${(rss / 1024).toFixed(1)}`);
    for (const c of children.get(pid) ?? []) visit(c);
  };
  visit(rootPid);
  return { kb, parts };
}

export function quantile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  if (!s.length) return NaN;
  if (q === 0.5) {
    const mid = Math.floor(s.length / 2);
    return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  }
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!; // nearest rank
}

export const fmtMs = (n: number) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) : '—');

// ---------------------------------------------------------------------------------------------
// Command-line flags shared by the benchmarks

/** Walks `--flag value`, `--flag=value` and bare flags; `value()` takes the flag's value on demand. */
export function eachFlag(argv: string[], handle: (flag: string, value: () => string | undefined) => void): void {
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i]!;
    let inline: string | undefined;
    if (flag.startsWith('--') && flag.includes('=')) {
      inline = flag.slice(flag.indexOf('=') + 1);
      flag = flag.slice(0, flag.indexOf('='));
    }
    handle(flag, () => inline ?? argv[++i]);
  }
}

export function intFlag(flag: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

/** A comma-separated choice among `allowed`, at least one. */
export function listFlag<T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): Set<T> {
  const list = (v ?? '').split(',').filter(Boolean);
  if (!list.length || list.some((x) => !allowed.includes(x as T))) throw new Error(`${flag} takes ${allowed.join(',')}`);
  return new Set(list as T[]);
}

// ---------------------------------------------------------------------------------------------
// Host network state: subnets, bridges, iptables chains

/** A free /24 (10.220–229.y.0) no route or address uses and not in `taken`. */
export function pickSubnet(taken: Set<string>): string {
  const used =
    spawnSync('ip', ['-4', '-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout +
    spawnSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }).stdout;
  for (let tries = 0; tries < 500; tries++) {
    const prefix = `10.${220 + Math.floor(Math.random() * 10)}.${1 + Math.floor(Math.random() * 250)}`;
    if (!used.includes(`${prefix}.`) && !taken.has(prefix)) {
      taken.add(prefix);
      return `${prefix}.0/24`;
    }
  }
  throw new Error('no free 10.22x.y.0/24 subnet');
}

export const tables = ['filter', 'nat'] as const;
export type Table = (typeof tables)[number];

export function iptablesRules(table: Table): string[] {
  const r = spawnSync('iptables', ['-w', '-t', table, '-S'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter(Boolean);
}
export const chainsOf = (rules: string[]) => rules.filter((r) => r.startsWith('-N ')).map((r) => r.slice(3).trim());

export function bridges(): string[] {
  const out = spawnSync('ip', ['-o', 'link', 'show', 'type', 'bridge'], { encoding: 'utf8' }).stdout ?? '';
  return out
    .split('\n')
    .map((l) => l.split(':')[1]?.trim().split('@')[0])
    .filter((n): n is string => !!n);
}

/**
 * Removes chains matching `ownChain` (and every jump into them from other chains), plus rules in
 * other chains that name one of `bridgeNames` as -i/-o. Returns what it found.
 */
export function removeIptables(ownChain: (c: string) => boolean, bridgeNames: string[]): { chains: string[]; rules: string[] } {
  const found = { chains: [] as string[], rules: [] as string[] };
  for (const table of tables) {
    const rules = iptablesRules(table);
    const chains = chainsOf(rules).filter(ownChain);
    for (const rule of rules) {
      if (!rule.startsWith('-A ')) continue;
      const chain = rule.split(' ')[1]!;
      if (ownChain(chain)) continue;
      const words = rule.split(' ');
      const jumpsToOurs = words.some((w, i) => (words[i - 1] === '-j' || words[i - 1] === '-g') && ownChain(w));
      const namesBridge = words.some((w, i) => (words[i - 1] === '-i' || words[i - 1] === '-o') && bridgeNames.includes(w));
      if (!jumpsToOurs && !namesBridge) continue;
      found.rules.push(`${table}: ${rule}`);
      spawnSync('iptables', ['-w', '-t', table, '-D', ...rule.slice(3).split(' ')], { stdio: 'ignore' });
    }
    for (const c of chains) {
      found.chains.push(`${table}/${c}`);
      spawnSync('iptables', ['-w', '-t', table, '-F', c], { stdio: 'ignore' });
    }
    for (const c of chains) spawnSync('iptables', ['-w', '-t', table, '-X', c], { stdio: 'ignore' });
  }
  return found;
}
