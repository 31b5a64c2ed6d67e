/**
 * Test support for the hub (not exported by index.ts): a registry with users, access rules, TLS
 * or not, on 127.0.0.1:0 over a temp root removed after the test. Users get bcrypt cost 4 so
 * tests stay fast; the format is the same as at cost 10.
 */
import type { TestContext } from 'node:test';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { addUser } from './htpasswd.js';
import { serveHub, type HubAuthOptions, type HubOptions, type RunningHub } from './hub.js';
import { gunzipSync } from 'node:zlib';
import { digestOf, layerTar, request, tempDir, type Reply, type RequestOptions, type TestImage } from './testing.js';

export interface TestHub extends RunningHub {
  root: string;
  dir: string;
  url: string;
  request(method: string, pathname: string, options?: RequestOptions): Promise<Reply>;
}

export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export async function startHub(
  t: TestContext,
  options: Omit<HubOptions, 'root' | 'auth'> & {
    users?: Record<string, string>;
    access?: unknown;
    auth?: Partial<HubAuthOptions>;
  } = {},
): Promise<TestHub> {
  const dir = await tempDir('hub');
  let hub: RunningHub | undefined;
  // One hook, so the server is closed before its root goes (hooks run in registration order).
  t.after(async () => {
    await hub?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const root = path.join(dir, 'root');
  let auth: HubAuthOptions | undefined;
  if (options.users) {
    const htpasswd = path.join(dir, 'htpasswd');
    await fs.writeFile(htpasswd, '');
    for (const [name, password] of Object.entries(options.users)) await addUser(htpasswd, name, password, { cost: 4 });
    let accessFile: string | undefined;
    if (options.access !== undefined) {
      accessFile = path.join(dir, typeof options.access === 'string' ? 'access.yaml' : 'access.json');
      await fs.writeFile(accessFile, typeof options.access === 'string' ? options.access : JSON.stringify(options.access));
    }
    auth = { mode: 'token', htpasswd, accessFile, ...options.auth };
  }
  hub = await serveHub({ ...options, root, auth, host: '127.0.0.1', port: 0 });
  return { ...hub, root, dir, url: `${hub.scheme}://${hub.address}`, request: (method, pathname, opts) => request(hub.port, method, pathname, opts) };
}

/** A one-layer OCI image whose config has these labels and a creation time. */
export async function labelledImage(labels: Record<string, string>, label = 'ui'): Promise<TestImage> {
  const layer = await layerTar({ 'etc/motd': `hello from ${label}\n` });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'arm64',
      variant: 'v8',
      os: 'linux',
      created: '2024-05-06T07:08:09.123456789Z',
      config: { Cmd: ['/bin/sh'], Labels: labels },
      rootfs: { type: 'layers', diff_ids: [digestOf(gunzipSync(layer))] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(layer), size: layer.length }],
    }),
  );
  return { config, layers: [layer], manifest, manifestDigest: digestOf(manifest) };
}

/** Pushes `image` as `name:tag` over raw HTTP (an open hub, or with `authorization`). */
export async function pushTo(hub: TestHub, name: string, image: TestImage, tag: string, authorization?: string): Promise<void> {
  const headers: Record<string, string> = authorization ? { Authorization: authorization } : {};
  for (const blob of [image.config, ...image.layers]) {
    const reply = await hub.request('POST', `/v2/${name}/blobs/uploads/?digest=${digestOf(blob)}`, {
      headers: { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Length': blob.length },
      body: blob,
    });
    if (reply.status !== 201) throw new Error(`push blob: ${reply.status} ${reply.text}`);
  }
  const reply = await hub.request('PUT', `/v2/${name}/manifests/${tag}`, {
    headers: { ...headers, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: image.manifest,
  });
  if (reply.status !== 201) throw new Error(`push manifest: ${reply.status} ${reply.text}`);
}
