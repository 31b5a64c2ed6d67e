/**
 * Test support for the registry client (not exported by index.ts): fresh content, snapshot and
 * image stores in a temp dir removed after the test, and a small imported image.
 */
import type { TestContext } from 'node:test';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { ContentStore } from '../content/index.js';
import { Snapshotter } from '../snapshot/index.js';
import { ImageStore } from '../image/index.js';
import { layerTar } from './testing.js';

export interface Stores {
  dir: string;
  content: ContentStore;
  images: ImageStore;
}

export async function newStores(t: TestContext, label: string): Promise<Stores> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `baleia-test-registry-client-${label}-`));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const { content, images } = await openStores(dir);
  return { dir, content, images };
}

/** The content, snapshot and image stores on `dir`, opened as the daemon opens them (again after a restart). */
export async function openStores(dir: string): Promise<{ content: ContentStore; snapshots: Snapshotter; images: ImageStore }> {
  const content = new ContentStore(dir);
  const snapshots = new Snapshotter(dir);
  await content.init();
  await snapshots.init();
  const images = new ImageStore({ root: dir, content, snapshots });
  await images.init();
  return { content, snapshots, images };
}

/** An HTTP server on 127.0.0.1:0 in front of a registry, closed after the test; resolves with its port. */
export async function listenProxy(t: TestContext, handler: http.RequestListener): Promise<number> {
  const proxy = http.createServer(handler);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        proxy.closeAllConnections();
        proxy.close(() => resolve());
      }),
  );
  return (proxy.address() as net.AddressInfo).port;
}

/** A one-layer image made with importRootfs (layer stored uncompressed, Docker media type). */
export async function importImage(stores: Stores, ref: string, label = 'x'): Promise<string> {
  const tar = gunzipSync(await layerTar({ 'etc/motd': `hello ${label}\n`, 'bin/app': `#!/bin/sh\necho ${label}\n` }));
  const rec = await stores.images.importRootfs(Readable.from([tar]), { ref, changes: ['CMD ["/bin/app"]'] });
  return rec.id;
}

