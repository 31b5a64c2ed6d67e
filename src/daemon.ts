/**
 * baleiad's composition root: reads the configuration once, builds the stores, the runtime and
 * the engine, listens on the API socket and shuts down cleanly on SIGTERM/SIGINT. Containers keep
 * running across daemon restarts; the next start re-adopts them.
 *
 *   baleia daemon [--root /var/lib/baleia] [--exec-root /run/baleia] [-H unix:///run/baleia/baleia.sock] [--log-level info]
 *                 [--insecure-registry host:port|CIDR]... [--registry-mirror [registry=]URL]...
 *                 [--bridge-name baleia0] [--bridge-subnet 10.210.0.0/16] [--default-address-pool CIDR]...
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { BaleiaError, createLogger, describeError, parseGoDuration, type LogLevel } from './lib/index.js';
import { ContentStore } from './content/index.js';
import { Snapshotter } from './snapshot/index.js';
import { ImageStore } from './image/index.js';
import { Runtime, detectCgroups } from './runtime/index.js';
import { VolumeStore } from './volume/index.js';
import { RegistryClient } from './registry/index.js';
import { NetworkManager } from './network/index.js';
import { Engine } from './engine/index.js';
import { createApiServer } from './api/index.js';

export interface DaemonConfig {
  root: string;
  execRoot: string;
  host: string;
  logLevel: LogLevel;
  /** `host[:port]` or CIDR reached over plain HTTP (loopback always is). */
  insecureRegistries: string[];
  /** Registry host → mirror URLs, for any registry (`docker.io` for Docker Hub). */
  mirrors: Record<string, string[]>;
  /** The default `bridge` network: its Linux bridge and subnet (not Docker's 172.17.0.0/16). */
  bridgeName: string;
  bridgeSubnet: string;
  /** Pools user networks take a /24 from. */
  addressPools: string[];
  /** Prefix of baleia's iptables chains and of user networks' bridge names (one per daemon). */
  chainPrefix: string;
  bridgePrefix: string;
  /** How long one CNI plugin call may take before it is killed and the operation fails. */
  networkPluginTimeoutMs: number;
}

export function parseDaemonArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const config: DaemonConfig = {
    root: '/var/lib/baleia',
    execRoot: '/run/baleia',
    host: env.BALEIA_HOST || 'unix:///run/baleia/baleia.sock',
    logLevel: 'info',
    insecureRegistries: [],
    mirrors: {},
    bridgeName: 'baleia0',
    bridgeSubnet: '10.210.0.0/16',
    addressPools: [],
    chainPrefix: 'BALEIA',
    bridgePrefix: 'br-',
    networkPluginTimeoutMs: 30_000,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new BaleiaError('InvalidArgument', `flag needs an argument: ${flag}`);
      return v;
    };
    switch (flag) {
      case '--root':
      case '--data-root':
        config.root = path.resolve(value());
        break;
      case '--exec-root':
        config.execRoot = path.resolve(value());
        break;
      case '-H':
      case '--host':
        config.host = value();
        break;
      case '--log-level':
      case '-l': {
        const level = value();
        if (!['debug', 'info', 'warn', 'error'].includes(level))
          throw new BaleiaError('InvalidArgument', `Invalid log level ${JSON.stringify(level)}: use debug, info, warn or error`);
        config.logLevel = level as LogLevel;
        break;
      }
      case '--insecure-registry':
        config.insecureRegistries.push(value());
        break;
      case '--registry-mirror': {
        // `URL` mirrors Docker Hub (as dockerd); `registry=URL` mirrors any registry.
        const v = value();
        const eq = v.indexOf('=');
        const [registry, url] = eq > 0 && !v.slice(0, eq).includes('/') ? [v.slice(0, eq), v.slice(eq + 1)] : ['docker.io', v];
        if (!/^https?:\/\//.test(url)) throw new BaleiaError('InvalidArgument', `Invalid registry mirror ${JSON.stringify(v)}: use [registry=]http(s)://host[:port]`);
        (config.mirrors[registry] ??= []).push(url);
        break;
      }
      case '--bridge-name':
        config.bridgeName = value();
        break;
      case '--bridge-subnet':
      case '--bip':
        config.bridgeSubnet = value();
        break;
      case '--default-address-pool':
        config.addressPools.push(value().replace(/^base=/, '').split(',')[0]!);
        break;
      case '--iptables-chain-prefix':
        config.chainPrefix = value();
        break;
      case '--bridge-prefix':
        config.bridgePrefix = value();
        break;
      case '--network-plugin-timeout': {
        const v = value();
        const ms = parseGoDuration(v);
        if (ms === undefined || ms < 1000) throw new BaleiaError('InvalidArgument', `Invalid network plugin timeout ${JSON.stringify(v)}: use a duration of at least 1s (e.g. 30s, 2m)`);
        config.networkPluginTimeoutMs = ms;
        break;
      }
      case '-D':
      case '--debug':
        config.logLevel = 'debug';
        break;
      default:
        throw new BaleiaError('InvalidArgument', `unknown flag: ${flag}`);
    }
  }
  if (!config.host.startsWith('unix://'))
    throw new BaleiaError('InvalidArgument', `Cannot listen on ${JSON.stringify(config.host)}: only unix:// sockets are supported`);
  return config;
}

/** Runs baleiad in the foreground until SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<void> {
  const config = parseDaemonArgs(argv);
  const logger = createLogger({ level: config.logLevel });
  const socketPath = config.host.slice('unix://'.length);
  await fs.mkdir(config.root, { recursive: true, mode: 0o711 });
  await fs.mkdir(config.execRoot, { recursive: true, mode: 0o711 });
  await fs.mkdir(path.dirname(socketPath), { recursive: true });
  await takeSocket(socketPath);
  await lockRoot(config.root);

  // A fault in one request's stream must not take down a daemon that supervises containers:
  // log it and keep serving (each operation's state is in atomic records).
  process.on('uncaughtException', (err) => logger.error('Uncaught exception', { err: describeError(err), stack: err.stack }));
  process.on('unhandledRejection', (err) => logger.error('Unhandled rejection', { err: describeError(err) }));

  const cgroups = await detectCgroups();
  logger.info('Starting baleiad', { root: config.root, execRoot: config.execRoot, socket: socketPath, cgroup: cgroups.version });
  const content = new ContentStore(config.root);
  const snapshots = new Snapshotter(config.root);
  await content.init();
  await snapshots.init();
  const images = new ImageStore({ root: config.root, content, snapshots, logger: logger.child({ module: 'images' }) });
  await images.init();
  const volumes = new VolumeStore({ root: config.root, logger: logger.child({ module: 'volumes' }) });
  await volumes.init();
  const network = new NetworkManager({
    root: config.root,
    execRoot: config.execRoot,
    logger: logger.child({ module: 'network' }),
    defaultBridge: { name: config.bridgeName, subnet: config.bridgeSubnet },
    addressPools: config.addressPools.length ? config.addressPools : ['10.211.0.0/16'],
    chainPrefix: config.chainPrefix,
    bridgePrefix: config.bridgePrefix,
    cniTimeoutMs: config.networkPluginTimeoutMs,
  });
  await network.init();
  const runtime = new Runtime({ execRoot: config.execRoot, logger: logger.child({ module: 'runtime' }) });
  await runtime.init();
  const registry = new RegistryClient({
    insecureRegistries: config.insecureRegistries,
    mirrors: config.mirrors,
    userAgent: 'baleia/0.1.0',
    logger: logger.child({ module: 'registry' }),
  });
  const engine = new Engine({
    root: config.root,
    execRoot: config.execRoot,
    content,
    snapshots,
    images,
    volumes,
    network,
    registry,
    runtime,
    logger,
    cgroupVersion: cgroups.version,
    insecureRegistries: config.insecureRegistries,
    mirrors: config.mirrors,
  });
  await engine.init();

  const server = createApiServer({ engine, logger: logger.child({ module: 'api' }) });
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await fs.chmod(socketPath, 0o660);
  logger.info('API listening', { socket: socketPath });

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info('Shutting down', { signal });
      server.close(() => resolve());
      server.closeAllConnections();
      setTimeout(resolve, 3000).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await engine.shutdown();
  await network.shutdown();
  await fs.rm(socketPath, { force: true });
  await fs.rm(path.join(config.root, 'baleiad.pid'), { force: true });
}

/** Refuses to start when another daemon answers on the socket; removes a stale socket file. */
async function takeSocket(socketPath: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const sock = net.connect(socketPath);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
  if (alive) throw new BaleiaError('Conflict', `Cannot start baleiad: another daemon is listening on ${socketPath}`);
  await fs.rm(socketPath, { force: true });
}

/** One daemon per root: the pid file names the owner; a dead owner's file is taken over. */
async function lockRoot(root: string): Promise<void> {
  const pidFile = path.join(root, 'baleiad.pid');
  const previous = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (previous && previous !== process.pid) {
    let running = false;
    try {
      process.kill(previous, 0);
      const cmdline = await fs.readFile(`/proc/${previous}/cmdline`, 'utf8').catch(() => '');
      running = cmdline.includes('daemon');
    } catch {
      running = false;
    }
    if (running) throw new BaleiaError('Conflict', `Cannot start baleiad: root ${root} is in use by process ${previous}`);
  }
  await fs.writeFile(pidFile, `${process.pid}\n`);
}

const isEntry = process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname;
if (isEntry) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`baleiad: ${describeError(err)}\n`);
    process.exit(1);
  });
}
