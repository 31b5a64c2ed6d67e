/**
 * `baleia registry serve` and `baleia registry gc` through the built CLI, as a user runs them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../lib/index.js';
import { parseAddr } from './registry.js';

const main = fileURLToPath(new URL('../main.js', import.meta.url));

test('parseAddr reads HOST:PORT, :PORT and [v6]:PORT', () => {
  assert.deepEqual(parseAddr('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
  assert.deepEqual(parseAddr(':5000'), { host: '0.0.0.0', port: 5000 });
  assert.deepEqual(parseAddr('[::1]:0'), { host: '::1', port: 0 });
  assert.throws(() => parseAddr('localhost'), /invalid address/);
  assert.throws(() => parseAddr('a:70000'), /invalid address/);
});

test('registry serve answers /v2/ and stops on SIGTERM; registry gc reports on the same root', { timeout: 30_000 }, async (t) => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-test-registry-cli-'));
  const child = spawn(process.execPath, [main, 'registry', 'serve', '--addr', '127.0.0.1:0', '--root', root, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await fs.rm(root, { recursive: true, force: true });
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /Listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`registry serve exited with ${code}`)));
  });
  const reply = await fetch(`${url}/v2/`);
  assert.equal(reply.status, 200);
  assert.equal(reply.headers.get('docker-distribution-api-version'), 'registry/2.0');
  const blob = 'unreferenced';
  const { createHash } = await import('node:crypto');
  const digest = 'sha256:' + createHash('sha256').update(blob).digest('hex');
  assert.equal((await fetch(`${url}/v2/cli/blobs/uploads/?digest=${digest}`, { method: 'POST', body: blob })).status, 201);
  child.kill('SIGTERM');
  assert.equal(await exited, 0);

  const dry = await run(process.execPath, [main, 'registry', 'gc', '--root', root, '--grace', '0s', '--dry-run']);
  assert.match(dry.stdout, new RegExp(`would delete ${digest}`));
  const gc = await run(process.execPath, [main, 'registry', 'gc', '--root', root, '--grace', '0s']);
  assert.match(gc.stdout, new RegExp(`deleted ${digest}`));
  assert.match(gc.stdout, /0 blobs referenced, 1 unreferenced/);
  const bad = await run(process.execPath, [main, 'registry', 'gc', '--root', root, '--grace', 'soon'], { allowFailure: true });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid duration "soon"/);
});
