/**
 * System-test harness: a real baleiad on a temporary root, exec-root and socket, driven by our
 * CLI and by the real docker CLI. `cleanup()` removes everything the run made — containers'
 * conmon and runc state, mounts, cgroups, files — even when the test failed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fs, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
export const cliMain = path.join(repoRoot, 'dist/src/cli/main.js');
export const daemonMain = path.join(repoRoot, 'dist/src/daemon.js');
export const dockerCli = '/usr/local/bin/docker';
export const hasDocker = existsSync(dockerCli);

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Daemon {
  dir: string;
  root: string;
  execRoot: string;
  socket: string;
  host: string;
  process: ChildProcess;
  /** Our CLI against this daemon. */
  cli(args: string[], options?: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  /** The real docker CLI against this daemon. */
  docker(args: string[], options?: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  /** Stops the daemon with SIGTERM (or SIGKILL with `kill: true`) and waits for it. */
  stop(options?: { kill?: boolean }): Promise<void>;
  /** Starts the daemon again on the same root. */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
  logs(): string;
}

export function runCommand(
  command: string,
  args: string[],
  options: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

async function waitForSocket(socket: string, proc: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`baleiad exited with ${proc.exitCode} before listening`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(socket);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`baleiad did not listen on ${socket} within ${timeoutMs} ms`);
}

export async function startDaemon(options: { name?: string } = {}): Promise<Daemon> {
  const dir = await fs.mkdtemp(path.join('/tmp', `baleia-test-${options.name ?? 'sys'}-`));
  const root = path.join(dir, 'root');
  const execRoot = path.join(dir, 'run');
  const socket = path.join(dir, 'baleia.sock');
  const host = `unix://${socket}`;
  const dockerConfig = path.join(dir, 'docker-config');
  await fs.mkdir(dockerConfig, { recursive: true });
  let log = '';
  let proc!: ChildProcess;
  // Each test daemon gets its own bridge, subnets and iptables chains (runs overlap in time).
  const tag = randomBytes(3).toString('hex');
  const net = {
    bridgeName: `bt${tag}`,
    bridgePrefix: `bu${tag}-`,
    chainPrefix: `BT${tag.toUpperCase()}`,
    subnet: `10.${230 + (parseInt(tag.slice(0, 2), 16) % 20)}.${parseInt(tag.slice(2, 4), 16)}.0/24`,
    pool: `10.${250 + (parseInt(tag.slice(0, 2), 16) % 5)}.${parseInt(tag.slice(4, 6), 16) & 0xf0}.0/20`,
  };
  const networkArgs = [
    '--bridge-name', net.bridgeName, '--bridge-prefix', net.bridgePrefix, '--iptables-chain-prefix', net.chainPrefix,
    '--bridge-subnet', net.subnet, '--default-address-pool', net.pool,
  ];
  const launch = async () => {
    proc = spawn(process.execPath, [daemonMain, '--root', root, '--exec-root', execRoot, '-H', host, '--log-level', 'debug', ...networkArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout!.on('data', (b: Buffer) => (log += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    await waitForSocket(socket, proc);
  };
  await launch();
  // Both CLIs keep credentials in the test's own config dir, never in ~/.docker.
  const env: NodeJS.ProcessEnv = { ...process.env, BALEIA_HOST: host, DOCKER_CONFIG: dockerConfig };
  delete env.DOCKER_HOST;
  const daemon: Daemon = {
    dir,
    root,
    execRoot,
    socket,
    host,
    get process() {
      return proc;
    },
    cli: (args, o = {}) => runCommand(process.execPath, [cliMain, ...args], { ...o, env: { ...env, ...o.env } }),
    docker: (args, o = {}) =>
      runCommand(dockerCli, args, { ...o, env: { ...env, DOCKER_HOST: host, ...o.env } }),
    async stop(o = {}) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill(o.kill ? 'SIGKILL' : 'SIGTERM');
      await exited;
    },
    async restart() {
      await launch();
    },
    async cleanup() {
      await daemon.stop({ kill: true }).catch(() => {});
      cleanupRoot({ root, execRoot });
      cleanupNetwork(net);
      // Anything else a test mounted under its directory (another engine's storage).
      for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
    logs: () => log,
  };
  return daemon;
}

/** Removes every trace of the containers of one root: processes, runc state, mounts, cgroups. */
export function cleanupRoot(paths: { root: string; execRoot: string }): void {
  const containersDir = path.join(paths.root, 'containers');
  const ids = existsSync(containersDir) ? readdirSync(containersDir) : [];
  // conmon processes of this exec root.
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.startsWith('conmon') || cmdline.includes('/conmon\0')) {
        if (cmdline.includes(paths.execRoot) || cmdline.includes(paths.root)) process.kill(Number(pid), 'SIGKILL');
      }
    } catch {
      // gone already
    }
  }
  const runcRoot = path.join(paths.execRoot, 'runc');
  for (const id of existsSync(runcRoot) ? readdirSync(runcRoot) : []) {
    spawnSync('runc', ['--root', runcRoot, 'kill', id, 'KILL'], { stdio: 'ignore' });
    spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id], { stdio: 'ignore' });
  }
  // Mounts under the test's paths, deepest first.
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m.startsWith(paths.root + '/') || m.startsWith(paths.execRoot + '/') || m === paths.execRoot))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  for (const id of ids) removeCgroups(id);
}

/** Removes a test daemon's bridges and iptables chains (what `network` made for it). */
export function cleanupNetwork(net: { bridgeName: string; bridgePrefix: string; chainPrefix: string }): void {
  const links = spawnSync('ip', ['-o', 'link', 'show', 'type', 'bridge'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of links.split('\n')) {
    const name = line.split(':')[1]?.trim().split('@')[0];
    if (name && (name === net.bridgeName || name.startsWith(net.bridgePrefix))) spawnSync('ip', ['link', 'del', name], { stdio: 'ignore' });
  }
  for (const table of ['filter', 'nat']) {
    const rules = spawnSync('iptables', ['-w', '-t', table, '-S'], { encoding: 'utf8' }).stdout ?? '';
    // Jumps into our chains from the built-in ones first, then our chains themselves.
    for (const rule of rules.split('\n')) {
      if (rule.startsWith('-A ') && rule.includes(`-j ${net.chainPrefix}`) && !rule.startsWith(`-A ${net.chainPrefix}`))
        spawnSync('iptables', ['-w', '-t', table, '-D', ...rule.slice(3).split(' ')], { stdio: 'ignore' });
    }
    const chains = rules.split('\n').filter((r) => r.startsWith(`-N ${net.chainPrefix}`)).map((r) => r.slice(3).trim());
    for (const chain of chains) spawnSync('iptables', ['-w', '-t', table, '-F', chain], { stdio: 'ignore' });
    for (const chain of chains) spawnSync('iptables', ['-w', '-t', table, '-X', chain], { stdio: 'ignore' });
  }
}

export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

function removeCgroups(id: string): void {
  const bases = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
  const controllers = existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : [];
  for (const c of controllers) {
    const dir = path.join('/sys/fs/cgroup', c, 'baleia', id);
    if (existsSync(dir)) spawnSync('rmdir', [dir], { stdio: 'ignore' });
  }
  for (const base of bases) {
    const dir = path.join(base, 'baleia', id);
    if (existsSync(dir)) spawnSync('rmdir', [dir], { stdio: 'ignore' });
  }
}

/** Imports busybox:latest into the daemon from the host's busybox-static. */
export async function bootstrapBusybox(daemon: Daemon): Promise<void> {
  const r = await daemon.cli(['image', 'bootstrap', 'busybox'], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`bootstrap failed (${r.code}): ${r.stderr}${r.stdout}\n--- daemon log ---\n${daemon.logs().slice(-3000)}`);
}

/** Which CLIs the tables run through (`BALEIA_TEST_CLIENTS=docker` to debug one side). */
export const enabledClients = (process.env.BALEIA_TEST_CLIENTS ?? 'baleia,docker').split(',');

/** Asserts a command exited 0, showing its output when it did not. */
export const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

/** The CLIs a system test drives a daemon with: ours and, when installed, the real docker CLI. */
export interface TestClient {
  name: 'baleia' | 'docker';
  cmd(d: Daemon, args: string[], input?: string | Buffer): Promise<RunResult>;
}
export const testClients: TestClient[] = [];
if (enabledClients.includes('baleia')) testClients.push({ name: 'baleia', cmd: (d, args, input) => d.cli(args, { input }) });
if (hasDocker && enabledClients.includes('docker')) testClients.push({ name: 'docker', cmd: (d, args, input) => d.docker(args, { input }) });
