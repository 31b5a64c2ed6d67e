/**
 * A command: its names, usage line, flag table and handler. Groups (`container`, `image`, …)
 * hold subcommands; top-level shortcuts (`ps`, `run`, `images`) point at the same definitions.
 */
import type { FlagSpec, ParsedFlags } from './flags.js';
import type { Cli } from './context.js';

export interface CommandInput {
  flags: ParsedFlags;
  args: string[];
}

export interface Command {
  name: string;
  aliases?: string[];
  /** After the command path: `[OPTIONS] IMAGE [COMMAND] [ARG...]`. */
  usage: string;
  description: string;
  flags: FlagSpec[];
  /** Stop parsing flags at the first positional (run, create, exec). */
  stopAtPositional?: boolean;
  args?: { min?: number; max?: number };
  /** Exit status for errors (run, create, start use 125 for daemon errors). */
  errorStatus?: number;
  hidden?: boolean;
  run(cli: Cli, input: CommandInput): Promise<number | void>;
}

export interface CommandGroup {
  name: string;
  description: string;
  commands: Command[];
}
