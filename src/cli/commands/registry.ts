/**
 * Registry commands: `baleia registry serve` runs the OCI Distribution server in the foreground;
 * `baleia registry gc` collects unreferenced blobs of a registry root that no server is using.
 * Unlike the other commands these do not talk to baleiad: the registry is its own server. The
 * registry module is loaded on use so other commands do not pay for it at start-up.
 */
import type { Command, CommandGroup } from '../command.js';
import { UsageError } from '../flags.js';
import { parseGoDuration } from '../units.js';
import { createLogger, type LogLevel } from '../../lib/index.js';

export const defaultRegistryRoot = '/var/lib/baleia/registry';

/** `host:port`, `:port` (every interface) or `[v6]:port`. */
export function parseAddr(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port > 65535) throw new UsageError(`invalid address "${text}": expected HOST:PORT`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function duration(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback;
  const ms = parseGoDuration(text);
  if (ms === undefined) throw new UsageError(`invalid duration "${text}" for "--${flag}" flag`);
  return ms;
}

function logLevel(text: string | undefined): LogLevel {
  const level = text ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError(`invalid log level "${level}"`);
  return level as LogLevel;
}

export const registryServeCommand: Command = {
  name: 'serve',
  usage: '[OPTIONS]',
  description: 'Run an OCI distribution registry in the foreground',
  flags: [
    { long: 'addr', type: 'string', default: '127.0.0.1:5000', description: 'Address to listen on (HOST:PORT)' },
    { long: 'root', type: 'string', default: defaultRegistryRoot, description: 'Root directory of the registry storage' },
    { long: 'gc-interval', type: 'string', default: '', valueName: 'duration', description: 'Collect garbage while serving at this interval (e.g. 1h; off when empty)' },
    { long: 'gc-grace', type: 'string', default: '1h', valueName: 'duration', description: 'Keep unreferenced blobs younger than this' },
    { long: 'upload-ttl', type: 'string', default: '168h', valueName: 'duration', description: 'Purge uploads idle for longer than this' },
    { long: 'disable-delete', type: 'bool', description: 'Refuse deletes of manifests, tags and blobs' },
    { long: 'log-level', type: 'string', default: 'info', description: 'Log level (debug, info, warn, error)' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const { host, port } = parseAddr(flags.string('addr') ?? '127.0.0.1:5000');
    const interval = duration('gc-interval', flags.string('gc-interval'), 0);
    const gracePeriodMs = duration('gc-grace', flags.string('gc-grace'), 3_600_000);
    const uploadTtlMs = duration('upload-ttl', flags.string('upload-ttl'), 168 * 3_600_000);
    const logger = createLogger({ level: logLevel(flags.string('log-level')), fields: { component: 'registry' } });
    const { serveRegistry } = await import('../../registry/index.js');
    const running = await serveRegistry({
      root: flags.string('root') ?? defaultRegistryRoot,
      host,
      port,
      logger,
      allowDelete: !flags.bool('disable-delete'),
      gc: interval > 0 ? { intervalMs: interval, gracePeriodMs, uploadTtlMs } : undefined,
    });
    logger.info('registry listening', { addr: running.address, root: flags.string('root') });
    cli.out(`Listening on http://${running.address}\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await running.close();
    return 0;
  },
};

export const registryGcCommand: Command = {
  name: 'gc',
  usage: '[OPTIONS]',
  description: 'Remove blobs no manifest references (stop the server using the root first)',
  flags: [
    { long: 'root', type: 'string', default: defaultRegistryRoot, description: 'Root directory of the registry storage' },
    { long: 'grace', type: 'string', default: '1h', valueName: 'duration', description: 'Keep unreferenced blobs younger than this' },
    { long: 'upload-ttl', type: 'string', default: '168h', valueName: 'duration', description: 'Purge uploads idle for longer than this' },
    { long: 'dry-run', short: 'd', type: 'bool', description: 'Print what would be removed, remove nothing' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const { RegistryStore } = await import('../../registry/index.js');
    const store = new RegistryStore(flags.string('root') ?? defaultRegistryRoot);
    await store.init();
    const report = await store.collectGarbage({
      gracePeriodMs: duration('grace', flags.string('grace'), 3_600_000),
      uploadTtlMs: duration('upload-ttl', flags.string('upload-ttl'), 168 * 3_600_000),
      dryRun: flags.bool('dry-run'),
    });
    for (const digest of report.deleted) cli.out(`${flags.bool('dry-run') ? 'would delete' : 'deleted'} ${digest}\n`);
    cli.out(`${report.marked} blobs referenced, ${report.deleted.length} unreferenced (${report.bytesFreed} bytes), ${report.uploadsPurged} stale uploads\n`);
    return 0;
  },
};

export const registryGroup: CommandGroup = {
  name: 'registry',
  description: 'Run and maintain an image registry',
  commands: [registryGcCommand, registryServeCommand],
};
