import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import tarStream from 'tar-stream';
import {
  BaleiaError,
  Sha256,
  invalidArgument,
  notFound,
  readJsonIfExists,
  silentLogger,
  writeJsonAtomic,
  type Logger,
} from '../lib/index.js';
import { ContentStore, digestHex, sha256Digest } from '../content/index.js';
import { Snapshotter, decompressIfNeeded, readTar, type PreparedLayer } from '../snapshot/index.js';
import { parseChanges, type ContainerConfig } from './changes.js';
import { formatFamiliar, formatFull, parseReference, withDefaultTag } from './reference.js';

export interface ImageLayer {
  diffId: string;
  chainId: string;
  /** The blob in the content store (as shipped: uncompressed, gzip or zstd). */
  digest?: string;
  mediaType?: string;
  /** Unpacked bytes of the layer's files (Docker's layer size). */
  size: number;
  /** Bytes of the blob in the content store. */
  blobSize?: number;
  /** Bytes of the uncompressed layer tar. */
  tarSize?: number;
}

export interface ImageRecord {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  created: string;
  size: number;
  layers: ImageLayer[];
  manifestDigest?: string;
  parent?: string;
  lastTagTime?: string;
}

export interface ImageConfig {
  [k: string]: unknown;
}

/** A type alias, not an interface, so it is assignable to Record<string, unknown> (JSON bodies). */
export type HistoryEntry = {
  Id: string;
  Created: number;
  CreatedBy: string;
  Tags: string[] | null;
  Size: number;
  Comment: string;
};

type StoredRecord = Omit<ImageRecord, 'repoTags' | 'repoDigests'>;

interface Intent {
  /** Layers and blobs this operation created (or is deleting); kept only if a record uses them. */
  layers: string[];
  blobs: string[];
}

const mediaTypes = {
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
};

/** chainID(1) = diffID(1); chainID(n) = sha256(chainID(n-1) + " " + diffID(n)) (OCI image spec). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256Digest(`${out[out.length - 1]} ${d}`));
  return out;
}

export function goArch(arch: string = process.arch): string {
  return ({ x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[arch] ?? arch;
}

function sniffMediaType(head: Buffer, oci: boolean): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return oci ? mediaTypes.ociLayerGzip : mediaTypes.dockerLayerGzip;
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return mediaTypes.ociLayerZstd;
  return oci ? mediaTypes.ociLayer : mediaTypes.dockerLayer;
}

const isDigestLike = (s: string) => /^sha256:[0-9a-f]{64}$/.test(s);

function parseJson<T>(data: Buffer, what: string): T {
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (err) {
    throw invalidArgument(`Cannot load image: ${what} is not valid JSON`, { cause: err });
  }
}

/** A staged archive member: where its bytes are on disk, and their digest. */
interface Staged {
  file: string;
  digest: string;
  size: number;
  data?: Buffer;
  /** The member unpacked as a layer while it was read (load), waiting for its chain ID. */
  prepared?: PreparedLayer;
}

interface PlannedImage {
  configData: Buffer;
  refs: string[];
  manifestData?: Buffer;
  layers: Array<{ staged: Staged; mediaType: string }>;
}

/**
 * image: the image records (name → image id → config + layers) over the content store and the
 * snapshotter. See index.ts for the layout and the lifecycle.
 */
export class ImageStore {
  readonly #root: string;
  readonly #content: ContentStore;
  readonly #snapshots: Snapshotter;
  readonly #log: Logger;
  #records = new Map<string, StoredRecord>();
  #refs = new Map<string, string>();
  #lock: Promise<unknown> = Promise.resolve();

  constructor(opts: { root: string; content: ContentStore; snapshots: Snapshotter; logger?: Logger }) {
    this.#root = path.join(opts.root, 'images');
    this.#content = opts.content;
    this.#snapshots = opts.snapshots;
    this.#log = opts.logger ?? silentLogger;
  }

  get #byId() {
    return path.join(this.#root, 'by-id');
  }
  get #tmp() {
    return path.join(this.#root, 'tmp');
  }
  get #repositoriesFile() {
    return path.join(this.#root, 'repositories.json');
  }

  /**
   * Loads the records and repairs what a crash left: staged loads and half-done deletes are
   * rolled back (their layers and blobs removed unless a record uses them), refs to missing
   * records and records with a missing config blob are dropped.
   */
  async init(): Promise<void> {
    await fs.mkdir(this.#byId, { recursive: true });
    await fs.mkdir(this.#tmp, { recursive: true });
    this.#records.clear();
    for (const name of await fs.readdir(this.#byId)) {
      const file = path.join(this.#byId, name);
      const m = /^([0-9a-f]{64})\.json$/.exec(name);
      if (!m) {
        await fs.rm(file, { force: true });
        continue;
      }
      const rec = await readJsonIfExists<StoredRecord>(file);
      if (!rec) continue;
      if (!(await this.#content.has(rec.id))) {
        this.#log.warn('dropping image record whose config blob is missing', { image: rec.id });
        await fs.rm(file, { force: true });
        continue;
      }
      this.#records.set(m[1]!, rec);
    }
    const repos = await readJsonIfExists<{ refs: Record<string, string> }>(this.#repositoriesFile);
    this.#refs = new Map(Object.entries(repos?.refs ?? {}));
    let dropped = false;
    for (const [ref, id] of this.#refs) {
      if (!this.#records.has(digestHex(id))) {
        this.#refs.delete(ref);
        dropped = true;
      }
    }
    if (dropped) await this.#saveRefs();
    for (const name of await fs.readdir(this.#tmp)) {
      const dir = path.join(this.#tmp, name);
      const intent = await readJsonIfExists<Intent>(path.join(dir, 'intent.json')).catch(() => undefined);
      if (intent) await this.#rollback(intent);
      await fs.rm(dir, { recursive: true, force: true });
    }
    // Layers no image uses: a pull stopped between unpacking a layer and recording its image
    // (a daemon killed mid-pull). Nothing else is in flight when the store opens. Their blobs
    // stay in the content store, so pulling again unpacks them without a download.
    const used = this.#usedLayers();
    for (const chain of await this.#snapshots.listLayers()) {
      if (used.has(chain)) continue;
      this.#log.info('removing a layer no image uses', { layer: chain });
      await this.#snapshots.removeLayer(chain).catch((err) => this.#log.warn('cannot remove layer', { layer: chain, err }));
    }
  }

  /**
   * Removes those of `chainIds` no image uses (what a failed pull unpacked before its image was
   * recorded). A concurrent pull that needs one of them unpacks it again from its blob.
   */
  async dropUnusedLayers(chainIds: string[]): Promise<void> {
    if (chainIds.length === 0) return;
    await this.#exclusive(async () => {
      const used = this.#usedLayers();
      for (const chain of new Set(chainIds)) {
        if (!used.has(chain)) await this.#snapshots.removeLayer(chain).catch((err) => this.#log.warn('cannot remove layer', { layer: chain, err }));
      }
    });
  }

  #usedLayers(): Set<string> {
    return new Set([...this.#records.values()].flatMap((r) => r.layers.map((l) => l.chainId)));
  }

  async list(): Promise<ImageRecord[]> {
    return [...this.#records.values()].map((r) => this.#view(r)).sort((a, b) => (a.created < b.created ? 1 : -1));
  }

  /**
   * An image by name ('busybox' = busybox:latest, 'docker.io/library/busybox:latest',
   * 'name@sha256:…'), by id ('sha256:<hex>', '<hex>') or by a unique id prefix.
   */
  async resolve(refOrId: string): Promise<ImageRecord> {
    return this.#view(this.#find(refOrId));
  }

  async getConfig(record: ImageRecord): Promise<ImageConfig> {
    return JSON.parse((await this.#content.read(record.id)).toString('utf8')) as ImageConfig;
  }

  /** The config blob's bytes, exactly as stored (the image id is their digest). */
  async getConfigBytes(record: ImageRecord): Promise<Buffer> {
    return this.#content.read(record.id);
  }

  /**
   * Unpacks one layer as snapshot `chainId`, checking it against `diffId` — so a pull can
   * extract a layer while it downloads; `createImage` then finds it in place. The bytes are
   * `blob` (the layer as shipped, still arriving) or else the blob `digest` in the content
   * store. `beforeCommit` runs before the layer becomes visible (a pull checks the blob's digest
   * there; if it throws, nothing of the layer is kept). Resolves false, without reading `blob`,
   * when the layer exists already.
   */
  async unpackLayer(opts: {
    digest: string;
    diffId: string;
    chainId: string;
    blob?: AsyncIterable<Buffer>;
    beforeCommit?: () => Promise<void>;
    signal?: AbortSignal;
  }): Promise<boolean> {
    if (await this.#snapshots.hasLayer(opts.chainId)) return false;
    // The caller's own error comes back as it was thrown.
    let callerError: unknown;
    const beforeCommit = opts.beforeCommit;
    try {
      const blob = opts.blob ?? this.#content.createReadStream(opts.digest);
      await this.#snapshots.applyLayer(opts.chainId, decompressIfNeeded(blob, { signal: opts.signal }), {
        signal: opts.signal,
        expectedDiffId: opts.diffId,
        beforeCommit: beforeCommit && (() => beforeCommit().catch((err: unknown) => Promise.reject((callerError = err)))),
      });
      return true;
    } catch (err) {
      if (err === callerError) throw err;
      if (err instanceof BaleiaError && err.kind === 'InvalidArgument') {
        throw invalidArgument(`Cannot unpack layer "${opts.diffId}": ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  /**
   * Creates an image from a config and layer blobs already in the content store (a pull, a
   * build step, a commit). Layers are unpacked and checked against the config's diff_ids.
   */
  async createImage(opts: {
    config: Uint8Array;
    layers: Array<{ digest: string; mediaType?: string }>;
    ref?: string;
    manifestDigest?: string;
    manifest?: Uint8Array;
    signal?: AbortSignal;
  }): Promise<ImageRecord> {
    const config = parseJson<ImageConfig>(Buffer.from(opts.config), 'the image config');
    const diffIds = this.#diffIds(config, opts.layers.length);
    const ref = opts.ref !== undefined ? this.#tagName(opts.ref) : undefined;
    return this.#exclusive(async () => {
      const intent: Intent = { layers: [], blobs: [] };
      const work = await this.#newWork(intent);
      try {
        const chains = chainIds(diffIds);
        const layers: ImageLayer[] = [];
        for (let i = 0; i < opts.layers.length; i++) {
          const l = opts.layers[i]!;
          const info = await this.#unpackFrom(
            chains[i]!,
            diffIds[i]!,
            () => this.#content.createReadStream(l.digest),
            intent,
            work,
            opts.signal,
          );
          layers.push({
            diffId: diffIds[i]!,
            chainId: chains[i]!,
            digest: l.digest,
            mediaType: l.mediaType,
            size: info.size,
            blobSize: await this.#content.size(l.digest),
            tarSize: info.tarSize,
          });
        }
        if (opts.manifest) await this.#addBlob(Buffer.from(opts.manifest), intent, work);
        const rec = await this.#commitRecord({
          configData: Buffer.from(opts.config),
          config,
          layers,
          manifestDigest: opts.manifestDigest ?? (opts.manifest ? sha256Digest(opts.manifest) : undefined),
          refs: ref ? [ref] : [],
          intent,
          work,
        });
        return rec;
      } catch (err) {
        await this.#rollback(intent);
        throw err;
      } finally {
        await fs.rm(work, { recursive: true, force: true });
      }
    });
  }

  /** `docker import`: one layer from a rootfs tar (maybe gzip), config from `changes`. */
  async importRootfs(
    tar: NodeJS.ReadableStream,
    opts: { ref?: string; changes?: string[]; message?: string; signal?: AbortSignal; platform?: { os?: string; architecture?: string } } = {},
  ): Promise<ImageRecord> {
    const ref = opts.ref ? this.#tagName(opts.ref) : undefined;
    const apply = parseChanges(opts.changes ?? []);
    const containerConfig: ContainerConfig = {
      Hostname: '',
      Domainname: '',
      User: '',
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: null,
      Cmd: null,
      Image: '',
      Volumes: null,
      WorkingDir: '',
      Entrypoint: null,
      OnBuild: null,
      Labels: null,
    };
    apply(containerConfig);
    const intent: Intent = { layers: [], blobs: [] };
    const work = await this.#newWork(intent);
    try {
      // Stage the uncompressed tar: its digest (the diffID, also the chainID of a one-layer
      // image) is needed before the layer can be named.
      const staged = await this.#stage(decompressIfNeeded(tar, { signal: opts.signal }), work, 'layer.tar', opts.signal);
      const diffId = staged.digest;
      const created = new Date().toISOString();
      const comment = opts.message ?? 'Imported from -';
      const config = {
        architecture: opts.platform?.architecture ?? goArch(),
        comment,
        config: containerConfig,
        created,
        history: [{ created, comment }],
        os: opts.platform?.os ?? 'linux',
        rootfs: { type: 'layers', diff_ids: [diffId] },
      };
      const configData = Buffer.from(JSON.stringify(config));
      return await this.#exclusive(async () => {
        try {
          const info = await this.#unpackFrom(diffId, diffId, () => createReadStream(staged.file), intent, work, opts.signal);
          const blob = await this.#addFile(staged, intent, work);
          const layers: ImageLayer[] = [
            { diffId, chainId: diffId, digest: blob, mediaType: mediaTypes.dockerLayer, size: info.size, blobSize: staged.size, tarSize: staged.size },
          ];
          return await this.#commitRecord({ configData, config, layers, refs: ref ? [ref] : [], intent, work });
        } catch (err) {
          await this.#rollback(intent);
          throw err;
        }
      });
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  }

  /**
   * `docker load`: a docker-archive (manifest.json; legacy or Docker 25+ blobs/ layout) or an
   * OCI image layout (index.json). Everything is staged and checked first; on any error
   * nothing stored changes.
   */
  async load(tar: NodeJS.ReadableStream, opts: { signal?: AbortSignal } = {}): Promise<Array<{ ref?: string; id: string }>> {
    const intent: Intent = { layers: [], blobs: [] };
    const work = await this.#newWork(intent);
    const members = new Map<string, Staged>();
    try {
      const links = new Map<string, string>();
      let n = 0;
      try {
        for await (const { header, body } of readTar(decompressIfNeeded(tar, { signal: opts.signal }))) {
          if (opts.signal?.aborted) throw new BaleiaError('Cancelled', 'Cannot load image: cancelled');
          const name = normalizeMember(header.name);
          if (header.type === 'file') {
            // A member that can be a layer is unpacked while it is read; which layer of which
            // image it is (its chain ID) is known only once the manifest, often last, is read.
            const layerLike = header.size >= 1 << 20 && !name.endsWith('.json');
            const prepare = layerLike
              ? (bytes: AsyncIterable<Buffer>, head: Buffer, digest: Promise<string>) =>
                  // An uncompressed member's digest (hashed as it is staged) is its diff ID.
                  sniffMediaType(head, false) === mediaTypes.dockerLayer
                    ? this.#snapshots.prepareLayer(bytes, { signal: opts.signal, diffId: digest })
                    : this.#snapshots.prepareLayer(decompressIfNeeded(bytes, { signal: opts.signal }), { signal: opts.signal })
              : undefined;
            const staged = await this.#stage(Readable.from(body), work, `m${n++}`, opts.signal, 8 << 20, prepare);
            members.set(name, staged);
          } else if (header.type === 'symlink') {
            links.set(name, normalizeMember(path.posix.join(path.posix.dirname(name), header.linkname)));
          } else if (header.type === 'link') {
            links.set(name, normalizeMember(header.linkname));
          }
        }
      } catch (err) {
        if (err instanceof BaleiaError && err.kind === 'InvalidArgument') {
          throw invalidArgument(`Cannot load image: ${err.message.replace(/^Cannot read tar archive: /, '')}`, { cause: err });
        }
        throw err;
      }
      const lookup = (p: string, what: string): Staged => {
        let name = normalizeMember(p);
        for (let hops = 0; hops < 16 && !members.has(name) && links.has(name); hops++) name = links.get(name)!;
        const m = members.get(name);
        if (!m) throw invalidArgument(`Cannot load image: ${what} "${p}" is missing from the archive`);
        return m;
      };
      const readSmall = async (m: Staged) => m.data ?? (await fs.readFile(m.file));
      const plans: PlannedImage[] = [];
      if (members.has('manifest.json')) {
        const manifest = parseJson<unknown>(await readSmall(members.get('manifest.json')!), 'manifest.json');
        if (!Array.isArray(manifest)) throw invalidArgument('Cannot load image: manifest.json is not a list of images');
        for (const entry of manifest as Array<{ Config?: unknown; RepoTags?: unknown; Layers?: unknown }>) {
          if (typeof entry?.Config !== 'string' || !Array.isArray(entry.Layers)) {
            throw invalidArgument('Cannot load image: manifest.json entry lacks Config or Layers');
          }
          const configStaged = lookup(entry.Config, 'config');
          const layers = [];
          for (const l of entry.Layers as unknown[]) {
            if (typeof l !== 'string') throw invalidArgument('Cannot load image: manifest.json has a layer that is not a path');
            const staged = lookup(l, 'layer');
            layers.push({ staged, mediaType: sniffMediaType(await readHead(staged.file), false) });
          }
          const refs = Array.isArray(entry.RepoTags) ? (entry.RepoTags as unknown[]).map((t) => this.#tagName(String(t))) : [];
          plans.push({ configData: await readSmall(configStaged), refs, layers });
        }
      } else if (members.has('index.json')) {
        const blob = (d: unknown, what: string) => {
          if (typeof d !== 'string' || !isDigestLike(d)) throw invalidArgument(`Cannot load image: ${what} has an invalid digest`);
          const m = lookup(`blobs/sha256/${digestHex(d)}`, what);
          if (m.digest !== d) throw invalidArgument(`Cannot load image: ${what} "${d}" does not match its digest`);
          return m;
        };
        const index = parseJson<{ manifests?: Descriptor[] }>(await readSmall(members.get('index.json')!), 'index.json');
        const visit = async (descs: Descriptor[], inheritedRef: string | undefined, depth: number): Promise<void> => {
          if (depth > 4) throw invalidArgument('Cannot load image: index nesting is too deep');
          for (const desc of pickPlatform(descs)) {
            const ref = refFromAnnotations(desc.annotations) ?? inheritedRef;
            const data = await readSmall(blob(desc.digest, 'manifest'));
            const parsed = parseJson<{ mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] }>(data, `manifest ${desc.digest}`);
            const mt = parsed.mediaType ?? desc.mediaType;
            if (mt === mediaTypes.ociIndex || mt === mediaTypes.dockerList || Array.isArray(parsed.manifests)) {
              await visit(parsed.manifests ?? [], ref, depth + 1);
              continue;
            }
            if (!parsed.config || !Array.isArray(parsed.layers)) throw invalidArgument(`Cannot load image: manifest ${desc.digest} lacks config or layers`);
            const configStaged = blob(parsed.config.digest, 'config');
            const layers = [];
            for (const l of parsed.layers) {
              const staged = blob(l.digest, 'layer');
              layers.push({ staged, mediaType: l.mediaType ?? sniffMediaType(await readHead(staged.file), true) });
            }
            plans.push({ configData: await readSmall(configStaged), refs: ref ? [this.#tagName(ref)] : [], manifestData: data, layers });
          }
        };
        await visit(index.manifests ?? [], undefined, 0);
      } else {
        throw invalidArgument('Cannot load image: the archive has neither manifest.json nor index.json (not a docker-archive or OCI layout)');
      }
      if (plans.length === 0) throw invalidArgument('Cannot load image: the archive contains no image');
      // Check every config before anything is written.
      const checked = plans.map((p) => {
        const config = parseJson<ImageConfig>(p.configData, 'the image config');
        const diffIds = this.#diffIds(config, p.layers.length);
        return { ...p, config, diffIds };
      });

      return await this.#exclusive(async () => {
        try {
          const result: Array<{ ref?: string; id: string }> = [];
          const imported = new Map<string, string>(); // staged file → blob digest
          for (const p of checked) {
            const chains = chainIds(p.diffIds);
            const layers: ImageLayer[] = [];
            for (let i = 0; i < p.layers.length; i++) {
              const { staged, mediaType } = p.layers[i]!;
              let info: { size: number; tarSize: number };
              if (staged.prepared && staged.prepared.diffId === p.diffIds[i] && !(await this.#snapshots.hasLayer(chains[i]!))) {
                await this.#note(intent, work, { layers: [chains[i]!] });
                info = await staged.prepared.commit(chains[i]!);
                staged.prepared = undefined;
              } else info = await this.#unpackFrom(chains[i]!, p.diffIds[i]!, () => createReadStream(staged.file), intent, work, opts.signal);
              let digest = imported.get(staged.file);
              if (!digest) {
                digest = await this.#addFile(staged, intent, work);
                imported.set(staged.file, digest);
              }
              layers.push({ diffId: p.diffIds[i]!, chainId: chains[i]!, digest, mediaType, size: info.size, blobSize: staged.size, tarSize: info.tarSize });
            }
            if (p.manifestData) await this.#addBlob(p.manifestData, intent, work);
            const rec = await this.#commitRecord({
              configData: p.configData,
              config: p.config,
              layers,
              manifestDigest: p.manifestData ? sha256Digest(p.manifestData) : undefined,
              refs: p.refs,
              intent,
              work,
            });
            if (p.refs.length === 0) result.push({ id: rec.id });
            for (const ref of p.refs) result.push({ ref, id: rec.id });
          }
          return result;
        } catch (err) {
          await this.#rollback(intent);
          throw err;
        }
      });
    } finally {
      // Members unpacked while read that no image placed (or that failed their diff ID check).
      for (const m of members.values()) await m.prepared?.discard().catch((err: unknown) => this.#log.warn('cannot remove an unused prepared layer', { err }));
      await fs.rm(work, { recursive: true, force: true });
    }
  }

  /**
   * `docker save`: a docker-archive that is also an OCI image layout, as Docker 25+ writes it:
   * blobs/sha256/<hex> (uncompressed layer tars, config, OCI manifest), index.json, oci-layout,
   * manifest.json and repositories. An unknown ref errors the stream.
   */
  save(refs: string[], opts: { signal?: AbortSignal } = {}): NodeJS.ReadableStream {
    const pack = tarStream.pack();
    const out = new PassThrough();
    (pack as unknown as NodeJS.ReadableStream).pipe(out);
    pack.on('error', (e: Error) => out.destroy(e));
    out.on('close', () => {
      if (!out.readableEnded) pack.destroy();
    });
    void this.#writeArchive(refs, pack, opts.signal).catch((err: unknown) => {
      out.destroy(err as Error);
      pack.destroy();
    });
    return out;
  }

  /** Points `ref` at the image `source`; an existing tag simply moves, as in Docker. */
  async tag(source: string, ref: string): Promise<void> {
    const name = this.#tagName(ref);
    await this.#exclusive(async () => {
      const rec = this.#find(source);
      rec.lastTagTime = new Date().toISOString();
      await writeJsonAtomic(this.#recordFile(rec.id), rec);
      this.#refs.set(name, rec.id);
      await this.#saveRefs();
    });
  }

  /** Removes one name; returns the image as it is after the removal. */
  async untag(ref: string): Promise<ImageRecord> {
    return this.#exclusive(async () => {
      const name = formatFamiliar(withDefaultTag(parseReference(ref)));
      const id = this.#refs.get(name);
      if (!id) throw notFound(`No such image: ${name}`);
      this.#refs.delete(name);
      await this.#saveRefs();
      return this.#view(this.#records.get(digestHex(id))!);
    });
  }

  /**
   * Removes the image (and every name pointing at it), then its layers and blobs that no
   * other image uses. Returns the deleted ids: the image id, then the layers' chainIDs.
   */
  async delete(id: string): Promise<string[]> {
    return this.#exclusive(async () => {
      const rec = this.#find(id);
      const hex = digestHex(rec.id);
      const others = [...this.#records.values()].filter((r) => r.id !== rec.id);
      const usedLayers = new Set(others.flatMap((r) => r.layers.map((l) => l.chainId)));
      const usedBlobs = new Set(others.flatMap((r) => [r.id, r.manifestDigest, ...r.layers.map((l) => l.digest)].filter(Boolean) as string[]));
      const layers = [...new Set(rec.layers.map((l) => l.chainId))].filter((c) => !usedLayers.has(c));
      const blobs = [...new Set([rec.id, rec.manifestDigest, ...rec.layers.map((l) => l.digest)])].filter(
        (d): d is string => !!d && !usedBlobs.has(d),
      );
      // Journal first: a crash after the record is gone still removes the unused data at init.
      const intent: Intent = { layers, blobs };
      const work = await this.#newWork(intent);
      for (const [ref, target] of this.#refs) if (target === rec.id) this.#refs.delete(ref);
      await this.#saveRefs();
      await fs.rm(this.#recordFile(rec.id), { force: true });
      this.#records.delete(hex);
      await this.#rollback(intent);
      await fs.rm(work, { recursive: true, force: true });
      return [rec.id, ...layers.slice().reverse()];
    });
  }

  async history(refOrId: string): Promise<HistoryEntry[]> {
    const rec = await this.resolve(refOrId);
    const config = await this.getConfig(rec);
    type H = { created?: string; created_by?: string; comment?: string; empty_layer?: boolean };
    let history = (Array.isArray(config.history) ? config.history : []) as H[];
    if (history.length === 0) history = rec.layers.map(() => ({ created: String(config.created ?? '') }));
    const out: HistoryEntry[] = [];
    let layer = 0;
    for (const h of history) {
      let size = 0;
      if (!h.empty_layer) size = rec.layers[layer++]?.size ?? 0;
      out.push({
        Id: '<missing>',
        Created: h.created ? Math.floor(Date.parse(h.created) / 1000) || 0 : 0,
        CreatedBy: h.created_by ?? '',
        Tags: null,
        Size: size,
        Comment: h.comment ?? '',
      });
    }
    out.reverse();
    if (out.length > 0) {
      out[0]!.Id = rec.id;
      out[0]!.Tags = rec.repoTags.length > 0 ? rec.repoTags : null;
    }
    return out;
  }

  /** Unpacks any layer missing from the snapshotter (from its blob); chainIDs bottom→top. */
  async ensureUnpacked(record: ImageRecord, opts: { signal?: AbortSignal } = {}): Promise<string[]> {
    for (const l of record.layers) {
      if (await this.#snapshots.hasLayer(l.chainId)) continue;
      if (!l.digest || !(await this.#content.has(l.digest))) {
        throw notFound(`Cannot unpack image "${record.id}": the blob of layer "${l.diffId}" is missing`);
      }
      await this.#snapshots.applyLayer(l.chainId, decompressIfNeeded(this.#content.createReadStream(l.digest), opts), {
        signal: opts.signal,
        expectedDiffId: l.diffId,
      });
    }
    return record.layers.map((l) => l.chainId);
  }

  // -------------------------------------------------------------------------------------------

  #view(r: StoredRecord): ImageRecord {
    const repoTags: string[] = [];
    const repoDigests: string[] = [];
    for (const [ref, id] of this.#refs) {
      if (id !== r.id) continue;
      (ref.includes('@') ? repoDigests : repoTags).push(ref);
    }
    return { ...r, layers: r.layers.map((l) => ({ ...l })), repoTags: repoTags.sort(), repoDigests: repoDigests.sort() };
  }

  #find(refOrId: string): StoredRecord {
    const s = refOrId.trim();
    const full = /^(?:sha256:)?([0-9a-f]{64})$/.exec(s);
    if (full) {
      const rec = this.#records.get(full[1]!);
      if (rec) return rec;
    }
    let shown = s;
    try {
      const ref = withDefaultTag(parseReference(s));
      shown = formatFamiliar(ref);
      const id = this.#refs.get(shown);
      if (id) {
        const rec = this.#records.get(digestHex(id));
        if (rec) return rec;
      }
      if (ref.digest) {
        // name@digest also finds an image whose manifest has that digest
        const byManifest = [...this.#records.values()].find((r) => r.manifestDigest === ref.digest || r.id === ref.digest);
        if (byManifest) return byManifest;
      }
    } catch (err) {
      if (!(err instanceof BaleiaError) || err.kind !== 'InvalidArgument') throw err;
      if (!/^(?:sha256:)?[0-9a-f]+$/.test(s)) throw err;
    }
    const prefix = /^(?:sha256:)?([0-9a-f]{1,63})$/.exec(s);
    if (prefix) {
      const hits = [...this.#records.keys()].filter((h) => h.startsWith(prefix[1]!));
      if (hits.length === 1) return this.#records.get(hits[0]!)!;
      if (hits.length > 1) throw invalidArgument(`Cannot resolve image "${s}": the ID prefix is ambiguous`);
    }
    if (full) shown = s;
    throw notFound(`No such image: ${shown}`);
  }

  /** A ref to store: familiar, ':latest' added, digests allowed only as name@digest. */
  #tagName(ref: string): string {
    const parsed = parseReference(ref);
    if (parsed.tag !== undefined && parsed.digest !== undefined) {
      // Docker keeps only the digest in this case
      return formatFamiliar({ ...parsed, tag: undefined });
    }
    return formatFamiliar(withDefaultTag(parsed));
  }

  #diffIds(config: ImageConfig, layerCount: number): string[] {
    const rootfs = config.rootfs as { type?: unknown; diff_ids?: unknown } | undefined;
    const diffIds = rootfs?.diff_ids ?? [];
    if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string' && isDigestLike(d))) {
      throw invalidArgument('Cannot load image: the config has invalid rootfs.diff_ids');
    }
    if (diffIds.length !== layerCount) {
      throw invalidArgument(`Cannot load image: the config lists ${diffIds.length} layers but the manifest has ${layerCount}`);
    }
    return diffIds as string[];
  }

  #recordFile(id: string): string {
    return path.join(this.#byId, `${digestHex(id)}.json`);
  }

  async #saveRefs(): Promise<void> {
    const sorted = Object.fromEntries([...this.#refs].sort(([a], [b]) => (a < b ? -1 : 1)));
    await writeJsonAtomic(this.#repositoriesFile, { refs: sorted });
  }

  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.#lock;
    let release!: () => void;
    this.#lock = new Promise<void>((r) => (release = r));
    try {
      await prev.catch(() => {});
      return await fn();
    } finally {
      release();
    }
  }

  async #newWork(intent: Intent): Promise<string> {
    const dir = path.join(this.#tmp, randomBytes(8).toString('hex'));
    await fs.mkdir(dir, { recursive: true });
    await writeJsonAtomic(path.join(dir, 'intent.json'), intent);
    return dir;
  }

  /** Writes the intent before the thing it names exists, so a crash can always undo it. */
  async #note(intent: Intent, work: string, add: Partial<Intent>): Promise<void> {
    intent.layers.push(...(add.layers ?? []));
    intent.blobs.push(...(add.blobs ?? []));
    await writeJsonAtomic(path.join(work, 'intent.json'), intent);
  }

  /** Removes the intent's layers and blobs that no committed record uses. */
  async #rollback(intent: Intent): Promise<void> {
    const recs = [...this.#records.values()];
    const usedLayers = this.#usedLayers();
    const usedBlobs = new Set(recs.flatMap((r) => [r.id, r.manifestDigest, ...r.layers.map((l) => l.digest)].filter(Boolean) as string[]));
    for (const chain of intent.layers) {
      if (!usedLayers.has(chain)) await this.#snapshots.removeLayer(chain).catch((err) => this.#log.warn('cannot remove layer', { layer: chain, err }));
    }
    for (const blob of intent.blobs) {
      if (!usedBlobs.has(blob)) await this.#content.delete(blob).catch((err) => this.#log.warn('cannot remove blob', { blob, err }));
    }
  }

  /**
   * Copies a stream to a file in `work`, hashing it (on a worker thread once it is large) and
   * writing it in 1 MiB batches; keeps small members in memory too. With `prepare`, the same
   * bytes also feed a layer extraction running alongside (`docker load` unpacks a layer while
   * it reads it); if that extraction fails the file is still staged whole and the caller falls
   * back to unpacking from it.
   */
  async #stage(
    stream: NodeJS.ReadableStream,
    work: string,
    name: string,
    signal?: AbortSignal,
    keepUnder = 0,
    prepare?: (bytes: AsyncIterable<Buffer>, head: Buffer, digest: Promise<string>) => Promise<PreparedLayer>,
  ): Promise<Staged> {
    const file = path.join(work, name);
    const hash = new Sha256();
    let size = 0;
    const kept: Buffer[] = [];
    const batch: Buffer[] = [];
    let batched = 0;
    let feed: PassThrough | undefined;
    let preparing: Promise<PreparedLayer | undefined> | undefined;
    let prepareSettled = false;
    // What the extraction learns of this stream's digest (settled once staging ends either way).
    let settleDigest: (digest: string | Error) => void = () => {};
    const digest = new Promise<string>((resolve, reject) => {
      settleDigest = (d) => (typeof d === 'string' ? resolve(d) : reject(d));
    });
    digest.catch(() => {});
    const startPreparing = (head: Buffer) => {
      const input = new PassThrough({ highWaterMark: 4 << 20 });
      feed = input;
      preparing = prepare!(input, head, digest)
        .catch((err: unknown) => {
          this.#log.debug('layer not unpacked while loading; unpacked from its staged copy instead', { member: name, err });
          return undefined;
        })
        .finally(() => {
          prepareSettled = true;
          input.destroy();
        });
    };
    const handle = await fs.open(file, 'wx', 0o600);
    try {
      try {
        for await (const c of stream as AsyncIterable<Buffer | string>) {
          if (signal?.aborted) throw new BaleiaError('Cancelled', 'Cannot stage image data: cancelled');
          const chunk = typeof c === 'string' ? Buffer.from(c) : c;
          if (prepare && !feed && chunk.length > 0) startPreparing(chunk);
          hash.update(chunk);
          size += chunk.length;
          if (size <= keepUnder) kept.push(chunk);
          batch.push(chunk);
          batched += chunk.length;
          if (batched >= 1 << 20) {
            await handle.write(Buffer.concat(batch, batched));
            batch.length = 0;
            batched = 0;
          }
          const input = feed;
          if (input && !prepareSettled && !input.write(chunk)) await Promise.race([new Promise((resolve) => input.once('drain', resolve)), preparing]);
          await hash.ready();
        }
        if (batched > 0) await handle.write(Buffer.concat(batch, batched));
        feed?.end();
        await handle.sync();
      } catch (err) {
        hash.dispose();
        settleDigest(err instanceof Error ? err : new Error(String(err)));
        feed?.destroy();
        (await preparing)?.discard().catch(() => {});
        throw err;
      }
    } finally {
      await handle.close();
    }
    let staged: Staged;
    try {
      staged = { file, digest: await hash.digest(), size };
    } catch (err) {
      settleDigest(err instanceof Error ? err : new Error(String(err)));
      (await preparing)?.discard().catch(() => {});
      throw err;
    }
    settleDigest(staged.digest);
    if (size <= keepUnder) staged.data = Buffer.concat(kept);
    if (preparing) staged.prepared = await preparing;
    return staged;
  }

  async #unpackFrom(
    chainId: string,
    diffId: string,
    open: () => NodeJS.ReadableStream,
    intent: Intent,
    work: string,
    signal?: AbortSignal,
  ): Promise<{ size: number; tarSize: number }> {
    if (await this.#snapshots.hasLayer(chainId)) {
      // Unpacked already (by an earlier image, or by a pull while it downloaded) and verified
      // against this very diff ID then: no need to read the blob again.
      const info = await this.#snapshots.layerInfo(chainId).catch(() => undefined);
      if (info?.diffId === diffId) return { size: info.size, tarSize: info.tarSize };
    } else await this.#note(intent, work, { layers: [chainId] });
    try {
      const info = await this.#snapshots.applyLayer(chainId, decompressIfNeeded(open(), { signal }), { signal, expectedDiffId: diffId });
      return { size: info.size, tarSize: info.tarSize };
    } catch (err) {
      if (err instanceof BaleiaError && err.kind === 'InvalidArgument') {
        throw invalidArgument(`Cannot load image: layer "${diffId}" is invalid: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  async #addFile(staged: Staged, intent: Intent, work: string): Promise<string> {
    if (!(await this.#content.has(staged.digest))) {
      await this.#note(intent, work, { blobs: [staged.digest] });
      // #stage hashed these very bytes as it wrote and fsynced them: no second pass.
      await this.#content.adoptFile(staged.file, staged.digest);
    }
    return staged.digest;
  }

  async #addBlob(data: Buffer, intent: Intent, work: string): Promise<string> {
    const digest = sha256Digest(data);
    if (!(await this.#content.has(digest))) {
      await this.#note(intent, work, { blobs: [digest] });
      await this.#content.writeBlob(data, { expected: digest });
    }
    return digest;
  }

  /** Config blob, record, then refs — each atomic; the record makes the data it uses kept. */
  async #commitRecord(opts: {
    configData: Buffer;
    config: ImageConfig;
    layers: ImageLayer[];
    manifestDigest?: string;
    refs: string[];
    intent: Intent;
    work: string;
  }): Promise<ImageRecord> {
    const id = await this.#addBlob(opts.configData, opts.intent, opts.work);
    const existing = this.#records.get(digestHex(id));
    const created = typeof opts.config.created === 'string' ? opts.config.created : new Date(0).toISOString();
    const rec: StoredRecord = {
      id,
      created,
      size: opts.layers.reduce((n, l) => n + l.size, 0),
      layers: opts.layers,
      ...(opts.manifestDigest ?? existing?.manifestDigest ? { manifestDigest: opts.manifestDigest ?? existing?.manifestDigest } : {}),
      ...(typeof opts.config.parent === 'string' && opts.config.parent ? { parent: opts.config.parent } : {}),
      ...(existing?.lastTagTime || opts.refs.length > 0 ? { lastTagTime: opts.refs.length > 0 ? new Date().toISOString() : existing?.lastTagTime } : {}),
    };
    await writeJsonAtomic(this.#recordFile(id), rec);
    this.#records.set(digestHex(id), rec);
    if (opts.refs.length > 0) {
      for (const ref of opts.refs) this.#refs.set(ref, id);
      await this.#saveRefs();
    }
    return this.#view(rec);
  }

  async #writeArchive(refs: string[], pack: tarStream.Pack, signal?: AbortSignal): Promise<void> {
    const images: Array<{ rec: StoredRecord; tags: string[] }> = [];
    for (const r of refs) {
      const rec = this.#find(r);
      let tag: string | undefined;
      const isId = /^(?:sha256:)?[0-9a-f]{1,64}$/.test(r) && !this.#refs.has(this.#tryTagName(r) ?? '');
      if (!isId) {
        const name = this.#tryTagName(r);
        if (name && !name.includes('@')) tag = name;
      }
      const existing = images.find((i) => i.rec.id === rec.id);
      if (existing) {
        if (tag && !existing.tags.includes(tag)) existing.tags.push(tag);
      } else images.push({ rec, tags: tag ? [tag] : [] });
    }
    const mtime = new Date(0);
    const entry = (name: string, data: Buffer | string) =>
      new Promise<void>((resolve, reject) =>
        pack.entry({ name, mode: 0o644, mtime, size: Buffer.byteLength(data) }, data, (err) => (err ? reject(err) : resolve())),
      );
    const dir = (name: string) =>
      new Promise<void>((resolve, reject) => pack.entry({ name, type: 'directory', mode: 0o755, mtime }, (err) => (err ? reject(err) : resolve())));
    await dir('blobs/');
    await dir('blobs/sha256/');
    const written = new Set<string>();
    const manifestJson: Array<{ Config: string; RepoTags: string[] | null; Layers: string[] }> = [];
    const indexManifests: Descriptor[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const { rec, tags } of images) {
      const layerDescs: Descriptor[] = [];
      for (const l of rec.layers) {
        if (signal?.aborted) throw new BaleiaError('Cancelled', 'Cannot save image: cancelled');
        const hex = digestHex(l.diffId);
        let tarSize = l.tarSize;
        if (tarSize === undefined) tarSize = (await this.#snapshots.layerInfo(l.chainId)).tarSize;
        layerDescs.push({ mediaType: mediaTypes.ociLayer, digest: l.diffId, size: tarSize });
        if (written.has(hex)) continue;
        written.add(hex);
        if (!l.digest || !(await this.#content.has(l.digest))) {
          throw notFound(`Cannot save image "${rec.id}": the blob of layer "${l.diffId}" is missing`);
        }
        const source = decompressIfNeeded(this.#content.createReadStream(l.digest), { signal });
        const hash = createHash('sha256');
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry({ name: `blobs/sha256/${hex}`, mode: 0o644, mtime, size: tarSize }, (err) => (err ? reject(err) : resolve()));
          // A reader that goes away destroys the pack: the entry then errors, which must end this save, not the daemon.
          (sink as unknown as NodeJS.EventEmitter).on('error', (e: Error) => {
            reject(e);
            (source as unknown as { destroy(): void }).destroy();
          });
          source.on('data', (c: Buffer) => hash.update(c));
          source.on('error', (e) => {
            reject(e);
            (sink as unknown as { destroy(e: Error): void }).destroy(e);
          });
          source.pipe(sink as unknown as NodeJS.WritableStream);
        });
        if ('sha256:' + hash.digest('hex') !== l.diffId) throw new BaleiaError('Internal', `Cannot save image "${rec.id}": layer "${l.diffId}" does not match its blob`);
      }
      const configData = await this.#content.read(rec.id);
      const configHex = digestHex(rec.id);
      if (!written.has(configHex)) {
        written.add(configHex);
        await entry(`blobs/sha256/${configHex}`, configData);
      }
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: mediaTypes.ociManifest,
          config: { mediaType: mediaTypes.ociConfig, digest: rec.id, size: configData.length },
          layers: layerDescs,
        }),
      );
      const manifestDigest = sha256Digest(manifest);
      if (!written.has(digestHex(manifestDigest))) {
        written.add(digestHex(manifestDigest));
        await entry(`blobs/sha256/${digestHex(manifestDigest)}`, manifest);
      }
      const desc: Descriptor = { mediaType: mediaTypes.ociManifest, digest: manifestDigest, size: manifest.length };
      if (tags.length === 0) indexManifests.push(desc);
      for (const t of tags) {
        const ref = parseReference(t);
        indexManifests.push({
          ...desc,
          annotations: { 'io.containerd.image.name': formatFull(ref), 'org.opencontainers.image.ref.name': ref.tag ?? 'latest' },
        });
        const repo = t.slice(0, t.lastIndexOf(':'));
        const top = rec.layers[rec.layers.length - 1];
        if (top) (repositories[repo] ??= {})[ref.tag ?? 'latest'] = digestHex(top.diffId);
      }
      manifestJson.push({
        Config: `blobs/sha256/${configHex}`,
        RepoTags: tags.length > 0 ? tags : null,
        Layers: rec.layers.map((l) => `blobs/sha256/${digestHex(l.diffId)}`),
      });
    }
    await entry('index.json', JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: indexManifests }) + '\n');
    await entry('manifest.json', JSON.stringify(manifestJson) + '\n');
    await entry('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (Object.keys(repositories).length > 0) await entry('repositories', JSON.stringify(repositories) + '\n');
    pack.finalize();
  }

  #tryTagName(r: string): string | undefined {
    try {
      return this.#tagName(r);
    } catch {
      return undefined;
    }
  }
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

function normalizeMember(name: string): string {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  return parts.join('/');
}

async function readHead(file: string): Promise<Buffer> {
  const h = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await h.read(buf, 0, 4, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await h.close();
  }
}

/** In an index with several platforms, the host's (linux/<arch>) manifests; else all of them. */
function pickPlatform(descs: Descriptor[]): Descriptor[] {
  if (!Array.isArray(descs)) throw invalidArgument('Cannot load image: index.json has no manifests list');
  const withPlatform = descs.filter((d) => d.platform);
  if (withPlatform.length < 2) return descs;
  const host = descs.filter((d) => !d.platform || (d.platform.os === 'linux' && d.platform.architecture === goArch()));
  if (host.length === 0) throw invalidArgument(`Cannot load image: no manifest for platform linux/${goArch()}`);
  return host.slice(0, 1);
}

/** The name of an OCI-layout manifest: containerd's full name, else a ref.name that is a full reference. */
function refFromAnnotations(a: Record<string, string> | undefined): string | undefined {
  if (!a) return undefined;
  const containerd = a['io.containerd.image.name'];
  if (containerd) return containerd;
  const refName = a['org.opencontainers.image.ref.name'];
  if (refName && /[:/@]/.test(refName)) {
    try {
      parseReference(refName);
      return refName;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

