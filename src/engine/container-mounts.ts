/**
 * A container's mounts: Binds (`-v`), Mounts (`--mount`), Tmpfs, VolumesFrom and the image's
 * VOLUMEs, resolved once at create into the record's MountPoints, then turned into OCI mounts
 * at each start and released at each exit.
 *
 *   create: resolve (creates the volumes named) → start: prepare (mounts volumes, copies the
 *   image's content into new ones) → exit: release → remove: removeAnonymous
 *
 * The volume module owns the volumes and their filesystems; this file says which a container
 * uses and where. Other containers (for VolumesFrom) are found through `lookup`.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describeError, invalidArgument, isKind, resolveInRoot, type Logger, type Owner } from '../lib/index.js';
import {
  checkDuplicateDestinations,
  parseMountSpec,
  parseVolumeSpec,
  type ParsedMount,
  type VolumeStore,
} from '../volume/index.js';
import type { EventBus } from './events.js';
import type { ContainerRecord, MountPoint } from './containers.js';

export interface ContainerMountsOptions {
  volumes: VolumeStore;
  events: EventBus;
  logger: Logger;
  /** A container by id, name or unique id prefix (NotFound otherwise). */
  lookup: (idOrName: string) => ContainerRecord;
}

export type OciMount = { destination: string; type: string; source: string; options: string[] };

export class ContainerMounts {
  readonly #volumes: VolumeStore;
  readonly #events: EventBus;
  readonly #log: Logger;
  readonly #lookup: (idOrName: string) => ContainerRecord;

  constructor(options: ContainerMountsOptions) {
    this.#volumes = options.volumes;
    this.#events = options.events;
    this.#log = options.logger;
    this.#lookup = options.lookup;
  }

  /**
   * Turns Binds (`-v`), Mounts (`--mount`), Tmpfs, VolumesFrom and the image's VOLUMEs into the
   * container's mount points, creating the volumes they name. Anonymous volumes made here are
   * removed again by `owner` if the create fails.
   */
  async resolve(record: ContainerRecord, owner: Owner): Promise<MountPoint[]> {
    const hc = record.HostConfig;
    const parsed: Array<ParsedMount & { fromBinds?: boolean }> = [];
    for (const bind of hc.Binds ?? []) parsed.push({ ...parseVolumeSpec(bind), fromBinds: true });
    for (const m of (hc.Mounts as object[] | null | undefined) ?? []) parsed.push(parseMountSpec(m));
    for (const [destination, options] of Object.entries((hc.Tmpfs as Record<string, string> | null | undefined) ?? {}))
      parsed.push({ type: 'tmpfs', destination, readOnly: false, mode: '', tmpfsOptions: options });
    const inherited: MountPoint[] = [];
    for (const spec of (hc.VolumesFrom as string[] | null | undefined) ?? []) {
      const [ref = '', mode] = spec.split(':');
      if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw invalidArgument(`invalid mode for volumes-from: ${mode}`);
      const other = this.#lookup(ref);
      for (const mp of other.MountPoints ?? [])
        inherited.push({ ...mp, RW: mode === undefined ? mp.RW : mode === 'rw', Mode: mode ?? mp.Mode, Anonymous: false });
    }
    checkDuplicateDestinations([...parsed, ...inherited.map((m) => ({ destination: m.Destination }))]);
    const points: MountPoint[] = [];
    const volume = async (name: string | undefined, p: Partial<ParsedMount>): Promise<{ Name: string; Mountpoint: string }> => {
      if (name) {
        const existing = await this.#volumes.get(name).catch((err) => {
          if (isKind(err, 'NotFound')) return undefined;
          throw err;
        });
        if (existing) return existing;
      }
      const created = await this.#volumes.create({
        name,
        anonymous: !name,
        labels: p.volumeOptions?.labels,
        driver: p.volumeOptions?.driver,
        options: p.volumeOptions?.driverOptions,
      });
      if (!name) owner.defer(() => this.#volumes.remove(created.Name, { force: true }));
      this.#events.publish('volume', 'create', created.Name, { driver: 'local' });
      return created;
    };
    for (const p of parsed) {
      if (p.type === 'bind') {
        const source = p.source!;
        // `-v /host:/c` creates a missing host directory; `--mount` refused it while parsing.
        if (p.fromBinds || p.createMountpoint) await fs.mkdir(source, { recursive: true });
        points.push({ Type: 'bind', Source: source, Destination: p.destination, Mode: p.mode, RW: !p.readOnly, Propagation: p.propagation ?? 'rprivate' });
      } else if (p.type === 'volume') {
        const v = await volume(p.source, p);
        points.push({
          Type: 'volume', Name: v.Name, Source: v.Mountpoint, Destination: p.destination, Driver: 'local',
          Mode: p.mode, RW: !p.readOnly, Propagation: '', NoCopy: p.nocopy, Anonymous: !p.source,
        });
      } else {
        points.push({ Type: 'tmpfs', Source: '', Destination: p.destination, Mode: p.mode, RW: !p.readOnly, Propagation: '', TmpfsOptions: p.tmpfsOptions ?? '' });
      }
    }
    points.push(...inherited);
    // The image's VOLUMEs (and Config.Volumes) not covered above become anonymous volumes.
    for (const dest of Object.keys(record.Config.Volumes ?? {})) {
      const destination = path.posix.normalize(dest).replace(/(.)\/+$/, '$1');
      if (!destination.startsWith('/')) throw invalidArgument(`invalid mount config: mount path "${dest}" must be absolute`);
      if (points.some((m) => m.Destination === destination)) continue;
      const v = await volume(undefined, {});
      points.push({ Type: 'volume', Name: v.Name, Source: v.Mountpoint, Destination: destination, Driver: 'local', Mode: '', RW: true, Propagation: '', Anonymous: true });
    }
    return points;
  }

  /** Mounts the container's volumes (copying the image's content into new ones) and returns the OCI mounts. */
  async prepare(record: ContainerRecord, rootfs: string, owner: Owner): Promise<OciMount[]> {
    const mounts: OciMount[] = [];
    for (const mp of record.MountPoints ?? []) {
      const ro = mp.RW ? 'rw' : 'ro';
      if (mp.Type === 'tmpfs') {
        const extra = (mp.TmpfsOptions ?? '').split(',').filter(Boolean);
        mounts.push({ destination: mp.Destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', ...(mp.RW ? [] : ['ro']), ...extra] });
        continue;
      }
      let source = mp.Source;
      if (mp.Type === 'volume') {
        const name = mp.Name!;
        source = await this.#volumes.mount(name, record.Id);
        owner.defer(() => this.#volumes.unmount(name, record.Id));
        if (!mp.NoCopy) {
          // Resolved inside the rootfs: an image symlink must not point the copy at the host.
          const from = await resolveInRoot(rootfs, mp.Destination);
          const st = await fs.lstat(from).catch(() => undefined);
          if (st?.isDirectory()) await this.#volumes.copyUp(name, from);
        }
        this.#events.publish('volume', 'mount', name, { container: record.Id, destination: mp.Destination, driver: 'local', propagation: '', 'read/write': String(mp.RW) });
      } else {
        const exists = await fs.stat(source).catch(() => undefined);
        if (!exists) throw invalidArgument(`invalid mount config for type "bind": bind source path does not exist: ${source}`);
      }
      mounts.push({ destination: mp.Destination, type: 'bind', source, options: ['rbind', ro, mp.Type === 'bind' ? mp.Propagation || 'rprivate' : 'rprivate'] });
    }
    return mounts;
  }

  /** Re-takes the volumes of a container found running after a daemon restart. */
  async readopt(record: ContainerRecord): Promise<void> {
    for (const mp of record.MountPoints ?? [])
      if (mp.Type === 'volume' && mp.Name) await this.#volumes.mount(mp.Name, record.Id).catch(() => {});
  }

  async release(record: ContainerRecord): Promise<void> {
    for (const mp of record.MountPoints ?? []) {
      if (mp.Type !== 'volume' || !mp.Name) continue;
      await this.#volumes.unmount(mp.Name, record.Id).catch((err) =>
        this.#log.warn('Cannot release volume', { container: record.Id, volume: mp.Name, err: describeError(err) }),
      );
      this.#events.publish('volume', 'unmount', mp.Name, { container: record.Id, driver: 'local' });
    }
  }

  /** Removes the anonymous volumes of a removed container that no other container uses. */
  async removeAnonymous(record: ContainerRecord, inUse: (volume: string) => boolean): Promise<void> {
    for (const mp of record.MountPoints ?? []) {
      if (mp.Type !== 'volume' || !mp.Anonymous || !mp.Name || inUse(mp.Name)) continue;
      await this.#volumes.remove(mp.Name, { force: true }).catch((err) =>
        this.#log.warn('Cannot remove anonymous volume', { volume: mp.Name, err: describeError(err) }),
      );
      this.#events.publish('volume', 'destroy', mp.Name, { driver: 'local' });
    }
  }
}
