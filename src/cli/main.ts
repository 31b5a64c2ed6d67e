#!/usr/bin/env node
/**
 * cli: `baleia …` — argv → Docker Engine API client → terminal output, with the docker CLI's
 * flags, tables and exit statuses (125 for daemon/flag errors on run/create/start, 126/127 for
 * commands that cannot be executed). It talks to the daemon only through the API (never imports
 * engine/, image/, runtime/…), so it works against Docker as well.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { defaultHost } from '../api/client.js';
import { describeError } from '../lib/index.js';
import type { Command, CommandGroup } from './command.js';
import { errorText } from './common.js';
import { Cli } from './context.js';
import { formatFlagHelp, parseFlags, UsageError } from './flags.js';
import { StreamError } from './progress.js';
import * as containers from './commands/containers.js';
import * as images from './commands/images.js';
import { inspectCommand } from './commands/inspect.js';
import * as registry from './commands/registry.js';
import * as run from './commands/run.js';
import * as system from './commands/system.js';
import * as volumes from './commands/volumes.js';
import * as networks from './commands/networks.js';
import * as stats from './commands/stats.js';
import * as files from './commands/files.js';
import { searchCommand } from './commands/search.js';

const prog = 'baleia';

const containerGroup: CommandGroup = {
  name: 'container',
  description: 'Manage containers',
  commands: [
    run.attachCommand,
    files.commitCommand,
    files.cpCommand,
    run.createCommand,
    files.diffCommand,
    run.execCommand,
    files.exportCommand,
    containers.containerInspectCommand,
    containers.killCommand,
    containers.logsCommand,
    containers.psCommand,
    containers.pauseCommand,
    containers.portCommand,
    containers.containerPruneCommand,
    containers.renameCommand,
    containers.restartCommand,
    containers.rmCommand,
    run.runCommand,
    run.startCommand,
    stats.statsCommand,
    containers.stopCommand,
    containers.topCommand,
    containers.unpauseCommand,
    stats.updateCommand,
    containers.waitCommand,
  ],
};

const imageGroup: CommandGroup = {
  name: 'image',
  description: 'Manage images',
  commands: [
    images.bootstrapCommand,
    images.historyCommand,
    images.importCommand,
    images.imageInspectCommand,
    images.loadCommand,
    images.imagesCommand,
    images.imagePruneCommand,
    images.pullCommand,
    images.pushCommand,
    images.rmiCommand,
    images.saveCommand,
    images.tagCommand,
  ],
};

const systemGroup: CommandGroup = {
  name: 'system',
  description: 'Manage baleia',
  commands: [system.dfCommand, system.eventsCommand, system.infoCommand, system.systemPruneCommand],
};

const groups = [containerGroup, imageGroup, networks.networkGroup, registry.registryGroup, systemGroup, volumes.volumeGroup];

const commonCommands: Command[] = [run.runCommand, run.execCommand, containers.psCommand, images.imagesCommand, images.pullCommand, images.pushCommand, system.loginCommand, system.logoutCommand, system.versionCommand, system.infoCommand];

const topLevel: Command[] = [
  run.attachCommand,
  files.commitCommand,
  files.cpCommand,
  run.createCommand,
  system.daemonCommand,
  files.diffCommand,
  system.eventsCommand,
  run.execCommand,
  files.exportCommand,
  images.historyCommand,
  images.imagesCommand,
  images.importCommand,
  system.infoCommand,
  inspectCommand,
  containers.killCommand,
  images.loadCommand,
  system.loginCommand,
  system.logoutCommand,
  containers.logsCommand,
  containers.pauseCommand,
  containers.portCommand,
  containers.psCommand,
  images.pullCommand,
  images.pushCommand,
  containers.renameCommand,
  containers.restartCommand,
  containers.rmCommand,
  images.rmiCommand,
  run.runCommand,
  images.saveCommand,
  searchCommand,
  run.startCommand,
  stats.statsCommand,
  containers.stopCommand,
  images.tagCommand,
  containers.topCommand,
  containers.unpauseCommand,
  stats.updateCommand,
  system.versionCommand,
  containers.waitCommand,
];

function findIn(commands: readonly Command[], name: string, withAliases: boolean): Command | undefined {
  return commands.find((c) => c.name === name) ?? (withAliases ? commands.find((c) => c.aliases?.includes(name)) : undefined);
}

function mainHelp(): string {
  const line = (name: string, desc: string) => `  ${name.padEnd(12)}${desc}`;
  const others = topLevel.filter((c) => !commonCommands.includes(c) && !c.hidden);
  return [
    `Usage:  ${prog} [OPTIONS] COMMAND`,
    '',
    'A Docker-compatible container platform',
    '',
    'Common Commands:',
    ...commonCommands.map((c) => line(c.name, c.description)),
    '',
    'Management Commands:',
    ...groups.map((g) => line(g.name, g.description)),
    '',
    'Commands:',
    ...others.map((c) => line(c.name, c.description)),
    '',
    'Global Options:',
    '  -D, --debug              Enable debug mode',
    `  -H, --host string        Daemon socket to connect to (default "${defaultHost}", or $BALEIA_HOST)`,
    '  -v, --version            Print version information and quit',
    '',
    `Run '${prog} COMMAND --help' for more information on a command.`,
    '',
  ].join('\n');
}

function groupHelp(group: CommandGroup): string {
  return [
    `Usage:  ${prog} ${group.name} COMMAND`,
    '',
    group.description,
    '',
    'Commands:',
    ...group.commands.map((c) => `  ${c.name.padEnd(12)}${c.description}`),
    '',
    `Run '${prog} ${group.name} COMMAND --help' for more information on a command.`,
    '',
  ].join('\n');
}

function commandHelp(path: string, command: Command): string {
  const aliases = [path, ...(command.aliases ?? []).map((a) => path.replace(/\S+$/, a))];
  return [
    `Usage:  ${prog} ${path} ${command.usage}`,
    '',
    command.description,
    '',
    ...(command.aliases?.length ? ['Aliases:', `  ${aliases.map((a) => `${prog} ${a}`).join(', ')}`, ''] : []),
    'Options:',
    formatFlagHelp(command.flags),
    '',
  ].join('\n');
}

interface GlobalOptions {
  host?: string;
  debug: boolean;
  version: boolean;
  help: boolean;
  rest: string[];
}

function parseGlobal(argv: string[]): GlobalOptions {
  const options: GlobalOptions = { debug: false, version: false, help: false, rest: [] };
  let i = 0;
  const value = (name: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: ${name}`);
    return argv[++i]!;
  };
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') break;
    if (arg === '--') {
      i++;
      break;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    switch (name) {
      case '-H':
      case '--host':
        options.host = value(name, inline);
        break;
      case '-D':
      case '--debug':
        options.debug = true;
        break;
      case '-v':
      case '--version':
        options.version = true;
        break;
      case '-h':
      case '--help':
        options.help = true;
        break;
      case '-l':
      case '--log-level':
      case '--config':
      case '-c':
      case '--context':
        value(name, inline);
        break;
      default:
        if (/^-H./.test(arg)) {
          options.host = arg.slice(2);
          break;
        }
        throw new UsageError(`unknown flag: ${name}`);
    }
  }
  options.rest = argv.slice(i);
  return options;
}

function argsError(path: string, command: Command, count: number): string | undefined {
  const { min, max } = command.args ?? {};
  const plural = (n: number) => `${n} argument${n === 1 ? '' : 's'}`;
  let problem: string | undefined;
  if (min !== undefined && max !== undefined && min === max && count !== min) problem = `requires exactly ${plural(min)}`;
  else if (min !== undefined && count < min) problem = `requires at least ${plural(min)}`;
  else if (max !== undefined && count > max) problem = max === 0 ? 'accepts no arguments' : `accepts at most ${plural(max)}`;
  if (!problem) return undefined;
  return `"${prog} ${path}" ${problem}.\nSee '${prog} ${path} --help'.\n\nUsage:  ${prog} ${path} ${command.usage}\n\n${command.description}`;
}

/** Runs the CLI; answers the exit status. */
export async function main(argv: string[], io?: Cli['io']): Promise<number> {
  const stderr = io?.stderr ?? process.stderr;
  const stdout = io?.stdout ?? process.stdout;
  let global: GlobalOptions;
  try {
    global = parseGlobal(argv);
  } catch (err) {
    stderr.write(`${(err as Error).message}\nSee '${prog} --help'.\n`);
    return 125;
  }
  if (global.version) {
    stdout.write(`${prog} version ${system.cliVersion}\n`);
    return 0;
  }
  let [name, ...rest] = global.rest;
  if (!name || global.help) {
    stdout.write(mainHelp());
    return 0;
  }
  if (name === 'help') {
    if (rest.length === 0) {
      stdout.write(mainHelp());
      return 0;
    }
    [name, ...rest] = [rest[0]!, ...rest.slice(1), '--help'];
  }
  if (name === 'daemon') {
    try {
      if (rest.includes('--help') || rest.includes('-h')) {
        stdout.write(commandHelp('daemon', system.daemonCommand));
        return 0;
      }
      await system.runDaemon(rest);
      return 0;
    } catch (err) {
      stderr.write(`${errorText(err)}\n`);
      return 1;
    }
  }

  let command: Command | undefined;
  let path = name;
  const group = groups.find((g) => g.name === name);
  if (group) {
    const sub = rest[0];
    if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
      stdout.write(groupHelp(group));
      return 0;
    }
    command = findIn(group.commands, sub, true);
    if (!command) {
      stderr.write(`${prog}: '${name} ${sub}' is not a ${prog} command.\nSee '${prog} ${name} --help'\n`);
      return 1;
    }
    path = `${name} ${command.name}`;
    rest = rest.slice(1);
  } else {
    command = findIn(topLevel, name, false);
    if (!command) {
      stderr.write(`${prog}: '${name}' is not a ${prog} command.\nSee '${prog} --help'\n`);
      return 1;
    }
  }

  let parsed;
  try {
    parsed = parseFlags(command.flags, rest, { interspersed: !command.stopAtPositional });
  } catch (err) {
    stderr.write(`${(err as Error).message}\nSee '${prog} ${path} --help'.\n`);
    return 125;
  }
  if (parsed.help) {
    stdout.write(commandHelp(path, command));
    return 0;
  }
  const problem = argsError(path, command, parsed.args.length);
  if (problem) {
    stderr.write(`${problem}\n`);
    return command.errorStatus ?? 1;
  }

  const cli = new Cli({ host: global.host ?? process.env.BALEIA_HOST, debug: global.debug, io });
  try {
    const status = await command.run(cli, { flags: parsed.flags, args: parsed.args });
    return status ?? 0;
  } catch (err) {
    if (err instanceof StreamError) {
      stderr.write(`${err.message}\n`);
      return err.code;
    }
    if (err instanceof UsageError) {
      stderr.write(`Error: ${err.message}\n`);
      return command.errorStatus ?? 1;
    }
    stderr.write(`${errorText(err)}\n`);
    if (global.debug && err instanceof Error && err.stack) stderr.write(`${err.stack}\n${describeError(err)}\n`);
    return command.errorStatus ?? 1;
  } finally {
    cli.close();
  }
}

const invokedDirectly = (() => {
  try {
    return !!process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
})();
if (invokedDirectly) {
  // A reader that went away (`baleia diff c | head`) ends the command quietly, as in a shell.
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Hijacked sockets or stdin may still hold the loop open: the command is done.
      setImmediate(() => process.exit(code));
    },
    (err) => {
      process.stderr.write(`Error: ${describeError(err)}\n`);
      process.exit(1);
    },
  );
}
