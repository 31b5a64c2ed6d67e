/**
 * Push: image record → each blob (HEAD first: skip what the repository has; mount what another
 * repository of the same registry has; otherwise upload: POST → PATCH (whole, or in chunks) →
 * PUT ?digest=) → the manifest under the tag. The manifest is the one the image was pulled with
 * when it still describes the image (digests round-trip), else a new one: Docker schema2 when
 * every layer has a Docker media type, OCI otherwise.
 */
import { createReadStream } from 'node:fs';
import http from 'node:http';
import { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { BaleiaError } from '../lib/index.js';
import { sha256Digest, type ContentStore } from '../content/index.js';
import {
  familiarRepository,
  formatFamiliar,
  fullRepository,
  parseReference,
  type ImageRecord,
  type ImageStore,
  type Reference,
} from '../image/index.js';
import { repositoryScope } from './auth.js';
import { mediaTypes } from './manifests.js';
import { eachLimit, shortId, type ProgressFn } from './pull.js';
import { paths } from './routes.js';
import { errorDetail, progressBar, readText, type BlobSources, type Session } from './session.js';

export interface PushOptions {
  images: ImageStore;
  content: ContentStore;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  sources?: BlobSources;
  /** Upload blobs larger than this in PATCH chunks of this size (default: one PATCH). */
  chunkSize?: number;
}

export interface PushResult {
  tag: string;
  digest: string;
  size: number;
}

const layerTypes = {
  dockerTar: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociTar: 'application/vnd.oci.image.layer.v1.tar',
  ociGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
};
const dockerConfigType = 'application/vnd.docker.container.image.v1+json';
const ociConfigType = 'application/vnd.oci.image.config.v1+json';
const dockerToOci: Record<string, string> = {
  [layerTypes.dockerTar]: layerTypes.ociTar,
  [layerTypes.dockerGzip]: layerTypes.ociGzip,
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
};

interface BlobDesc {
  mediaType: string;
  digest: string;
  size: number;
}

/** What the registry answered, as Docker words push failures (`denied: requested access…`). */
async function pushError(res: http.IncomingMessage, what: string): Promise<BaleiaError> {
  const detail = await errorDetail(res);
  const status = res.statusCode ?? 0;
  if (status === 401) return new BaleiaError('Unauthorized', detail.code ? detail.message : 'unauthorized: authentication required');
  if (status === 403) return new BaleiaError('Forbidden', detail.code ? detail.message : 'denied: requested access to the resource is denied');
  if (status === 404) return new BaleiaError('NotFound', `Cannot push ${what}: ${detail.message}`);
  if (status === 400 || status === 413 || status === 416) return new BaleiaError('InvalidArgument', `Cannot push ${what}: ${detail.message}`);
  if (status === 429 || status >= 500) return new BaleiaError('Unavailable', `Cannot push ${what}: the registry answered ${detail.message}`);
  return new BaleiaError('Internal', `Cannot push ${what}: the registry answered ${detail.message}`);
}

async function sniffLayerType(content: ContentStore, digest: string): Promise<string> {
  const stream = createReadStream(content.path(digest), { start: 0, end: 3 });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const head = Buffer.concat(chunks);
  if (head[0] === 0x1f && head[1] === 0x8b) return layerTypes.dockerGzip;
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return layerTypes.ociZstd;
  return layerTypes.dockerTar;
}

/** Plain-tar blob digest → its gzip blob in the content store (kept for later pushes of this process). */
const compressedOf = new Map<string, Promise<{ digest: string; size: number }>>();

function compressedLayer(content: ContentStore, digest: string): Promise<{ digest: string; size: number }> {
  let pending = compressedOf.get(digest);
  if (!pending) {
    pending = (async () => {
      const gzip = createGzip({ level: 6 });
      createReadStream(content.path(digest)).on('error', (e) => gzip.destroy(e)).pipe(gzip);
      return content.ingest(gzip);
    })();
    pending.catch(() => compressedOf.delete(digest));
    compressedOf.set(digest, pending);
  }
  return pending.then(async (gz) => ((await content.has(gz.digest)) ? gz : (compressedOf.delete(digest), compressedLayer(content, digest))));
}

/**
 * The manifest to push: the stored one when it names exactly this config and these layers,
 * else a new Docker schema2 (all layers Docker types) or OCI manifest.
 */
export async function manifestFor(record: ImageRecord, configSize: number, content: ContentStore): Promise<{ body: Buffer; mediaType: string; blobs: BlobDesc[] }> {
  const layers: BlobDesc[] = [];
  for (const l of record.layers) {
    if (!l.digest || !(await content.has(l.digest))) {
      throw new BaleiaError('NotFound', `Cannot push image "${record.id}": the blob of layer "${l.diffId}" is missing`);
    }
    const mediaType = l.mediaType ?? (await sniffLayerType(content, l.digest));
    if (mediaType === layerTypes.dockerTar || mediaType === layerTypes.ociTar) {
      // As Docker: layers travel gzip-compressed even when they are stored as plain tars (a
      // loaded or committed image), a third of the bytes and what every registry accepts.
      const gz = await compressedLayer(content, l.digest);
      layers.push({ digest: gz.digest, size: gz.size, mediaType: mediaType === layerTypes.dockerTar ? layerTypes.dockerGzip : layerTypes.ociGzip });
      continue;
    }
    layers.push({ digest: l.digest, size: l.blobSize ?? (await content.size(l.digest)), mediaType });
  }
  if (record.manifestDigest && (await content.has(record.manifestDigest))) {
    const body = await content.read(record.manifestDigest);
    try {
      const m = JSON.parse(body.toString('utf8')) as { mediaType?: string; config?: BlobDesc; layers?: BlobDesc[] };
      const same =
        m.config?.digest === record.id &&
        Array.isArray(m.layers) &&
        m.layers.length === layers.length &&
        m.layers.every((d, i) => d.digest === layers[i]!.digest);
      if (same && m.config && m.layers) {
        const mediaType = m.mediaType ?? (m.config.mediaType === dockerConfigType ? mediaTypes.dockerManifest : mediaTypes.ociManifest);
        return { body, mediaType, blobs: [...m.layers, m.config] };
      }
    } catch {
      // not a manifest we can reuse: build one
    }
  }
  const docker = layers.every((l) => l.mediaType.startsWith('application/vnd.docker.'));
  const config: BlobDesc = { mediaType: docker ? dockerConfigType : ociConfigType, digest: record.id, size: configSize };
  const shipped = docker ? layers : layers.map((l) => ({ ...l, mediaType: dockerToOci[l.mediaType] ?? l.mediaType }));
  const mediaType = docker ? mediaTypes.dockerManifest : mediaTypes.ociManifest;
  const manifest = { schemaVersion: 2, mediaType, config, layers: shipped };
  // Docker writes manifests with a three-space indent; any bytes work, these are the familiar ones.
  return { body: Buffer.from(JSON.stringify(manifest, null, 3)), mediaType, blobs: [...shipped, config] };
}

/** Pushes the image named `ref` (tag defaulted) to `session`'s registry. */
export async function pushImage(session: Session, ref: Reference, opts: PushOptions): Promise<PushResult> {
  const { images, content, signal } = opts;
  const emit: ProgressFn = opts.onProgress ?? (() => {});
  if (ref.digest !== undefined) throw new BaleiaError('InvalidArgument', `Cannot push "${formatFamiliar(ref)}": a digest cannot be pushed to, name a tag`);
  const tag = ref.tag ?? 'latest';
  const shown = formatFamiliar({ ...ref, tag });
  const record = await images.resolve(shown);
  const host = session.endpoint.host;
  const repo = ref.path;
  emit({ status: `The push refers to repository [${fullRepository(ref)}]` });

  const configBytes = await images.getConfigBytes(record);
  const manifest = await manifestFor(record, configBytes.length, content);
  const config = manifest.blobs[manifest.blobs.length - 1]!;
  // Layers are in the image's order (a compressed copy has another digest but the same diffID).
  const diffIdOf = new Map(manifest.blobs.slice(0, -1).map((d, i) => [d.digest, record.layers[i]?.diffId ?? d.digest]));

  // Repositories of the same registry this image is known in: mount candidates.
  const known = [...record.repoTags, ...record.repoDigests].flatMap((name) => {
    try {
      const r = parseReference(name);
      return r.domain === ref.domain && r.path !== repo ? [r.path] : [];
    } catch {
      return [];
    }
  });
  const candidates = (digest: string) => [...new Set([...(opts.sources?.repositories(host, digest) ?? []), ...known])].filter((r) => r !== repo).slice(0, 3);

  // Layers top first, as Docker lists them; each blob once.
  const layers: Array<{ desc: BlobDesc; id: string }> = [];
  const seen = new Set<string>();
  for (const d of manifest.blobs.slice(0, -1).reverse()) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    layers.push({ desc: d, id: shortId(diffIdOf.get(d.digest) ?? d.digest) });
  }
  for (const l of layers) emit({ status: 'Preparing', id: l.id, progressDetail: {} });
  const concurrency = 3;
  for (const l of layers.slice(concurrency)) emit({ status: 'Waiting', id: l.id, progressDetail: {} });

  const pushOne = async (desc: BlobDesc, id: string | undefined, blobSignal: AbortSignal | undefined) => {
    const outcome = await pushBlob(session, repo, desc, content, {
      candidates: candidates(desc.digest),
      chunkSize: opts.chunkSize,
      signal: blobSignal,
      onBytes: id ? throttledProgress(emit, id, desc.size) : undefined,
    });
    opts.sources?.remember(host, repo, desc.digest);
    if (!id) return;
    if (outcome.result === 'exists') emit({ status: 'Layer already exists', id, progressDetail: {} });
    else if (outcome.result === 'mounted') emit({ status: `Mounted from ${outcome.from}`, id, progressDetail: {} });
    else emit({ status: 'Pushed', id, progressDetail: {} });
  };
  await eachLimit(layers, concurrency, (l, blobSignal) => pushOne(l.desc, l.id, blobSignal), signal);
  await pushOne(config, undefined, signal);

  const res = await session.request('PUT', paths.manifest(repo, tag), {
    headers: { 'Content-Type': manifest.mediaType, 'Content-Length': manifest.body.length },
    body: () => manifest.body,
    scopes: [repositoryScope(repo, ['pull', 'push'])],
    signal,
  });
  if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 202) throw await pushError(res, `manifest "${shown}"`);
  res.resume();
  const digest = sha256Digest(manifest.body);
  const answered = res.headers['docker-content-digest'];
  if (typeof answered === 'string' && answered.startsWith('sha256:') && answered !== digest) {
    throw new BaleiaError('Internal', `Cannot push manifest "${shown}": the registry stored digest ${answered}, expected ${digest}`);
  }
  // Docker records the pushed digest as a RepoDigest; the manifest is kept so `name@digest` reads back.
  await images.tag(record.id, `${familiarRepository(ref)}@${digest}`);
  emit({ status: `${tag}: digest: ${digest} size: ${manifest.body.length}` });
  return { tag, digest, size: manifest.body.length };
}

function throttledProgress(emit: ProgressFn, id: string, total: number): (n: number) => void {
  let last = 0;
  return (n) => {
    const now = Date.now();
    if (n < total && now - last < 100) return;
    last = now;
    emit({ status: 'Pushing', id, progressDetail: { current: n, total }, progress: progressBar(n, total) });
  };
}

/** One blob into `repo`: already there, mounted from another repository, or uploaded. */
export async function pushBlob(
  session: Session,
  repo: string,
  desc: BlobDesc,
  content: ContentStore,
  opts: { candidates?: string[]; chunkSize?: number; signal?: AbortSignal; onBytes?: (n: number) => void },
): Promise<{ result: 'exists' } | { result: 'mounted'; from: string } | { result: 'pushed' }> {
  const { signal } = opts;
  const what = `blob ${desc.digest}`;
  const scopes = [repositoryScope(repo, ['pull', 'push'])];
  const head = await session.request('HEAD', paths.blob(repo, desc.digest), { scopes, signal });
  head.resume();
  if (head.statusCode === 200) return { result: 'exists' };
  if (head.statusCode !== 404 && head.statusCode !== 401 && head.statusCode !== 403) throw await pushError(head, what);

  let location: string | undefined;
  for (const from of opts.candidates ?? []) {
    const res = await session.request('POST', `${paths.uploads(repo)}?mount=${desc.digest}&from=${encodeURIComponent(from)}`, {
      headers: { 'Content-Length': 0 },
      body: () => Buffer.alloc(0),
      scopes: [...scopes, repositoryScope(from, ['pull'])],
      signal,
    });
    if (res.statusCode === 201) {
      res.resume();
      return { result: 'mounted', from };
    }
    if (res.statusCode === 202) {
      // The registry opened an upload instead (the blob is not in `from`): use it.
      res.resume();
      location = headerString(res.headers.location);
      if (location) break;
      continue;
    }
    // A refused mount (no pull right on `from`) falls back to an upload.
    await readText(res, 64 * 1024).catch(() => '');
  }
  if (!location) {
    const res = await session.request('POST', paths.uploads(repo), { headers: { 'Content-Length': 0 }, body: () => Buffer.alloc(0), scopes, signal });
    if (res.statusCode !== 202) throw await pushError(res, what);
    res.resume();
    location = headerString(res.headers.location);
    if (!location) throw new BaleiaError('Internal', `Cannot push ${what}: the registry answered no upload Location`);
  }

  const file = content.path(desc.digest);
  const chunk = opts.chunkSize && opts.chunkSize > 0 ? opts.chunkSize : Infinity;
  let sent = 0;
  while (sent < desc.size) {
    const end = Math.min(desc.size, sent + chunk) - 1;
    const start = sent;
    const counter = new Transform({
      transform(c: Buffer, _enc, cb) {
        sent += c.length;
        opts.onBytes?.(sent);
        cb(null, c);
      },
    });
    const source = createReadStream(file, { start, end });
    source.on('error', (err) => counter.destroy(err));
    source.pipe(counter);
    let res: http.IncomingMessage;
    try {
      res = await session.request('PATCH', location, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': end - start + 1, 'Content-Range': `${start}-${end}` },
        body: () => counter,
        scopes,
        signal,
      });
    } finally {
      source.destroy();
    }
    if (res.statusCode !== 202 && res.statusCode !== 204) throw await pushError(res, what);
    res.resume();
    sent = end + 1;
    location = headerString(res.headers.location) ?? location;
  }
  const url = await session.url(location);
  url.searchParams.set('digest', desc.digest);
  const put = await session.request('PUT', url.href, { headers: { 'Content-Length': 0 }, body: () => Buffer.alloc(0), scopes, signal });
  if (put.statusCode !== 201 && put.statusCode !== 204) throw await pushError(put, what);
  put.resume();
  return { result: 'pushed' };
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
