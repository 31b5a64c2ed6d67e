/**
 * The units docker shows and accepts (go-units): memory sizes in 1024-based units (`64m`, `1g`),
 * human sizes in 1000-based units (`4.26MB`), human durations (`5 seconds ago`) and the
 * timestamps of `--since`/`--until`.
 */
import { UsageError } from './flags.js';
import { parseGoDuration } from '../lib/duration.js';

export { parseGoDuration };

const binaryUnits: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
const decimalUnits: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };

function parseSize(text: string, units: Record<string, number>): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(text.trim());
  if (!m) throw new UsageError(`invalid size: '${text}'`);
  const value = Number.parseFloat(m[1]!);
  const unit = m[2] ? units[m[2].toLowerCase()]! : 1;
  return Math.trunc(value * unit);
}

/** `64m` → 67108864; a bare number is bytes (go-units RAMInBytes). */
export function ramInBytes(text: string): number {
  return parseSize(text, binaryUnits);
}

/** `1kB` → 1000 (go-units FromHumanSize). */
export function fromHumanSize(text: string): number {
  return parseSize(text, decimalUnits);
}

/** `--memory-swap`: -1 means unlimited. */
export function memSwapBytes(text: string): number {
  return text.trim() === '-1' ? -1 : ramInBytes(text);
}

/** `--cpus 0.5` → 500000000 NanoCpus. */
export function nanoCpus(text: string): number {
  if (!/^\d*\.?\d+$/.test(text.trim())) throw new UsageError(`invalid argument "${text}" for "--cpus" flag: failed to parse ${text} as a rational number`);
  return Math.round(Number(text) * 1e9);
}

/** Go's `%.<precision>g` for a non-negative number, as go-units prints sizes. */
export function formatG(value: number, precision: number): string {
  if (value === 0) return '0';
  let text = value.toPrecision(precision);
  if (text.includes('e')) {
    // Go writes e+03 where JavaScript writes e+3, and drops trailing zeros of the mantissa.
    const [mantissa, exp] = text.split('e') as [string, string];
    const m = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
    const sign = exp.startsWith('-') ? '-' : '+';
    const digits = exp.replace(/^[+-]/, '').padStart(2, '0');
    return `${m}e${sign}${digits}`;
  }
  if (text.includes('.')) text = text.replace(/\.?0+$/, '');
  return text;
}

const decimalAbbrs = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
const binaryAbbrs = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

function sizeAndUnit(size: number, base: number, abbrs: string[]): [number, string] {
  let i = 0;
  while (size >= base && i < abbrs.length - 1) {
    size /= base;
    i++;
  }
  return [size, abbrs[i]!];
}

/** go-units HumanSizeWithPrecision: `4261550` → `4.26MB` at precision 3. */
export function humanSize(bytes: number, precision = 4): string {
  const [v, unit] = sizeAndUnit(bytes, 1000, decimalAbbrs);
  return `${formatG(v, precision)}${unit}`;
}

/** go-units BytesSize: `1048576` → `1MiB`. */
export function bytesSize(bytes: number): string {
  const [v, unit] = sizeAndUnit(bytes, 1024, binaryAbbrs);
  return `${formatG(v, 4)}${unit}`;
}

/** go-units HumanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3600000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3600000 / 24 / 365)} years`;
}

/** `5 seconds ago` for a unix time in seconds. */
export function timeAgo(unixSeconds: number, now = Date.now()): string {
  return `${humanDuration(now - unixSeconds * 1000)} ago`;
}

/**
 * docker's timetypes.GetTimestamp: a duration means "that long before now", a number is a unix
 * timestamp as is, anything else an RFC3339-like date. Answers `<seconds>.<nanoseconds>`.
 */
export function apiTimestamp(text: string, now = Date.now()): string {
  const duration = parseGoDuration(text);
  if (duration !== undefined) return secondsNanos(now - duration);
  if (/^\d+(\.\d+)?$/.test(text)) return text;
  const withZone = /^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text;
  const parsed = Date.parse(withZone);
  if (Number.isNaN(parsed)) throw new UsageError(`failed to parse value as time or duration: "${text}"`);
  return secondsNanos(parsed);
}

function secondsNanos(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return `${seconds}.${String(nanos).padStart(9, '0')}`;
}

/**
 * Go's RFC3339NanoFixed ("2006-01-02T15:04:05.000000000Z07:00") in the local time zone, from
 * nanoseconds since the epoch (a bigint keeps all nine digits).
 */
export function rfc3339NanoFixed(nanos: bigint): string {
  const ms = Number(nanos / 1_000_000n);
  const frac = String(((nanos % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n).padStart(9, '0');
  const date = new Date(ms);
  const offsetMin = -date.getTimezoneOffset();
  const local = new Date(ms + offsetMin * 60000);
  const base = local.toISOString().slice(0, 19);
  const zone =
    offsetMin === 0
      ? 'Z'
      : `${offsetMin > 0 ? '+' : '-'}${String(Math.trunc(Math.abs(offsetMin) / 60)).padStart(2, '0')}:${String(Math.abs(offsetMin) % 60).padStart(2, '0')}`;
  return `${base}.${frac}${zone}`;
}

/** Go's time.Time String() shape, as docker prints CreatedAt: `2024-01-02 03:04:05 +0000 UTC`. */
export function goTimeString(unixSeconds: number): string {
  const date = new Date(unixSeconds * 1000);
  const offsetMin = -date.getTimezoneOffset();
  const local = new Date(date.getTime() + offsetMin * 60000);
  const base = local.toISOString().slice(0, 19).replace('T', ' ');
  const sign = offsetMin >= 0 ? '+' : '-';
  const hh = String(Math.trunc(Math.abs(offsetMin) / 60)).padStart(2, '0');
  const mm = String(Math.abs(offsetMin) % 60).padStart(2, '0');
  const zoneName = offsetMin === 0 ? 'UTC' : `${sign}${hh}${mm}`;
  return `${base} ${sign}${hh}${mm} ${zoneName}`;
}
