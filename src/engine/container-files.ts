/**
 * A container's files: stat, `docker cp` both ways (archive), `docker export`, `docker diff`
 * (changes) and `docker commit` (its changes as a new image layer).
 *
 * A running container's root is read through /proc/<pid>/root (its volumes and tmpfs
 * included); a stopped one's rootfs is mounted for the call and unmounted after it, unless the
 * container started meanwhile. The snapshot module reads and writes the trees (never outside
 * the root); this file chooses the root and publishes the events.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { ImageStore, ImageRecord } from '../image/index.js';
import type { ContentStore } from '../content/index.js';
import type { Runtime } from '../runtime/index.js';
import {
  archiveFromRoot,
  changes as layerChanges,
  diffTar,
  exportRootfs,
  extractToRoot,
  statInRoot,
  type PathStat,
  type Snapshotter,
} from '../snapshot/index.js';
import type { Json } from './container-config.js';
import type { ContainerRecord } from './containers.js';

export interface ContainerFilesOptions {
  images: ImageStore;
  snapshots: Snapshotter;
  content: ContentStore;
  runtime: Runtime;
  /** Publishes a container event. */
  emit: (record: ContainerRecord, action: string, extra?: Record<string, string>) => void;
}

export class ContainerFiles {
  readonly #images: ImageStore;
  readonly #snapshots: Snapshotter;
  readonly #content: ContentStore;
  readonly #runtime: Runtime;
  readonly #emit: (record: ContainerRecord, action: string, extra?: Record<string, string>) => void;

  constructor(options: ContainerFilesOptions) {
    this.#images = options.images;
    this.#snapshots = options.snapshots;
    this.#content = options.content;
    this.#runtime = options.runtime;
    this.#emit = options.emit;
  }

  /**
   * The container's root as its processes see it: /proc/<pid>/root while it runs (volumes and
   * tmpfs included), else its rootfs mounted for the call. `release` undoes that mount.
   */
  async #rootOf(record: ContainerRecord): Promise<{ root: string; release: () => Promise<void> }> {
    if (record.State.Running && record.State.Pid) return { root: `/proc/${record.State.Pid}/root`, release: async () => {} };
    const chain = await this.#images.ensureUnpacked(await this.#images.resolve(record.Image));
    const merged = await this.#snapshots.mountContainer(record.Id, chain);
    return {
      root: merged,
      release: async () => {
        if (!record.State.Running) await this.#snapshots.unmountContainer(record.Id).catch(() => {});
      },
    };
  }

  async stat(record: ContainerRecord, containerPath: string): Promise<PathStat> {
    const { root, release } = await this.#rootOf(record);
    try {
      return await statInRoot(root, containerPath, { container: record.Id });
    } finally {
      await release();
    }
  }

  /** `docker cp` out: a tar of the path; the rootfs stays mounted until the stream ends. */
  async getArchive(record: ContainerRecord, containerPath: string, options: { signal?: AbortSignal } = {}): Promise<{ stat: PathStat; stream: NodeJS.ReadableStream }> {
    const { root, release } = await this.#rootOf(record);
    try {
      const { stat, stream } = await archiveFromRoot(root, containerPath, { container: record.Id, signal: options.signal });
      let released = false;
      const done = () => {
        if (!released) void release();
        released = true;
      };
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', done);
      this.#emit(record, 'archive-path');
      return { stat, stream };
    } catch (err) {
      await release();
      throw err;
    }
  }

  /** `docker cp` in: extracts a tar into a directory of the container, never outside its root. */
  async putArchive(record: ContainerRecord, containerPath: string, tar: NodeJS.ReadableStream, options: { noOverwriteDirNonDir?: boolean; copyUIDGID?: boolean; signal?: AbortSignal }): Promise<void> {
    const readOnlyPaths = [
      ...(record.HostConfig.ReadonlyRootfs ? ['/'] : []),
      ...(record.MountPoints ?? []).filter((m) => !m.RW).map((m) => m.Destination),
    ];
    const { root, release } = await this.#rootOf(record);
    try {
      await extractToRoot(root, containerPath, tar, { ...options, readOnlyPaths, container: record.Id });
    } finally {
      await release();
    }
    this.#emit(record, 'extract-to-dir');
  }

  async export(record: ContainerRecord, options: { signal?: AbortSignal } = {}): Promise<NodeJS.ReadableStream> {
    const chain = await this.#images.ensureUnpacked(await this.#images.resolve(record.Image));
    // The merged rootfs, without what the container mounted over it (as docker export).
    const merged = await this.#snapshots.mountContainer(record.Id, chain);
    const stream = exportRootfs(merged, options);
    const done = () => {
      if (!record.State.Running) void this.#snapshots.unmountContainer(record.Id).catch(() => {});
    };
    stream.once('end', done);
    stream.once('error', done);
    this.#emit(record, 'export');
    return stream;
  }

  async changes(record: ContainerRecord): Promise<Array<{ Path: string; Kind: 0 | 1 | 2 }>> {
    const chain = await this.#images.ensureUnpacked(await this.#images.resolve(record.Image));
    const all = await layerChanges(this.#snapshots.containerUpperPath(record.Id), chain.map((c) => this.#snapshots.layerPath(c)));
    // The files baleia bind-mounts over (Docker keeps them in an init layer): not the user's changes.
    const managed = new Set(['/etc/hostname', '/etc/hosts', '/etc/resolv.conf']);
    return all.filter((c) => !(managed.has(c.Path) && c.Kind === 1));
  }

  /**
   * `docker commit`: the container's changes become one new layer over its image, with the
   * container's config (plus `changes`) as the new image's config.
   */
  async commit(record: ContainerRecord, options: { ref?: string; author?: string; comment?: string; changes?: (config: Json) => void; config?: Json; pause?: boolean }): Promise<ImageRecord> {
    const base = await this.#images.resolve(record.Image);
    const chain = await this.#images.ensureUnpacked(base);
    const paused = options.pause !== false && record.State.Running && !record.State.Paused;
    if (paused) await this.#runtime.pause(record.Id);
    let layer: { digest: string; size: number };
    try {
      // Without the files baleia bind-mounts over (empty mount targets), as Docker's init layer does.
      const managed = new Set(['etc/hostname', 'etc/hosts', 'etc/resolv.conf']);
      const upper = this.#snapshots.containerUpperPath(record.Id);
      const isMountTarget = (name: string) => managed.has(name) && statSync(path.join(upper, name), { throwIfNoEntry: false })?.size === 0;
      layer = await this.#content.ingest(diffTar(upper, chain.map((c) => this.#snapshots.layerPath(c)), { exclude: isMountTarget }));
    } finally {
      if (paused) await this.#runtime.resume(record.Id).catch(() => {});
    }
    const baseConfig = (await this.#images.getConfig(base)) as Json;
    const c = record.Config;
    const config: Json = {
      ...((baseConfig.config as Json | undefined) ?? {}),
      Env: c.Env, Cmd: c.Cmd, Entrypoint: c.Entrypoint, WorkingDir: c.WorkingDir, User: c.User,
      ExposedPorts: c.ExposedPorts, Volumes: c.Volumes, Labels: c.Labels, StopSignal: c.StopSignal, Healthcheck: c.Healthcheck,
      OnBuild: c.OnBuild, Hostname: c.Hostname, Domainname: c.Domainname,
      Tty: c.Tty, OpenStdin: c.OpenStdin, StdinOnce: c.StdinOnce, AttachStdin: c.AttachStdin, AttachStdout: c.AttachStdout, AttachStderr: c.AttachStderr,
      Image: record.Image,
      ...(options.config ?? {}),
    };
    options.changes?.(config);
    const created = new Date().toISOString();
    const history = [...(((baseConfig.history as Json[] | undefined) ?? []))];
    history.push({ created, created_by: [record.Path, ...record.Args].join(' '), ...(options.comment ? { comment: options.comment } : {}), ...(options.author ? { author: options.author } : {}) });
    const rootfs = (baseConfig.rootfs as { diff_ids?: string[] } | undefined) ?? {};
    const imageConfig = {
      ...baseConfig,
      created,
      author: options.author ?? '',
      comment: options.comment ?? '',
      container: record.Id,
      container_config: config,
      config,
      history,
      rootfs: { type: 'layers', diff_ids: [...(rootfs.diff_ids ?? []), layer.digest] },
    };
    const layers = [
      ...base.layers.map((l) => ({ digest: l.digest ?? l.diffId, mediaType: l.mediaType })),
      { digest: layer.digest, mediaType: 'application/vnd.docker.image.rootfs.diff.tar' },
    ];
    const image = await this.#images.createImage({ config: Buffer.from(JSON.stringify(imageConfig)), layers, ref: options.ref });
    this.#emit(record, 'commit', { comment: options.comment ?? '', imageID: image.id });
    return image;
  }
}
