/**
 * What a tag holds, read from the registry store for people (web UI, search descriptions):
 * the manifest, and for each platform its config (created, labels, os/arch) and layers. Index
 * children missing from the repository and configs that are not JSON are shown as unknown
 * rather than failing the page.
 */
import { mediaTypes } from './manifests.js';
import { parseReference } from './names.js';
import type { RegistryStore } from './store.js';

export interface LayerInfo {
  digest: string;
  size: number;
  mediaType: string;
}

export interface PlatformImage {
  /** `linux/amd64`, `linux/arm64/v8`, or `unknown`. */
  platform: string;
  manifestDigest: string;
  configDigest?: string;
  /** Compressed size: config plus layers. */
  size: number;
  created?: string;
  labels: Record<string, string>;
  layers: LayerInfo[];
  /** Artifact or non-image config media type, when not an image. */
  artifactType?: string;
}

export interface TagInfo {
  name: string;
  tag: string;
  digest: string;
  mediaType: string;
  isIndex: boolean;
  images: PlatformImage[];
}

interface RawManifest {
  mediaType?: string;
  artifactType?: string;
  config?: { digest?: string; size?: number; mediaType?: string };
  layers?: Array<{ digest?: string; size?: number; mediaType?: string }>;
  manifests?: Array<{ digest?: string; platform?: { os?: string; architecture?: string; variant?: string }; mediaType?: string }>;
}

interface RawConfig {
  os?: string;
  architecture?: string;
  variant?: string;
  created?: string;
  config?: { Labels?: Record<string, string> | null };
}

const imageConfigTypes = ['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json'];

function platformText(p: { os?: string; architecture?: string; variant?: string } | undefined): string {
  if (!p?.os || !p.architecture) return 'unknown';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

async function readJson<T>(store: RegistryStore, digest: string): Promise<T | undefined> {
  try {
    return JSON.parse((await store.content.read(digest)).toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

async function imageOf(store: RegistryStore, digest: string, manifest: RawManifest, hint?: string): Promise<PlatformImage> {
  const layers: LayerInfo[] = (manifest.layers ?? []).map((l) => ({ digest: String(l.digest ?? ''), size: Number(l.size ?? 0), mediaType: String(l.mediaType ?? '') }));
  const configDigest = manifest.config?.digest;
  const configType = manifest.config?.mediaType ?? '';
  const isImage = imageConfigTypes.includes(configType);
  const config = configDigest && isImage ? await readJson<RawConfig>(store, configDigest) : undefined;
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(config?.config?.Labels ?? {})) labels[String(k)] = String(v);
  return {
    platform: config ? platformText(config) : (hint ?? 'unknown'),
    manifestDigest: digest,
    configDigest,
    size: Number(manifest.config?.size ?? 0) + layers.reduce((n, l) => n + l.size, 0),
    created: typeof config?.created === 'string' ? config.created : undefined,
    labels,
    layers,
    artifactType: manifest.artifactType ?? (isImage || !configType ? undefined : configType),
  };
}

/** The tag's manifest and, for an index, each child image present in the repository. */
export async function inspectTag(store: RegistryStore, name: string, tag: string): Promise<TagInfo> {
  const stored = await store.getManifest(name, parseReference(tag));
  const manifest = JSON.parse(stored.body.toString('utf8')) as RawManifest;
  const isIndex = stored.mediaType === mediaTypes.ociIndex || stored.mediaType === mediaTypes.dockerManifestList;
  const images: PlatformImage[] = [];
  if (isIndex) {
    for (const child of manifest.manifests ?? []) {
      if (!child.digest) continue;
      const hint = platformText(child.platform);
      try {
        const sub = await store.getManifest(name, parseReference(child.digest));
        images.push(await imageOf(store, sub.digest, JSON.parse(sub.body.toString('utf8')) as RawManifest, hint));
      } catch {
        images.push({ platform: hint, manifestDigest: child.digest, size: 0, labels: {}, layers: [] });
      }
    }
  } else {
    images.push(await imageOf(store, stored.digest, manifest));
  }
  return { name, tag, digest: stored.digest, mediaType: stored.mediaType, isIndex, images };
}

/** The OCI description label of a repository's `latest` tag (else its first tag), or ''. */
export async function describeRepository(store: RegistryStore, name: string): Promise<string> {
  try {
    const tags = await store.listTags(name);
    const tag = tags.includes('latest') ? 'latest' : tags[0];
    if (!tag) return '';
    const info = await inspectTag(store, name, tag);
    for (const image of info.images) {
      const d = image.labels['org.opencontainers.image.description'];
      if (d) return d;
    }
  } catch {
    // A repository mid-push or without tags has no description.
  }
  return '';
}
