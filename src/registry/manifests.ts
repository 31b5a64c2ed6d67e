/**
 * Manifests as the registry sees them (pure): which media types it stores, what a manifest refers
 * to (blobs that must already be in the repository, child manifests of an index, the `subject`
 * of the referrers API), and the descriptor that stands for it in a referrers index.
 */
import { registryError } from './errors.js';
import { isSupportedDigest } from './names.js';

export const mediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export const manifestMediaTypes: readonly string[] = Object.values(mediaTypes);
const indexTypes: readonly string[] = [mediaTypes.ociIndex, mediaTypes.dockerManifestList];

/** The spec's recommended minimum a registry accepts; larger manifests answer 413. */
export const maxManifestSize = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: unknown;
}

export interface ParsedManifest {
  mediaType: string;
  isIndex: boolean;
  /** Config and layers: blobs that must be linked in the repository. */
  blobs: Descriptor[];
  /** Children of an index: manifests that must be in the repository. */
  manifests: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  configMediaType?: string;
}

const invalid = (reason: string, detail?: Record<string, unknown>) =>
  registryError('MANIFEST_INVALID', { message: `manifest invalid: ${reason}`, detail: { reason, ...detail } });

function descriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw invalid(`${where} is not a descriptor`);
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw invalid(`${where} has no mediaType`);
  if (typeof d.digest !== 'string') throw invalid(`${where} has no digest`);
  if (!isSupportedDigest(d.digest)) throw invalid(`${where} has an invalid or unsupported digest`, { digest: d.digest });
  if (typeof d.size !== 'number' || !Number.isInteger(d.size) || d.size < 0) throw invalid(`${where} has an invalid size`);
  return d as unknown as Descriptor;
}

/** Only the media type of a body with a `Content-Type`, without parameters. */
export function baseMediaType(contentType: string | undefined): string | undefined {
  const t = contentType?.split(';')[0]?.trim().toLowerCase();
  return t ? t : undefined;
}

/**
 * Parses and checks a manifest body pushed with `contentType`. The media type is the header's,
 * or the body's `mediaType` when the header is absent or generic; the two must agree when both
 * are given (a client cannot store an index under a manifest type).
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw registryError('MANIFEST_INVALID', { message: 'manifest invalid: not JSON', detail: { reason: 'not JSON' }, cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('not a JSON object');
  const m = value as Record<string, unknown>;
  const header = baseMediaType(contentType);
  const bodyType = typeof m.mediaType === 'string' ? m.mediaType : undefined;
  const generic = header === undefined || header === 'application/json' || header === 'application/octet-stream';
  const mediaType = generic ? bodyType : header;
  if (mediaType === undefined) throw invalid('no media type in Content-Type or body');
  if (!manifestMediaTypes.includes(mediaType)) {
    throw registryError('MANIFEST_INVALID', {
      message: `manifest invalid: unsupported media type "${mediaType}"`,
      detail: { reason: 'unsupported media type', mediaType },
    });
  }
  if (bodyType !== undefined && bodyType !== mediaType) throw invalid('mediaType does not match Content-Type', { mediaType: bodyType, contentType: mediaType });
  if (m.schemaVersion !== 2) throw invalid('schemaVersion is not 2');
  const parsed: ParsedManifest = {
    mediaType,
    isIndex: indexTypes.includes(mediaType),
    blobs: [],
    manifests: [],
    artifactType: typeof m.artifactType === 'string' ? m.artifactType : undefined,
    annotations: typeof m.annotations === 'object' && m.annotations !== null ? (m.annotations as Record<string, string>) : undefined,
  };
  if (m.subject !== undefined) parsed.subject = descriptor(m.subject, 'subject');
  if (parsed.isIndex) {
    if (!Array.isArray(m.manifests)) throw invalid('manifests is not an array');
    parsed.manifests = m.manifests.map((d, i) => descriptor(d, `manifests[${i}]`));
  } else {
    const config = descriptor(m.config, 'config');
    if (!Array.isArray(m.layers)) throw invalid('layers is not an array');
    parsed.configMediaType = config.mediaType;
    parsed.blobs = [config, ...m.layers.map((d, i) => descriptor(d, `layers[${i}]`))];
  }
  return parsed;
}

/** Blobs that the registry must hold: foreign layers (with `urls`) are fetched from elsewhere. */
export function requiredBlobs(m: ParsedManifest): Descriptor[] {
  return m.blobs.filter((d) => !(d.urls && d.urls.length > 0));
}

/** The descriptor of a manifest in a referrers index (spec: artifactType falls back to config's mediaType). */
export function referrerDescriptor(m: ParsedManifest, digest: string, size: number): Descriptor {
  const d: Descriptor = { mediaType: m.mediaType, digest, size };
  const artifactType = m.artifactType ?? m.configMediaType;
  if (artifactType !== undefined) d.artifactType = artifactType;
  if (m.annotations !== undefined) d.annotations = m.annotations;
  return d;
}
