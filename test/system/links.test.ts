/**
 * Legacy links on the default bridge (`--link name[:alias]`) through both CLIs: the linker finds
 * the linked container under its alias, id and name (/etc/hosts), gets Docker's link variables,
 * and reaches it; inspect shows the stored form; links to missing or stopped containers are
 * refused (as are other missing references at create, without the docker CLI pulling). Traffic stays between containers of the test's own bridge; no name is looked up
 * outside (every name asked for is in /etc/hosts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapBusybox, startDaemon, type Daemon, ok, testClients } from './harness.js';


const clients = testClients;

describe('legacy links on the default bridge', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ name: 'links' });
    await bootstrapBusybox(daemon);
  });
  after(async () => {
    await daemon?.cleanup();
  });

  for (const client of clients) {
    const c = (args: string[]) => client.cmd(daemon, args);
    const n = client.name;

    test(`${n}: --link writes hosts and link variables; the linker reaches the linked container by alias`, async () => {
      const db = `db-${n}`;
      ok(await c(['run', '-d', '--name', db, '-e', 'DB_PASS=s3cret', '--expose', '80', '--expose', '53/udp', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']), 'run db');
      const id = (await c(['inspect', '-f', '{{.Id}}', db])).stdout.trim();
      const ip = (await c(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', db])).stdout.trim();
      assert.match(ip, /^\d+\.\d+\.\d+\.\d+$/);

      const web = `web-${n}`;
      ok(await c(['create', '--name', web, '--link', `${db}:database`, 'busybox', 'sh', '-c', 'cat /etc/hosts; env; echo fetched $(timeout 5 wget -qO- http://database/hostname)']), 'create web');
      const links = await c(['inspect', '-f', '{{json .HostConfig.Links}}', web]);
      assert.deepEqual(JSON.parse(links.stdout), [`/${db}:/${web}/database`]);
      ok(await c(['start', web]), 'start web');
      ok(await c(['wait', web]), 'wait web');
      const out = (await c(['logs', web])).stdout;
      assert.match(out, new RegExp(`^${ip.replace(/\./g, '\\.')}\\s+database ${id.slice(0, 12)} ${db}$`, 'm'));
      assert.match(out, new RegExp(`^DATABASE_NAME=/${web}/database$`, 'm'));
      // The lowest port is the main one (53/udp before 80/tcp), as Docker orders them.
      assert.match(out, new RegExp(`^DATABASE_PORT=udp://${ip}:53$`, "m"));
      assert.match(out, new RegExp(`^DATABASE_PORT_80_TCP=tcp://${ip}:80$`, 'm'));
      assert.match(out, new RegExp(`^DATABASE_PORT_80_TCP_ADDR=${ip}$`, 'm'));
      assert.match(out, /^DATABASE_PORT_80_TCP_PORT=80$/m);
      assert.match(out, /^DATABASE_PORT_80_TCP_PROTO=tcp$/m);
      assert.match(out, new RegExp(`^DATABASE_PORT_53_UDP=udp://${ip}:53$`, 'm'));
      assert.match(out, /^DATABASE_ENV_DB_PASS=s3cret$/m);
      assert.doesNotMatch(out, /^DATABASE_ENV_PATH=/m);
      // httpd in db served its own /etc/hostname (its short id) to the linker.
      assert.match(out, new RegExp(`^fetched ${id.slice(0, 12)}$`, 'm'));

      // Without --link nothing about db is in the container's hosts file.
      const plain = await c(['run', '--rm', 'busybox', 'cat', '/etc/hosts']);
      ok(plain, 'run without link');
      assert.doesNotMatch(plain.stdout, /database|db-/);

      // A link to a stopped container keeps the linker from starting.
      ok(await c(['stop', '-t', '1', db]), 'stop db');
      const refused = await c(['start', web]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, new RegExp(`Cannot link to a non running container: /${db} AS /${web}/database`));
      ok(await c(['rm', '-f', web, db]), 'rm');
    });

    test(`${n}: a link to a missing container is refused at create and leaves no container`, async () => {
      const r = await c(['run', '--rm', '--name', `orphan-${n}`, '--link', 'no-such-box:x', 'busybox', 'true']);
      assert.equal(r.code, 125, r.stdout + r.stderr);
      assert.match(r.stderr, /could not get container for no-such-box/);
      const ps = await c(['ps', '-a', '--filter', `name=orphan-${n}`, '--format', '{{.Names}}']);
      assert.equal(ps.stdout.trim(), '');
    });

    test(`${n}: a missing network, network container or --volumes-from source is a clear error, never a pull`, async () => {
      // A 404 from create makes the docker CLI pull the image (from Docker Hub for busybox):
      // only a missing image may answer 404 there.
      for (const [flags, message] of [
        [['--network', 'no-such-net'], /network no-such-net not found/],
        [['--network', 'container:no-such-box'], /No such container: no-such-box/],
        [['--volumes-from', 'no-such-box'], /No such container: no-such-box/],
      ] as const) {
        const r = await c(['run', '--rm', ...flags, 'busybox', 'true']);
        assert.equal(r.code, 125, `${flags.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, message);
        assert.doesNotMatch(r.stderr, /Unable to find image|pull/i);
      }
    });
  }
});
