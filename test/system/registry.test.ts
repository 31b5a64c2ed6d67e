/**
 * Sharing images through baleiad: push and pull with our CLI and the docker CLI against our own
 * registry server on 127.0.0.1, and the pushed image read back by skopeo (a tool no one here wrote);
 * a private registry (users, Docker's token flow) used through `login`, `logout` and `search` of
 * both CLIs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { bootstrapBusybox, cliMain, hasDocker, runCommand, startDaemon, type Daemon, ok } from './harness.js';


/** `baleia registry serve` on a free loopback port; resolves with the process and its host:port. */
async function serveRegistry(root: string, extra: string[] = []): Promise<{ proc: ChildProcess; addr: string }> {
  const proc = spawn(process.execPath, [cliMain, 'registry', 'serve', '--addr', '127.0.0.1:0', '--root', root, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const addr = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`registry did not start: ${out}`)), 15_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /Listening on http:\/\/(127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`registry exited with ${code}: ${out}`)));
  });
  return { proc, addr };
}

describe('push and pull through baleiad', () => {
  let daemon: Daemon;
  let registry: ChildProcess;
  let addr = '';
  before(async () => {
    daemon = await startDaemon({ name: 'reg' });
    await bootstrapBusybox(daemon);
    ({ proc: registry, addr } = await serveRegistry(path.join(daemon.dir, 'registry')));
  });
  after(async () => {
    registry?.kill('SIGTERM');
    await daemon?.cleanup();
  });

  test('baleia push, rmi, pull and run; a second push finds the layer; a missing tag is a clear error', async () => {
    const ref = `${addr}/team/bb:1`;
    ok(await daemon.cli(['tag', 'busybox', ref]), 'tag');
    const push = await daemon.cli(['push', ref]);
    ok(push, 'push');
    assert.match(push.stdout + push.stderr, /digest: sha256:[0-9a-f]{64}/);
    const again = await daemon.cli(['push', ref]);
    assert.match(again.stdout + again.stderr, /Layer already exists/);
    ok(await daemon.cli(['rmi', ref]), 'rmi');
    const pull = await daemon.cli(['pull', ref]);
    ok(pull, 'pull');
    assert.match(pull.stdout + pull.stderr, /Already exists|Pull complete/);
    const run = await daemon.cli(['run', '--rm', ref, 'echo', 'pulled']);
    assert.equal(run.stdout, 'pulled\n');
    const digests = await daemon.cli(['images', '--digests', '--format', '{{.Repository}} {{.Digest}}']);
    assert.match(digests.stdout, new RegExp(`${addr}/team/bb sha256:[0-9a-f]{64}`));
    const missing = await daemon.cli(['pull', `${addr}/team/nope:1`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/);
  });

  test('the docker CLI pushes and pulls through baleiad', { skip: !hasDocker && 'no docker CLI' }, async () => {
    const ref = `${addr}/docker/bb:2`;
    ok(await daemon.docker(['tag', 'busybox', ref]), 'tag');
    const push = await daemon.docker(['push', ref]);
    ok(push, 'docker push');
    assert.match(push.stdout, /Mounted from team\/bb|Pushed|Layer already exists/);
    ok(await daemon.docker(['rmi', ref]), 'docker rmi');
    const pull = await daemon.docker(['pull', ref]);
    ok(pull, 'docker pull');
    assert.match(pull.stdout, /Status: (Downloaded newer image|Image is up to date)/);
    const run = await daemon.docker(['run', '--rm', ref, 'echo', 'via docker']);
    assert.equal(run.stdout, 'via docker\n');
  });

  test('push --all-tags and pull --all-tags, with our CLI and the docker CLI', async () => {
    for (const [client, cli] of [
      ['baleia', daemon.cli],
      ['docker', daemon.docker],
    ] as const) {
      if (client === 'docker' && !hasDocker) continue;
      const repo = `${addr}/all-${client}/bb`;
      for (const tag of ['one', 'two']) ok(await cli(['tag', 'busybox', `${repo}:${tag}`]), `${client} tag ${tag}`);
      const push = await cli(['push', '--all-tags', repo]);
      ok(push, `${client} push --all-tags`);
      assert.doesNotMatch(push.stdout, /Using default tag/);
      const listed = await fetch(`http://${addr}/v2/all-${client}/bb/tags/list`);
      assert.deepEqual(((await listed.json()) as { tags: string[] }).tags.sort(), ['one', 'two'], `${client}: tags in the registry`);
      ok(await cli(['rmi', `${repo}:one`, `${repo}:two`]), `${client} rmi`);
      // As with dockerd, the repository's last tag took its digest along: nothing is listed.
      assert.equal((await cli(['images', '-q', repo])).stdout, '', `${client}: images of ${repo} after rmi`);
      const pull = await cli(['pull', '--all-tags', repo]);
      ok(pull, `${client} pull --all-tags`);
      const tags = await cli(['images', '--format', '{{.Tag}}', repo]);
      assert.deepEqual(tags.stdout.trim().split('\n').sort(), ['one', 'two'], `${client}: tags pulled`);
    }
  });

  test('skopeo reads what baleia pushed, with the same digest', { skip: !existsSync('/usr/bin/skopeo') && 'skopeo is not installed' }, async () => {
    const digest = (await daemon.cli(['images', '--digests', '--format', '{{.Digest}}', `${addr}/team/bb`])).stdout.trim().split('\n')[0];
    const inspect = await runCommand('skopeo', ['inspect', '--tls-verify=false', `docker://${addr}/team/bb:1`]);
    ok(inspect, 'skopeo inspect');
    assert.equal(JSON.parse(inspect.stdout).Digest, digest);
  });

  test('a pull cut by a daemon killed mid-download resumes after the restart with a Range request from the kept bytes', async () => {
    // An image with one 6 MiB layer of random bytes (gzip cannot shrink it), put straight into
    // the registry (a baleia push would leave the compressed blob in baleiad's store).
    const pack = tarStream.pack();
    const parts: Buffer[] = [];
    const packed = (async () => {
      for await (const c of pack) parts.push(Buffer.from(c as Uint8Array));
    })();
    await new Promise<void>((resolve, reject) => pack.entry({ name: 'data/big.bin', mode: 0o644 }, randomBytes(6 << 20), (e) => (e ? reject(e) : resolve())));
    pack.finalize();
    await packed;
    const tar = Buffer.concat(parts);
    const layer = gzipSync(tar);
    const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(tar)] } }));
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
    });
    for (const blob of [config, layer]) {
      const r = await fetch(`http://${addr}/v2/resume/big/blobs/uploads/?digest=${sha(blob)}`, { method: 'POST', body: blob, headers: { 'Content-Type': 'application/octet-stream' } });
      assert.equal(r.status, 201, await r.text());
    }
    const put = await fetch(`http://${addr}/v2/resume/big/manifests/1`, { method: 'PUT', body: manifest, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(put.status, 201, await put.text());
    const id = sha(config);

    // A proxy in front of the registry: the first GET of the big blob gets 3 MiB of it, then
    // nothing (the connection stays open); every blob GET's Range header is recorded.
    const gets: Array<{ digest: string; range?: string }> = [];
    let stalled: string | undefined;
    const proxy = http.createServer((req, res) => {
      const digest = req.method === 'GET' ? /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1] : undefined;
      if (digest) gets.push({ digest, range: req.headers.range });
      const [host, port] = addr.split(':');
      const upstream = http.request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 500, up.headers);
        up.on('error', () => res.destroy());
        if (digest && !stalled && up.statusCode === 200) {
          // Passed on whole unless it is over 3 MiB: then the rest is held back.
          let sent = 0;
          up.on('data', (c: Buffer) => {
            const part = c.subarray(0, Math.max(0, (3 << 20) - sent));
            sent += part.length;
            if (part.length) res.write(part);
            if (sent >= 3 << 20) stalled = digest;
          });
          up.on('end', () => {
            if (stalled !== digest) res.end();
          });
          return;
        }
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const proxied = `127.0.0.1:${(proxy.address() as AddressInfo).port}/resume/big:1`;
      const first = daemon.cli(['pull', proxied], { timeoutMs: 60_000 });
      const keptBytes = async () => {
        if (!stalled) return 0;
        return (await fs.stat(path.join(daemon.root, 'content', 'ingest', stalled.slice(7), 'data')).catch(() => undefined))?.size ?? 0;
      };
      for (let i = 0; i < 400 && (await keptBytes()) < 1 << 20; i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok((await keptBytes()) >= 1 << 20, 'a MiB of the blob reached the disk before the kill');
      await daemon.stop({ kill: true });
      assert.notEqual((await first).code, 0);
      const kept = await keptBytes();

      await daemon.restart();
      const again = await daemon.cli(['pull', proxied], { timeoutMs: 60_000 });
      ok(again, 'pull after restart');
      assert.deepEqual(gets.filter((g) => g.digest === stalled).map((g) => g.range), [undefined, `bytes=${kept}-`]);
      assert.equal((await daemon.cli(['image', 'inspect', '-f', '{{.Id}}', proxied])).stdout.trim(), id);
      assert.deepEqual(await fs.readdir(path.join(daemon.root, 'content', 'ingest')), []);
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  test('skopeo copies what baleia pushed into an OCI layout that oci-image-tool validates', {
    skip: (!existsSync('/usr/bin/skopeo') && 'skopeo is not installed') || (!existsSync('/usr/bin/oci-image-tool') && 'oci-image-tool is not installed'),
  }, async () => {
    const layout = path.join(daemon.dir, 'oci-layout');
    ok(await runCommand('skopeo', ['copy', '--src-tls-verify=false', '--format', 'oci', `docker://${addr}/team/bb:1`, `oci:${layout}:bb`]), 'skopeo copy');
    const validate = await runCommand('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=bb', layout]);
    ok(validate, 'oci-image-tool validate');
    assert.match(validate.stdout + validate.stderr, /validation succeeded/i);
    // The validator is not a rubber stamp: a layout with one flipped byte in a blob fails.
    const index = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifestFile = path.join(layout, 'blobs', ...index.manifests[0]!.digest.split(':'));
    const manifest = readFileSync(manifestFile);
    const broken = Buffer.from(manifest.toString('utf8').replace('"schemaVersion": 2', '"schemaVersion":3').replace('"schemaVersion":2', '"schemaVersion":3'));
    assert.notDeepEqual(broken, manifest);
    writeFileSync(manifestFile, broken);
    const refused = await runCommand('oci-image-tool', ['validate', '--type', 'image', '--ref', 'name=bb', layout]);
    assert.notEqual(refused.code, 0, refused.stdout + refused.stderr);
  });
});

describe('a private registry: login, logout and search through baleiad', () => {
  let daemon: Daemon;
  let registry: ChildProcess;
  let addr = '';
  const configFile = () => path.join(daemon.dir, 'docker-config', 'config.json');
  const auths = () => (JSON.parse(readFileSync(configFile(), 'utf8')) as { auths: Record<string, { auth?: string; identitytoken?: string }> }).auths;
  /** The engine's login returned an identity token (a refresh token of the token flow): stored instead of the password. */
  const assertStored = (user: string) => {
    const entry = auths()[addr]!;
    assert.ok(entry.identitytoken, `an identity token is stored: ${JSON.stringify(entry)}`);
    assert.equal(Buffer.from(entry.auth!, 'base64').toString(), `${user}:`);
  };
  before(async () => {
    daemon = await startDaemon({ name: 'regauth' });
    await bootstrapBusybox(daemon);
    const htpasswd = path.join(daemon.dir, 'htpasswd');
    ok(await daemon.cli(['registry', 'user', 'add', '--file', htpasswd, '--password-stdin', 'alice'], { input: 's3cret\n' }), 'user add');
    ok(await daemon.cli(['registry', 'user', 'add', '--file', htpasswd, '--password-stdin', 'bob'], { input: 'hunter2\n' }), 'user add');
    const access = path.join(daemon.dir, 'access.yaml');
    writeFileSync(access, '- { user: alice, repos: "team/*", actions: [pull, push] }\n- { user: bob, repos: "team/*", actions: [pull] }\n');
    // Token auth (the default with --htpasswd): the engine follows WWW-Authenticate to /token.
    ({ proc: registry, addr } = await serveRegistry(path.join(daemon.dir, 'registry'), ['--htpasswd', htpasswd, '--access', access]));
  });
  after(async () => {
    registry?.kill('SIGTERM');
    await daemon?.cleanup();
  });

  test('our CLI: a bad password is refused; login, push, search, logout, then pushing is denied', async () => {
    const bad = await daemon.cli(['login', '-u', 'alice', '--password-stdin', addr], { input: 'wrong\n' });
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /unauthorized|incorrect username or password/i);
    assert.equal(existsSync(configFile()) && auths()[addr] !== undefined, false, 'a failed login stores nothing');

    const login = await daemon.cli(['login', '-u', 'alice', '--password-stdin', addr], { input: 's3cret\n' });
    ok(login, 'login');
    assert.match(login.stdout, /Login Succeeded/);
    assertStored('alice');

    ok(await daemon.cli(['tag', 'busybox', `${addr}/team/tools:1`]), 'tag');
    const push = await daemon.cli(['push', `${addr}/team/tools:1`]);
    ok(push, 'push after login');
    const search = await daemon.cli(['search', `${addr}/tools`]);
    ok(search, 'search');
    assert.match(search.stdout, /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL/m);
    assert.match(search.stdout, /team\/tools/);

    const logout = await daemon.cli(['logout', addr]);
    ok(logout, 'logout');
    assert.match(logout.stdout, new RegExp(`Removing login credentials for ${addr}`));
    assert.equal(auths()[addr], undefined);
    const denied = await daemon.cli(['push', `${addr}/team/tools:1`]);
    assert.equal(denied.code, 1, denied.stdout + denied.stderr);
    assert.match(denied.stderr, /unauthorized|authentication required|denied/i);
  });

  test('the docker CLI: login through baleiad, push, read-only user is denied push, search, logout', { skip: !hasDocker && 'no docker CLI' }, async () => {
    const bad = await daemon.docker(['login', '-u', 'alice', '--password-stdin', addr], { input: 'wrong\n' });
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /unauthorized|incorrect username or password/i);

    const login = await daemon.docker(['login', '-u', 'alice', '--password-stdin', addr], { input: 's3cret\n' });
    ok(login, 'docker login');
    assert.match(login.stdout, /Login Succeeded/);
    // The docker CLI wrote the credentials; our CLI uses the same file.
    assertStored('alice');
    ok(await daemon.docker(['tag', 'busybox', `${addr}/team/web:2`]), 'docker tag');
    ok(await daemon.docker(['push', `${addr}/team/web:2`]), 'docker push');
    ok(await daemon.cli(['rmi', `${addr}/team/web:2`]), 'rmi');
    ok(await daemon.cli(['pull', `${addr}/team/web:2`]), 'our pull with the docker CLI\'s login');

    const search = await daemon.docker(['search', `${addr}/web`]);
    ok(search, 'docker search');
    assert.match(search.stdout, /team\/web/);
    assert.doesNotMatch(search.stdout, /team\/tools\b.*\n.*team\/tools/s);
    const limited = await daemon.docker(['search', '--limit', '1', '--format', '{{.Name}}', `${addr}/team`]);
    ok(limited, 'docker search --limit --format');
    assert.equal(limited.stdout.trim().split('\n').length, 1);

    // bob may pull team/* but not push.
    ok(await daemon.docker(['login', '-u', 'bob', '--password-stdin', addr], { input: 'hunter2\n' }), 'docker login bob');
    ok(await daemon.docker(['pull', `${addr}/team/web:2`]), 'bob pulls');
    const denied = await daemon.docker(['push', `${addr}/team/web:2`]);
    assert.equal(denied.code, 1, denied.stdout + denied.stderr);
    assert.match(denied.stderr + denied.stdout, /denied|unauthorized|insufficient_scope/i);

    const logout = await daemon.docker(['logout', addr]);
    ok(logout, 'docker logout');
    assert.equal(auths()[addr], undefined);
    const anonymous = await daemon.docker(['pull', `${addr}/team/web:2`]);
    assert.equal(anonymous.code, 1, anonymous.stdout + anonymous.stderr);
    assert.match(anonymous.stderr, /unauthorized|authentication required|denied/i);
  });
});
