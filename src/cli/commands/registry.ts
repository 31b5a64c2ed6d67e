/**
 * Registry commands: `baleia registry serve` runs the OCI Distribution server in the foreground
 * (with users, tokens, TLS, the web UI and search when asked); `baleia registry gc` collects
 * unreferenced blobs of a registry root that no server is using; `baleia registry user add`
 * adds a user to an htpasswd file.
 * Unlike the other commands these do not talk to baleiad: the registry is its own server. The
 * registry module is loaded on use so other commands do not pay for it at start-up.
 */
import { createInterface } from 'node:readline';
import type { Command, CommandGroup } from '../command.js';
import type { Cli } from '../context.js';
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
    { long: 'auth', type: 'string', default: '', valueName: 'mode', description: 'Require users: "token" (Docker token flow) or "basic" (default token when --htpasswd is set)' },
    { long: 'htpasswd', type: 'string', default: '', valueName: 'file', description: 'htpasswd file of users (bcrypt; see "baleia registry user add")' },
    { long: 'access', type: 'string', default: '', valueName: 'file', description: 'YAML or JSON access rules (default: every user may pull and push everything)' },
    { long: 'allow-anonymous-pull', type: 'bool', description: 'Let requests without credentials pull every repository' },
    { long: 'service', type: 'string', default: 'baleia-registry', description: 'Service name of the token flow' },
    { long: 'token-realm', type: 'string', default: '', valueName: 'url', description: 'Token endpoint URL clients are sent to (default: this server\'s /token)' },
    { long: 'tls-cert', type: 'string', default: '', valueName: 'file', description: 'Serve HTTPS with this PEM certificate (chain)' },
    { long: 'tls-key', type: 'string', default: '', valueName: 'file', description: 'Key of --tls-cert (PEM)' },
    { long: 'tls-self-signed', type: 'bool', description: 'Serve HTTPS with a self-signed certificate kept in the root (made with openssl)' },
    { long: 'no-ui', type: 'bool', description: 'Do not serve the web UI at /' },
    { long: 'no-search', type: 'bool', description: 'Do not serve /v1/search' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const root = flags.string('root') || defaultRegistryRoot;
    const htpasswd = flags.string('htpasswd') ?? '';
    const mode = flags.string('auth') || (htpasswd ? 'token' : '');
    if (mode !== '' && mode !== 'token' && mode !== 'basic') throw new UsageError(`invalid auth mode "${mode}": expected token or basic`);
    if (mode && !htpasswd) throw new UsageError(`--auth ${mode} needs --htpasswd FILE (create it with "baleia registry user add --file FILE NAME")`);
    for (const flag of ['access', 'allow-anonymous-pull', 'token-realm']) {
      if (!mode && flags.changed(flag)) throw new UsageError(`--${flag} needs --htpasswd FILE`);
    }
    const certFile = flags.string('tls-cert') ?? '';
    const keyFile = flags.string('tls-key') ?? '';
    if (Boolean(certFile) !== Boolean(keyFile)) throw new UsageError('--tls-cert and --tls-key go together');
    if (certFile && flags.bool('tls-self-signed')) throw new UsageError('--tls-self-signed and --tls-cert are mutually exclusive');
    const { host, port } = parseAddr(flags.string('addr') ?? '127.0.0.1:5000');
    const interval = duration('gc-interval', flags.string('gc-interval'), 0);
    const gracePeriodMs = duration('gc-grace', flags.string('gc-grace'), 3_600_000);
    const uploadTtlMs = duration('upload-ttl', flags.string('upload-ttl'), 168 * 3_600_000);
    const logger = createLogger({ level: logLevel(flags.string('log-level')), fields: { component: 'registry' } });
    const { serveHub, ensureSelfSignedCert } = await import('../../registry/index.js');
    let tlsFiles = certFile ? { cert: certFile, key: keyFile } : undefined;
    if (flags.bool('tls-self-signed')) {
      const made = await ensureSelfSignedCert(root, { hosts: [host] });
      tlsFiles = { cert: made.certFile, key: made.keyFile };
      cli.out(`${made.created ? 'Created' : 'Using'} self-signed certificate ${made.certFile} (SHA-256 ${made.fingerprint})\n`);
      cli.out(`Trust it: cp ${made.certFile} /etc/docker/certs.d/<host:port>/ca.crt, or skopeo --cert-dir ${made.certFile.replace(/\/[^/]+$/, '')}\n`);
    }
    const running = await serveHub({
      root,
      host,
      port,
      logger,
      allowDelete: !flags.bool('disable-delete'),
      gc: interval > 0 ? { intervalMs: interval, gracePeriodMs, uploadTtlMs } : undefined,
      tlsFiles,
      ui: !flags.bool('no-ui'),
      search: !flags.bool('no-search'),
      auth: mode
        ? {
            mode: mode as 'token' | 'basic',
            htpasswd,
            accessFile: flags.string('access') || undefined,
            allowAnonymousPull: flags.bool('allow-anonymous-pull'),
            service: flags.string('service') || undefined,
            realm: flags.string('token-realm') || undefined,
          }
        : undefined,
    });
    logger.info('registry listening', { addr: running.address, root, scheme: running.scheme, auth: mode || 'none' });
    cli.out(`Listening on ${running.scheme}://${running.address}\n`);
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

/** A line typed on the terminal without echo (or read from a pipe as is). */
async function readSecret(cli: Cli, question: string): Promise<string> {
  const stdin = cli.io.stdin;
  cli.err(question);
  if (!stdin.isTTY) {
    const rl = createInterface({ input: stdin });
    const line = await new Promise<string>((resolve) => {
      rl.once('line', resolve);
      rl.once('close', () => resolve(''));
    });
    rl.close();
    return line;
  }
  stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = '';
      const onData = (chunk: Buffer) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') {
            stdin.off('data', onData);
            resolve(text);
            return;
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            reject(new UsageError('interrupted'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
          else text += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    cli.err('\n');
  }
}

export const registryUserCommand: Command = {
  name: 'user',
  usage: 'add [OPTIONS] NAME',
  description: 'Add a user to an htpasswd file (or change its password)',
  flags: [
    { long: 'file', short: 'f', type: 'string', default: '', valueName: 'file', description: 'The htpasswd file (created when missing)' },
    { long: 'password-stdin', type: 'bool', description: 'Read the password from stdin' },
    { long: 'cost', type: 'int', default: 10, description: 'bcrypt cost (4 to 31)' },
  ],
  args: { min: 2, max: 2 },
  async run(cli, { flags, args }) {
    if (args[0] !== 'add') throw new UsageError(`unknown subcommand "${args[0]}" of "registry user": expected add`);
    const file = flags.string('file');
    if (!file) throw new UsageError('"registry user add" needs --file FILE');
    const cost = flags.int('cost') ?? 10;
    if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new UsageError(`invalid bcrypt cost ${cost}: expected 4 to 31`);
    const { addUser, checkUserName } = await import('../../registry/index.js');
    const name = checkUserName(args[1]!);
    let password: string;
    if (flags.bool('password-stdin')) {
      const chunks: Buffer[] = [];
      for await (const c of cli.io.stdin) chunks.push(c as Buffer);
      password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    } else {
      password = await readSecret(cli, 'Password: ');
      if (cli.io.stdin.isTTY && (await readSecret(cli, 'Confirm password: ')) !== password) throw new UsageError('the passwords do not match');
    }
    if (!password) throw new UsageError('the password is empty');
    const { replaced } = await addUser(file, name, password, { cost });
    cli.out(`${replaced ? 'Changed the password of' : 'Added'} user "${name}" in ${file}\n`);
    return 0;
  },
};

export const registryGroup: CommandGroup = {
  name: 'registry',
  description: 'Run and maintain an image registry',
  commands: [registryGcCommand, registryServeCommand, registryUserCommand],
};
