/**
 * Dockerfile instructions that change an image config without running anything (pure): the
 * `--change` lines of `docker import` and `docker commit`, and the metadata steps of a build.
 *
 *   const apply = parseChanges(['ENV A=1 B="two words"', 'CMD ["sh"]', 'EXPOSE 80/udp 443']);
 *   apply(config.config);   // mutates the container config part of an image config
 *
 * Supported: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, ONBUILD,
 * HEALTHCHECK, MAINTAINER (ignored for the container config). Shell form of CMD/ENTRYPOINT
 * becomes ["/bin/sh","-c",…] as Docker does on Linux.
 */
import { invalidArgument } from '../lib/index.js';

export interface ContainerConfig {
  User?: string;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  OnBuild?: string[] | null;
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number };
  [k: string]: unknown;
}

export const changeInstructions = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'USER', 'VOLUME', 'WORKDIR', 'STOPSIGNAL', 'ONBUILD', 'HEALTHCHECK'];

/** A JSON array of strings, or undefined when the text is not one (then it is shell form). */
function jsonArray(text: string): string[] | undefined {
  const t = text.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // not JSON: Docker then treats it as shell form
  }
  return undefined;
}

/** Splits words the way Dockerfile ENV/LABEL do: quotes group, backslash escapes. */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw invalidArgument(`Cannot parse "${text}": unterminated quote`);
  if (inWord) words.push(cur);
  return words;
}

/** key=value pairs, or the legacy single `KEY value with spaces` form. */
function keyValues(instr: string, args: string): Array<[string, string]> {
  const words = splitWords(args);
  if (words.length === 0) throw invalidArgument(`${instr} requires at least one argument`);
  if (!words[0]!.includes('=')) {
    const m = /^\s*(\S+)\s+(.*)$/s.exec(args);
    if (!m) throw invalidArgument(`${instr} must have two arguments`);
    return [[m[1]!, splitWords(m[2]!).join(' ')]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalidArgument(`${instr} names can not be blank: "${w}"`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** Go duration ("30s", "1m30s", "500ms") in nanoseconds. */
export function parseDuration(s: string): number {
  if (s === '0') return 0;
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const re = /([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += parseFloat(m[1]!) * units[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== s.length || s === '') throw invalidArgument(`Cannot parse duration "${s}"`);
  return Math.round(total);
}

function shellOrExec(args: string): string[] {
  return jsonArray(args) ?? ['/bin/sh', '-c', args.trim()];
}

/**
 * Parses instruction lines into one function that applies them, in order, to a container
 * config. Unknown or malformed instructions are InvalidArgument at parse time.
 */
export function parseChanges(lines: string[]): (config: ContainerConfig) => void {
  const steps: Array<(c: ContainerConfig) => void> = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/s.exec(line)!;
    const instr = m[1]!.toUpperCase();
    const args = m[2]!;
    switch (instr) {
      case 'CMD': {
        const v = shellOrExec(args);
        steps.push((c) => (c.Cmd = v));
        break;
      }
      case 'ENTRYPOINT': {
        const v = args.trim() === '' ? null : shellOrExec(args);
        steps.push((c) => {
          c.Entrypoint = v;
          // Docker: setting ENTRYPOINT resets a CMD inherited from the base image
          c.Cmd = null;
        });
        break;
      }
      case 'ENV': {
        const pairs = keyValues('ENV', args);
        steps.push((c) => {
          const env = [...(c.Env ?? [])];
          for (const [k, v] of pairs) {
            const i = env.findIndex((e) => e.split('=')[0] === k);
            if (i >= 0) env[i] = `${k}=${v}`;
            else env.push(`${k}=${v}`);
          }
          c.Env = env;
        });
        break;
      }
      case 'LABEL': {
        const pairs = keyValues('LABEL', args);
        steps.push((c) => {
          c.Labels = { ...(c.Labels ?? {}) };
          for (const [k, v] of pairs) c.Labels[k] = v;
        });
        break;
      }
      case 'EXPOSE': {
        const ports = splitWords(args);
        if (ports.length === 0) throw invalidArgument('EXPOSE requires at least one argument');
        const keys = ports.map((p) => {
          const pm = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!pm) throw invalidArgument(`Invalid containerPort: ${p}`);
          const proto = (pm[3] ?? 'tcp').toLowerCase();
          const from = Number(pm[1]);
          const to = pm[2] ? Number(pm[2]) : from;
          const out: string[] = [];
          for (let port = from; port <= to; port++) out.push(`${port}/${proto}`);
          return out;
        });
        steps.push((c) => {
          c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
          for (const k of keys.flat()) c.ExposedPorts[k] = {};
        });
        break;
      }
      case 'USER': {
        const user = args.trim();
        if (!user) throw invalidArgument('USER requires exactly one argument');
        steps.push((c) => (c.User = user));
        break;
      }
      case 'VOLUME': {
        const vols = jsonArray(args) ?? splitWords(args);
        if (vols.length === 0 || vols.some((v) => v === '')) throw invalidArgument('VOLUME specified can not be an empty string');
        steps.push((c) => {
          c.Volumes = { ...(c.Volumes ?? {}) };
          for (const v of vols) c.Volumes[v] = {};
        });
        break;
      }
      case 'WORKDIR': {
        const dir = args.trim();
        if (!dir) throw invalidArgument('WORKDIR requires exactly one argument');
        steps.push((c) => {
          const base = c.WorkingDir || '/';
          const joined = dir.startsWith('/') ? dir : `${base.replace(/\/$/, '')}/${dir}`;
          c.WorkingDir = normalizePath(joined);
        });
        break;
      }
      case 'STOPSIGNAL': {
        const sig = args.trim();
        if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/i.test(sig)) throw invalidArgument(`Invalid signal: ${sig}`);
        steps.push((c) => (c.StopSignal = sig));
        break;
      }
      case 'ONBUILD': {
        const trig = args.trim();
        const first = trig.split(/\s+/)[0]!.toUpperCase();
        if (!trig) throw invalidArgument('ONBUILD requires at least one argument');
        if (first === 'ONBUILD') throw invalidArgument('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
        if (first === 'FROM' || first === 'MAINTAINER') throw invalidArgument(`${first} isn't allowed as an ONBUILD trigger`);
        steps.push((c) => (c.OnBuild = [...(c.OnBuild ?? []), trig]));
        break;
      }
      case 'HEALTHCHECK': {
        const hc = parseHealthcheck(args);
        steps.push((c) => (c.Healthcheck = hc));
        break;
      }
      case 'MAINTAINER':
        break;
      default:
        throw invalidArgument(`${instr} is not a valid change command`);
    }
  }
  return (config) => {
    for (const step of steps) step(config);
  };
}

function normalizePath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return '/' + out.join('/');
}

function parseHealthcheck(args: string): NonNullable<ContainerConfig['Healthcheck']> {
  let rest = args.trim();
  const hc: NonNullable<ContainerConfig['Healthcheck']> = {};
  for (;;) {
    const m = /^--([a-z-]+)=(\S+)\s*/.exec(rest);
    if (!m) break;
    rest = rest.slice(m[0].length);
    const [, flag, value] = m as unknown as [string, string, string];
    switch (flag) {
      case 'interval':
        hc.Interval = parseDuration(value);
        break;
      case 'timeout':
        hc.Timeout = parseDuration(value);
        break;
      case 'start-period':
        hc.StartPeriod = parseDuration(value);
        break;
      case 'start-interval':
        hc.StartInterval = parseDuration(value);
        break;
      case 'retries': {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 0) throw invalidArgument(`HEALTHCHECK --retries must be a non-negative integer: "${value}"`);
        hc.Retries = n;
        break;
      }
      default:
        throw invalidArgument(`Unknown flag: --${flag}`);
    }
  }
  const m = /^(\S+)\s*(.*)$/s.exec(rest);
  const kind = m?.[1]?.toUpperCase();
  if (kind === 'NONE') {
    if (m![2]!.trim() !== '' || Object.keys(hc).length > 0) throw invalidArgument('HEALTHCHECK NONE takes no arguments');
    return { Test: ['NONE'] };
  }
  if (kind !== 'CMD' || !m![2]!.trim()) throw invalidArgument('HEALTHCHECK requires NONE or CMD followed by a command');
  const exec = jsonArray(m![2]!);
  hc.Test = exec ? ['CMD', ...exec] : ['CMD-SHELL', m![2]!.trim()];
  return hc;
}
