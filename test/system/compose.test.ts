/**
 * docker-compose 1.29 (Debian; docker-py 5.0.3 inside), a tool no one here wrote, against
 * baleiad: a two-service project with a network, a named volume and a published port — up,
 * service-name discovery, ps, logs, exec (through the docker CLI) and down -v leaving nothing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { bootstrapBusybox, runCommand, startDaemon, type Daemon, ok } from './harness.js';

const compose = '/usr/bin/docker-compose';

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/index.html', timeout: 3000 }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

describe('docker-compose against baleiad', { skip: !existsSync(compose) && 'docker-compose is not installed' }, () => {
  let daemon: Daemon;
  let project: string;
  let port: number;
  const dc = (args: string[]) =>
    runCommand(compose, ['-p', 'whales', '-f', path.join(project, 'docker-compose.yml'), ...args], {
      timeoutMs: 120_000,
      env: { ...process.env, DOCKER_HOST: daemon.host, DOCKER_CONFIG: path.join(daemon.dir, 'docker-config'), PATH: `/usr/local/bin:${process.env.PATH}` },
    });
  before(async () => {
    daemon = await startDaemon({ name: 'compose' });
    await bootstrapBusybox(daemon);
    project = path.join(daemon.dir, 'project');
    await fs.mkdir(project);
    port = 20000 + Math.floor(Math.random() * 10000);
    await fs.writeFile(
      path.join(project, 'docker-compose.yml'),
      [
        'version: "3.8"',
        'services:',
        '  web:',
        '    image: busybox',
        "    command: sh -c 'echo from-compose > /index.html; exec httpd -f -p 80 -h /'",
        '    networks: [front]',
        '    volumes: [data:/data]',
        `    ports: ["127.0.0.1:${port}:80"]`,
        '  client:',
        '    image: busybox',
        "    command: sh -c 'sleep 1; wget -qO- http://web/index.html; sleep 300'",
        '    networks: [front]',
        '    depends_on: [web]',
        'networks:',
        '  front: {}',
        'volumes:',
        '  data: {}',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    if (daemon) await dc(['down', '-v', '-t', '0']).catch(() => {});
    await daemon?.cleanup();
  });

  test('up, discovery by service name, ps, logs, exec, down -v', async () => {
    ok(await dc(['up', '-d']), 'up -d');
    assert.equal(await get(port), 'from-compose\n');
    const ps = await dc(['ps']);
    ok(ps, 'ps');
    assert.match(ps.stdout, /whales_web_1 .* Up .*127\.0\.0\.1:\d+->80\/tcp/);
    assert.match(ps.stdout, /whales_client_1 .* Up/);
    let logs = '';
    for (let i = 0; i < 20 && !logs.includes('from-compose'); i++) {
      logs = (await dc(['logs', '--no-color', 'client'])).stdout;
      if (!logs.includes('from-compose')) await new Promise((r) => setTimeout(r, 300));
    }
    assert.match(logs, /from-compose/);
    const exec = await dc(['exec', '-T', 'web', 'cat', '/index.html']);
    ok(exec, 'exec');
    assert.equal(exec.stdout, 'from-compose\n');
    const labels = JSON.parse((await daemon.cli(['inspect', 'whales_web_1'])).stdout)[0].Config.Labels;
    assert.equal(labels['com.docker.compose.project'], 'whales');
    assert.equal(labels['com.docker.compose.service'], 'web');
    ok(await dc(['down', '-v', '-t', '1']), 'down -v');
    assert.equal((await daemon.cli(['ps', '-aq'])).stdout.trim(), '');
    assert.doesNotMatch((await daemon.cli(['network', 'ls', '--format', '{{.Name}}'])).stdout, /whales_front/);
    assert.doesNotMatch((await daemon.cli(['volume', 'ls', '--format', '{{.Name}}'])).stdout, /whales_data/);
  });
});
