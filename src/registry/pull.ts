/**
 * Pull: reference → manifest (an index picks the platform) → config → layers → ImageStore.
 * createImage. Each layer goes through one pass: HTTP body → the content store's resumable ingest
 * (hashed, written) and, at the same time, gunzip → tar → its own snapshot directory (layers
 * unpack independently, so four run at once in any order). The blob is committed only when its
 * digest and size matched, and the layer only after that and its diff ID check: a layer that
 * fails either is not kept. Blobs the store already has are not fetched ("Already exists").
 * A transfer cut mid-blob resumes with `Range` from the bytes received; a pull interrupted by a
 * cancel or a restart resumes from the bytes its ingest kept on disk, hashed again (and fetched
 * whole again if those do not verify). Progress follows Docker's JSON messages (engine-api.md §4.5).
 */
import http from 'node:http';
import { BaleiaError, describeError, isKind, silentLogger, type Logger } from '../lib/index.js';
import { sha256Digest, type ContentStore } from '../content/index.js';
import { chainIds, familiarRepository, formatFamiliar, goArch, type ImageRecord, type ImageStore, type Reference } from '../image/index.js';
import { repositoryScope } from './auth.js';
import { mediaTypes } from './manifests.js';
import { paths } from './routes.js';
import { errorDetail, isTransient, progressBar, readBytes, type BlobSources, type Session } from './session.js';

export interface ProgressEvent {
  status: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
}

export type ProgressFn = (e: ProgressEvent) => void;

export interface PullOptions {
  images: ImageStore;
  content: ContentStore;
  platform?: string;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  /** Remembers where each blob came from, for cross-repository mounts on a later push. */
  sources?: BlobSources;
  /** Debug timings per layer (first and last byte, done) and of the whole pull. */
  logger?: Logger;
}

/**
 * Layers fetched (and extracted) at once. Docker downloads 3 at a time and extracts one after
 * another; here each download streams into its own extraction, so more at once keeps the cores
 * busy (igzip processes, hashing threads, tar and writes on the daemon's thread and its pool).
 */
const layerConcurrency = 4;

/** Every manifest type a pull accepts, in Docker's Accept order. */
export const manifestAccept = [
  mediaTypes.dockerManifest,
  mediaTypes.dockerManifestList,
  mediaTypes.ociManifest,
  mediaTypes.ociIndex,
].join(', ');

const schema1Types = ['application/vnd.docker.distribution.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws'];

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  urls?: string[];
}

interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

export interface FetchedManifest {
  body: Buffer;
  digest: string;
  mediaType: string;
  manifest: Manifest;
}

export const shortId = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

/** `linux/arm64/v8` → parts; default the host's (linux/<go arch>). */
export function parsePlatform(platform: string | undefined): { os: string; architecture: string; variant?: string } {
  if (!platform) {
    const architecture = goArch();
    return { os: 'linux', architecture, ...(architecture === 'arm64' ? { variant: 'v8' } : {}) };
  }
  const [os, architecture, variant] = platform.toLowerCase().split('/');
  if (!os || !architecture) throw new BaleiaError('InvalidArgument', `Cannot parse platform "${platform}": expected os/arch[/variant]`);
  return { os, architecture: architecture === 'x86_64' ? 'amd64' : architecture === 'aarch64' ? 'arm64' : architecture, ...(variant ? { variant } : {}) };
}

/** The best index entry for `platform` (variant matched when both sides name one). */
export function choosePlatform(manifests: Descriptor[], platform: { os: string; architecture: string; variant?: string }): Descriptor | undefined {
  const candidates = manifests.filter(
    (m) => m.platform?.os === platform.os && m.platform?.architecture === platform.architecture && !schema1Types.includes(m.mediaType ?? ''),
  );
  if (candidates.length === 0) return undefined;
  if (platform.variant) {
    const exact = candidates.find((m) => m.platform?.variant === platform.variant);
    if (exact) return exact;
    const unspecified = candidates.find((m) => !m.platform?.variant);
    if (unspecified) return unspecified;
  }
  return candidates[0];
}

/** GET a manifest by tag or digest, its digest verified (the requested digest, else Docker-Content-Digest). */
export async function fetchManifest(session: Session, ref: Reference, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
  const res = await session.request('GET', paths.manifest(ref.path, reference), {
    headers: { Accept: manifestAccept },
    scopes: [repositoryScope(ref.path, ['pull'])],
    signal,
  });
  if (res.statusCode !== 200) throw await pullError(res, ref);
  const body = await readBytes(res);
  const digest = sha256Digest(body);
  const expected = reference.startsWith('sha256:') ? reference : headerString(res.headers['docker-content-digest']);
  if (expected && expected.startsWith('sha256:') && expected !== digest) {
    throw new BaleiaError('InvalidArgument', `Cannot pull "${formatFamiliar(ref)}": manifest verification failed for digest ${expected}, got ${digest}`);
  }
  let manifest: Manifest;
  try {
    manifest = JSON.parse(body.toString('utf8')) as Manifest;
  } catch (err) {
    throw new BaleiaError('InvalidArgument', `Cannot pull "${formatFamiliar(ref)}": the manifest is not JSON`, { cause: err });
  }
  const contentType = headerString(res.headers['content-type'])?.split(';')[0]?.trim();
  let mediaType = manifest.mediaType ?? (contentType && contentType !== 'application/json' ? contentType : undefined);
  mediaType ??= manifest.manifests ? mediaTypes.ociIndex : mediaTypes.ociManifest;
  if (schema1Types.includes(mediaType) || manifest.schemaVersion === 1) {
    throw new BaleiaError('NotImplemented', `Cannot pull "${formatFamiliar(ref)}": Docker Image Format v1 and Docker Image manifest version 2, schema 1 are not supported`);
  }
  return { body, digest, mediaType, manifest };
}

/** Docker's errors for a failed manifest request. */
async function pullError(res: http.IncomingMessage, ref: Reference): Promise<BaleiaError> {
  const detail = await errorDetail(res);
  const shown = formatFamiliar(ref);
  if (res.statusCode === 401 || res.statusCode === 403 || detail.code === 'NAME_UNKNOWN') {
    // As dockerd: refused credentials stay Unauthorized; denied or unknown names are NotFound.
    return new BaleiaError(res.statusCode === 401 ? 'Unauthorized' : 'NotFound', `pull access denied for ${familiarRepository(ref)}, repository does not exist or may require 'docker login': ${detail.message}`, {
      cause: new Error(detail.message),
    });
  }
  if (res.statusCode === 404) return new BaleiaError('NotFound', `manifest for ${shown} not found: manifest unknown: manifest unknown`, { cause: new Error(detail.message) });
  if (res.statusCode === 429 || (res.statusCode ?? 0) >= 500) {
    return new BaleiaError('Unavailable', `Cannot pull "${shown}": the registry answered ${detail.message}`);
  }
  return new BaleiaError('Internal', `Cannot pull "${shown}": the registry answered ${detail.message}`);
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Runs `fn` over `items` with at most `limit` at once. The first failure stops new work and
 * aborts the signal handed to the others (their transfers stop), and is what rejects.
 */
export async function eachLimit<T>(
  items: T[],
  limit: number,
  fn: (item: T, signal: AbortSignal | undefined) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const stop = new AbortController();
  const combined = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, combined);
      } catch (err) {
        if (failed === undefined) {
          failed = err;
          stop.abort(err);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

/** Network chunks (≤ 64 KiB) are gathered to this size before they go to disk and gunzip. */
const handOn = 512 * 1024;

/**
 * A blob's bytes from offset `start` as one sequence across connections: the first request asks
 * for `Range: bytes=<start>-` when start > 0, and when a transfer breaks the next one asks for
 * the bytes not yet received (or skips those if the registry ignores Range and answers 200).
 */
async function* blobChunks(
  session: Session,
  ref: Reference,
  desc: Descriptor,
  opts: { start: number; onBytes: (n: number) => void; signal?: AbortSignal },
): AsyncGenerator<Buffer> {
  const shown = formatFamiliar(ref);
  const { signal } = opts;
  let received = opts.start;
  let gathered: Buffer[] = [];
  let gatheredBytes = 0;
  const take = () => {
    const out = gathered.length === 1 ? gathered[0]! : Buffer.concat(gathered, gatheredBytes);
    gathered = [];
    gatheredBytes = 0;
    return out;
  };
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = {};
    if (received > 0) headers.Range = `bytes=${received}-`;
    let res: http.IncomingMessage;
    try {
      res = await session.request('GET', paths.blob(ref.path, desc.digest), { headers, scopes: [repositoryScope(ref.path, ['pull'])], signal });
    } catch (err) {
      if (attempt < 3 && isKind(err, 'Unavailable') && !signal?.aborted) continue;
      throw err;
    }
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      const detail = await errorDetail(res);
      if (res.statusCode === 404) throw new BaleiaError('NotFound', `Cannot pull "${shown}": blob ${desc.digest} not found: ${detail.message}`);
      if (res.statusCode === 401 || res.statusCode === 403) {
        throw new BaleiaError(res.statusCode === 401 ? 'Unauthorized' : 'NotFound', `pull access denied for ${familiarRepository(ref)}, repository does not exist or may require 'docker login': ${detail.message}`);
      }
      if (attempt < 3 && (res.statusCode ?? 0) >= 500) continue;
      throw new BaleiaError('Unavailable', `Cannot pull "${shown}": blob ${desc.digest}: the registry answered ${detail.message}`);
    }
    let skip = res.statusCode === 200 ? received : 0;
    try {
      for await (const c of res as AsyncIterable<Buffer>) {
        let chunk = c;
        if (skip > 0) {
          const n = Math.min(skip, chunk.length);
          skip -= n;
          chunk = chunk.subarray(n);
          if (chunk.length === 0) continue;
        }
        received += chunk.length;
        opts.onBytes(received);
        gathered.push(chunk);
        gatheredBytes += chunk.length;
        if (gatheredBytes >= handOn) yield take();
      }
      if (!res.complete) throw Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
      if (gatheredBytes > 0) yield take();
      return;
    } catch (err) {
      res.destroy();
      if (signal?.aborted) throw new BaleiaError('Cancelled', `Cannot pull "${shown}": cancelled`, { cause: err });
      if (attempt >= 3 || !isTransient(err) || received >= desc.size) throw err;
    }
  }
}

/** Hands a blob's bytes to the caller as they arrive; resolves whether it read them (false: untouched). */
export type BlobConsumer = (bytes: AsyncIterable<Buffer>, commit: () => Promise<void>) => Promise<boolean>;

/** Errors that say the blob's bytes are not the blob (digest or size), as opposed to the layer's content. */
const mismatches = new WeakSet<object>();

function verificationFailed(ref: Reference, desc: Descriptor, cause: unknown): BaleiaError {
  const err = new BaleiaError('InvalidArgument', `Cannot pull "${formatFamiliar(ref)}": filesystem layer verification failed for digest ${desc.digest}`, { cause });
  mismatches.add(err);
  return err;
}

/**
 * Fetches one blob into the content store through its resumable ingest: bytes an earlier attempt
 * left (also before a restart) are re-hashed and only the rest is asked for, with Range. With
 * `consume` (a layer's extraction) every byte is handed on as it arrives, and `commit` — digest
 * and size checked, blob stored — is what the consumer calls before its own result is made
 * visible. A blob that does not match is not kept; InvalidArgument "verification failed".
 */
export async function fetchBlob(
  session: Session,
  ref: Reference,
  desc: Descriptor,
  content: ContentStore,
  opts: { onBytes?: (n: number) => void; consume?: BlobConsumer; signal?: AbortSignal; logger?: Logger; retryWhole?: boolean } = {},
): Promise<void> {
  const log = opts.logger ?? silentLogger;
  for (let attempt = 0; ; attempt++) {
    const writer = await content.openIngest(desc.digest, { expectedSize: desc.size, signal: opts.signal });
    if (await content.has(desc.digest)) {
      await writer.discard(); // stored by another pull while this one waited
      return;
    }
    const resumedFrom = writer.offset;
    if (resumedFrom > 0) log.debug('resuming a blob from the bytes kept on disk', { digest: desc.digest, offset: resumedFrom, size: desc.size });
    let committed = false;
    const commit = async () => {
      if (committed) return;
      const t0 = performance.now();
      try {
        await writer.commit();
        log.debug('blob committed', { digest: desc.digest, ms: Math.round(performance.now() - t0) });
      } catch (err) {
        if (isKind(err, 'InvalidArgument')) throw verificationFailed(ref, desc, err);
        throw err;
      }
      committed = true;
    };
    // The network half stops when the consumer gives up (its error is what counts then).
    const stopBytes = new AbortController();
    const bytesSignal = opts.signal ? AbortSignal.any([opts.signal, stopBytes.signal]) : stopBytes.signal;
    let bytesDone: Promise<void> | undefined;
    const bytes = (): AsyncGenerator<Buffer> =>
      (async function* () {
        let finished!: () => void;
        bytesDone = new Promise<void>((resolve) => (finished = resolve));
        let pending: Promise<void> = Promise.resolve();
        try {
          yield* writer.kept({ signal: bytesSignal });
          if (writer.size < desc.size) {
            const chunks = blobChunks(session, ref, desc, { start: writer.size, onBytes: opts.onBytes ?? (() => {}), signal: bytesSignal });
            for await (const chunk of chunks) {
              await pending;
              // Written while the consumer already works on it; awaited before the next one.
              pending = writer.write(chunk).catch((err: unknown) => {
                throw isKind(err, 'InvalidArgument') ? verificationFailed(ref, desc, err) : err;
              });
              pending.catch(() => {});
              yield chunk;
            }
          }
          await pending;
        } finally {
          await pending.catch(() => {});
          finished();
        }
      })();
    try {
      const consumed = opts.consume ? await opts.consume(bytes(), commit) : false;
      if (!consumed) {
        for await (const _ of bytes()) if (opts.signal?.aborted) break;
      }
      await commit();
      return;
    } catch (caught) {
      let err = caught;
      stopBytes.abort();
      await bytesDone;
      // Keep what was written for the next attempt, unless it is known to be wrong.
      if (!committed) await (mismatches.has(err as object) ? writer.discard() : writer.close());
      if (opts.signal?.aborted) throw err;
      if (opts.consume && !committed && !mismatches.has(err as object) && isKind(err, 'InvalidArgument')) {
        // The consumer refused the bytes (corrupt gzip, bad tar): if the blob itself does not
        // match its digest, that is the error to report, as Docker's checksum would. The check
        // fetches the rest of the blob and keeps it when it is right.
        try {
          await fetchBlob(session, ref, desc, content, { signal: opts.signal, logger: opts.logger, retryWhole: false });
        } catch (blobErr) {
          if (mismatches.has(blobErr as object)) err = blobErr;
        }
      }
      // Bytes kept from an earlier attempt may be what is wrong (a crash can leave a torn tail).
      if (mismatches.has(err as object) && resumedFrom > 0 && attempt === 0 && opts.retryWhole !== false) {
        log.warn('a resumed blob did not verify; fetching it again from the start', { digest: desc.digest, offset: resumedFrom });
        continue;
      }
      throw err;
    }
  }
}

/** Small blobs (configs): fetched, verified, stored, returned. */
async function fetchSmallBlob(session: Session, ref: Reference, desc: Descriptor, content: ContentStore, signal?: AbortSignal): Promise<Buffer> {
  if (!(await content.has(desc.digest))) await fetchBlob(session, ref, desc, content, { signal });
  return content.read(desc.digest);
}

/**
 * Pulls `ref` (already parsed, tag defaulted) from `session` into the stores. `shown` is the
 * reference as the messages print it (`alpine:3.19`, `127.0.0.1:5000/x:1`).
 */
export async function pullImage(session: Session, ref: Reference, opts: PullOptions): Promise<ImageRecord> {
  const { images, content, signal } = opts;
  const log = opts.logger ?? silentLogger;
  const emit: ProgressFn = opts.onProgress ?? (() => {});
  const shown = formatFamiliar(ref);
  const reference = ref.digest ?? ref.tag ?? 'latest';
  const top = await fetchManifest(session, ref, reference, signal);
  // After the manifest, as Docker does: a pull that fails there has sent nothing yet, so the
  // engine can still answer a plain error status (404 for an unknown tag).
  emit({ status: `Pulling from ${ref.path}`, id: reference });
  let image = top;
  if (top.manifest.manifests) {
    const platform = parsePlatform(opts.platform);
    const chosen = choosePlatform(top.manifest.manifests, platform);
    if (!chosen) {
      const name = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
      throw new BaleiaError('NotFound', `no matching manifest for ${name} in the manifest list entries`);
    }
    image = await fetchManifest(session, ref, chosen.digest, signal);
    if (image.manifest.manifests) throw new BaleiaError('InvalidArgument', `Cannot pull "${shown}": an index entry is itself an index`);
  }
  const { config: configDesc, layers: layerDescs = [] } = image.manifest;
  if (!configDesc || !Array.isArray(layerDescs)) throw new BaleiaError('InvalidArgument', `Cannot pull "${shown}": the manifest has no config or layers`);

  const configBytes = await fetchSmallBlob(session, ref, configDesc, content, signal);
  let existing: ImageRecord | undefined;
  try {
    existing = await images.resolve(configDesc.digest);
  } catch (err) {
    if (!isKind(err, 'NotFound')) throw err;
  }
  let before: string | undefined;
  try {
    before = (await images.resolve(shown)).id;
  } catch (err) {
    if (!isKind(err, 'NotFound') && !isKind(err, 'InvalidArgument')) throw err;
  }

  // Foreign layers (with `urls`) are not distributable: Docker fetches them from the URL; we refuse.
  const layers = layerDescs.map((d) => ({ desc: d, id: shortId(d.digest) }));
  const have = new Set<string>();
  for (const l of layers) if (existing || (await content.has(l.desc.digest))) have.add(l.desc.digest);
  const toFetch: typeof layers = [];
  const seen = new Set<string>();
  for (const l of layers) {
    if (seen.has(l.desc.digest)) continue;
    seen.add(l.desc.digest);
    if (have.has(l.desc.digest)) emit({ status: 'Already exists', id: l.id, progressDetail: {} });
    else {
      emit({ status: 'Pulling fs layer', id: l.id, progressDetail: {} });
      toFetch.push(l);
    }
  }
  const diffIds = ((JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? []);
  const chains = diffIds.length === layerDescs.length ? chainIds(diffIds) : [];
  const extracted = new Set<string>();
  for (const l of toFetch.slice(layerConcurrency)) emit({ status: 'Waiting', id: l.id, progressDetail: {} });

  const started = performance.now();
  // Layers this pull unpacked: if it fails before its image is recorded, those no image uses go.
  const unpackedChains: string[] = [];
  let record: ImageRecord;
  try {
    await eachLimit(toFetch, layerConcurrency, async (l, layerSignal) => {
      const t0 = performance.now();
      let firstByte = 0;
      let lastByte = 0;
      let lastEmit = 0;
      let lastBytes = 0;
      const onBytes = (n: number) => {
        const now = performance.now();
        if (!firstByte) firstByte = now;
        if (n === l.desc.size) lastByte = now;
        // At most ~10 messages a second per layer, plus the last one.
        if ((n < l.desc.size && now - lastEmit < 100) || n === lastBytes) return;
        lastEmit = now;
        lastBytes = n;
        emit({ status: 'Downloading', id: l.id, progressDetail: { current: n, total: l.desc.size }, progress: progressBar(n, l.desc.size) });
      };
      const downloaded = () => {
        emit({ status: 'Verifying Checksum', id: l.id, progressDetail: {} });
        emit({ status: 'Download complete', id: l.id, progressDetail: {} });
      };
      // Extract while downloading: each layer unpacks into its own directory, so layers need no
      // order; the blob is committed (digest checked) just before its layer is.
      const index = layerDescs.indexOf(l.desc);
      const extract = !existing && index >= 0 && diffIds[index] !== undefined && chains[index] !== undefined;
      let unpacked = false;
      await fetchBlob(session, ref, l.desc, content, {
        signal: layerSignal,
        logger: log,
        onBytes,
        consume: extract
          ? async (bytes, commit) => {
              unpacked = await images.unpackLayer({
                digest: l.desc.digest,
                diffId: diffIds[index]!,
                chainId: chains[index]!,
                blob: bytes,
                signal: layerSignal,
                beforeCommit: async () => {
                  await commit();
                  downloaded();
                  emit({ status: 'Extracting', id: l.id, progressDetail: { current: l.desc.size, total: l.desc.size }, progress: progressBar(l.desc.size, l.desc.size) });
                },
              });
              if (unpacked) unpackedChains.push(chains[index]!);
              return unpacked;
            }
          : undefined,
      });
      if (!unpacked) downloaded();
      if (extract) {
        extracted.add(l.desc.digest);
        emit({ status: 'Pull complete', id: l.id, progressDetail: {} });
      }
      const ms = (t: number) => (t ? Math.round(t - t0) : undefined);
      log.debug('layer pulled', {
        layer: l.desc.digest,
        bytes: l.desc.size,
        unpacked,
        firstByteMs: ms(firstByte),
        lastByteMs: ms(lastByte),
        doneMs: ms(performance.now()),
      });
    }, signal);
    log.debug('layers pulled', { layers: toFetch.length, ms: Math.round(performance.now() - started) });

    for (const d of [configDesc, ...layerDescs]) opts.sources?.remember(session.endpoint.host, ref.path, d.digest);

    const tagRef = ref.digest === undefined && ref.tag !== undefined ? shown : undefined;
    if (existing) {
      if (tagRef) await images.tag(existing.id, tagRef);
      record = existing;
    } else {
      const t0 = performance.now();
      try {
        record = await images.createImage({
          config: configBytes,
          layers: layerDescs.map((d) => ({ digest: d.digest, mediaType: d.mediaType })),
          ...(tagRef ? { ref: tagRef } : {}),
          manifest: image.body,
          manifestDigest: image.digest,
          signal,
        });
      } catch (err) {
        if (isKind(err, 'InvalidArgument')) throw new BaleiaError('InvalidArgument', `Cannot pull "${shown}": ${describeError(err)}`, { cause: err });
        throw err;
      }
      log.debug('image record created', { image: record.id, ms: Math.round(performance.now() - t0) });
      // Layers not extracted while downloading were unpacked by createImage.
      for (const l of toFetch.filter((x) => !extracted.has(x.desc.digest))) {
        emit({ status: 'Extracting', id: l.id, progressDetail: { current: l.desc.size, total: l.desc.size }, progress: progressBar(l.desc.size, l.desc.size) });
        emit({ status: 'Pull complete', id: l.id, progressDetail: {} });
      }
    }
  } catch (err) {
    await images.dropUnusedLayers(unpackedChains).catch((dropErr: unknown) => log.warn('cannot remove the layers of a failed pull', { err: dropErr }));
    throw err;
  }
  // RepoDigests name what was pulled: the index digest for a multi-platform image.
  await images.tag(record.id, `${familiarRepository(ref)}@${top.digest}`);
  emit({ status: `Digest: ${top.digest}` });
  const upToDate = existing !== undefined && (ref.digest !== undefined || before === existing.id);
  emit({ status: upToDate ? `Status: Image is up to date for ${shown}` : `Status: Downloaded newer image for ${shown}` });
  return images.resolve(record.id);
}
