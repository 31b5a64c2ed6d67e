/**
 * The registry client against Docker's own registry (Debian's `docker-registry`, distribution
 * 2.8) on 127.0.0.1: push, pull, mount, chunked uploads and errors as distribution answers them.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isKind } from '../lib/index.js';
import { RegistryClient, type ProgressEvent } from './client.js';
import { importImage, newStores } from './client-testing.js';
import { digestOf, makeImage, request } from './testing.js';

const binary = '/usr/bin/docker-registry';
const skip = existsSync(binary) ? false : `${binary} is not installed (Debian package docker-registry)`;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** distribution with filesystem storage in a temp dir, on a free loopback port; stopped after the test. */
async function startDistribution(t: TestContext): Promise<{ address: string; port: number }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-test-registry-distribution-'));
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  await fs.writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
  });
  for (let i = 0; ; i++) {
    try {
      const reply = await request(port, 'GET', '/v2/');
      if (reply.status === 200) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || i > 100) throw new Error(`docker-registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { address: `127.0.0.1:${port}`, port };
}

const statuses = (events: ProgressEvent[], id: string) => events.filter((e) => e.id === id).map((e) => e.status).filter((s, i, all) => s !== all[i - 1]);

test('push to and pull from distribution: same image, same digests, "Layer already exists", "Mounted from"', { skip, timeout: 60_000 }, async (t) => {
  const reg = await startDistribution(t);
  const a = await newStores(t, 'a');
  const b = await newStores(t, 'b');
  const ref = `${reg.address}/interop/app:1`;
  const id = await importImage(a, ref, 'distribution');
  const layerId = (await a.images.resolve(id)).layers[0]!.diffId.slice(7, 19);
  const client = new RegistryClient({});

  const pushEvents: ProgressEvent[] = [];
  const pushed = await client.push(ref, { images: a.images, content: a.content, onProgress: (e) => pushEvents.push(e) });
  assert.deepEqual(statuses(pushEvents, layerId), ['Preparing', 'Pushing', 'Pushed']);
  const head = await request(reg.port, 'HEAD', '/v2/interop/app/manifests/1', { headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  assert.equal(head.headers['docker-content-digest'], pushed.digest);

  const record = await client.pull(ref, { images: b.images, content: b.content });
  assert.equal(record.id, id);
  assert.deepEqual(record.repoDigests, [`${reg.address}/interop/app@${pushed.digest}`]);

  const again: ProgressEvent[] = [];
  await client.push(ref, { images: a.images, content: a.content, onProgress: (e) => again.push(e) });
  assert.deepEqual(statuses(again, layerId), ['Preparing', 'Layer already exists']);

  await a.images.tag(id, `${reg.address}/other/app:2`);
  const mounted: ProgressEvent[] = [];
  const second = await client.push(`${reg.address}/other/app:2`, { images: a.images, content: a.content, onProgress: (e) => mounted.push(e) });
  assert.equal(second.digest, pushed.digest);
  assert.deepEqual(statuses(mounted, layerId), ['Preparing', 'Mounted from interop/app']);

  await assert.rejects(client.pull(`${reg.address}/interop/app:missing`, { images: b.images, content: b.content }), (err: Error) => {
    assert.ok(isKind(err, 'NotFound'), String(err));
    assert.equal(err.message, `manifest for ${reg.address}/interop/app:missing not found: manifest unknown: manifest unknown`);
    return true;
  });
  await assert.rejects(client.pull(`${reg.address}/never/pushed:1`, { images: b.images, content: b.content }), (err: Error) => isKind(err, 'NotFound') || isKind(err, 'Unauthorized'));
});

test('an OCI image round-trips through distribution with its manifest bytes, in PATCH chunks', { skip, timeout: 60_000 }, async (t) => {
  const reg = await startDistribution(t);
  const a = await newStores(t, 'a');
  const b = await newStores(t, 'b');
  const image = await makeImage('distribution-oci');
  // Into store a as a pull would leave it: blobs in content, then createImage with the manifest.
  for (const blob of [image.config, ...image.layers]) await a.content.writeBlob(blob);
  const manifest = JSON.parse(image.manifest.toString()) as { layers: Array<{ digest: string; mediaType: string }> };
  await a.images.createImage({
    config: image.config,
    layers: manifest.layers,
    manifest: image.manifest,
    ref: `${reg.address}/oci/app:v1`,
  });
  const client = new RegistryClient({ pushChunkSize: 100 });
  const pushed = await client.push(`${reg.address}/oci/app:v1`, { images: a.images, content: a.content });
  assert.equal(pushed.digest, image.manifestDigest);
  const record = await new RegistryClient({}).pull(`${reg.address}/oci/app@${image.manifestDigest}`, { images: b.images, content: b.content });
  assert.equal(record.id, digestOf(image.config));
  assert.equal(record.manifestDigest, image.manifestDigest);
});
