/**
 * Networks through both CLIs: the default bridge, user networks with name/alias discovery and
 * live connect/disconnect, published ports from loopback, isolation, and a daemon killed and
 * restarted with published ports. Traffic stays on this machine: loopback and the test's bridges.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { bootstrapBusybox, enabledClients, hasDocker, startDaemon, type Daemon, type RunResult } from './harness.js';

const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/index.html', timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const clients: Array<{ name: string; cmd: (d: Daemon, args: string[]) => Promise<RunResult> }> = [];
if (enabledClients.includes('baleia')) clients.push({ name: 'baleia', cmd: (d, args) => d.cli(args) });
if (hasDocker && enabledClients.includes('docker')) clients.push({ name: 'docker', cmd: (d, args) => d.docker(args) });

// `timeout` must not be PID 1 (PID 1 ignores the TERM it sends): under sh, and not as its last
// command (busybox sh would exec it).
const wget = (url: string, seconds: number) => ["sh", "-c", `timeout ${seconds} wget -qO- ${url}; exit $?`];
const httpd = (text: string) => ['busybox', 'sh', '-c', `echo ${text} > /index.html; exec httpd -f -p 80 -h /`];

describe('networks', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ name: 'net' });
    await bootstrapBusybox(daemon);
  });
  after(async () => {
    await daemon?.cleanup();
  });

  for (const client of clients) {
    const c = (args: string[]) => client.cmd(daemon, args);
    const n = client.name;

    test(`${n}: containers on a user network find each other by name and alias; connect and disconnect live`, async () => {
      ok(await c(['network', 'create', '--label', 'team=whales', `app-${n}`]), 'network create');
      ok(await c(['run', '-d', '--name', `web-${n}`, '--network', `app-${n}`, '--network-alias', `www-${n}`, ...httpd(`hello-${n}`)]), 'run web');
      await sleep(300);
      const byName = await c(['run', '--rm', '--network', `app-${n}`, 'busybox', ...wget(`http://web-${n}/index.html`, 3)]);
      ok(byName, 'wget by name');
      assert.equal(byName.stdout, `hello-${n}\n`);
      const byAlias = await c(['run', '--rm', '--network', `app-${n}`, 'busybox', ...wget(`http://www-${n}/index.html`, 3)]);
      assert.equal(byAlias.stdout, `hello-${n}\n`);
      const inspect = JSON.parse((await c(['network', 'inspect', `app-${n}`])).stdout)[0];
      assert.equal(inspect.Labels.team, 'whales');
      const endpoint = Object.values(inspect.Containers as Record<string, { Name: string; IPv4Address: string }>)[0]!;
      assert.equal(endpoint.Name, `web-${n}`);
      assert.match(endpoint.IPv4Address, /^\d+\.\d+\.\d+\.\d+\/\d+$/);

      // A container on the default bridge joins the network live, then leaves it.
      ok(await c(['run', '-d', '--name', `client-${n}`, 'busybox', 'sleep', '300']), 'run client');
      const before = await c(['exec', `client-${n}`, ...wget(`http://web-${n}/index.html`, 2)]);
      assert.notEqual(before.code, 0, 'the default bridge does not resolve names');
      ok(await c(['network', 'connect', '--alias', `cli-${n}`, `app-${n}`, `client-${n}`]), 'connect');
      const during = await c(['exec', `client-${n}`, ...wget(`http://web-${n}/index.html`, 3)]);
      assert.equal(during.stdout, `hello-${n}\n`);
      ok(await c(['network', 'disconnect', `app-${n}`, `client-${n}`]), 'disconnect');
      const afterwards = await c(['exec', `client-${n}`, ...wget(`http://web-${n}/index.html`, 2)]);
      assert.notEqual(afterwards.code, 0);

      const inUse = await c(['network', 'rm', `app-${n}`]);
      assert.notEqual(inUse.code, 0);
      assert.match(inUse.stderr, /active endpoints/);
      ok(await c(['rm', '-f', `web-${n}`, `client-${n}`]), 'rm');
      ok(await c(['network', 'rm', `app-${n}`]), 'network rm');
    });

    test(`${n}: published ports are reachable from loopback; -P picks free ports; a taken port is refused`, async () => {
      const port = await freePort();
      ok(await c(['run', '-d', '--name', `pub-${n}`, '-p', `127.0.0.1:${port}:80`, ...httpd(`published-${n}`)]), 'run -p');
      await sleep(300);
      assert.equal(await get(port), `published-${n}\n`);
      const shown = await c(['port', `pub-${n}`]);
      assert.equal(shown.stdout.trim(), `80/tcp -> 127.0.0.1:${port}`);
      const ports = JSON.parse((await c(['inspect', `pub-${n}`])).stdout)[0].NetworkSettings.Ports;
      assert.deepEqual(ports['80/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(port) }]);

      ok(await c(['run', '-d', '--name', `rand-${n}`, '--expose', '80', '-P', ...httpd(`random-${n}`)]), 'run -P');
      await sleep(300);
      const random = Number(JSON.parse((await c(['inspect', `rand-${n}`])).stdout)[0].NetworkSettings.Ports['80/tcp'][0].HostPort);
      assert.ok(random >= 32768, `random port ${random}`);
      assert.equal(await get(random), `random-${n}\n`);

      const taken = await c(['run', '-d', '--name', `taken-${n}`, '-p', `127.0.0.1:${port}:80`, 'busybox', 'sleep', '60']);
      assert.equal(taken.code, 125);
      assert.match(taken.stderr, /already allocated|in use/);
      const state = JSON.parse((await c(['inspect', `taken-${n}`])).stdout)[0].State;
      assert.equal(state.Running, false);
      ok(await c(['rm', '-f', `pub-${n}`, `rand-${n}`, `taken-${n}`]), 'rm');
    });

    test(`${n}: different user networks are isolated; --internal has no route out`, async () => {
      ok(await c(['network', 'create', `left-${n}`]), 'left');
      ok(await c(['network', 'create', `right-${n}`]), 'right');
      ok(await c(['run', '-d', '--name', `l-${n}`, '--network', `left-${n}`, ...httpd('left')]), 'run left');
      await sleep(300);
      const ip = JSON.parse((await c(['inspect', `l-${n}`])).stdout)[0].NetworkSettings.Networks[`left-${n}`].IPAddress;
      const same = await c(['run', '--rm', '--network', `left-${n}`, 'busybox', ...wget(`http://${ip}/index.html`, 3)]);
      assert.equal(same.stdout, 'left\n');
      const across = await c(['run', '--rm', '--network', `right-${n}`, 'busybox', ...wget(`http://${ip}/index.html`, 2)]);
      assert.notEqual(across.code, 0);
      ok(await c(['network', 'create', '--internal', `internal-${n}`]), 'internal');
      const route = await c(['run', '--rm', '--network', `internal-${n}`, 'busybox', 'ip', 'route']);
      assert.doesNotMatch(route.stdout, /default/);
      ok(await c(['rm', '-f', `l-${n}`]), 'rm');
      for (const net of [`left-${n}`, `right-${n}`, `internal-${n}`]) ok(await c(['network', 'rm', net]), `rm ${net}`);
    });
  }

  test('a published port answers another host (a client netns); a 127.0.0.1 one does not', async () => {
    const { execFileSync } = await import('node:child_process');
    // Another host: a netns joined to ours by a veth pair on a private /30 of the test's own.
    const tag = Math.random().toString(16).slice(2, 6);
    const ns = `btclient-${tag}`;
    const [hostIf, peerIf] = [`btv${tag}a`, `btv${tag}b`];
    const third = 200 + (parseInt(tag.slice(0, 2), 16) % 50);
    const hostIp = `10.227.${third}.1`;
    const tcpPort = await freePort();
    try {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf]);
      execFileSync('ip', ['link', 'set', peerIf, 'netns', ns]);
      execFileSync('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
      execFileSync('ip', ['link', 'set', hostIf, 'up']);
      execFileSync('ip', ['-n', ns, 'addr', 'add', `10.227.${third}.2/30`, 'dev', peerIf]);
      execFileSync('ip', ['-n', ns, 'link', 'set', peerIf, 'up']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      ok(await daemon.cli(['run', '-d', '--name', 'remote', '-p', `${tcpPort}:80`, ...httpd('seen-from-afar')]), 'run');
      await sleep(500);
      const fetched = execFileSync('ip', ['netns', 'exec', ns, '/bin/busybox', 'wget', '-qO-', `http://${hostIp}:${tcpPort}/index.html`], { timeout: 10_000 }).toString();
      assert.equal(fetched, 'seen-from-afar\n');
      // A 127.0.0.1 binding is not offered to other hosts.
      ok(await daemon.cli(['run', '-d', '--name', 'local-only', '-p', `127.0.0.1:${await freePort()}:80`, ...httpd('local')]), 'run local');
      const localPort = JSON.parse((await daemon.cli(['inspect', 'local-only'])).stdout)[0].NetworkSettings.Ports['80/tcp'][0].HostPort;
      let refused = false;
      try {
        execFileSync('ip', ['netns', 'exec', ns, '/bin/busybox', 'sh', '-c', `timeout 3 wget -qO- http://${hostIp}:${localPort}/index.html; exit $?`], { timeout: 10_000, stdio: 'pipe' });
      } catch {
        refused = true;
      }
      assert.ok(refused, 'a 127.0.0.1 port answered another host');
    } finally {
      await daemon.cli(['rm', '-f', 'remote', 'local-only']);
      execFileSync('ip', ['link', 'del', hostIf], { stdio: 'ignore' });
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    }
  });

  test('after kill -9 of the daemon, published ports still work and rules are not duplicated', async () => {
    const port = await freePort();
    ok(await daemon.cli(['run', '-d', '--name', 'survivor', '-p', `127.0.0.1:${port}:80`, ...httpd('still-here')]), 'run');
    await sleep(300);
    assert.equal(await get(port), 'still-here\n');
    const rulesBefore = (await import('node:child_process')).execSync('iptables -w -t nat -S').toString().split('\n').filter((l) => l.includes(`--dport ${port}`));
    await daemon.stop({ kill: true });
    await daemon.restart();
    assert.equal(await get(port), 'still-here\n');
    const rulesAfter = (await import('node:child_process')).execSync('iptables -w -t nat -S').toString().split('\n').filter((l) => l.includes(`--dport ${port}`));
    assert.deepEqual(rulesAfter, rulesBefore);
    ok(await daemon.cli(['rm', '-f', 'survivor']), 'rm');
    const rulesGone = (await import('node:child_process')).execSync('iptables -w -t nat -S').toString().split('\n').filter((l) => l.includes(`--dport ${port}`));
    assert.deepEqual(rulesGone, []);
  });
});
