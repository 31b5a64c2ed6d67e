/**
 * Interop with clients no one here wrote: skopeo copies an OCI layout into the registry and back
 * out with identical digests; podman pushes and pulls when it is installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { run } from '../lib/index.js';
import { digestOf, makeImage, startRegistry, tempDir, writeOciLayout } from './testing.js';

const skopeo = '/usr/bin/skopeo';
const podman = '/usr/bin/podman';

test('skopeo copies an OCI layout into the registry and back out with identical digests', { skip: existsSync(skopeo) ? false : 'skopeo is not installed', timeout: 60_000 }, async () => {
  const registry = await startRegistry();
  const work = await tempDir('skopeo');
  try {
    const image = await makeImage('skopeo');
    const src = path.join(work, 'src');
    await writeOciLayout(src, image, 'v1');
    const ref = `docker://${registry.address}/interop/hello:v1`;
    const env = { ...process.env, HOME: work, XDG_RUNTIME_DIR: work, REGISTRY_AUTH_FILE: path.join(work, 'auth.json') };
    await run(skopeo, ['copy', '--dest-tls-verify=false', `oci:${src}:v1`, ref], { env });

    const inspected = JSON.parse((await run(skopeo, ['inspect', '--tls-verify=false', ref], { env })).stdout) as { Digest: string; Layers: string[] };
    assert.equal(inspected.Digest, image.manifestDigest);
    assert.deepEqual(inspected.Layers, image.layers.map(digestOf));
    const raw = (await run(skopeo, ['inspect', '--raw', '--tls-verify=false', ref], { env })).stdout;
    assert.equal(digestOf(raw), image.manifestDigest);

    await run(skopeo, ['copy', '--dest-tls-verify=false', `oci:${src}:v1`, `docker://${registry.address}/interop/hello:v2`], { env });
    const tags = JSON.parse((await run(skopeo, ['list-tags', '--tls-verify=false', `docker://${registry.address}/interop/hello`], { env })).stdout) as { Tags: string[] };
    assert.deepEqual(tags.Tags.sort(), ['v1', 'v2']);

    const dst = path.join(work, 'dst');
    await run(skopeo, ['copy', '--src-tls-verify=false', ref, `oci:${dst}:out`], { env });
    const index = JSON.parse(await fs.readFile(path.join(dst, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]!.digest, image.manifestDigest);
    for (const blob of [image.config, ...image.layers]) {
      const copied = await fs.readFile(path.join(dst, 'blobs', 'sha256', digestOf(blob).slice(7)));
      assert.equal(digestOf(copied), digestOf(blob));
    }

    // Into a second repository: skopeo mounts or re-uploads; both must give the same image.
    await run(skopeo, ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', ref, `docker://${registry.address}/other/copy:latest`], { env });
    const copy = JSON.parse((await run(skopeo, ['inspect', '--tls-verify=false', `docker://${registry.address}/other/copy:latest`], { env })).stdout) as { Digest: string };
    assert.equal(copy.Digest, image.manifestDigest);
    const catalog = await registry.request('GET', '/v2/_catalog');
    assert.deepEqual(catalog.json().repositories, ['interop/hello', 'other/copy']);
  } finally {
    await registry.close();
    await fs.rm(work, { recursive: true, force: true });
  }
});

test('skopeo copies a docker-archive into the registry as a Docker schema2 image', { skip: existsSync(skopeo) ? false : 'skopeo is not installed', timeout: 60_000 }, async () => {
  const registry = await startRegistry();
  const work = await tempDir('skopeo-docker');
  try {
    const image = await makeImage('archive');
    const src = path.join(work, 'src');
    await writeOciLayout(src, image, 'v1');
    const env = { ...process.env, HOME: work, XDG_RUNTIME_DIR: work, REGISTRY_AUTH_FILE: path.join(work, 'auth.json') };
    const archive = path.join(work, 'image.tar');
    await run(skopeo, ['copy', `oci:${src}:v1`, `docker-archive:${archive}:archive/hello:v1`], { env });
    const ref = `docker://${registry.address}/archive/hello:v1`;
    await run(skopeo, ['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, ref], { env });
    const raw = JSON.parse((await run(skopeo, ['inspect', '--raw', '--tls-verify=false', ref], { env })).stdout) as { mediaType: string };
    assert.equal(raw.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    const head = await registry.request('HEAD', '/v2/archive/hello/manifests/v1', { headers: { Accept: raw.mediaType } });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], raw.mediaType);
    const back = path.join(work, 'back.tar');
    await run(skopeo, ['copy', '--src-tls-verify=false', ref, `docker-archive:${back}`], { env });
    assert.ok((await fs.stat(back)).size > 0);
  } finally {
    await registry.close();
    await fs.rm(work, { recursive: true, force: true });
  }
});

test('podman pushes to and pulls from the registry', { skip: existsSync(podman) ? false : 'podman is not installed', timeout: 120_000 }, async () => {
  const registry = await startRegistry();
  // podman names an image pulled from oci:<dir> after <dir>, which must be lowercase.
  const work = path.join(os.tmpdir(), `baleia-test-registry-podman-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(work);
  try {
    const image = await makeImage('podman');
    const src = path.join(work, 'src');
    await writeOciLayout(src, image, 'v1');
    const env = { ...process.env, HOME: work, XDG_RUNTIME_DIR: work, XDG_CONFIG_HOME: path.join(work, 'config'), REGISTRY_AUTH_FILE: path.join(work, 'auth.json') };
    await fs.writeFile(path.join(work, 'auth.json'), '{"auths":{}}');
    const base = ['--root', path.join(work, 'storage'), '--runroot', path.join(work, 'run'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--storage-driver', 'vfs'];
    const podmanRun = (args: string[]) => run(podman, [...base, ...args], { env });
    try {
      await podmanRun(['pull', `oci:${src}:v1`]);
      const ref = `${registry.address}/podman/hello:v1`;
      const id = (await podmanRun(['images', '-q', '--no-trunc'])).stdout.trim().split('\n')[0]!;
      await podmanRun(['tag', id, ref]);
      await podmanRun(['push', '--tls-verify=false', ref]);
      const tags = await registry.request('GET', '/v2/podman/hello/tags/list');
      assert.deepEqual(tags.json().tags, ['v1']);
      await podmanRun(['rmi', '-f', ref]);
      await podmanRun(['rmi', '-a', '-f']);
      await podmanRun(['pull', '--tls-verify=false', ref]);
      const listed = (await podmanRun(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout;
      assert.match(listed, /podman\/hello:v1/);
    } finally {
      await run(podman, [...base, 'system', 'reset', '--force'], { env, allowFailure: true });
    }
  } finally {
    await registry.close();
    await fs.rm(work, { recursive: true, force: true });
  }
});
