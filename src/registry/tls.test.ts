/**
 * TLS: a self-signed certificate made with openssl and reused, a registry on HTTPS with the
 * token flow, driven by skopeo (--creds with --cert-dir, and with --tls-verify=false) and by our
 * client (loopback registries may have any certificate).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { isKind, run } from '../lib/index.js';
import { RegistryClient } from './client.js';
import { importImage, newStores } from './client-testing.js';
import { startHub } from './hub-testing.js';
import { digestOf, makeImage, writeOciLayout } from './testing.js';
import { ensureSelfSignedCert } from './tls.js';
import { Endpoint, readCertsDir } from './session.js';

const skopeo = '/usr/bin/skopeo';
const openssl = '/usr/bin/openssl';
const users = { alice: 'tls-secret' };

function get(url: string, ca: Buffer): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    }).on('error', reject);
  });
}

test('a self-signed certificate names loopback and the listen host, is kept, and serves HTTPS a client can verify', { skip: existsSync(openssl) ? false : 'openssl is not installed' }, async (t) => {
  const hub0 = await startHub(t);
  const root = path.join(hub0.dir, 'tls-root');
  const made = await ensureSelfSignedCert(root, { hosts: ['127.0.0.1', 'registry.test'] });
  assert.equal(made.created, true);
  assert.equal(made.certFile, path.join(root, 'tls', 'ca', 'registry.crt'));
  assert.equal((await fs.stat(made.keyFile)).mode & 0o777, 0o600);
  assert.deepEqual(await fs.readdir(path.dirname(made.certFile)), ['registry.crt']);
  const x509 = new X509Certificate(made.cert);
  assert.match(x509.subjectAltName ?? '', /DNS:localhost/);
  assert.match(x509.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  assert.match(x509.subjectAltName ?? '', /DNS:registry\.test/);
  const again = await ensureSelfSignedCert(root, { hosts: ['127.0.0.1'] });
  assert.equal(again.created, false);
  assert.equal(again.fingerprint, made.fingerprint);

  const hub = await startHub(t, { users, tlsFiles: { cert: made.certFile, key: made.keyFile } });
  assert.equal(hub.scheme, 'https');
  const base = await get(`https://${hub.address}/v2/`, made.cert);
  assert.equal(base.status, 401);
  assert.match(String(base.headers['www-authenticate']), new RegExp(`realm="https://${hub.address}/token"`));

  const a = await newStores(t, 'tls');
  const ref = `${hub.address}/team/app:1`;
  await importImage(a, ref);
  const client = new RegistryClient({});
  await assert.rejects(client.push(ref, { images: a.images, content: a.content, auth: { username: 'alice', password: 'bad' } }), (err) => isKind(err, 'Unauthorized'));
  await client.push(ref, { images: a.images, content: a.content, auth: { username: 'alice', password: users.alice } });
});

test('skopeo pushes and inspects with --creds over TLS, trusting the certificate with --cert-dir or not verifying it', { skip: existsSync(skopeo) && existsSync(openssl) ? false : 'skopeo or openssl is not installed', timeout: 60_000 }, async (t) => {
  const first = await startHub(t);
  const made = await ensureSelfSignedCert(path.join(first.dir, 'tls-root'));
  const hub = await startHub(t, { users, tlsFiles: { cert: made.certFile, key: made.keyFile } });
  const work = hub.dir;
  const image = await makeImage('tls');
  const src = path.join(work, 'src');
  await writeOciLayout(src, image, 'v1');
  const env = { ...process.env, HOME: work, XDG_RUNTIME_DIR: work, REGISTRY_AUTH_FILE: path.join(work, 'auth.json') };
  const ref = `docker://${hub.address}/team/tls:v1`;
  const certDir = path.dirname(made.certFile);

  const refused = await run(skopeo, ['copy', '--dest-cert-dir', certDir, '--dest-creds', 'alice:wrong', `oci:${src}:v1`, ref], { env, allowFailure: true });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /unauthorized|authentication required|incorrect username/i);
  const untrusted = await run(skopeo, ['inspect', '--creds', `alice:${users.alice}`, ref], { env, allowFailure: true });
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /certificate/i);

  await run(skopeo, ['copy', '--dest-cert-dir', certDir, '--dest-creds', `alice:${users.alice}`, `oci:${src}:v1`, ref], { env });
  const inspected = JSON.parse((await run(skopeo, ['inspect', '--cert-dir', certDir, '--creds', `alice:${users.alice}`, ref], { env })).stdout) as { Digest: string; Layers: string[] };
  assert.equal(inspected.Digest, image.manifestDigest);
  assert.deepEqual(inspected.Layers, image.layers.map(digestOf));
  const raw = (await run(skopeo, ['inspect', '--raw', '--tls-verify=false', '--creds', `alice:${users.alice}`, ref], { env })).stdout;
  assert.equal(digestOf(raw), image.manifestDigest);
  const anonymous = await run(skopeo, ['inspect', '--raw', '--tls-verify=false', ref], { env, allowFailure: true });
  assert.notEqual(anonymous.code, 0);
});

test('certs.d: a registry\'s own CA is trusted for it (verified, not skipped), a client certificate needs its key, changes are seen', { skip: existsSync(openssl) ? false : 'openssl is not installed' }, async (t) => {
  const first = await startHub(t);
  const made = await ensureSelfSignedCert(path.join(first.dir, 'tls-root'));
  const hub = await startHub(t, { tlsFiles: { cert: made.certFile, key: made.keyFile } });
  const certs = path.join(hub.dir, 'certs.d');
  const hostDir = path.join(certs, hub.address);
  await fs.mkdir(hostDir, { recursive: true });
  assert.equal(readCertsDir(hub.address, [certs, path.join(hub.dir, 'none')]), undefined);

  // A registry that is not insecure is verified: without its CA the handshake fails.
  const untrusted = new Endpoint({ host: hub.address, insecure: false });
  await assert.rejects(untrusted.resolve(), (err: Error) => isKind(err, 'Unavailable') && /self[- ]signed|certificate/i.test(err.message));
  await fs.writeFile(path.join(hostDir, 'ca.crt'), made.cert);
  const tls = readCertsDir(hub.address, [certs]);
  assert.equal(tls?.ca.length, 1);
  const trusted = new Endpoint({ host: hub.address, insecure: false, tls });
  assert.deepEqual(await trusted.resolve(), { base: `https://${hub.address}`, challenge: undefined });

  // A client certificate comes with its key, or the files are refused with the missing name.
  await fs.writeFile(path.join(hostDir, 'client.cert'), made.cert);
  assert.throws(() => readCertsDir(hub.address, [certs]), /client\.cert has no client\.key beside it/);
  await fs.copyFile(made.keyFile, path.join(hostDir, 'client.key'));
  const withClient = readCertsDir(hub.address, [certs]);
  assert.ok(withClient?.cert && withClient.key);
  assert.notEqual(withClient.fingerprint, tls!.fingerprint, 'a change in the files is seen');
});
