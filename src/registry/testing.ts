/**
 * Test support for the registry (not exported by index.ts): a server on 127.0.0.1:0 over a temp
 * root, a raw HTTP client that shows status, headers and body as they are on the wire, and a
 * small OCI image layout made with tar-stream.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { serveRegistry, type RunningRegistry, type ServeOptions } from './server.js';

export const digestOf = (data: Buffer | string): string => 'sha256:' + createHash('sha256').update(data).digest('hex');

export async function tempDir(label: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `baleia-test-registry-${label}-`));
}

export interface TestRegistry extends RunningRegistry {
  root: string;
  url: string;
  request(method: string, pathname: string, options?: RequestOptions): Promise<Reply>;
  /** Stops the server, keeping the root (restart tests). */
  stop(): Promise<void>;
}

export interface RequestOptions {
  headers?: Record<string, string | number>;
  body?: Buffer | string;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json<T = any>(): T;
  /** The first error code of a spec error body. */
  code: string | undefined;
}

export function request(port: number, method: string, pathname: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathname, headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        let code: string | undefined;
        try {
          code = (JSON.parse(text) as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
        } catch {
          code = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text), code });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A registry on an OS-chosen port; `close()` also removes its root unless `keepRoot`. */
export async function startRegistry(options: Partial<ServeOptions> & { root?: string } = {}): Promise<TestRegistry> {
  const root = options.root ?? (await tempDir('root'));
  const running = await serveRegistry({ ...options, root, host: '127.0.0.1', port: 0 });
  return {
    ...running,
    root,
    url: `http://${running.address}`,
    request: (method, pathname, opts) => request(running.port, method, pathname, opts),
    stop: () => running.close(),
    async close() {
      await running.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

/** A gzipped layer tar with the given files. */
export async function layerTar(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  })();
  const mtime = new Date(0);
  for (const [name, content] of Object.entries(files)) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name, mode: 0o644, mtime, uid: 0, gid: 0 }, content, (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

export interface TestImage {
  config: Buffer;
  layers: Buffer[];
  manifest: Buffer;
  manifestDigest: string;
}

/** An OCI image: one config and the given layers, a manifest over them. */
export async function makeImage(label = 'hello'): Promise<TestImage> {
  const layers = [
    await layerTar({ 'etc/hello.txt': `hello from ${label}\n`, 'bin/greet': '#!/bin/sh\necho hi\n' }),
    await layerTar({ 'etc/second.txt': `second layer of ${label}\n` }),
  ];
  const diffIds = layers.map((l) => digestOf(gunzipSync(l)));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/greet'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: [{ created_by: 'baleia test' }, { created_by: 'baleia test' }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(l), size: l.length })),
    }),
  );
  return { config, layers, manifest, manifestDigest: digestOf(manifest) };
}


/** Writes `image` as an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) tagged `tag`. */
export async function writeOciLayout(dir: string, image: TestImage, tag: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const blob of [image.config, ...image.layers, image.manifest]) {
    await fs.writeFile(path.join(dir, 'blobs', 'sha256', digestOf(blob).slice(7)), blob);
  }
  await fs.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fs.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: image.manifestDigest,
          size: image.manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
}

/** Pushes `image` to `name:tag` with monolithic uploads, as a client would. */
export async function pushImage(registry: TestRegistry, name: string, image: TestImage, tag: string): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const reply = await registry.request('POST', `/v2/${name}/blobs/uploads/?digest=${digestOf(blob)}`, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': blob.length },
      body: blob,
    });
    if (reply.status !== 201) throw new Error(`push blob: ${reply.status} ${reply.text}`);
  }
  const reply = await registry.request('PUT', `/v2/${name}/manifests/${tag}`, {
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    body: image.manifest,
  });
  if (reply.status !== 201) throw new Error(`push manifest: ${reply.status} ${reply.text}`);
}
