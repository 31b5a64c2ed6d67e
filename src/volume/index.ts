/**
 * volume: Docker's `local` volumes — named directories that outlive containers, optionally backed
 * by a filesystem of their own (tmpfs, a bound host directory, a block device) — and the parsing
 * of mount requests (`-v`, `HostConfig.Binds`, `HostConfig.Mounts`). It does not know containers:
 * the engine says which container holds a volume, checks "in use" before removal, and bind-mounts
 * the path `mount()` returns into the container's spec.
 *
 * Lifecycle: create → mount(name, containerId) (mounts the volume's own filesystem on first use)
 * → copyUp(name, imageDir) (fills an empty volume once from the image) → unmount(name,
 * containerId) (unmounts on last release) → remove.
 *
 *   const volumes = new VolumeStore({ root: '/var/lib/baleia' }); await volumes.init();
 *   await volumes.create({ name: 'cache', options: { type: 'tmpfs', device: 'tmpfs', o: 'size=64m' } });
 *   const hostPath = await volumes.mount('cache', containerId);   // a tmpfs, shared by holders
 *   await volumes.copyUp('cache', path.join(rootfs, 'var/cache'));
 *   await volumes.unmount('cache', containerId);                  // last holder: unmounted
 *
 * On disk, under the daemon root:
 *
 *   <root>/volumes/                  (0701)
 *     <name>/volume.json             the record (VolumeRecord + internal `Populated`), atomic
 *     <name>/_data/                  the data; the mount point for tmpfs/bind/device volumes
 *     .tmp-<name>-<rand>/            a volume being created; renamed to <name> when whole
 *     .del-<name>-<rand>/            a volume being removed; init() finishes the job
 *
 * A volume directory without volume.json is a crash mid-create and init() removes it, after
 * unmounting anything under it. Mounts found at init (containers outlive the daemon) are kept and
 * adopted with no holders: the engine calls mount() again for each running container, then
 * unmountIdle() for the rest.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  conflict,
  errnoCode,
  internal,
  invalidArgument,
  newId,
  notFound,
  readJsonIfExists,
  run,
  silentLogger,
  syncDir,
  writeJsonAtomic,
  type Logger,
} from '../lib/index.js';
import { mountFs, mountsUnder, readMounts, unmountAll } from './mounts.js';

export {
  parseVolumeSpec,
  parseMountSpec,
  checkDuplicateDestinations,
  tmpfsMountData,
  type ParsedMount,
  type MountType,
  type MountConfig,
} from './spec.js';

export interface VolumeRecord {
  Name: string;
  Driver: 'local';
  Mountpoint: string;
  /** RFC3339 in UTC, seconds: `2026-11-28T15:12:34Z`. */
  CreatedAt: string;
  Labels: Record<string, string>;
  Options: Record<string, string>;
  Scope: 'local';
  Anonymous?: boolean;
}

interface StoredVolume extends VolumeRecord {
  /** copyUp has run (or found data) for this volume's persistent content. */
  Populated?: boolean;
}

export interface CreateVolumeOptions {
  name?: string;
  driver?: string;
  labels?: Record<string, string>;
  options?: Record<string, string>;
  anonymous?: boolean;
}

/** Docker's volume name grammar (names.RestrictedNamePattern). */
const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** Docker's local driver option keys, and which keys need which others. */
const validOptions = new Set(['type', 'device', 'o', 'size']);
const requiredWith: Record<string, string[]> = { device: ['type'], type: ['device'], o: ['device'] };

const rfc3339Seconds = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

function validateName(name: string): void {
  if (name.length === 1) {
    throw invalidArgument(`create ${name}: volume name is too short, names should be at least two alphanumeric characters`);
  }
  if (!namePattern.test(name)) {
    throw invalidArgument(
      `create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
    );
  }
}

function validateOptions(name: string, options: Record<string, string>): void {
  for (const key of Object.keys(options)) {
    if (!validOptions.has(key)) throw invalidArgument(`create ${name}: invalid option key: "${key}"`);
  }
  for (const [key, needs] of Object.entries(requiredWith)) {
    if (!(key in options)) continue;
    for (const need of needs) {
      if (!(need in options)) throw invalidArgument(`create ${name}: missing required option: "${need}"`);
    }
  }
  // Docker's `size` is an XFS project quota on the volume directory; we have no quota support.
  if ('size' in options) throw invalidArgument(`create ${name}: quota size requested but no quota support`);
}

const sameOptions = (a: Record<string, string>, b: Record<string, string>) => {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
};

/** A volume with its own filesystem: mounted at _data while held, empty underneath otherwise. */
const hasOwnFs = (v: VolumeRecord) => Boolean(v.Options.type || v.Options.device);
/** tmpfs content dies with its mount, so "populated" lives only as long as the mount. */
const isEphemeral = (v: VolumeRecord) => v.Options.type === 'tmpfs';

function publicRecord(v: StoredVolume): VolumeRecord {
  const r: VolumeRecord = {
    Name: v.Name,
    Driver: 'local',
    Mountpoint: v.Mountpoint,
    CreatedAt: v.CreatedAt,
    Labels: { ...v.Labels },
    Options: { ...v.Options },
    Scope: 'local',
  };
  if (v.Anonymous) r.Anonymous = true;
  return r;
}

export class VolumeStore {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #volumes = new Map<string, StoredVolume>();
  /** name → ids of the containers holding the volume's mount. */
  readonly #holders = new Map<string, Set<string>>();
  /** Volumes whose own filesystem is mounted at _data now. */
  readonly #mounted = new Set<string>();
  /** tmpfs volumes populated since their current mount. */
  readonly #populatedMounts = new Set<string>();
  readonly #locks = new Map<string, Promise<unknown>>();
  #ready: Promise<void> | undefined;

  constructor(opts: { root: string; logger?: Logger }) {
    this.#dir = path.join(path.resolve(opts.root), 'volumes');
    this.#logger = opts.logger ?? silentLogger;
  }

  /** Loads the records, removes half-created and half-removed volumes, adopts live mounts. */
  init(): Promise<void> {
    this.#ready ??= this.#load().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  async #load(): Promise<void> {
    await fs.mkdir(this.#dir, { recursive: true, mode: 0o701 });
    const live = new Set((await readMounts()).map((m) => m.target));
    for (const entry of await fs.readdir(this.#dir, { withFileTypes: true })) {
      const dir = path.join(this.#dir, entry.name);
      if (!entry.isDirectory()) continue;
      if (entry.name.startsWith('.tmp-') || entry.name.startsWith('.del-')) {
        await this.#removeDir(dir);
        continue;
      }
      let stored: StoredVolume | undefined;
      try {
        stored = await readJsonIfExists<StoredVolume>(path.join(dir, 'volume.json'));
      } catch (err) {
        this.#logger.warn('volume record unreadable, skipped', { volume: entry.name, err });
        continue;
      }
      if (!stored) {
        this.#logger.warn('removing half-created volume', { volume: entry.name });
        await this.#removeDir(dir);
        continue;
      }
      // The record's Mountpoint follows the root, so a moved root keeps working.
      stored.Mountpoint = path.join(dir, '_data');
      this.#volumes.set(stored.Name, stored);
      if (live.has(stored.Mountpoint)) this.#mounted.add(stored.Name);
    }
  }

  /**
   * Creates a volume, or returns the existing one of that name (as Docker does) unless the
   * request names another driver or other options.
   */
  async create(opts: CreateVolumeOptions = {}): Promise<VolumeRecord> {
    await this.init();
    const name = opts.name || newId();
    const driver = opts.driver || 'local';
    const options = { ...(opts.options ?? {}) };
    validateName(name);
    return this.#locked(name, async () => {
      const existing = this.#volumes.get(name);
      if (existing) {
        if (driver !== 'local') {
          throw conflict(`create ${name}: driver 'local' already has volume '${name}': volume name must be unique`);
        }
        if (Object.keys(options).length > 0 && !sameOptions(options, existing.Options)) {
          throw conflict(`create ${name}: volume "${name}" already exists with different options; remove it first or use another name`);
        }
        return publicRecord(existing);
      }
      if (driver !== 'local') {
        throw notFound(`create ${name}: error looking up volume plugin ${driver}: plugin "${driver}" not found`);
      }
      validateOptions(name, options);
      const final = path.join(this.#dir, name);
      const tmp = path.join(this.#dir, `.tmp-${name}-${randomBytes(4).toString('hex')}`);
      const stored: StoredVolume = {
        Name: name,
        Driver: 'local',
        Mountpoint: path.join(final, '_data'),
        CreatedAt: rfc3339Seconds(new Date()),
        Labels: { ...(opts.labels ?? {}) },
        Options: options,
        Scope: 'local',
      };
      if (opts.anonymous) stored.Anonymous = true;
      try {
        await fs.mkdir(path.join(tmp, '_data'), { recursive: true, mode: 0o755 });
        await writeJsonAtomic(path.join(tmp, 'volume.json'), stored);
        // A leftover directory of this name has no record (else it would be loaded): debris.
        await this.#removeDir(final);
        await fs.rename(tmp, final);
        await syncDir(this.#dir);
      } catch (err) {
        await fs.rm(tmp, { recursive: true, force: true }).catch(() => {});
        throw internal(`Cannot create volume "${name}"`, { cause: err });
      }
      this.#volumes.set(name, stored);
      this.#logger.info('volume created', { volume: name });
      return publicRecord(stored);
    });
  }

  async get(name: string): Promise<VolumeRecord> {
    await this.init();
    return publicRecord(this.#find(name));
  }

  async list(): Promise<VolumeRecord[]> {
    await this.init();
    return [...this.#volumes.values()].sort((a, b) => a.Name.localeCompare(b.Name)).map(publicRecord);
  }

  /** The containers holding the volume's mount now (those that called mount and not unmount). */
  holders(name: string): string[] {
    return [...(this.#holders.get(name) ?? [])];
  }

  /**
   * Removes a volume and its data. Without `force`, a volume held through mount() is a Conflict;
   * with it, a missing volume is not an error.
   */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.init();
    await this.#locked(name, async () => {
      const v = this.#volumes.get(name);
      if (!v) {
        if (opts.force) return;
        throw notFound(`get ${name}: no such volume`);
      }
      const holders = this.holders(name);
      if (holders.length > 0 && !opts.force) {
        throw conflict(`remove ${name}: volume is in use - [${holders.join(', ')}]`);
      }
      const dir = path.join(this.#dir, name);
      // Unmount first: a bound host directory must never see the recursive delete.
      await unmountAll(dir, this.#logger);
      this.#mounted.delete(name);
      this.#populatedMounts.delete(name);
      const doomed = path.join(this.#dir, `.del-${name}-${randomBytes(4).toString('hex')}`);
      await fs.rename(dir, doomed);
      await syncDir(this.#dir);
      this.#volumes.delete(name);
      this.#holders.delete(name);
      await this.#removeDir(doomed);
      this.#logger.info('volume removed', { volume: name });
    });
  }

  /**
   * Returns the host path to bind-mount into the container. A volume with its own filesystem
   * (options type/device) is mounted at _data by its first holder; calling again for the same
   * container is a no-op.
   */
  async mount(name: string, containerId: string): Promise<string> {
    await this.init();
    return this.#locked(name, async () => {
      const v = this.#find(name);
      if (hasOwnFs(v) && (this.#holders.get(name)?.size ?? 0) === 0) {
        // Nobody holds it: trust the kernel, not our memory (an admin may have unmounted it).
        if ((await mountsUnder(v.Mountpoint)).some((m) => m.target === v.Mountpoint)) this.#mounted.add(name);
        else this.#mounted.delete(name);
      }
      if (hasOwnFs(v) && !this.#mounted.has(name)) {
        try {
          await mountFs(
            { type: v.Options.type || 'none', device: v.Options.device ?? 'none', data: v.Options.o ?? '', target: v.Mountpoint },
            this.#logger,
          );
        } catch (err) {
          throw internal(`Cannot mount volume "${name}"`, { cause: err });
        }
        this.#mounted.add(name);
        this.#populatedMounts.delete(name);
        this.#logger.info('volume mounted', { volume: name, container: containerId });
      }
      let set = this.#holders.get(name);
      if (!set) this.#holders.set(name, (set = new Set()));
      set.add(containerId);
      return v.Mountpoint;
    });
  }

  /** Releases the container's hold; the last release unmounts the volume's own filesystem. Never throws for an unknown volume. */
  async unmount(name: string, containerId: string): Promise<void> {
    await this.init();
    await this.#locked(name, async () => {
      const set = this.#holders.get(name);
      set?.delete(containerId);
      if (set && set.size > 0) return;
      this.#holders.delete(name);
      await this.#unmountOwnFs(name);
    });
  }

  /** Unmounts every volume filesystem nobody holds (mounts adopted at init and never claimed). */
  async unmountIdle(): Promise<void> {
    await this.init();
    for (const name of [...this.#mounted]) {
      await this.#locked(name, async () => {
        if ((this.#holders.get(name)?.size ?? 0) === 0) await this.#unmountOwnFs(name);
      });
    }
  }

  async #unmountOwnFs(name: string): Promise<void> {
    const v = this.#volumes.get(name);
    if (!v || !this.#mounted.has(name)) return;
    await unmountAll(v.Mountpoint, this.#logger);
    this.#mounted.delete(name);
    this.#populatedMounts.delete(name);
    this.#logger.info('volume unmounted', { volume: name });
  }

  /**
   * Fills an empty, never-populated volume with the content at `srcDir` (the image's directory
   * at the mount destination; the engine resolves it inside the rootfs). `cp -a` keeps files,
   * directories, symlinks (as links, never followed), hardlinks, devices, owners, modes, mtimes
   * and xattrs; srcDir's own owner and mode go to _data, as in Docker. A srcDir that is missing,
   * not a directory, or a symlink copies nothing. A volume with its own filesystem must be mounted.
   */
  async copyUp(name: string, srcDir: string): Promise<void> {
    await this.init();
    await this.#locked(name, async () => {
      const v = this.#find(name);
      if (hasOwnFs(v) && !this.#mounted.has(name)) {
        throw internal(`Cannot copy into volume "${name}": its filesystem is not mounted; call mount first`);
      }
      const ephemeral = isEphemeral(v);
      if (ephemeral ? this.#populatedMounts.has(name) : v.Populated) return;
      const src = await fs.lstat(srcDir).catch((err: unknown) => {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
        throw err;
      });
      if (!src?.isDirectory()) return;
      if ((await fs.readdir(v.Mountpoint)).length === 0) {
        if ((await fs.readdir(srcDir)).length === 0) return;
        const started = Date.now();
        await run('cp', ['-a', '--no-dereference', '--', `${srcDir.replace(/\/+$/, '')}/.`, v.Mountpoint]);
        this.#logger.debug('volume copy-up', { volume: name, src: srcDir, ms: Date.now() - started });
      }
      if (ephemeral) {
        this.#populatedMounts.add(name);
      } else {
        v.Populated = true;
        await writeJsonAtomic(path.join(this.#dir, name, 'volume.json'), v);
      }
    });
  }

  /** Bytes used: apparent sizes of everything but directories, each inode once (Docker's directory.Size). */
  async usage(name: string): Promise<number> {
    await this.init();
    const v = this.#find(name);
    const seen = new Set<string>();
    let total = 0;
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        const st = await fs.lstat(p).catch(() => undefined);
        if (!st) continue;
        if (st.isDirectory()) {
          await walk(p);
          continue;
        }
        const key = `${st.dev}:${st.ino}`;
        if (st.size === 0 || seen.has(key)) continue;
        seen.add(key);
        total += st.size;
      }
    };
    await walk(v.Mountpoint);
    return total;
  }

  /** Removes every volume not in `inUse`, not held, and accepted by `filter`. */
  async prune(
    filter: (v: VolumeRecord) => boolean,
    inUse: Set<string>,
  ): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    await this.init();
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const v of await this.list()) {
      if (inUse.has(v.Name) || this.holders(v.Name).length > 0 || !filter(v)) continue;
      try {
        const size = await this.usage(v.Name);
        await this.remove(v.Name);
        deleted.push(v.Name);
        reclaimed += size;
      } catch (err) {
        this.#logger.warn('volume prune: cannot remove', { volume: v.Name, err });
      }
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: reclaimed };
  }

  #find(name: string): StoredVolume {
    const v = this.#volumes.get(name);
    if (!v) throw notFound(`get ${name}: no such volume`);
    return v;
  }

  /** Removes a directory recursively only once nothing is mounted at or under it. */
  async #removeDir(dir: string): Promise<void> {
    if ((await mountsUnder(dir)).length > 0) await unmountAll(dir, this.#logger);
    await fs.rm(dir, { recursive: true, force: true });
  }

  /** Runs `fn` after every earlier operation on the same volume name has settled. */
  async #locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.#locks.set(name, tail);
    try {
      return await next;
    } finally {
      if (this.#locks.get(name) === tail) this.#locks.delete(name);
    }
  }
}
