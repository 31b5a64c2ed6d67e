/**
 * run, create, start, attach, exec: the commands that create containers or hijack their streams,
 * in the request order of the docker CLI (engine-api.md §3.1):
 * create → wait (own connection, headers first) → attach (hijacked) → start → resize → wait's body.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { isKind } from '../../lib/index.js';
import { EngineResponseError, readAll, type EngineClient } from '../../api/client.js';
import type { Command } from '../command.js';
import { errorText, pullImage, startFailureStatus } from '../common.js';
import { buildCreateRequest, containerFlags, parseKvFile, runOnlyFlags, type CreateRequest } from '../container-options.js';
import type { Cli } from '../context.js';
import { UsageError, type FlagSpec } from '../flags.js';
import { familiarString, parseReference, withDefaultTag } from '../reference.js';
import { attachStreams, consoleSize, monitorTtySize, proxySignals } from '../stdio.js';

interface WaitResult {
  StatusCode: number;
  Error?: { Message?: string } | null;
}

/** Create; on "No such image" pull it (progress on stderr) and create again. */
async function createContainer(cli: Cli, client: EngineClient, req: CreateRequest, options: { pull: string; quiet: boolean }): Promise<string> {
  const image = String(req.body.Image);
  const query = { name: req.name, ...(req.platform ? { platform: req.platform } : {}) };
  if (options.pull === 'always') await pullImage(cli, client, image, { out: cli.io.stderr, quiet: options.quiet, platform: req.platform });
  let created: { Id: string; Warnings?: string[] | null };
  try {
    created = await client.json('POST', '/containers/create', { query, body: req.body });
  } catch (err) {
    const missing = isKind(err, 'NotFound') && /no such image/i.test((err as Error).message);
    if (!missing || options.pull === 'never') throw err;
    cli.err(`Unable to find image '${familiarString(withDefaultTag(parseReference(image)))}' locally\n`);
    await pullImage(cli, client, image, { out: cli.io.stderr, quiet: options.quiet, platform: req.platform });
    created = await client.json('POST', '/containers/create', { query, body: req.body });
  }
  for (const warning of created.Warnings ?? []) cli.err(`WARNING: ${warning}\n`);
  const cidfile = req.body.HostConfig.ContainerIDFile;
  if (typeof cidfile === 'string' && cidfile) writeFileSync(cidfile, created.Id, { flag: 'wx' });
  return created.Id;
}

/**
 * Start waiting on its own connection; resolves once the daemon answered the headers, with the
 * body still to come (wrapped: awaiting a bare promise would wait for the exit).
 */
async function beginWait(client: EngineClient, id: string, condition?: string): Promise<{ result: Promise<WaitResult> }> {
  const res = await client.request('POST', `/containers/${id}/wait`, { query: condition ? { condition } : {} });
  const result = readAll(res.body).then((b) => {
    const text = b.toString('utf8').trim();
    if (!text) return { StatusCode: -1, Error: { Message: 'the daemon closed the wait without a status' } };
    return JSON.parse(text.split('\n')[0]!) as WaitResult;
  });
  // Observed later; never let an early failure go unhandled.
  result.catch(() => {});
  return { result };
}

function attachQuery(streams: { stdin: boolean; stdout: boolean; stderr: boolean }) {
  // Alphabetical, as Go's url.Values encodes.
  return {
    stderr: streams.stderr ? 1 : undefined,
    stdin: streams.stdin ? 1 : undefined,
    stdout: streams.stdout ? 1 : undefined,
    stream: 1,
  };
}

async function runContainer(cli: Cli, flags: import('../flags.js').ParsedFlags, args: string[]): Promise<number> {
  const detach = flags.bool('detach');
  const tty = flags.bool('tty');
  const interactive = flags.bool('interactive');
  if (tty && interactive && !detach && !cli.io.stdin.isTTY) {
    cli.err('the input device is not a TTY\n');
    return 1;
  }
  const req = buildCreateRequest(flags, args, { detach, consoleSize: tty ? consoleSize(cli) : [0, 0] });
  const client = await cli.client();
  const id = await createContainer(cli, client, req, { pull: flags.string('pull') ?? 'missing', quiet: flags.bool('quiet') });

  if (detach) {
    try {
      await client.call('POST', `/containers/${id}/start`);
    } catch (err) {
      return reportStartFailure(cli, err);
    }
    cli.out(`${id}\n`);
    return 0;
  }

  const waitBody = await beginWait(client, id, req.autoRemove ? 'removed' : 'next-exit');
  const attachAny = req.attach.stdin || req.attach.stdout || req.attach.stderr;
  let attached: ReturnType<typeof attachStreams> | undefined;
  if (attachAny) {
    const socket = await client.hijack('POST', `/containers/${id}/attach`, { query: attachQuery(req.attach) });
    attached = attachStreams(cli, socket, {
      tty,
      stdin: req.attach.stdin,
      detachKeys: flags.string('detach-keys'),
    });
  }
  try {
    await client.call('POST', `/containers/${id}/start`);
  } catch (err) {
    attached?.restore();
    return reportStartFailure(cli, err);
  }
  return followToExit(cli, client, id, { tty, sigProxy: flags.bool('sig-proxy'), attached, waitBody });
}

/** Resizes and forwards signals while attached, then answers the container's exit status. */
async function followToExit(
  cli: Cli,
  client: EngineClient,
  id: string,
  options: { tty: boolean; sigProxy: boolean; attached: ReturnType<typeof attachStreams> | undefined; waitBody: Awaited<ReturnType<typeof beginWait>> },
): Promise<number> {
  const stopResize = options.tty ? monitorTtySize(cli, client, `/containers/${id}/resize`) : () => {};
  const stopSignals = !options.tty && options.sigProxy ? proxySignals(client, id) : () => {};
  try {
    if (options.attached) {
      const { detached } = await options.attached.done;
      if (detached) return 0;
    }
    const status = await options.waitBody.result;
    if (status.Error?.Message) {
      cli.err(`Error response from daemon: ${status.Error.Message}\n`);
      return 125;
    }
    return status.StatusCode;
  } finally {
    stopResize();
    stopSignals();
  }
}

function reportStartFailure(cli: Cli, err: unknown): number {
  cli.err(`${errorText(err)}\n`);
  return err instanceof EngineResponseError ? startFailureStatus(err.message) : 125;
}

export const runCommand: Command = {
  name: 'run',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  description: 'Create and run a new container from an image',
  flags: [...containerFlags, ...runOnlyFlags],
  stopAtPositional: true,
  args: { min: 1 },
  errorStatus: 125,
  run: (cli, { flags, args }) => runContainer(cli, flags, args),
};

export const createCommand: Command = {
  name: 'create',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  description: 'Create a new container',
  flags: containerFlags,
  stopAtPositional: true,
  args: { min: 1 },
  // The docker CLI exits 1 when the daemon refuses a create (125 is for run and bad flags).
  errorStatus: 1,
  async run(cli, { flags, args }) {
    // `create` attaches the default streams in the config, like `run` without -d.
    const req = buildCreateRequest(flags, args, { detach: false, consoleSize: flags.bool('tty') ? consoleSize(cli) : [0, 0] });
    const client = await cli.client();
    const id = await createContainer(cli, client, req, { pull: flags.string('pull') ?? 'missing', quiet: flags.bool('quiet') });
    cli.out(`${id}\n`);
  },
};

interface ContainerJson {
  Id: string;
  Config: { Tty: boolean; OpenStdin: boolean };
  State: { Running: boolean; Paused: boolean; Restarting: boolean };
}

/** Attach to one container (already inspected), start it if asked, and answer its exit status. */
async function attachAndWait(
  cli: Cli,
  client: EngineClient,
  container: ContainerJson,
  options: { stdin: boolean; start: boolean; detachKeys?: string; sigProxy: boolean; condition?: string },
): Promise<number> {
  const id = container.Id;
  const tty = container.Config.Tty;
  const waitBody = await beginWait(client, id, options.condition);
  const socket = await client.hijack('POST', `/containers/${id}/attach`, {
    query: { ...attachQuery({ stdin: options.stdin, stdout: true, stderr: true }), ...(options.detachKeys ? { detachKeys: options.detachKeys } : {}) },
  });
  const attached = attachStreams(cli, socket, { tty, stdin: options.stdin, detachKeys: options.detachKeys });
  if (options.start) {
    try {
      await client.call('POST', `/containers/${id}/start`);
    } catch (err) {
      attached.restore();
      if (!isKind(err, 'NotModified')) return reportStartFailure(cli, err);
    }
  }
  return followToExit(cli, client, id, { tty, sigProxy: options.sigProxy, attached, waitBody });
}

export const startCommand: Command = {
  name: 'start',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  description: 'Start one or more stopped containers',
  flags: [
    { long: 'attach', short: 'a', type: 'bool', description: 'Attach STDOUT/STDERR and forward signals' },
    { long: 'detach-keys', type: 'string', description: 'Override the key sequence for detaching a container' },
    { long: 'interactive', short: 'i', type: 'bool', description: "Attach container's STDIN" },
  ],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    if (flags.bool('attach') || flags.bool('interactive')) {
      if (args.length > 1) throw new UsageError('you cannot start and attach multiple containers at once');
      const container = await client.json<ContainerJson>('GET', `/containers/${encodeURIComponent(args[0]!)}/json`);
      const stdin = flags.bool('interactive') && container.Config.OpenStdin;
      if (container.Config.Tty && stdin && !cli.io.stdin.isTTY) {
        cli.err('the input device is not a TTY\n');
        return 1;
      }
      return attachAndWait(cli, client, container, {
        stdin,
        start: true,
        detachKeys: flags.string('detach-keys'),
        sigProxy: true,
        condition: 'next-exit',
      });
    }
    let failed: string[] = [];
    for (const name of args) {
      try {
        await client.call('POST', `/containers/${encodeURIComponent(name)}/start`);
        cli.out(`${name}\n`);
      } catch (err) {
        if (isKind(err, 'NotModified')) {
          cli.out(`${name}\n`);
          continue;
        }
        cli.err(`${errorText(err)}\n`);
        failed = [...failed, name];
      }
    }
    if (failed.length) {
      cli.err(`Error: failed to start containers: ${failed.join(', ')}\n`);
      return 1;
    }
    return 0;
  },
};

export const attachCommand: Command = {
  name: 'attach',
  usage: '[OPTIONS] CONTAINER',
  description: "Attach local standard input, output, and error streams to a running container",
  flags: [
    { long: 'detach-keys', type: 'string', description: 'Override the key sequence for detaching a container' },
    { long: 'no-stdin', type: 'bool', description: 'Do not attach STDIN' },
    { long: 'sig-proxy', type: 'bool', description: 'Proxy all received signals to the process', default: true },
  ],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    const name = encodeURIComponent(args[0]!);
    const container = await client.json<ContainerJson>('GET', `/containers/${name}/json`);
    if (!container.State.Running) throw new UsageError('You cannot attach to a stopped container, start it first');
    if (container.State.Paused) throw new UsageError('You cannot attach to a paused container, unpause it first');
    if (container.State.Restarting) throw new UsageError('You cannot attach to a restarting container, wait until it is running');
    const stdin = !flags.bool('no-stdin') && container.Config.OpenStdin;
    if (container.Config.Tty && stdin && !cli.io.stdin.isTTY) {
      cli.err('the input device is not a TTY\n');
      return 1;
    }
    return attachAndWait(cli, client, container, {
      stdin,
      start: false,
      detachKeys: flags.string('detach-keys'),
      sigProxy: flags.bool('sig-proxy'),
    });
  },
};

const execFlags: FlagSpec[] = [
  { long: 'detach', short: 'd', type: 'bool', description: 'Detached mode: run command in the background' },
  { long: 'detach-keys', type: 'string', description: 'Override the key sequence for detaching a container' },
  { long: 'env', short: 'e', type: 'list', description: 'Set environment variables' },
  { long: 'env-file', type: 'list', description: 'Read in a file of environment variables' },
  { long: 'interactive', short: 'i', type: 'bool', description: 'Keep STDIN open even if not attached' },
  { long: 'privileged', type: 'bool', description: 'Give extended privileges to the command' },
  { long: 'tty', short: 't', type: 'bool', description: 'Allocate a pseudo-TTY' },
  { long: 'user', short: 'u', type: 'string', description: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
  { long: 'workdir', short: 'w', type: 'string', description: 'Working directory inside the container' },
];

export const execCommand: Command = {
  name: 'exec',
  usage: '[OPTIONS] CONTAINER COMMAND [ARG...]',
  description: 'Execute a command in a running container',
  flags: execFlags,
  stopAtPositional: true,
  args: { min: 2 },
  errorStatus: 1,
  async run(cli, { flags, args }) {
    const [container, ...cmd] = args as [string, ...string[]];
    const detach = flags.bool('detach');
    const tty = flags.bool('tty');
    const stdin = flags.bool('interactive');
    if (tty && stdin && !detach && !cli.io.stdin.isTTY) {
      cli.err('the input device is not a TTY\n');
      return 1;
    }
    const env = [
      ...flags.list('env-file').flatMap((f) => parseKvFile(readFileSync(f, 'utf8'), { fromEnv: (k) => process.env[k] })),
      ...flags.list('env').flatMap((e) => (e.includes('=') ? [e] : process.env[e] !== undefined ? [`${e}=${process.env[e]}`] : [])),
    ];
    const client = await cli.client();
    const name = encodeURIComponent(container);
    await client.json('GET', `/containers/${name}/json`);
    const { Id: execId } = await client.json<{ Id: string }>('POST', `/containers/${name}/exec`, {
      body: {
        User: flags.string('user') ?? '',
        Privileged: flags.bool('privileged'),
        Tty: tty,
        AttachStdin: stdin && !detach,
        AttachStderr: !detach,
        AttachStdout: !detach,
        Detach: detach,
        DetachKeys: flags.string('detach-keys') ?? '',
        Env: env.length ? env : null,
        WorkingDir: flags.string('workdir') ?? '',
        Cmd: cmd,
      },
    });
    if (detach) {
      await client.call('POST', `/exec/${execId}/start`, { body: { Detach: true, Tty: tty } });
      return 0;
    }
    const socket = await client.hijack('POST', `/exec/${execId}/start`, { body: { Detach: false, Tty: tty } });
    const attached = attachStreams(cli, socket, { tty, stdin, detachKeys: flags.string('detach-keys') });
    const stopResize = tty ? monitorTtySize(cli, client, `/exec/${execId}/resize`) : () => {};
    try {
      const { detached } = await attached.done;
      if (detached) return 0;
    } finally {
      stopResize();
    }
    const inspect = await client.json<{ ExitCode: number | null; Running: boolean }>('GET', `/exec/${execId}/json`);
    return inspect.ExitCode ?? 0;
  },
};

