/**
 * Mount specifications as a container asks for them: `-v`/`HostConfig.Binds` strings and
 * `HostConfig.Mounts` objects, normalised into one shape with Docker's validation and Docker's
 * error texts (moby volume/mounts/linux_parser.go), so clients that match on them keep working.
 *
 * Pure, except that a `Mounts` bind checks that its source exists (Docker does, unless
 * `BindOptions.CreateMountpoint`); `-v` binds create a missing source, which is the engine's job.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { invalidArgument } from '../lib/index.js';

export type MountType = 'volume' | 'bind' | 'tmpfs';

/** One normalised mount request. */
export interface ParsedMount {
  type: MountType;
  /** Volume name (absent: an anonymous volume the engine must create) or cleaned host path. */
  source?: string;
  /** Cleaned absolute path in the container. */
  destination: string;
  readOnly: boolean;
  /** The mode as Docker shows it in `Mounts[].Mode`: the `-v` option string; `z` for a named `-v` volume. */
  mode: string;
  /** Binds only: `rprivate` unless asked otherwise. */
  propagation?: string;
  /** Volumes only: true when the image's content must not be copied into an empty volume. */
  nocopy?: boolean;
  /** Mounts binds only: create a missing source instead of failing. */
  createMountpoint?: boolean;
  /** Mounts volumes only: how to create the volume if it does not exist. */
  volumeOptions?: { labels?: Record<string, string>; driver?: string; driverOptions?: Record<string, string> };
  /** Tmpfs only: the mount data, e.g. `size=64m,mode=1777`. */
  tmpfsOptions?: string;
}

const rwModes = new Set(['rw', 'ro']);
const labelModes = new Set(['z', 'Z']);
export const propagationModes = new Set(['private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared']);
const consistencyModes = new Set(['consistent', 'cached', 'delegated']);

const invalidSpec = (spec: string) => `invalid volume specification: '${spec}'`;

/** Docker's linuxValidMountMode: each option known, at most one of each family. */
function validMode(mode: string): boolean {
  if (mode === '') return true;
  const counts = { rw: 0, label: 0, propagation: 0, copy: 0, consistency: 0 };
  for (const o of mode.split(',')) {
    if (rwModes.has(o)) counts.rw++;
    else if (labelModes.has(o)) counts.label++;
    else if (propagationModes.has(o)) counts.propagation++;
    else if (o === 'nocopy') counts.copy++;
    else if (consistencyModes.has(o)) counts.consistency++;
    else return false;
  }
  return Object.values(counts).every((n) => n <= 1);
}

/** A Docker-shaped `Mounts` entry (API field names). */
export interface MountConfig {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; CreateMountpoint?: boolean; NonRecursive?: boolean } | null;
  VolumeOptions?: {
    NoCopy?: boolean;
    Labels?: Record<string, string> | null;
    DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null;
  } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number } | null;
}

/**
 * Parses one `-v` / `Binds` entry: `name:/dst[:opts]`, `/host:/dst[:opts]` or `/dst` (anonymous).
 *
 *   parseVolumeSpec('data:/var/lib/db:ro') → { type: 'volume', source: 'data', destination: '/var/lib/db', readOnly: true, mode: 'ro' }
 */
export function parseVolumeSpec(spec: string): ParsedMount {
  const arr = splitN(spec, ':', 4);
  if (arr[0] === '') throw invalidArgument(invalidSpec(spec));
  const cfg: MountConfig = {};
  let mode = '';
  switch (arr.length) {
    case 1:
      cfg.Target = arr[0];
      break;
    case 2:
      // `/foo:rw` is a destination with a mode, which a volume cannot be.
      if (validMode(arr[1]!)) throw invalidArgument(invalidSpec(spec));
      cfg.Source = arr[0];
      cfg.Target = arr[1];
      break;
    case 3:
      cfg.Source = arr[0];
      cfg.Target = arr[1];
      mode = arr[2]!;
      break;
    default:
      throw invalidArgument(invalidSpec(spec));
  }
  if (!validMode(mode)) throw invalidArgument(`invalid mode: ${mode}`);
  const options = mode === '' ? [] : mode.split(',');
  cfg.Type = cfg.Source !== undefined && path.posix.isAbsolute(cfg.Source) ? 'bind' : 'volume';
  cfg.ReadOnly = options.includes('ro');
  if (options.includes('nocopy')) cfg.VolumeOptions = { NoCopy: true };
  const propagation = options.find((o) => propagationModes.has(o));
  if (propagation) cfg.BindOptions = { Propagation: propagation };
  let parsed: ParsedMount;
  try {
    parsed = normalise(cfg, { validateBindSourceExists: false });
  } catch (err) {
    throw invalidArgument(`${invalidSpec(spec)}: ${(err as Error).message}`, { cause: err });
  }
  // Docker shows a named volume from -v with the default SELinux share mode `z`.
  parsed.mode = mode === '' && parsed.type === 'volume' ? 'z' : mode;
  return parsed;
}

/**
 * Normalises one `HostConfig.Mounts` entry with Docker's validation. A bind's source must exist
 * unless `BindOptions.CreateMountpoint` (or `opts.validateBindSourceExists === false`).
 *
 *   parseMountSpec({ Type: 'tmpfs', Target: '/run', TmpfsOptions: { SizeBytes: 65536 } })
 *     → { type: 'tmpfs', destination: '/run', readOnly: false, mode: '', tmpfsOptions: 'size=64k' }
 */
export function parseMountSpec(m: object, opts: { validateBindSourceExists?: boolean } = {}): ParsedMount {
  const cfg = m as MountConfig;
  const validate = opts.validateBindSourceExists ?? !cfg.BindOptions?.CreateMountpoint;
  return normalise(cfg, { validateBindSourceExists: validate });
}

/** Docker's `Duplicate mount point: <dst>` over the mounts of one container (Binds, Mounts, tmpfs together). */
export function checkDuplicateDestinations(mounts: ReadonlyArray<{ destination: string }>): void {
  const seen = new Set<string>();
  for (const m of mounts) {
    const dst = path.posix.normalize(m.destination).replace(/(.)\/+$/, '$1');
    if (seen.has(dst)) throw invalidArgument(`Duplicate mount point: ${dst}`);
    seen.add(dst);
  }
}

/** Docker's ConvertTmpfsOptions: `ro`, `mode=<octal>`, `size=<n>[g|m|k]` (largest exact unit). */
export function tmpfsMountData(opts: { SizeBytes?: number; Mode?: number } | null | undefined, readOnly: boolean): string {
  const raw: string[] = [];
  if (readOnly) raw.push('ro');
  if (opts?.Mode) raw.push(`mode=${opts.Mode.toString(8)}`);
  if (opts?.SizeBytes) {
    let size = opts.SizeBytes;
    let suffix = '';
    for (const [s, d] of [['g', 2 ** 30], ['m', 2 ** 20], ['k', 2 ** 10]] as const) {
      if (size % d === 0) {
        size /= d;
        suffix = s;
        break;
      }
    }
    raw.push(`size=${size}${suffix}`);
  }
  return raw.join(',');
}

function splitN(s: string, sep: string, n: number): string[] {
  const parts = s.split(sep);
  return parts.length <= n ? parts : [...parts.slice(0, n - 1), parts.slice(n - 1).join(sep)];
}

const clean = (p: string) => path.posix.normalize(p).replace(/(.)\/+$/, '$1');

/** Docker's validateMountConfigImpl + parseMountSpec; errors read `invalid mount config for type "<t>": <detail>`. */
function normalise(cfg: MountConfig, opts: { validateBindSourceExists: boolean }): ParsedMount {
  const type = cfg.Type ?? '';
  const fail = (detail: string) => invalidArgument(`invalid mount config for type "${type}": ${detail}`);
  const target = cfg.Target ?? '';
  if (target.length === 0) throw fail('field Target must not be empty');
  if (clean(target) === '/') throw fail("invalid specification: destination can't be '/'");
  if (!path.posix.isAbsolute(target)) throw fail(`invalid mount path: '${target}' mount path must be absolute`);
  const source = cfg.Source ?? '';
  const readOnly = cfg.ReadOnly === true;
  const base = { destination: clean(target), readOnly, mode: '' };
  switch (type) {
    case 'bind': {
      if (source.length === 0) throw fail('field Source must not be empty');
      const propagation = cfg.BindOptions?.Propagation ?? '';
      if (propagation && !propagationModes.has(propagation)) throw fail(`invalid propagation mode: ${propagation}`);
      if (cfg.VolumeOptions) throw fail('field VolumeOptions must not be specified');
      if (cfg.TmpfsOptions) throw fail('field TmpfsOptions must not be specified');
      if (!path.posix.isAbsolute(source)) throw fail(`invalid mount path: '${source}' mount path must be absolute`);
      if (opts.validateBindSourceExists && !existsSync(source)) throw fail(`bind source path does not exist: ${source}`);
      const parsed: ParsedMount = { type: 'bind', source: clean(source), ...base, propagation: propagation || 'rprivate' };
      if (cfg.BindOptions?.CreateMountpoint) parsed.createMountpoint = true;
      return parsed;
    }
    case 'volume': {
      if (cfg.BindOptions) throw fail('field BindOptions must not be specified');
      if (cfg.TmpfsOptions) throw fail('field TmpfsOptions must not be specified');
      if (source.length === 0 && readOnly) throw fail('must not set ReadOnly mode when using anonymous volumes');
      const parsed: ParsedMount = { type: 'volume', ...base };
      if (source.length > 0) parsed.source = source;
      const vo = cfg.VolumeOptions;
      if (vo?.NoCopy) parsed.nocopy = true;
      const volumeOptions: NonNullable<ParsedMount['volumeOptions']> = {};
      if (vo?.Labels && Object.keys(vo.Labels).length > 0) volumeOptions.labels = { ...vo.Labels };
      if (vo?.DriverConfig?.Name) volumeOptions.driver = vo.DriverConfig.Name;
      if (vo?.DriverConfig?.Options && Object.keys(vo.DriverConfig.Options).length > 0) {
        volumeOptions.driverOptions = { ...vo.DriverConfig.Options };
      }
      if (Object.keys(volumeOptions).length > 0) parsed.volumeOptions = volumeOptions;
      return parsed;
    }
    case 'tmpfs': {
      if (cfg.BindOptions) throw fail('field BindOptions must not be specified');
      if (cfg.VolumeOptions) throw fail('field VolumeOptions must not be specified');
      if (source.length !== 0) throw fail('field Source must not be specified');
      const size = cfg.TmpfsOptions?.SizeBytes ?? 0;
      if (!Number.isInteger(size) || size < 0) throw fail(`invalid tmpfs size: ${size}`);
      return { type: 'tmpfs', ...base, tmpfsOptions: tmpfsMountData(cfg.TmpfsOptions, readOnly) };
    }
    default:
      throw fail('mount type unknown');
  }
}
