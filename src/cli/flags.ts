/**
 * Docker-style (pflag) command-line flags: a table per command, parsed into values and positionals.
 *
 *   --name x   --name=x   -e K=V   -eK=V   -e=K=V   -it (combined bools)   -p8080:80   --   --rm=false
 *
 * `interspersed: false` stops at the first positional (run, create, exec), so `run busybox ls -l`
 * leaves `-l` to the container's command.
 */
import { BaleiaError } from '../lib/index.js';

export type FlagType = 'bool' | 'string' | 'list' | 'int';

export interface FlagSpec {
  long: string;
  short?: string;
  type: FlagType;
  description: string;
  /** Shown in help as the value's name (`string`, `list`, `int` by default). */
  valueName?: string;
  default?: string | number | boolean;
  hidden?: boolean;
}

export type FlagValue = string | number | boolean | string[];

export class ParsedFlags {
  readonly #values = new Map<string, FlagValue>();
  readonly #set = new Set<string>();
  readonly #specs: Map<string, FlagSpec>;

  constructor(specs: readonly FlagSpec[]) {
    this.#specs = new Map(specs.map((s) => [s.long, s]));
    for (const spec of specs) {
      if (spec.type === 'list') this.#values.set(spec.long, []);
      else if (spec.default !== undefined) this.#values.set(spec.long, spec.default);
    }
  }

  set(long: string, value: FlagValue): void {
    this.#values.set(long, value);
    this.#set.add(long);
  }

  /** True when the user gave the flag (even with its default value). */
  changed(long: string): boolean {
    return this.#set.has(long);
  }

  bool(long: string): boolean {
    this.#check(long);
    return this.#values.get(long) === true;
  }

  string(long: string): string | undefined {
    this.#check(long);
    const v = this.#values.get(long);
    return v === undefined ? undefined : String(v);
  }

  int(long: string): number | undefined {
    this.#check(long);
    const v = this.#values.get(long);
    return v === undefined ? undefined : Number(v);
  }

  list(long: string): string[] {
    this.#check(long);
    return (this.#values.get(long) as string[] | undefined) ?? [];
  }

  #check(long: string): void {
    if (!this.#specs.has(long)) throw new BaleiaError('Internal', `Cannot read flag "--${long}": not declared`);
  }
}

export interface ParseResult {
  flags: ParsedFlags;
  args: string[];
  help: boolean;
}

/** A usage error: printed with a "See '<cmd> --help'" hint, exit status 125. */
export class UsageError extends BaleiaError {
  constructor(message: string) {
    super('InvalidArgument', message);
  }
}

const helpSpec: FlagSpec = { long: 'help', type: 'bool', description: 'Print usage' };

const boolFalse = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);
const boolTrue = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);

function parseBool(flagName: string, text: string): boolean {
  if (boolTrue.has(text)) return true;
  if (boolFalse.has(text)) return false;
  throw new UsageError(`invalid argument "${text}" for "${flagName}" flag: strconv.ParseBool: parsing "${text}": invalid syntax`);
}

function describeFlag(spec: FlagSpec): string {
  return spec.short ? `-${spec.short}, --${spec.long}` : `--${spec.long}`;
}

export function parseFlags(
  specs: readonly FlagSpec[],
  argv: readonly string[],
  options: { interspersed?: boolean } = {},
): ParseResult {
  const interspersed = options.interspersed ?? true;
  const all = specs.some((s) => s.long === 'help') ? specs : [...specs, helpSpec];
  const byLong = new Map(all.map((s) => [s.long, s]));
  const byShort = new Map(all.filter((s) => s.short).map((s) => [s.short!, s]));
  const flags = new ParsedFlags(all);
  const args: string[] = [];

  const assign = (spec: FlagSpec, text: string) => {
    switch (spec.type) {
      case 'bool':
        flags.set(spec.long, parseBool(describeFlag(spec), text));
        break;
      case 'int': {
        if (!/^[+-]?\d+$/.test(text)) {
          throw new UsageError(
            `invalid argument "${text}" for "${describeFlag(spec)}" flag: strconv.ParseInt: parsing "${text}": invalid syntax`,
          );
        }
        flags.set(spec.long, Number(text));
        break;
      }
      case 'string':
        flags.set(spec.long, text);
        break;
      case 'list':
        flags.set(spec.long, [...flags.list(spec.long), text]);
        break;
    }
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      const spec = byLong.get(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`);
      if (eq >= 0) assign(spec, arg.slice(eq + 1));
      else if (spec.type === 'bool') flags.set(spec.long, true);
      else {
        if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: --${name}`);
        assign(spec, argv[++i]!);
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // A run of shorthands: bools combine (-it); a value flag takes the rest (-p8080:80, -e=K=V)
      // or the next argument.
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j]!;
        const spec = byShort.get(c);
        if (!spec) {
          if (c === 'h') {
            flags.set('help', true);
            continue;
          }
          throw new UsageError(`unknown shorthand flag: '${c}' in ${arg}`);
        }
        if (spec.type === 'bool') {
          if (arg[j + 1] === '=') {
            assign(spec, arg.slice(j + 2));
            break;
          }
          flags.set(spec.long, true);
          continue;
        }
        let rest = arg.slice(j + 1);
        if (rest.startsWith('=')) rest = rest.slice(1);
        else if (rest === '') {
          if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: '${c}' in -${c}`);
          rest = argv[++i]!;
        }
        assign(spec, rest);
        break;
      }
      continue;
    }
    if (!interspersed) {
      args.push(...argv.slice(i));
      break;
    }
    args.push(arg);
  }
  return { flags, args, help: flags.bool('help') };
}

/** The "Options:" block of a command's help, aligned like cobra's. */
export function formatFlagHelp(specs: readonly FlagSpec[]): string {
  const visible = [...specs.filter((s) => !s.hidden), helpSpec].sort((a, b) => a.long.localeCompare(b.long));
  const left = visible.map((s) => {
    const names = s.short ? `-${s.short}, --${s.long}` : `    --${s.long}`;
    const value = s.type === 'bool' ? '' : ` ${s.valueName ?? s.type}`;
    return `  ${names}${value}`;
  });
  const width = Math.max(...left.map((l) => l.length)) + 3;
  return visible
    .map((s, i) => {
      const def =
        s.default !== undefined && s.default !== false && s.default !== '' ? ` (default ${JSON.stringify(s.default)})` : '';
      return `${left[i]!.padEnd(width)}${s.description}${def}`;
    })
    .join('\n');
}
