/**
 * Networks through both CLIs: the default bridge, user networks with name/alias discovery and
 * live connect/disconnect, published TCP and UDP ports from loopback and from another netns,
 * isolation, and a daemon killed and restarted with published ports. Traffic stays on this
 * machine: loopback, the test's bridges and the client netns the tests make and remove.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { bootstrapBusybox, startDaemon, type Daemon, type RunResult, ok, testClients } from './harness.js';

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

async function freeUdpPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}

/** The reply to one datagram sent to host:port over loopback, resent until an answer or 5 s. */
function udpAsk(host: string, port: number, text: string): Promise<string> {
  const sock = dgram.createSocket('udp4');
  return new Promise<string>((resolve, reject) => {
    const send = () => sock.send(text, port, host);
    const resend = setInterval(send, 300);
    const deadline = setTimeout(() => reject(new Error(`no UDP reply from ${host}:${port}`)), 5000);
    sock.on('message', (m) => {
      clearInterval(resend);
      clearTimeout(deadline);
      resolve(m.toString());
    });
    send();
  }).finally(() => sock.close());
}

/**
 * Another host: a netns joined to ours by a veth pair on a private /30, removed by `remove()`.
 * `hostIp` is this host's address as the client sees it.
 */
function clientNetns(): { ns: string; hostIp: string; run(args: string[], timeoutMs?: number): string; remove(): void } {
  const tag = Math.random().toString(16).slice(2, 6);
  const ns = `btclient-${tag}`;
  const [hostIf, peerIf] = [`btv${tag}a`, `btv${tag}b`];
  const third = 200 + (parseInt(tag.slice(0, 2), 16) % 50);
  const hostIp = `10.227.${third}.1`;
  const remove = () => {
    execFileSync('ip', ['link', 'del', hostIf], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  };
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf]);
    execFileSync('ip', ['link', 'set', peerIf, 'netns', ns]);
    execFileSync('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    execFileSync('ip', ['link', 'set', hostIf, 'up']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', `10.227.${third}.2/30`, 'dev', peerIf]);
    execFileSync('ip', ['-n', ns, 'link', 'set', peerIf, 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    try {
      remove();
    } catch {
      // half made: what exists is gone now
    }
    throw err;
  }
  return {
    ns,
    hostIp,
    run: (args, timeoutMs = 10_000) => execFileSync('ip', ['netns', 'exec', ns, ...args], { timeout: timeoutMs, stdio: 'pipe' }).toString(),
    remove: () => {
      try {
        remove();
      } catch {
        // already gone
      }
    },
  };
}

// A real UDP server: busybox has none (its nc has no -u), so the container runs the host's
// python3 from bind mounts of /usr, /lib and /lib64 (Debian is merged-usr: /lib → usr/lib).
const hostPython = '/usr/bin/python3';
const noPython = existsSync(hostPython) ? false : `${hostPython} is missing (apt-get install python3)`;
const udpEcho = (port: number, tag = 'echo') => [
  '-v', '/usr:/usr:ro', '-v', '/lib:/lib:ro', '-v', '/lib64:/lib64:ro', 'busybox', hostPython, '-c',
  `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', ${port}))\nprint('ready', flush=True)\nwhile True:\n    data, peer = s.recvfrom(2048)\n    s.sendto(b'${tag}:' + data, peer)\n`,
];
/** The client in another netns: python3 sends one datagram (resent each second, 5 tries) and prints the reply. */
const udpClient = (host: string, port: number, text: string) => [
  hostPython, '-c',
  `import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(1)\nfor _ in range(5):\n    s.sendto(b'${text}', ('${host}', ${port}))\n    try:\n        print(s.recv(2048).decode(), end='')\n        sys.exit(0)\n    except socket.timeout:\n        pass\nsys.exit(1)\n`,
];

async function waitForLog(c: (args: string[]) => Promise<RunResult>, name: string, text: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const logs = await c(['logs', name]);
    if (logs.stdout.includes(text)) return;
    await sleep(100);
  }
  throw new Error(`${name} did not log "${text}"`);
}

const clients = testClients;

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

    test(`${n}: a published UDP port answers on loopback; port and inspect show it as Docker does`, { skip: noPython }, async () => {
      ok(await c(['run', '-d', '--name', `udp-${n}`, '-p', '127.0.0.1::5353/udp', ...udpEcho(5353)]), 'run -p udp');
      try {
        await waitForLog(c, `udp-${n}`, 'ready');
        const info = JSON.parse((await c(['inspect', `udp-${n}`])).stdout)[0];
        assert.deepEqual(info.HostConfig.PortBindings, { '5353/udp': [{ HostIp: '127.0.0.1', HostPort: '' }] });
        const bound = info.NetworkSettings.Ports['5353/udp'];
        assert.equal(bound.length, 1);
        assert.equal(bound[0].HostIp, '127.0.0.1');
        const port = Number(bound[0].HostPort);
        assert.ok(port >= 32768, `random port ${port}`);
        assert.equal((await c(['port', `udp-${n}`])).stdout.trim(), `5353/udp -> 127.0.0.1:${port}`);
        assert.equal((await c(['port', `udp-${n}`, '5353/udp'])).stdout.trim(), `127.0.0.1:${port}`);
        assert.equal(await udpAsk('127.0.0.1', port, `hello-${n}`), `echo:hello-${n}`);
        assert.equal(await udpAsk('127.0.0.1', port, 'again'), 'echo:again');
      } finally {
        ok(await c(['rm', '-f', `udp-${n}`]), 'rm');
      }
    });

    test(`${n}: a container starts with its address in /etc/hosts and eth0 up; a sysctl of eth0 applies at create`, async () => {
      // The endpoint is plumbed while runc creates the container: its files and interface must
      // still be complete when the process starts, and a net.* sysctl waits for the interface.
      const r = await c(['run', '--rm', '--hostname', `h-${n}`, 'busybox', 'sh', '-c', 'grep h- /etc/hosts; ip -4 -o addr show eth0; ip route | grep default']);
      ok(r, 'run');
      const [hosts, addr, route] = r.stdout.trim().split('\n');
      const ip = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(addr ?? '')?.[1];
      assert.ok(ip, r.stdout);
      assert.equal(hosts, `${ip}\th-${n}`);
      assert.match(route ?? '', /^default via /);
      const sysctl = await c(['run', '--rm', '--sysctl', 'net.ipv4.conf.eth0.rp_filter=2', 'busybox', 'cat', '/proc/sys/net/ipv4/conf/eth0/rp_filter']);
      ok(sysctl, 'run --sysctl');
      assert.equal(sysctl.stdout, '2\n');
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
    const client = clientNetns();
    try {
      const tcpPort = await freePort();
      ok(await daemon.cli(['run', '-d', '--name', 'remote', '-p', `${tcpPort}:80`, ...httpd('seen-from-afar')]), 'run');
      await sleep(500);
      const fetched = client.run(['/bin/busybox', 'wget', '-qO-', `http://${client.hostIp}:${tcpPort}/index.html`]);
      assert.equal(fetched, 'seen-from-afar\n');
      // A 127.0.0.1 binding is not offered to other hosts.
      ok(await daemon.cli(['run', '-d', '--name', 'local-only', '-p', `127.0.0.1:${await freePort()}:80`, ...httpd('local')]), 'run local');
      const localPort = JSON.parse((await daemon.cli(['inspect', 'local-only'])).stdout)[0].NetworkSettings.Ports['80/tcp'][0].HostPort;
      assert.throws(() => client.run(['/bin/busybox', 'sh', '-c', `timeout 3 wget -qO- http://${client.hostIp}:${localPort}/index.html; exit $?`]), 'a 127.0.0.1 port answered another host');
    } finally {
      await daemon.cli(['rm', '-f', 'remote', 'local-only']);
      client.remove();
    }
  });

  test('a published UDP port answers another host (a client netns); a 127.0.0.1 one does not', { skip: noPython }, async () => {
    const client = clientNetns();
    try {
      const port = await freeUdpPort();
      ok(await daemon.cli(['run', '-d', '--name', 'udp-remote', '-p', `${port}:7777/udp`, ...udpEcho(7777)]), 'run');
      await waitForLog((args) => daemon.cli(args), 'udp-remote', 'ready');
      assert.equal(client.run(udpClient(client.hostIp, port, 'from-afar'), 20_000), 'echo:from-afar');
      assert.equal(await udpAsk('127.0.0.1', port, 'from-here'), 'echo:from-here', 'a 0.0.0.0 binding answers loopback too');
      ok(await daemon.cli(['run', '-d', '--name', 'udp-local', '-p', '127.0.0.1::7777/udp', ...udpEcho(7777)]), 'run local');
      await waitForLog((args) => daemon.cli(args), 'udp-local', 'ready');
      const localPort = Number(JSON.parse((await daemon.cli(['inspect', 'udp-local'])).stdout)[0].NetworkSettings.Ports['7777/udp'][0].HostPort);
      assert.equal(await udpAsk('127.0.0.1', localPort, 'near'), 'echo:near');
      assert.throws(() => client.run(udpClient(client.hostIp, localPort, 'far'), 20_000), 'a 127.0.0.1 UDP port answered another host');
    } finally {
      await daemon.cli(['rm', '-f', 'udp-remote', 'udp-local']);
      client.remove();
    }
  });

  test('a UDP client that keeps its source port reaches the container that publishes the port now, not the removed one', { skip: noPython }, async () => {
    const port = await freeUdpPort();
    // One client socket for the whole test: its flow (and the NAT the kernel chose for it) lives
    // as long as it keeps sending, unless the daemon forgets it when the port changes hands.
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
    const ask = (text: string, ms: number) =>
      new Promise<string>((resolve, reject) => {
        const send = () => sock.send(text, port, '127.0.0.1');
        const resend = setInterval(send, 200);
        const deadline = setTimeout(() => {
          clearInterval(resend);
          sock.removeAllListeners('message');
          reject(new Error(`no UDP reply to ${text} within ${ms} ms`));
        }, ms);
        sock.once('message', (m) => {
          clearInterval(resend);
          clearTimeout(deadline);
          resolve(m.toString());
        });
        send();
      });
    try {
      ok(await daemon.cli(['run', '-d', '--name', 'udp-first', '-p', `127.0.0.1:${port}:6000/udp`, ...udpEcho(6000, 'first')]), 'run first');
      await waitForLog((args) => daemon.cli(args), 'udp-first', 'ready');
      assert.equal(await ask('one', 5000), 'first:one');
      const ipOf = async (name: string) => (await daemon.cli(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', name])).stdout.trim();
      const firstIp = await ipOf('udp-first');
      ok(await daemon.cli(['rm', '-f', 'udp-first']), 'rm first');
      // Another container takes the freed address, so the new publisher has another one.
      ok(await daemon.cli(['run', '-d', '--name', 'udp-filler', 'busybox', 'sleep', '60']), 'run filler');
      ok(await daemon.cli(['run', '-d', '--name', 'udp-second', '-p', `127.0.0.1:${port}:6000/udp`, ...udpEcho(6000, 'second')]), 'run second');
      assert.notEqual(await ipOf('udp-second'), firstIp);
      await waitForLog((args) => daemon.cli(args), 'udp-second', 'ready');
      assert.equal(await ask('two', 5000), 'second:two');
    } finally {
      sock.close();
      await daemon.cli(['rm', '-f', 'udp-first', 'udp-second', 'udp-filler']);
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
