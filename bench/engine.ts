/**
 * bench/engine.ts — baleia vs Docker's engine on this machine, side by side, in one run.
 *
 *   npm run build && node dist/bench/engine.js --iterations 20
 *
 * Starts a reference dockerd (Debian docker.io 20.10 + its managed containerd) and a baleiad, each
 * on its own temporary data root, exec root and socket; puts the same busybox image into both
 * (bootstrapped by baleia, `save`d, `docker load`ed); then times the same operations through the
 * same client (the real docker CLI) against both engines, and through baleia's own CLI too.
 * Prints medians, p90s and baleia/docker ratios. Everything it made is removed at the end, also
 * on failure and Ctrl-C: daemons, conmon/shim processes, container cgroups, mounts, temp dirs,
 * the bridge. No traffic leaves 127.0.0.0/8 and the containers' own (none/local bridge) networks;
 * nothing is pulled. Targets are reported, never asserted. See bench/README.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  iterations: number;
  warmup: number;
  psContainers: number;
  psState: 'running' | 'created';
  engines: Set<EngineName>;
  clients: Set<ClientName>;
  defaultNetwork: boolean;
  ops: Set<string>;
  install: boolean;
  verbose: boolean;
  timeoutMs: number;
}

type EngineName = 'baleia' | 'docker';
type ClientName = 'docker' | 'baleia';
const allOps = ['run', 'create', 'exec', 'ps'];

const usage = `usage: node dist/bench/engine.js [options]

  --iterations N        timed samples per operation and engine/client pair (default 20)
  --warmup N            untimed samples before those (default 2)
  --ps-containers N     containers present while timing ps (default 100)
  --ps-state S          running (busybox sleep 600, default) or created
  --engines LIST        baleia,docker (default both; one alone prints no ratios)
  --clients LIST        docker,baleia (default both: the docker CLI and baleia's CLI)
  --ops LIST            run,create,exec,ps (default all; idle memory is always measured)
  --no-default-network  skip timing docker's default bridge network
  --no-install          fail instead of running bench/setup-docker.sh when dockerd is missing
  --timeout SECONDS     per timed command (default 30; a command killed at the timeout fails its pair)
  --verbose             print every command and failure as it happens
`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    iterations: 20,
    warmup: 2,
    psContainers: 100,
    psState: 'running',
    engines: new Set(['baleia', 'docker']),
    clients: new Set(['docker', 'baleia']),
    defaultNetwork: true,
    ops: new Set(allOps),
    install: true,
    verbose: false,
    timeoutMs: 30_000,
  };
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i]!;
    let inline: string | undefined;
    if (flag.startsWith('--') && flag.includes('=')) {
      inline = flag.slice(flag.indexOf('=') + 1);
      flag = flag.slice(0, flag.indexOf('='));
    }
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--iterations':
      case '-n':
        o.iterations = int(flag, value(), 1);
        break;
      case '--warmup':
        o.warmup = int(flag, value(), 0);
        break;
      case '--ps-containers':
        o.psContainers = int(flag, value(), 0);
        break;
      case '--ps-state': {
        const v = value();
        if (v !== 'running' && v !== 'created') throw new Error('--ps-state is running or created');
        o.psState = v;
        break;
      }
      case '--engines':
      case '--clients': {
        const list = (value() ?? '').split(',').filter(Boolean);
        if (!list.length || list.some((x) => x !== 'baleia' && x !== 'docker')) throw new Error(`${flag} takes baleia,docker`);
        if (flag === '--engines') o.engines = new Set(list as EngineName[]);
        else o.clients = new Set(list as ClientName[]);
        break;
      }
      case '--ops': {
        const list = (value() ?? '').split(',').filter(Boolean);
        if (!list.length || list.some((x) => !allOps.includes(x))) throw new Error(`--ops takes a list of ${allOps.join(',')}`);
        o.ops = new Set(list);
        break;
      }
      case '--no-default-network':
        o.defaultNetwork = false;
        break;
      case '--no-install':
        o.install = false;
        break;
      case '--timeout':
        o.timeoutMs = int(flag, value(), 1) * 1000;
        break;
      case '--verbose':
      case '-v':
        o.verbose = true;
        break;
      case '--help':
      case '-h':
        process.stdout.write(usage);
        process.exit(0);
      // falls through (never reached)
      default:
        throw new Error(`unknown flag ${flag}\n${usage}`);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Paths and small helpers

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const cliMain = path.join(repoRoot, 'dist/src/cli/main.js');
const daemonMain = path.join(repoRoot, 'dist/src/daemon.js');
const dockerCli = '/usr/local/bin/docker';
const setupScript = path.join(repoRoot, 'bench/setup-docker.sh');

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const alive = (pid: number | undefined): boolean => {
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
const firstLine = (s: string) => {
  const lines = s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const named = lines.find((l) => /^(\w*Error|error)\b|Error:|Error response/.test(l));
  return (named ?? lines.slice(-3).join(' | ')).slice(0, 300);
};

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: synchronous steps, run in reverse order exactly once (normal end, error, signal, exit)

const cleanups: Array<{ what: string; fn: () => void }> = [];
let cleaning = false;
function onCleanup(what: string, fn: () => void): void {
  cleanups.push({ what, fn });
}
function runCleanups(): void {
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
function processTable(): Map<number, { ppid: number; comm: string; cmdline: string }> {
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
function killMatching(marker: string, comm: RegExp, signal: NodeJS.Signals = 'SIGKILL'): number {
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

function stopProcess(pid: number | undefined, graceMs: number): void {
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

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Lazily unmounts every mount at or below `dir`, deepest first. */
function umountUnder(dir: string): number {
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
function removeCgroupTree(relative: string): void {
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

function runcCleanup(runcRoot: string): void {
  if (!existsSync(runcRoot)) return;
  for (const id of readdirSync(runcRoot)) {
    spawnSync('runc', ['--root', runcRoot, 'kill', id, 'KILL'], { stdio: 'ignore', timeout: 10_000 });
    spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id], { stdio: 'ignore', timeout: 10_000 });
  }
}

// ---------------------------------------------------------------------------------------------
// Running commands

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

let baseEnv: NodeJS.ProcessEnv = {};
let verbose = false;
let commandTimeoutMs = 60_000;

function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = commandTimeoutMs): Promise<RunResult> {
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
      if (verbose) log(`${ms.toFixed(0).padStart(6)} ms  rc=${code}  ${path.basename(command)} ${args.join(' ')}${code ? `  ${firstLine(r.stderr)}` : ''}`);
      resolve(r);
    };
    child.on('error', (e) => done(-1, e.message));
    child.on('close', (code, signal) => done(code ?? (signal === 'SIGKILL' ? 137 : -1), signal === 'SIGKILL' ? ' (killed: timeout)' : ''));
  });
}

/** Raw Engine API call over a unix socket (readiness probe, version info). */
function apiGet(socket: string, urlPath: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
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

async function waitForPing(socket: string, pid: () => number | undefined, what: string, timeoutMs: number): Promise<void> {
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

interface Engine {
  name: EngineName;
  socket: string;
  /** The daemon process(es) whose memory counts (plus descendants minus per-container monitors). */
  daemonPid(): number | undefined;
  /** Per-container monitor processes (conmon / containerd-shim) of this engine. */
  monitorPids(): number[];
  startupMs: number;
  logFile: string;
  version: string;
}

interface Client {
  name: ClientName;
  label: string;
  command: string;
  prefix: string[];
  env(engine: Engine): NodeJS.ProcessEnv;
}

function makeClients(tmp: string): Record<ClientName, Client> {
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
      env: (e) => ({ ...baseEnv, DOCKER_HOST: `unix://${e.socket}`, DOCKER_CONFIG: dockerConfig, DOCKER_CLI_HINTS: 'false' }),
    },
    baleia: {
      name: 'baleia',
      label: 'baleia CLI',
      command: process.execPath,
      prefix: [cliMain],
      env: (e) => ({ ...baseEnv, BALEIA_HOST: `unix://${e.socket}`, BALEIA_CONFIG: baleiaConfig }),
    },
  };
}

function cli(client: Client, engine: Engine, args: string[], timeoutMs?: number): Promise<RunResult> {
  return runCommand(client.command, [...client.prefix, ...args], client.env(engine), timeoutMs);
}

async function mustCli(client: Client, engine: Engine, args: string[], timeoutMs?: number): Promise<RunResult> {
  const r = await cli(client, engine, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${client.label} → ${engine.name}: \`${args.join(' ')}\` exited ${r.code}: ${firstLine(r.stderr || r.stdout)}`);
  return r;
}

/** A /24 in 10.0.0.0/8 that no local address or route uses, for docker's private bridge. */
function freeSubnet(): string {
  const used = spawnSync('ip', ['-4', '-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout +
    spawnSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }).stdout;
  for (let tries = 0; tries < 200; tries++) {
    const b = 200 + Math.floor(Math.random() * 50);
    const c = Math.floor(Math.random() * 250) + 1;
    if (!used.includes(`10.${b}.${c}.`)) return `10.${b}.${c}`;
  }
  throw new Error('no free 10.x.y.0/24 subnet for the bench bridge');
}

async function startDocker(tmp: string, o: Options): Promise<Engine> {
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
  ];
  const logFd = openSync(logFile, 'a');
  const t0 = process.hrtime.bigint();
  let proc: ChildProcess;
  try {
    proc = spawn(which('dockerd')!, args, { detached: true, stdio: ['ignore', logFd, logFd], env: baseEnv });
  } finally {
    closeSync(logFd);
  }
  proc.unref();
  const pid = proc.pid;

  onCleanup('docker', () => {
    const env = { ...baseEnv, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(tmp, 'docker-client-config') };
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

async function startBaleia(tmp: string): Promise<Engine> {
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
    proc = spawn(process.execPath, [daemonMain, '--root', root, '--exec-root', execRoot, '-H', `unix://${socket}`, '--log-level', 'warn'], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: baseEnv,
    });
  } finally {
    closeSync(logFd);
  }
  proc.unref();
  const pid = proc.pid;

  onCleanup('baleia', () => {
    const env = { ...baseEnv, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: path.join(tmp, 'docker-client-config') };
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

function tail(file: string, bytes = 2500): string {
  try {
    const s = readFileSync(file, 'utf8');
    return s.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------
// Memory

function vmRssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

const monitorComm = /^(conmon|containerd-shim|runc)/;

/** RSS (kB) of a daemon and its descendants, leaving out per-container monitors and what runs under them. */
function daemonRss(rootPid: number | undefined): { kb: number; parts: string[] } {
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

// ---------------------------------------------------------------------------------------------
// Statistics and results

interface Series {
  samples: number[];
  error?: string;
}

const results = new Map<string, Series>(); // key: `${op}|${client}|${engine}`
const info: Array<[string, string]> = [];
const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ');
const failures: string[] = [];

function series(op: string, client: ClientName, engine: EngineName): Series {
  const key = `${op}|${client}|${engine}`;
  let s = results.get(key);
  if (!s) results.set(key, (s = { samples: [] }));
  return s;
}

function quantile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  if (!s.length) return NaN;
  if (q === 0.5) {
    const mid = Math.floor(s.length / 2);
    return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  }
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!; // nearest rank
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

interface Variant {
  client: Client;
  engine: Engine;
}

/**
 * Times `sample` for every variant, interleaved (one sample of each in turn, so drift hits all
 * alike), after `warmup` untimed rounds. A variant that fails once is dropped for this operation.
 */
async function measure(
  op: string,
  variants: Variant[],
  o: Options,
  sample: (v: Variant) => Promise<number | Record<string, number>>,
): Promise<void> {
  log(`${op}: ${o.warmup} warm-up + ${o.iterations} timed rounds × ${variants.length} engine/client pairs`);
  const dead = new Set<Variant>();
  for (let i = 0; i < o.warmup + o.iterations; i++) {
    for (const v of variants) {
      if (dead.has(v)) continue;
      try {
        const t = await sample(v);
        if (i < o.warmup) continue;
        const parts = typeof t === 'number' ? { [op]: t } : t;
        for (const [name, ms] of Object.entries(parts)) series(name, v.client.name, v.engine.name).samples.push(ms);
      } catch (err) {
        dead.add(v);
        const msg = (err as Error).message;
        series(op, v.client.name, v.engine.name).error = msg;
        failures.push(`${op} [${v.client.label} → ${v.engine.name}]: ${msg}`);
        log(`FAILED ${op} [${v.client.label} → ${v.engine.name}]: ${msg}`);
      }
    }
  }
}

function timed(r: RunResult, what: string): number {
  if (r.code !== 0) throw new Error(`\`${what}\` exited ${r.code}: ${firstLine(r.stderr || r.stdout)}`);
  return r.ms;
}

async function removeAll(engine: Engine, dockerClient: Client, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 50) await cli(dockerClient, engine, ['rm', '-f', ...ids.slice(i, i + 50)], 180_000);
}

/** Starts (or creates) `n` busybox containers with a few commands in flight; returns their ids. */
async function populate(engine: Engine, dockerClient: Client, n: number, state: 'running' | 'created'): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  let error: Error | undefined;
  const worker = async () => {
    while (!error && next < n) {
      next++;
      const args = state === 'running' ? ['run', '-d', '--network', 'none', 'busybox', 'sleep', '600'] : ['create', '--network', 'none', 'busybox', 'sleep', '600'];
      const r = await cli(dockerClient, engine, args, 120_000);
      const id = r.stdout.trim().split('\n').pop() ?? '';
      if (id) ids.push(id);
      if (r.code !== 0) error = new Error(`\`${args.join(' ')}\` exited ${r.code}: ${firstLine(r.stderr)}`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  if (error) {
    await removeAll(engine, dockerClient, ids);
    throw error;
  }
  return ids;
}

/** Gets the same busybox:latest into every engine; returns a note on where it came from. */
async function loadImages(tmp: string, engines: Engine[], clients: Record<ClientName, Client>): Promise<void> {
  const baleia = engines.find((e) => e.name === 'baleia');
  const docker = engines.find((e) => e.name === 'docker');
  const tarFile = path.join(tmp, 'busybox.tar');
  let haveTar = false;
  if (baleia) {
    await mustCli(clients.baleia, baleia, ['image', 'bootstrap', 'busybox'], 180_000);
    await mustCli(clients.baleia, baleia, ['save', '-o', tarFile, 'busybox:latest'], 120_000);
    haveTar = existsSync(tarFile) && statSync(tarFile).size > 0;
    if (!haveTar) throw new Error(`baleia save -o ${tarFile} busybox:latest wrote nothing`);
  }
  if (docker) {
    if (haveTar) {
      await mustCli(clients.docker, docker, ['load', '-i', tarFile], 120_000);
      info.push(['image', `busybox:latest bootstrapped by baleia from /bin/busybox, saved (${(statSync(tarFile).size / 1e6).toFixed(1)} MB) and docker-loaded`]);
    } else {
      // baleia is not in this run: import the same host busybox into docker directly.
      const rootfs = path.join(tmp, 'rootfs');
      mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
      copyFileSync(which('busybox') ?? '/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
      for (const applet of ['sh', 'true', 'sleep', 'ls', 'cat']) symlinkSync('busybox', path.join(rootfs, 'bin', applet));
      const rootTar = path.join(tmp, 'rootfs.tar');
      const t = spawnSync('tar', ['-C', rootfs, '--numeric-owner', '-cf', rootTar, '.']);
      if (t.status !== 0) throw new Error('tar of the busybox rootfs failed');
      await mustCli(clients.docker, docker, ['import', '--change', 'CMD ["sh"]', rootTar, 'busybox:latest']);
      info.push(['image', 'busybox:latest imported into docker from the host /bin/busybox (baleia not in this run)']);
    }
  }
  const ids: string[] = [];
  for (const e of engines) {
    const r = await cli(clients.docker, e, ['image', 'inspect', '--format', '{{.Id}}', 'busybox:latest']);
    ids.push(`${e.name} ${r.code === 0 ? r.stdout.trim().slice(0, 19) : `? (${firstLine(r.stderr)})`}`);
  }
  info.push(['image ids', ids.join(', ')]);
}

// ---------------------------------------------------------------------------------------------
// Report

const fmtMs = (n: number) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) : '—');

function printReport(o: Options, engines: Engine[], memory: Array<[string, number, number, string]>): void {
  const out: string[] = [];
  const w = (s = '') => out.push(s);
  w();
  w(`baleia vs docker — ${new Date().toISOString()} — ${os.hostname()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}`);
  w(`  load average at start ${loadAtStart}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine adds noise)`);
  for (const e of engines) w(`  ${e.version}; ready in ${fmtMs(e.startupMs)} ms after spawn`);
  for (const [k, v] of info) w(`  ${k}: ${v}`);
  w(`  ${o.iterations} timed samples per cell (after ${o.warmup} warm-up), interleaved; milliseconds, wall clock of the whole client command; ratio = baleia / docker medians`);
  w();
  const ops = [...new Set([...results.keys()].map((k) => k.split('|')[0]!))];
  const header = ['operation', 'client', 'baleia med', 'p90', 'docker med', 'p90', 'ratio'];
  const rows: string[][] = [];
  const pairs: Array<[string, ClientName, ClientName]> = [
    ['docker CLI', 'docker', 'docker'],
    ['baleia CLI', 'baleia', 'baleia'],
    ['own CLI', 'baleia', 'docker'],
  ];
  for (const op of ops) {
    for (const [label, bc, dc] of pairs) {
      if (label === 'own CLI' && !(o.clients.has('baleia') && o.clients.has('docker'))) continue;
      const b = results.get(`${op}|${bc}|baleia`);
      const d = results.get(`${op}|${dc}|docker`);
      if (!b && !d) continue;
      if (label === 'own CLI' && (!b || !d)) continue;
      const cell = (s: Series | undefined): [string, string] =>
        !s ? ['', ''] : s.samples.length ? [fmtMs(quantile(s.samples, 0.5)), fmtMs(quantile(s.samples, 0.9))] : ['FAILED', ''];
      const bm = b?.samples.length ? quantile(b.samples, 0.5) : NaN;
      const dm = d?.samples.length ? quantile(d.samples, 0.5) : NaN;
      const ratio = Number.isFinite(bm) && Number.isFinite(dm) && dm > 0 ? `${(bm / dm).toFixed(2)}×` : '—';
      rows.push([op, label, ...cell(b), ...cell(d), ratio]);
    }
  }
  for (const [what, bkb, dkb, note] of memory) {
    const ratio = bkb > 0 && dkb > 0 ? `${(bkb / dkb).toFixed(2)}×` : '—';
    const mb = (kb: number) => (kb > 0 ? `${(kb / 1024).toFixed(1)} MB` : '—');
    rows.push([what, note, mb(bkb), '', mb(dkb), '', ratio]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  w(line(header));
  w(widths.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) w(line(r));
  w();

  // Targets (reported, not asserted).
  const med = (op: string, c: ClientName, e: EngineName) => {
    const s = results.get(`${op}|${c}|${e}`);
    return s?.samples.length ? quantile(s.samples, 0.5) : NaN;
  };
  const runOp = 'run --rm true';
  const fair = med(runOp, 'docker', 'baleia') / med(runOp, 'docker', 'docker');
  const own = med(runOp, 'baleia', 'baleia') / med(runOp, 'docker', 'docker');
  const verdict = (r: number, max: number) => (Number.isFinite(r) ? `${r.toFixed(2)}× — ${r <= max ? 'MET' : 'NOT MET'}` : 'not measured');
  w(`target: run --rm … true at most 1/3 of docker's median: docker CLI on both ${verdict(fair, 1 / 3)}; own CLIs ${verdict(own, 1 / 3)}`);
  const idle = memory.find((m) => m[0] === 'idle memory (after load)');
  w(`target: baleiad idle memory below dockerd+containerd: ${idle && idle[1] > 0 && idle[2] > 0 ? `${(idle[1] / 1024).toFixed(1)} MB vs ${(idle[2] / 1024).toFixed(1)} MB — ${idle[1] < idle[2] ? 'MET' : 'NOT MET'}` : 'not measured'}`);
  const dn = med('run --rm true (default network)', 'docker', 'docker');
  const dnone = med(runOp, 'docker', 'docker');
  if (Number.isFinite(dn) && Number.isFinite(dnone))
    w(`docker's default bridge network costs ${fmtMs(dn - dnone)} ms per run --rm (${fmtMs(dn)} vs ${fmtMs(dnone)} ms with --network none; private bridge, no iptables)`);
  if (failures.length) {
    w();
    w('failures (first error of each dropped engine/client pair):');
    for (const f of failures) w(`  - ${f}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  verbose = o.verbose;
  commandTimeoutMs = o.timeoutMs;
  if (process.getuid?.() !== 0) throw new Error('run as root: both engines need it');
  if (!existsSync(dockerCli)) throw new Error(`${dockerCli} (the docker CLI) is missing`);
  baseEnv = { ...process.env };
  for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'BALEIA_HOST', 'BALEIA_CONFIG', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'])
    delete baseEnv[k];

  const tmp = mkdtempSync('/tmp/bb-');
  onCleanup('temp dir', () => {
    umountUnder(tmp);
    rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  });
  log(`working under ${tmp}`);
  const clients = makeClients(tmp);

  const engines: Engine[] = [];
  if (o.engines.has('docker')) {
    log('starting reference dockerd');
    engines.push(await startDocker(tmp, o));
  }
  if (o.engines.has('baleia')) {
    log('starting baleiad');
    try {
      engines.push(await startBaleia(tmp));
    } catch (err) {
      failures.push(`baleiad: ${(err as Error).message}`);
      log(`baleiad unavailable: ${(err as Error).message}`);
    }
  }
  try {
    await loadImages(tmp, engines, clients);
  } catch (err) {
    const b = engines.findIndex((e) => e.name === 'baleia');
    if (b < 0) throw err;
    // baleia could not provide the image: drop it and carry on with docker alone.
    failures.push(`image (baleia): ${(err as Error).message}`);
    log(`baleia image failed, continuing with docker only: ${(err as Error).message}`);
    engines.splice(b, 1);
    if (!engines.length) throw err;
    await loadImages(tmp, engines, clients);
  }
  const byName = (n: EngineName) => engines.find((e) => e.name === n);
  const memory: Array<[string, number, number, string]> = [];
  const memRow = (what: string, note: string) => {
    const b = byName('baleia');
    const d = byName('docker');
    const bm = daemonRss(b?.daemonPid());
    const dm = daemonRss(d?.daemonPid());
    memory.push([what, bm.kb, dm.kb, note]);
    info.push([`${what} parts (MB)`, `baleia: ${bm.parts.join(' + ') || '—'}; docker: ${dm.parts.join(' + ') || '—'}`]);
  };
  await sleep(2000);
  memRow('idle memory (after load)', 'VmRSS sum');

  // What a client costs before it talks to any engine: explains most of the "own CLI" rows.
  {
    const startup: Array<[string, string, string[]]> = [
      ['docker --version', dockerCli, ['--version']],
      ['baleia --version', process.execPath, [cliMain, '--version']],
      ['node -e 0', process.execPath, ['-e', '0']],
    ];
    const times = startup.map(() => [] as number[]);
    for (let i = 0; i < o.warmup + o.iterations; i++)
      for (const [k, [, cmd, args]] of startup.entries()) {
        const r = await runCommand(cmd, args, baseEnv);
        if (i >= o.warmup && r.code === 0) times[k]!.push(r.ms);
      }
    info.push(['client start-up, no daemon (median ms)', startup.map(([name], k) => `${name} ${fmtMs(quantile(times[k]!, 0.5))}`).join(', ')]);
  }

  const variants: Variant[] = [];
  for (const c of ['docker', 'baleia'] as const) {
    if (!o.clients.has(c)) continue;
    for (const e of engines) variants.push({ client: clients[c], engine: e });
  }

  // 1. run --rm … true, end to end. On docker, the same on its default (bridge) network in the
  //    same round, so the difference is what that network costs (baleia's is not timed here).
  const docker = byName('docker');
  const netFailed = new Set<Variant>();
  if (o.ops.has('run'))
    await measure('run --rm true', variants, o, async (v) => {
      const none = timed(await cli(v.client, v.engine, ['run', '--rm', '--network', 'none', 'busybox', 'true']), 'run --rm --network none busybox true');
      if (!o.defaultNetwork || v.engine !== docker || netFailed.has(v)) return none;
      const r = await cli(v.client, v.engine, ['run', '--rm', 'busybox', 'true']);
      if (r.code === 0) return { 'run --rm true': none, 'run --rm true (default network)': r.ms };
      netFailed.add(v);
      const msg = `\`run --rm busybox true\` exited ${r.code}: ${firstLine(r.stderr || r.stdout)}`;
      series('run --rm true (default network)', v.client.name, v.engine.name).error = msg;
      failures.push(`run --rm true (default network) [${v.client.label} → docker]: ${msg}`);
      return none;
    });

  // 2. create + start + wait, each a separate client command; the container is removed untimed.
  if (o.ops.has('create')) await measure('create+start+wait', variants, o, async (v) => {
    const c = await cli(v.client, v.engine, ['create', '--network', 'none', 'busybox', 'true']);
    const createMs = timed(c, 'create --network none busybox true');
    const id = c.stdout.trim().split('\n').pop()!;
    try {
      const startMs = timed(await cli(v.client, v.engine, ['start', id]), `start ${id}`);
      const w = await cli(v.client, v.engine, ['wait', id]);
      const waitMs = timed(w, `wait ${id}`);
      if (w.stdout.trim() !== '0') throw new Error(`wait ${id} printed ${JSON.stringify(w.stdout.trim())}, expected 0`);
      return { 'create+start+wait': createMs + startMs + waitMs, '  create': createMs, '  start': startMs, '  wait': waitMs };
    } finally {
      await cli(clients.docker, v.engine, ['rm', '-f', id]);
    }
  });

  // 3. exec true into a running container (one per engine, shared by both clients).
  const execTargets = new Map<Engine, string>();
  for (const e of o.ops.has('exec') ? engines : []) {
    const r = await cli(clients.docker, e, ['run', '-d', '--network', 'none', 'busybox', 'sleep', '600'], 120_000);
    const id = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code === 0 && id) execTargets.set(e, id);
    else {
      if (id) await cli(clients.docker, e, ['rm', '-f', id]);
      const msg = `run -d busybox sleep 600 exited ${r.code}: ${firstLine(r.stderr)}`;
      for (const c of o.clients) series('exec true', c, e.name).error = msg;
      failures.push(`exec true [setup → ${e.name}]: ${msg}`);
    }
  }
  if (execTargets.size) await measure(
    'exec true',
    variants.filter((v) => execTargets.has(v.engine)),
    o,
    async (v) => timed(await cli(v.client, v.engine, ['exec', execTargets.get(v.engine)!, 'true']), 'exec <c> true'),
  );
  for (const [e, id] of execTargets) await cli(clients.docker, e, ['rm', '-f', id]);

  // 4. ps with N containers present (running `sleep 600`, or only created).
  const psOp = `ps (${o.psContainers} ${o.psState})`;
  const populated = new Map<Engine, string[]>();
  for (const e of o.ops.has('ps') ? engines : []) {
    log(`${e.name}: ${o.psState === 'running' ? 'starting' : 'creating'} ${o.psContainers} containers`);
    const t0 = Date.now();
    try {
      populated.set(e, await populate(e, clients.docker, o.psContainers, o.psState));
      info.push([`${e.name}: ${o.psContainers} containers ${o.psState} (4 docker CLI commands in flight) in`, `${((Date.now() - t0) / 1000).toFixed(1)} s`]);
    } catch (err) {
      const msg = `populating: ${(err as Error).message}`;
      for (const c of o.clients) series(psOp, c, e.name).error = msg;
      failures.push(`${psOp} [setup → ${e.name}]: ${msg}`);
    }
  }
  const psArgs = o.psState === 'running' ? ['ps'] : ['ps', '-a'];
  if (populated.size) await measure(
    psOp,
    variants.filter((v) => populated.has(v.engine)),
    o,
    async (v) => {
      const r = await cli(v.client, v.engine, psArgs);
      const ms = timed(r, psArgs.join(' '));
      const lines = r.stdout.trim().split('\n').length - 1;
      if (lines < o.psContainers) throw new Error(`${psArgs.join(' ')} listed ${lines} containers, expected ≥ ${o.psContainers}`);
      return ms;
    },
  );
  if (o.psState === 'running' && populated.size) {
    await sleep(1000);
    memRow(`memory, ${o.psContainers} running`, 'daemons only');
    const b = byName('baleia');
    const d = byName('docker');
    const perMonitor = (e: Engine | undefined) => {
      if (!e || !populated.has(e)) return 0;
      const pids = e.monitorPids();
      return pids.length ? pids.reduce((a, p) => a + vmRssKb(p), 0) / pids.length : 0;
    };
    memory.push(['monitor per container', perMonitor(b), perMonitor(d), 'conmon | shim']);
  }
  for (const [e, ids] of populated) {
    log(`${e.name}: removing ${ids.length} containers`);
    await removeAll(e, clients.docker, ids);
  }
  await sleep(2000);
  memRow('idle memory (after benches)', 'VmRSS sum');

  printReport(o, engines, memory);
}

main().then(
  () => {
    runCleanups();
    process.exit(failures.length ? 2 : 0);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${verbose ? ((err as Error)?.stack ?? err) : ((err as Error)?.message ?? err)}\n`);
    runCleanups();
    process.exit(1);
  },
);
