/**
 * engine: the use cases behind the Docker Engine API — containers, images, events, system.
 * It owns the state records (<root>/containers, through the image/snapshot stores for images)
 * and is the only module that combines image/, snapshot/ and runtime/. api/ calls it; nothing
 * here knows HTTP.
 */
import os from 'node:os';
import { promises as fs } from 'node:fs';
import { BaleiaError, conflict, describeError, isKind, shortId, type Logger } from '../lib/index.js';
import { familiarName, parseChanges, parseReference, type ImageStore, type ImageRecord } from '../image/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import type { ContentStore } from '../content/index.js';
import type { Runtime } from '../runtime/index.js';
import type { VolumeRecord, VolumeStore } from '../volume/index.js';
import type { NetworkManager } from '../network/index.js';
import type { ProgressEvent, RegistryAuth, RegistryClient } from '../registry/index.js';
import { EventBus } from './events.js';
import { ContainerManager, type ContainerRecord } from './containers.js';
import { containerMatcher, matchLabels, parseTimeFilter, type Filters } from './filters.js';
import { containerInspect, containerSummary, imageInspect, imageSummary } from './views.js';
import type { Json } from './container-config.js';

export { EventBus, type EngineEvent } from './events.js';
export type { ContainerRecord, ExecRecord, Attacher, WaitResult } from './containers.js';
export type { Filters } from './filters.js';
export { signalNumber } from './container-config.js';
export { pathStatHeader } from '../snapshot/index.js';
export { decodeRegistryAuthHeader } from '../registry/index.js';

export interface EngineOptions {
  root: string;
  execRoot: string;
  content: ContentStore;
  snapshots: Snapshotter;
  images: ImageStore;
  volumes: VolumeStore;
  network: NetworkManager;
  registry: RegistryClient;
  runtime: Runtime;
  logger: Logger;
  cgroupVersion: 1 | 2;
  insecureRegistries?: string[];
  mirrors?: Record<string, string[]>;
}

export class Engine {
  readonly events = new EventBus();
  readonly containers: ContainerManager;
  readonly #opts: EngineOptions;
  readonly #images: ImageStore;
  readonly #volumes: VolumeStore;
  readonly #id: string;
  readonly startedAt = Date.now();

  constructor(options: EngineOptions) {
    this.#opts = options;
    this.#images = options.images;
    this.#volumes = options.volumes;
    this.containers = new ContainerManager({
      root: options.root,
      images: options.images,
      snapshots: options.snapshots,
      volumes: options.volumes,
      content: options.content,
      network: options.network,
      runtime: options.runtime,
      events: this.events,
      logger: options.logger.child({ module: 'containers' }),
    });
    this.#id = options.root;
  }

  async init(): Promise<void> {
    await this.containers.init();
  }

  // ---------------------------------------------------------------- containers

  inspectContainer(ref: string, options: { size?: boolean } = {}): Promise<Json> {
    const c = this.containers.get(ref);
    return this.#inspect(c, options);
  }

  async #inspect(c: ContainerRecord, options: { size?: boolean }): Promise<Json> {
    const sizeRw = options.size ? await this.containers.sizeRw(c.Id) : undefined;
    const image = options.size ? await this.#images.resolve(c.Image).catch(() => undefined) : undefined;
    return containerInspect(c, {
      network: c.State.Running ? this.containers.networkView(c.Id) : undefined,
      execIds: this.containers.execIds(c.Id),
      sizeRw,
      sizeRootFs: sizeRw !== undefined ? sizeRw + (image?.size ?? 0) : undefined,
      upperDir: this.#opts.snapshots.containerUpperPath(c.Id),
    });
  }

  async listContainers(options: { all?: boolean; limit?: number; size?: boolean; filters?: Filters }): Promise<Json[]> {
    const filters: Filters = options.filters ?? new Map();
    const imageIds = new Map<string, string | null>();
    for (const ref of filters.get('ancestor') ?? [])
      imageIds.set(ref, (await this.#images.resolve(ref).catch(() => undefined))?.id ?? null);
    const match = containerMatcher(filters, {
      resolveContainer: (ref) => {
        try {
          return this.containers.get(ref);
        } catch {
          return undefined;
        }
      },
      imageMatches: (ref, c) => imageIds.get(ref) === c.Image || c.Config.Image === ref,
    });
    const showAll = options.all || filters.has('status') || filters.has('exited') || (options.limit !== undefined && options.limit > 0);
    let list = this.containers
      .list()
      .filter((c) => (showAll ? true : c.State.Running))
      .filter(match)
      .sort((a, b) => (a.Created < b.Created ? 1 : -1));
    if (options.limit !== undefined && options.limit > 0) list = list.slice(0, options.limit);
    const now = Date.now();
    const imageSizes = new Map<string, number>();
    if (options.size) for (const img of await this.#images.list()) imageSizes.set(img.id, img.size);
    return Promise.all(
      list.map(async (c) => {
        const sizeRw = options.size ? await this.containers.sizeRw(c.Id) : undefined;
        return containerSummary(c, {
          now,
          sizeRw,
          sizeRootFs: sizeRw === undefined ? undefined : sizeRw + (imageSizes.get(c.Image) ?? 0),
          network: c.State.Running ? this.containers.networkView(c.Id) : undefined,
        });
      }),
    );
  }

  async pruneContainers(filters: Filters): Promise<Json> {
    for (const key of filters.keys())
      if (!['until', 'label', 'label!'].includes(key)) throw new BaleiaError('InvalidArgument', `Invalid filter '${key}'`);
    const until = filters.get('until')?.map(parseTimeFilter);
    const result = await this.containers.prune(
      (c) =>
        matchLabels(c.Config.Labels, filters.get('label')) &&
        !(filters.get('label!') ?? []).some((l) => matchLabels(c.Config.Labels, [l])) &&
        (!until || until.every((t) => Date.parse(c.Created) < t)),
    );
    this.events.publish('container', 'prune', '', { reclaimed: String(result.SpaceReclaimed) });
    return result;
  }

  // ---------------------------------------------------------------- images

  async #containersPerImage(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const c of this.containers.list()) counts.set(c.Image, (counts.get(c.Image) ?? 0) + 1);
    return counts;
  }

  async listImages(options: { all?: boolean; filters?: Filters; digests?: boolean }): Promise<Json[]> {
    const filters: Filters = options.filters ?? new Map();
    for (const key of filters.keys())
      if (!['dangling', 'label', 'before', 'since', 'reference', 'until'].includes(key))
        throw new BaleiaError('InvalidArgument', `Invalid filter '${key}'`);
    const images = await this.#images.list();
    const counts = await this.#containersPerImage();
    const createdOf = async (ref: string) => (await this.#images.resolve(ref)).created;
    const before = filters.get('before') ? await Promise.all(filters.get('before')!.map(createdOf)) : undefined;
    const since = filters.get('since') ? await Promise.all(filters.get('since')!.map(createdOf)) : undefined;
    const until = filters.get('until')?.map(parseTimeFilter);
    const dangling = filters.get('dangling');
    const references = filters.get('reference');
    const out: Json[] = [];
    for (const img of images) {
      const config = await this.#images.getConfig(img);
      const labels = ((config.config as Json | undefined)?.Labels ?? null) as Record<string, string> | null;
      if (dangling && dangling.length) {
        const want = dangling.some((d) => ['true', '1'].includes(d.toLowerCase()));
        if (want !== (img.repoTags.length === 0)) continue;
      }
      if (!matchLabels(labels, filters.get('label'))) continue;
      if (before && !before.every((t) => img.created < t)) continue;
      if (since && !since.every((t) => img.created > t)) continue;
      if (until && !until.every((t) => Date.parse(img.created) < t)) continue;
      let { repoTags, repoDigests } = img;
      if (references && references.length) {
        // As dockerd: only the names that match are listed, digests included.
        const matches = (name: string) => references.some((pattern) => referenceMatches(pattern, name));
        repoTags = repoTags.filter(matches);
        repoDigests = repoDigests.filter(matches);
        if (repoTags.length === 0 && repoDigests.length === 0) continue;
      }
      out.push(imageSummary({ ...img, repoTags, repoDigests }, config, counts.get(img.id) ?? 0));
    }
    return out.sort((a, b) => (b.Created as number) - (a.Created as number));
  }

  async inspectImage(ref: string): Promise<Json> {
    const img = await this.#images.resolve(ref);
    return imageInspect(img, await this.#images.getConfig(img));
  }

  async imageHistory(ref: string): Promise<Json[]> {
    return this.#images.history(ref);
  }

  async tagImage(source: string, repo: string, tag: string | undefined): Promise<void> {
    const img = await this.#images.resolve(source);
    const ref = familiarName(tag ? `${repo}:${tag}` : repo);
    await this.#images.tag(img.id, ref);
    this.events.publish('image', 'tag', img.id, { name: ref });
  }

  /** `docker rmi`: untag, then delete when no tag is left; refuses images used by containers. */
  async removeImage(ref: string, options: { force?: boolean; noprune?: boolean } = {}): Promise<Json[]> {
    const img = await this.#images.resolve(ref);
    const users = this.containers.list().filter((c) => c.Image === img.id);
    const byId = img.id.replace(/^sha256:/, '').startsWith(ref.replace(/^sha256:/, '')) && !img.repoTags.includes(familiarName(ref));
    const out: Json[] = [];
    if (!byId && img.repoTags.length > 1) {
      const untagged = familiarName(ref);
      await this.#images.untag(untagged);
      this.events.publish('image', 'untag', img.id, { name: untagged });
      out.push({ Untagged: untagged });
      // As dockerd: the last tag of a repository takes that repository's digests with it.
      const repo = untagged.replace(/:[^:/]+$/, '');
      if (!img.repoTags.some((t) => t !== untagged && t.replace(/:[^:/]+$/, '') === repo)) {
        for (const digest of img.repoDigests.filter((d) => d.replace(/@.*$/, '') === repo)) {
          await this.#images.untag(digest);
          out.push({ Untagged: digest });
        }
      }
      return out;
    }
    if (users.length > 0) {
      const running = users.find((c) => c.State.Running);
      if (!options.force || running)
        throw conflict(
          byId
            ? `conflict: unable to delete ${shortId(img.id)} (${running ? 'cannot be forced' : 'must be forced'}) - image is being used by ${running ? 'running' : 'stopped'} container ${shortId(users[0]!.Id)}`
            : `conflict: unable to remove repository reference "${ref}" (must force) - container ${shortId(users[0]!.Id)} is using its referenced image ${shortId(img.id)}`,
        );
      // Forced with only stopped users: untag everything, keep the image for its containers.
      for (const tag of img.repoTags) {
        await this.#images.untag(tag);
        out.push({ Untagged: tag });
        this.events.publish('image', 'untag', img.id, { name: tag });
      }
      return out;
    }
    if (byId && img.repoTags.length > 1 && !options.force)
      throw conflict(
        `conflict: unable to delete ${shortId(img.id)} (must be forced) - image is referenced in multiple repositories`,
      );
    for (const tag of img.repoTags) {
      await this.#images.untag(tag);
      out.push({ Untagged: tag });
      this.events.publish('image', 'untag', img.id, { name: tag });
    }
    for (const digest of img.repoDigests) out.push({ Untagged: digest });
    for (const deleted of await this.#images.delete(img.id)) out.push({ Deleted: deleted });
    this.events.publish('image', 'delete', img.id, { name: img.id });
    return out;
  }

  async pruneImages(filters: Filters): Promise<Json> {
    for (const key of filters.keys())
      if (!['dangling', 'until', 'label', 'label!'].includes(key)) throw new BaleiaError('InvalidArgument', `Invalid filter '${key}'`);
    const danglingOnly = !(filters.get('dangling') ?? ['true']).some((v) => ['false', '0'].includes(v.toLowerCase()));
    const until = filters.get('until')?.map(parseTimeFilter);
    const used = new Set(this.containers.list().map((c) => c.Image));
    const deleted: Json[] = [];
    let reclaimed = 0;
    for (const img of await this.#images.list()) {
      if (used.has(img.id)) continue;
      if (danglingOnly && img.repoTags.length > 0) continue;
      const config = await this.#images.getConfig(img);
      const labels = ((config.config as Json | undefined)?.Labels ?? null) as Record<string, string> | null;
      if (!matchLabels(labels, filters.get('label'))) continue;
      if ((filters.get('label!') ?? []).some((l) => matchLabels(labels, [l]))) continue;
      if (until && !until.every((t) => Date.parse(img.created) < t)) continue;
      for (const tag of img.repoTags) {
        await this.#images.untag(tag);
        deleted.push({ Untagged: tag });
      }
      for (const id of await this.#images.delete(img.id)) deleted.push({ Deleted: id });
      reclaimed += img.size;
      this.events.publish('image', 'delete', img.id, { name: img.id });
    }
    this.events.publish('image', 'prune', '', { reclaimed: String(reclaimed) });
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  async importImage(tar: NodeJS.ReadableStream, options: { repo?: string; tag?: string; changes: string[]; message?: string; signal?: AbortSignal }): Promise<ImageRecord> {
    let ref: string | undefined;
    if (options.repo) ref = familiarName(options.tag ? `${options.repo}:${options.tag}` : options.repo);
    const img = await this.#images.importRootfs(tar, { ref, changes: options.changes, message: options.message, signal: options.signal });
    this.events.publish('image', 'import', img.id, { name: ref ?? img.id });
    return img;
  }

  async loadImages(tar: NodeJS.ReadableStream, options: { signal?: AbortSignal } = {}): Promise<Array<{ ref?: string; id: string }>> {
    const loaded = await this.#images.load(tar, options);
    for (const l of loaded) this.events.publish('image', 'load', l.id, { name: l.ref ?? l.id });
    return loaded;
  }

  async saveImages(refs: string[], options: { signal?: AbortSignal } = {}): Promise<NodeJS.ReadableStream> {
    for (const ref of refs) {
      const img = await this.#images.resolve(ref);
      this.events.publish('image', 'save', img.id, { name: ref });
    }
    return this.#images.save(refs, options);
  }

  // ---------------------------------------------------------------- registries

  /**
   * `docker pull`, with progress as Docker's JSON messages: a reference with a tag or digest
   * pulls that image; a bare repository pulls every tag the registry lists (`pull --all-tags`;
   * the docker CLI and our CLI send `latest` otherwise), one after another, and resolves with
   * the last.
   */
  async pullImage(ref: string, options: { auth?: RegistryAuth; platform?: string; onProgress?: (e: ProgressEvent) => void; signal?: AbortSignal }): Promise<ImageRecord> {
    const parsed = parseReference(ref);
    let refs = [ref];
    if (parsed.tag === undefined && parsed.digest === undefined) {
      const tags = await this.#opts.registry.listTags(ref, { auth: options.auth, signal: options.signal });
      if (tags.length === 0) throw new BaleiaError('NotFound', `Cannot pull every tag of ${familiarName(ref)}: the registry lists none`);
      refs = tags.map((tag) => `${ref}:${tag}`);
    }
    let image: ImageRecord | undefined;
    for (const one of refs) {
      image = await this.#opts.registry.pull(one, { images: this.#images, content: this.#opts.content, ...options });
      this.events.publish('image', 'pull', familiarName(one), { name: familiarName(one) });
    }
    return image!;
  }

  /** `docker push`: one tag, or every tag of the repository when `tag` is empty. */
  async pushImage(name: string, tag: string | undefined, options: { auth?: RegistryAuth; onProgress?: (e: ProgressEvent) => void; signal?: AbortSignal }): Promise<Array<{ tag: string; digest: string; size: number }>> {
    const repo = familiarName(name).replace(/:[^:/]+$/, '');
    let refs: string[];
    if (tag) refs = [`${repo}:${tag}`];
    else if (/:[^:/]+$/.test(name) && !name.endsWith(':latest')) refs = [familiarName(name)];
    else {
      refs = (await this.#images.list()).flatMap((img) => img.repoTags).filter((t) => t.replace(/:[^:/]+$/, '') === repo);
      if (refs.length === 0) throw new BaleiaError('NotFound', `An image does not exist locally with the tag: ${repo}`);
    }
    const results = [];
    for (const ref of refs) {
      await this.#images.resolve(ref).catch((err) => {
        if (isKind(err, 'NotFound')) throw new BaleiaError('NotFound', `An image does not exist locally with the tag: ${ref}`);
        throw err;
      });
      const result = await this.#opts.registry.push(ref, { images: this.#images, content: this.#opts.content, ...options });
      this.events.publish('image', 'push', ref, { name: ref });
      results.push(result);
    }
    return results;
  }

  /**
   * `docker search [registry/]term`: the registry's `/v1/search` (our registry server serves it).
   * Without a registry host the term goes to Docker Hub's index.
   */
  async searchImages(term: string, options: { limit?: number; filters?: Filters; auth?: RegistryAuth; signal?: AbortSignal } = {}): Promise<Json[]> {
    const slash = term.indexOf('/');
    const first = slash > 0 ? term.slice(0, slash) : '';
    const hasHost = first.includes('.') || first.includes(':') || first === 'localhost';
    const host = hasHost ? first : 'index.docker.io';
    const query = hasHost ? term.slice(slash + 1) : term;
    const signal = options.signal ?? AbortSignal.timeout(15_000);
    let body: { results?: Json[] };
    if (hasHost) {
      body = await this.#opts.registry.search(host, query, { limit: options.limit, auth: options.auth, signal });
    } else {
      // Docker Hub's index is not the registry host (registry-1.docker.io): asked directly.
      try {
        const res = await fetch(`https://${host}/v1/search?q=${encodeURIComponent(query)}&n=${options.limit ?? 25}`, { signal });
        if (!res.ok) throw new BaleiaError(res.status === 404 ? 'NotFound' : 'Unavailable', `Cannot search ${host}: ${res.status} ${res.statusText}`);
        body = (await res.json()) as { results?: Json[] };
      } catch (err) {
        if (err instanceof BaleiaError) throw err;
        throw new BaleiaError('Unavailable', `Cannot search ${host}: ${describeError(err)}`, { cause: err });
      }
    }
    const filters = options.filters ?? new Map();
    const stars = Number(filters.get('stars')?.[0] ?? 0);
    const official = filters.get('is-official')?.[0];
    return (body.results ?? [])
      .filter((r) => Number(r.star_count ?? 0) >= stars)
      .filter((r) => official === undefined || String(Boolean(r.is_official)) === official)
      .map((r) => ({
        name: hasHost ? `${host}/${String(r.name)}` : r.name,
        description: r.description ?? '',
        star_count: r.star_count ?? 0,
        is_official: Boolean(r.is_official),
        is_automated: Boolean(r.is_automated),
      }));
  }

  async login(body: Json): Promise<{ Status: string; IdentityToken: string }> {
    const result = await this.#opts.registry.login(body as RegistryAuth);
    return { Status: result.status, IdentityToken: result.identityToken };
  }

  /** `POST /commit`: repo may arrive fully qualified (docker.io/library/x); the familiar name is stored. */
  async commitContainer(options: { container: string; repo?: string; tag?: string; author?: string; comment?: string; changes: string[]; pause?: boolean; config?: Json }): Promise<{ Id: string }> {
    const ref = options.repo ? familiarName(options.tag ? `${options.repo}:${options.tag}` : options.repo) : undefined;
    const apply = parseChanges(options.changes);
    const image = await this.containers.commit(options.container, {
      ref,
      author: options.author,
      comment: options.comment,
      pause: options.pause,
      config: options.config,
      changes: (config) => apply(config as Parameters<typeof apply>[0]),
    });
    if (ref) this.events.publish('image', 'tag', image.id, { name: ref });
    return { Id: image.id };
  }

  // ---------------------------------------------------------------- networks

  get networks(): NetworkManager {
    return this.#opts.network;
  }

  async createNetwork(body: Json): Promise<{ Id: string; Warning: string }> {
    const result = await this.#opts.network.create(body);
    this.events.publish('network', 'create', result.Id, { name: String(body.Name ?? ''), type: String(body.Driver || 'bridge') });
    return result;
  }

  async removeNetwork(ref: string): Promise<void> {
    const net = (await this.#opts.network.inspect(ref)) as { Id: string; Name: string; Driver: string };
    await this.#opts.network.remove(ref);
    this.events.publish('network', 'destroy', net.Id, { name: net.Name, type: net.Driver });
  }

  async inspectNetwork(ref: string): Promise<Json> {
    const net = (await this.#opts.network.inspect(ref)) as Json & { Containers?: Record<string, Json> };
    // Endpoints carry the container's name as the engine knows it now.
    for (const [id, ep] of Object.entries(net.Containers ?? {})) {
      const c = this.containers.list().find((x) => x.Id === id);
      if (c) ep.Name = c.Name.slice(1);
    }
    return net;
  }

  // ---------------------------------------------------------------- volumes

  async createVolume(body: Json): Promise<VolumeRecord> {
    const name = typeof body.Name === 'string' && body.Name ? body.Name : undefined;
    const existed = name ? await this.#volumes.get(name).then(() => true, () => false) : false;
    const volume = await this.#volumes.create({
      name,
      driver: typeof body.Driver === 'string' && body.Driver ? body.Driver : 'local',
      labels: (body.Labels as Record<string, string> | null | undefined) ?? {},
      options: (body.DriverOpts as Record<string, string> | null | undefined) ?? {},
    });
    if (!existed) this.events.publish('volume', 'create', volume.Name, { driver: volume.Driver });
    return volume;
  }

  async listVolumes(filters: Filters): Promise<{ Volumes: VolumeRecord[]; Warnings: null }> {
    for (const key of filters.keys())
      if (!['name', 'label', 'driver', 'dangling'].includes(key)) throw new BaleiaError('InvalidArgument', `Invalid filter '${key}'`);
    const dangling = filters.get('dangling');
    const volumes = (await this.#volumes.list()).filter((v) => {
      const names = filters.get('name');
      if (names && names.length && !names.some((n) => v.Name.includes(n))) return false;
      const drivers = filters.get('driver');
      if (drivers && drivers.length && !drivers.includes(v.Driver)) return false;
      if (!matchLabels(v.Labels, filters.get('label'))) return false;
      if (dangling && dangling.length) {
        const want = dangling.some((d) => ['true', '1'].includes(d.toLowerCase()));
        if (want !== (this.containers.volumeUsers(v.Name).length === 0)) return false;
      }
      return true;
    });
    return { Volumes: volumes.map(volumeView), Warnings: null };
  }

  async inspectVolume(name: string): Promise<VolumeRecord> {
    return volumeView(await this.#volumes.get(name));
  }

  async removeVolume(name: string, options: { force?: boolean } = {}): Promise<void> {
    const volume = await this.#volumes.get(name).catch((err) => {
      if (options.force && isKind(err, 'NotFound')) return undefined;
      throw err;
    });
    if (!volume) return;
    const users = this.containers.volumeUsers(name);
    if (users.length > 0) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    await this.#volumes.remove(name, { force: true });
    this.events.publish('volume', 'destroy', name, { driver: 'local' });
  }

  async pruneVolumes(filters: Filters): Promise<Json> {
    for (const key of filters.keys())
      if (!['label', 'label!', 'all'].includes(key)) throw new BaleiaError('InvalidArgument', `Invalid filter '${key}'`);
    const inUse = new Set<string>();
    for (const c of this.containers.list()) for (const m of c.MountPoints ?? []) if (m.Type === 'volume' && m.Name) inUse.add(m.Name);
    const result = await this.#volumes.prune(
      (v) => matchLabels(v.Labels, filters.get('label')) && !(filters.get('label!') ?? []).some((l) => matchLabels(v.Labels, [l])),
      inUse,
    );
    for (const name of result.VolumesDeleted) this.events.publish('volume', 'destroy', name, { driver: 'local' });
    this.events.publish('volume', 'prune', '', { reclaimed: String(result.SpaceReclaimed) });
    return { VolumesDeleted: result.VolumesDeleted.length ? result.VolumesDeleted : null, SpaceReclaimed: result.SpaceReclaimed };
  }

  // ---------------------------------------------------------------- system

  async info(): Promise<Json> {
    const containers = this.containers.list();
    const images = await this.#images.list();
    const kernel = os.release();
    const osRelease = await fs.readFile('/etc/os-release', 'utf8').catch(() => '');
    const prettyName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? 'Linux';
    const versionId = /^VERSION_ID="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? '';
    return {
      ID: this.#id,
      Containers: containers.length,
      ContainersRunning: containers.filter((c) => c.State.Running && !c.State.Paused).length,
      ContainersPaused: containers.filter((c) => c.State.Paused).length,
      ContainersStopped: containers.filter((c) => !c.State.Running).length,
      Images: images.length,
      Driver: 'overlay2',
      DriverStatus: [['Backing Filesystem', 'extfs'], ['Supports d_type', 'true'], ['Native Overlay Diff', 'true']],
      Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'null'], Authorization: null, Log: ['json-file', 'local'] },
      MemoryLimit: true,
      SwapLimit: true,
      KernelMemory: false,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: true,
      BridgeNfIptables: true,
      BridgeNfIp6tables: true,
      Debug: false,
      NFd: 0,
      OomKillDisable: this.#opts.cgroupVersion === 1,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'json-file',
      CgroupDriver: 'cgroupfs',
      CgroupVersion: String(this.#opts.cgroupVersion),
      NEventsListener: 0,
      KernelVersion: kernel,
      OperatingSystem: prettyName,
      OSVersion: versionId,
      OSType: 'linux',
      Architecture: os.arch() === 'x64' ? 'x86_64' : os.arch(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: {
        AllowNondistributableArtifactsCIDRs: [],
        AllowNondistributableArtifactsHostnames: [],
        InsecureRegistryCIDRs: ['127.0.0.0/8', ...(this.#opts.insecureRegistries ?? []).filter((r) => r.includes('/'))],
        IndexConfigs: Object.fromEntries((this.#opts.insecureRegistries ?? []).filter((r) => !r.includes('/')).map((r) => [r, { Name: r, Mirrors: this.#opts.mirrors?.[r] ?? [], Secure: false, Official: false }])),
        Mirrors: this.#opts.mirrors?.['docker.io'] ?? [],
      },
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      GenericResources: null,
      DockerRootDir: this.#opts.root,
      HttpProxy: '',
      HttpsProxy: '',
      NoProxy: '',
      Name: os.hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: '0.1.0',
      Runtimes: { runc: { path: 'runc' } },
      DefaultRuntime: 'runc',
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: 'docker-init',
      ContainerdCommit: { ID: '', Expected: '' },
      RuncCommit: { ID: '', Expected: '' },
      InitCommit: { ID: '', Expected: '' },
      SecurityOptions: ['name=seccomp,profile=default', ...(this.#opts.cgroupVersion === 2 ? ['name=cgroupns'] : [])],
      Warnings: [],
    };
  }

  async diskUsage(): Promise<Json> {
    const images = await this.#images.list();
    const counts = await this.#containersPerImage();
    const imageViews: Json[] = [];
    let layersSize = 0;
    for (const img of images) {
      layersSize += img.size;
      imageViews.push(imageSummary(img, await this.#images.getConfig(img), counts.get(img.id) ?? 0));
    }
    const containers = await Promise.all(
      this.containers.list().map(async (c) => containerSummary(c, { sizeRw: await this.containers.sizeRw(c.Id) })),
    );
    const volumes = await Promise.all(
      (await this.#volumes.list()).map(async (v) => ({
        ...volumeView(v),
        UsageData: { Size: await this.#volumes.usage(v.Name).catch(() => -1), RefCount: this.containers.volumeUsers(v.Name).length },
      })),
    );
    return { LayersSize: layersSize, Images: imageViews, Containers: containers, Volumes: volumes, BuildCache: [], BuilderSize: 0 };
  }

  async shutdown(): Promise<void> {
    await this.containers.shutdown();
  }
}

/** A volume as the API shows it (without our private fields). */
function volumeView(v: VolumeRecord): VolumeRecord {
  const { Anonymous: _anonymous, ...view } = v as VolumeRecord & { Populated?: boolean };
  delete (view as { Populated?: boolean }).Populated;
  return { ...view, Labels: view.Labels ?? {}, Options: view.Options ?? {} };
}

/**
 * `docker images --filter reference=busy*`: a pattern against `name:tag` or `name@digest`, or
 * against the name alone.
 */
function referenceMatches(pattern: string, tag: string): boolean {
  const toRegex = (p: string) => new RegExp('^' + p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('[^/]*') + '$');
  const name = tag.replace(/@.*$/, '').replace(/:[^:/]+$/, '');
  const re = toRegex(pattern);
  return re.test(tag) || re.test(name);
}

export { describeError, isKind };
