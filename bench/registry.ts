/**
 * bench/registry.ts — pull/push and registry-server throughput, baleia vs Docker, in one run.
 *
 *   npm run build && node dist/bench/registry.js --iterations 5
 *
 * Builds a ~300 MB, 5-layer image of its own (busybox + 4 layers of random-but-compressible
 * files) as a docker-archive and as an OCI layout, then:
 *   1. engine push/pull: the archive is `docker load`ed into a reference dockerd and into baleiad
 *      (shared helpers in bench/common.ts); each iteration starts a FRESH Debian distribution
 *      registry on 127.0.0.1 (so nothing can be mounted or skipped), times `docker push` from each
 *      engine (docker CLI for both), then `rmi` on each engine and times `docker pull` of the same
 *      repository (the one dockerd pushed) — every layer really downloaded and extracted.
 *   2. registry servers: each round starts a fresh `baleia registry serve` and a fresh
 *      distribution, times 8 concurrent `skopeo copy oci:… docker://…` (8 repositories) and then
 *      8 concurrent `skopeo copy docker://… oci:…` against each.
 * Prints medians and ratios (baleia / docker, ours / distribution). Targets are reported, never
 * asserted. Only 127.0.0.1 is contacted. Everything is cleaned up, also on failure and Ctrl-C.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import {
  type Engine,
  alive,
  cli,
  cliMain,
  dockerCli,
  firstLine,
  fmtMs,
  log,
  makeClients,
  mustCli,
  onCleanup,
  quantile,
  runCleanups,
  runCommand,
  settings,
  sleep,
  startBaleia,
  startDocker,
  stopProcess,
  tail,
  umountUnder,
  which,
  eachFlag,
  intFlag,
  listFlag,
} from './common.js';
import { registryNodeFlags } from '../src/lib/node-flags.js';

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  iterations: number;
  rounds: number;
  clients: number;
  layerMb: number;
  parts: Set<string>;
  install: boolean;
  verbose: boolean;
  timeoutMs: number;
}

const usage = `usage: node dist/bench/registry.js [options]

  --iterations N   engine push/pull samples per engine (default 5)
  --rounds N       registry-server rounds (default 3)
  --clients N      concurrent skopeo clients per round (default 8)
  --layer-mb N     size of each of the 4 data layers, uncompressed (default 75: ~300 MB image)
  --parts LIST     engine,server (default both)
  --no-install     fail instead of running bench/setup-docker.sh when dockerd is missing
  --timeout S      per command (default 300)
  --verbose        print every command with its time and exit code
`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    iterations: 5,
    rounds: 3,
    clients: 8,
    layerMb: 75,
    parts: new Set(['engine', 'server']),
    install: true,
    verbose: false,
    timeoutMs: 300_000,
  };
  eachFlag(argv, (flag, value) => {
    switch (flag) {
      case '--iterations':
      case '-n':
        o.iterations = intFlag(flag, value(), 1);
        break;
      case '--rounds':
        o.rounds = intFlag(flag, value(), 1);
        break;
      case '--clients':
        o.clients = intFlag(flag, value(), 1);
        break;
      case '--layer-mb':
        o.layerMb = intFlag(flag, value(), 1);
        break;
      case '--parts': {
        o.parts = listFlag(flag, value(), ['engine', 'server']);
        break;
      }
      case '--no-install':
        o.install = false;
        break;
      case '--timeout':
        o.timeoutMs = intFlag(flag, value(), 1) * 1000;
        break;
      case '--verbose':
      case '-v':
        o.verbose = true;
        break;
      case '--help':
      case '-h':
        process.stdout.write(usage);
        process.exit(0);
      // falls through (never reached)
      default:
        throw new Error(`unknown flag ${flag}\n${usage}`);
    }
  });
  return o;
}

const skopeo = '/usr/bin/skopeo';
const distribution = '/usr/bin/docker-registry';
const imageName = 'bench/big:latest';
const info: Array<[string, string]> = [];
const failures: string[] = [];
const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ');

// ---------------------------------------------------------------------------------------------
// The image: written once as layer tars, then packed as a docker-archive and an OCI layout

interface Layer {
  file: string;
  diffId: string;
  size: number;
}

/** A Transform that hashes (sha256) and counts what passes through. */
function hasher(): Transform & { digest(): string; bytes(): number } {
  const h = createHash('sha256');
  let n = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      n += chunk.length;
      cb(null, chunk);
    },
  }) as Transform & { digest(): string; bytes(): number };
  let d: string | undefined;
  t.digest = () => (d ??= `sha256:${h.digest('hex')}`);
  t.bytes = () => n;
  return t;
}

/**
 * Random-but-compressible file content: 16 symbols (4 bits of entropy a byte) and every 4 KiB
 * block written twice, so gzip gets it to roughly a quarter and nothing is all zeros.
 */
function compressibleData(bytes: number): Buffer {
  const alphabet = Buffer.from('abcdefghijklmnop');
  const block = 4096;
  const out = Buffer.allocUnsafe(bytes);
  const rnd = randomBytes(Math.ceil(bytes / 2));
  let o = 0;
  let r = 0;
  while (o < bytes) {
    const n = Math.min(block, bytes - o);
    for (let i = 0; i < n; i++) out[o + i] = alphabet[rnd[r++ % rnd.length]! & 15]!;
    o += n;
    if (o < bytes) {
      const m = Math.min(n, bytes - o);
      out.copy(out, o, o - n, o - n + m);
      o += m;
    }
  }
  return out;
}

async function writeLayer(file: string, entries: Array<{ name: string; type?: 'file' | 'directory' | 'symlink'; data?: Buffer; linkname?: string; mode?: number }>): Promise<Layer> {
  const pack = tar.pack();
  const h = hasher();
  const done = pipeline(pack, h, createWriteStream(file));
  const mtime = new Date('2026-01-01T00:00:00Z');
  for (const e of entries) {
    const type = e.type ?? 'file';
    await new Promise<void>((resolve, reject) => {
      const header = { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), mtime, uid: 0, gid: 0, linkname: e.linkname };
      if (type === 'file') pack.entry({ ...header, size: e.data!.length }, e.data!, (err) => (err ? reject(err) : resolve()));
      else pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return { file, diffId: h.digest(), size: h.bytes() };
}

async function buildLayers(dir: string, layerMb: number): Promise<Layer[]> {
  mkdirSync(dir, { recursive: true });
  const layers: Layer[] = [];
  const busybox = which('busybox') ?? '/bin/busybox';
  const applets = ['sh', 'true', 'sleep', 'ls', 'cat', 'du'];
  layers.push(
    await writeLayer(path.join(dir, 'l0.tar'), [
      { name: 'bin', type: 'directory' },
      { name: 'bin/busybox', data: readFileSync(busybox), mode: 0o755 },
      ...applets.map((a) => ({ name: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox', mode: 0o777 })),
      { name: 'tmp', type: 'directory', mode: 0o1777 },
    ]),
  );
  for (let l = 1; l <= 4; l++) {
    // Files of 1–4 MiB until the layer holds layerMb MiB.
    const entries: Parameters<typeof writeLayer>[1] = [{ name: 'data', type: 'directory' }, { name: `data/l${l}`, type: 'directory' }];
    let left = layerMb * 2 ** 20;
    for (let f = 0; left > 0; f++) {
      const size = Math.min(left, (1 + Math.floor(Math.random() * 4)) * 2 ** 20);
      entries.push({ name: `data/l${l}/f${String(f).padStart(3, '0')}.bin`, data: compressibleData(size) });
      left -= size;
    }
    layers.push(await writeLayer(path.join(dir, `l${l}.tar`), entries));
  }
  return layers;
}

function imageConfig(layers: Layer[]): Buffer {
  const created = '2026-01-01T00:00:00Z';
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created,
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created, created_by: i === 0 ? 'bench: busybox' : `bench: data layer ${i}` })),
    }),
  );
}

const hex = (digest: string) => digest.slice('sha256:'.length);
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** docker-archive (what `docker save` writes): manifest.json, <config>.json, <diffid>/layer.tar. */
async function writeDockerArchive(out: string, layers: Layer[], config: Buffer): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(out));
  const configName = `${hex(sha256(config))}.json`;
  const entry = (name: string, data: Buffer) => new Promise<void>((res, rej) => pack.entry({ name, size: data.length, mode: 0o644 }, data, (e) => (e ? rej(e) : res())));
  await entry(configName, config);
  for (const l of layers) {
    await new Promise<void>((res, rej) => pack.entry({ name: hex(l.diffId), type: 'directory', mode: 0o755 }, (e) => (e ? rej(e) : res())));
    const stream = pack.entry({ name: `${hex(l.diffId)}/layer.tar`, size: l.size, mode: 0o644 }, (e) => (e ? undefined : undefined));
    await pipeline(createReadStream(l.file), stream);
  }
  await entry('manifest.json', Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [imageName], Layers: layers.map((l) => `${hex(l.diffId)}/layer.tar`) }])));
  pack.finalize();
  await done;
}

/** OCI image layout with gzip-compressed layers (what skopeo copies into the registries). Returns the compressed size. */
async function writeOciLayout(dir: string, layers: Layer[], config: Buffer): Promise<number> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const putBlob = (b: Buffer) => {
    const d = sha256(b);
    writeFileSync(path.join(blobs, hex(d)), b);
    return { digest: d, size: b.length };
  };
  // Compress two layers at a time (zlib runs on the thread pool).
  const compressed: Array<{ digest: string; size: number }> = new Array(layers.length);
  let next = 0;
  const worker = async () => {
    while (next < layers.length) {
      const i = next++;
      const tmpFile = path.join(blobs, `tmp-${i}`);
      const h = hasher();
      await pipeline(createReadStream(layers[i]!.file), zlib.createGzip({ level: 6 }), h, createWriteStream(tmpFile));
      renameSync(tmpFile, path.join(blobs, hex(h.digest())));
      compressed[i] = { digest: h.digest(), size: h.bytes() };
    }
  };
  await Promise.all([worker(), worker()]);
  const cfg = putBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
      layers: compressed.map((c) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...c })),
    }),
  );
  const m = putBlob(manifest);
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
    }),
  );
  return compressed.reduce((a, c) => a + c.size, 0);
}

// ---------------------------------------------------------------------------------------------
// Registries on 127.0.0.1

interface Registry {
  kind: 'distribution' | 'baleia';
  host: string; // 127.0.0.1:PORT
  root: string;
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function httpStatus(url: string, timeoutMs = 1000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * The node flags the launcher (`./baleia`) gives `registry serve`, so the bench runs the server
 * as users do (not through the launcher itself: it would rebuild a stale tree mid-bench).
 */

let registrySeq = 0;
async function startRegistry(kind: Registry['kind'], tmp: string): Promise<Registry> {
  const dir = path.join(tmp, `reg-${kind}-${registrySeq++}`);
  const root = path.join(dir, 'root');
  mkdirSync(root, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const logFile = path.join(dir, 'log');
  let command: string;
  let args: string[];
  if (kind === 'distribution') {
    const config = path.join(dir, 'config.yml');
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  cache:',
        '    blobdescriptor: inmemory',
        '  filesystem:',
        `    rootdirectory: ${root}`,
        'http:',
        `  addr: ${host}`,
        '',
      ].join('\n'),
    );
    command = distribution;
    args = ['serve', config];
  } else {
    command = process.execPath;
    args = [...registryNodeFlags, cliMain, 'registry', 'serve', '--addr', host, '--root', root, '--log-level', 'warn'];
  }
  const fd = openSync(logFile, 'a');
  let pid: number | undefined;
  try {
    const p = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env: settings.baseEnv });
    p.unref();
    pid = p.pid;
  } finally {
    closeSync(fd);
  }
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    stopProcess(pid, 10_000);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  onCleanup(`registry ${kind} ${host}`, stop);
  const deadline = Date.now() + 30_000;
  let last = '';
  while (Date.now() < deadline) {
    if (!alive(pid)) throw new Error(`${kind} registry exited on start:\n${tail(logFile)}`);
    try {
      const s = await httpStatus(`http://${host}/v2/`);
      if (s === 200) return { kind, host, root, stop };
      last = `status ${s}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  stop();
  throw new Error(`${kind} registry did not answer http://${host}/v2/ within 30 s (${last})`);
}

/** The layer media types (and their count) of a manifest in a registry. */
function layerTypes(host: string, repo: string): Promise<string> {
  const accept = ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.manifest.v1+json'].join(', ');
  return new Promise((resolve) => {
    const req = http.get(`http://${host}/v2/${repo}/manifests/latest`, { headers: { Accept: accept }, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => {
        try {
          const m = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { layers?: Array<{ mediaType: string }> };
          const counts = new Map<string, number>();
          for (const l of m.layers ?? []) counts.set(l.mediaType, (counts.get(l.mediaType) ?? 0) + 1);
          resolve([...counts].map(([t, n]) => `${n}× ${t}`).join(', ') || `? (status ${res.statusCode})`);
        } catch {
          resolve(`? (status ${res.statusCode})`);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(`? (${e.message})`));
  });
}

function duBytes(dir: string): number {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(r.stdout.split('\t')[0]) || 0;
}

// ---------------------------------------------------------------------------------------------
// Part 1: engine push and pull through the docker CLI

const samples = new Map<string, number[]>();
const add = (key: string, ms: number) => samples.set(key, [...(samples.get(key) ?? []), ms]);
const med = (key: string) => quantile(samples.get(key) ?? [], 0.5);

/** Counts the docker CLI's per-layer progress lines by their final status. */
function layerStatuses(out: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of out.split('\n')) {
    const m = /^[0-9a-f]{12}: (Pushed|Pull complete|Already exists|Layer already exists|Mounted from .*)$/.exec(line.trim());
    if (m) {
      const k = m[1]!.startsWith('Mounted') ? 'Mounted' : m[1]!;
      counts[k] = (counts[k] ?? 0) + 1;
    }
  }
  return counts;
}

async function enginePart(o: Options, tmp: string, archive: string): Promise<void> {
  const clients = makeClients(tmp);
  const docker = clients.docker;
  log('starting reference dockerd');
  const engines: Engine[] = [await startDocker(tmp, { install: o.install, defaultNetwork: false })];
  log('starting baleiad');
  engines.push(await startBaleia(tmp));
  for (const e of engines) info.push([e.name, e.version]);
  for (const e of engines) {
    log(`${e.name}: loading ${path.basename(archive)}`);
    const t0 = Date.now();
    await mustCli(docker, e, ['load', '-i', archive], 600_000);
    info.push([`${e.name}: docker load of the archive`, `${((Date.now() - t0) / 1000).toFixed(1)} s`]);
  }
  const ids: string[] = [];
  for (const e of engines) ids.push(`${e.name} ${(await mustCli(docker, e, ['image', 'inspect', '--format', '{{.Id}}', imageName])).stdout.trim().slice(0, 19)}`);
  info.push(['image ids after load', ids.join(', ')]);
  // `docker save` of what was loaded, to a file beside the archive (removed at once).
  for (const e of engines) {
    const out = path.join(tmp, `saved-${e.name}.tar`);
    const t0 = Date.now();
    await mustCli(docker, e, ['save', '-o', out, imageName], 600_000);
    info.push([`${e.name}: docker save of the image to a file`, `${((Date.now() - t0) / 1000).toFixed(1)} s`]);
    rmSync(out, { force: true });
  }

  const dead = new Set<string>();
  const fail = (e: Engine, op: string, msg: string) => {
    dead.add(`${op}|${e.name}`);
    failures.push(`${op} [${e.name}]: ${msg}`);
    log(`FAILED ${op} [${e.name}]: ${msg}`);
  };
  const pushed = new Map<string, number>(); // engine → compressed bytes in the registry after its push
  for (let i = 0; i < o.iterations; i++) {
    const order = i % 2 ? [...engines].reverse() : engines;
    const reg = await startRegistry('distribution', tmp);
    log(`iteration ${i + 1}/${o.iterations}: fresh distribution at ${reg.host}`);
    try {
      // push: every engine into its own repository of the fresh registry
      for (const e of order) {
        if (dead.has(`push|${e.name}`)) continue;
        const ref = `${reg.host}/${e.name}/big:latest`;
        await mustCli(docker, e, ['tag', imageName, ref]);
        const before = duBytes(reg.root);
        const r = await cli(docker, e, ['push', ref], o.timeoutMs);
        const st = layerStatuses(r.stdout);
        if (r.code !== 0) fail(e, 'push', `\`docker push ${ref}\` exited ${r.code}: ${firstLine(r.stderr || r.stdout)}`);
        else if ((st.Pushed ?? 0) < 5) fail(e, 'push', `only ${st.Pushed ?? 0} of 5 layers pushed (${JSON.stringify(st)})`);
        else {
          add(`push|${e.name}`, r.ms);
          pushed.set(e.name, duBytes(reg.root) - before);
          if (i === 0) info.push([`${e.name}: layer media types its push put in the manifest`, await layerTypes(reg.host, `${e.name}/big`)]);
        }
      }
      // pull: both engines pull what dockerd pushed (else what baleia pushed), after rmi of every tag
      const source = ['docker', 'baleia'].map((n) => `${reg.host}/${n}/big:latest`).find((_, k) => !dead.has(`push|${k ? 'baleia' : 'docker'}`));
      if (!source) continue;
      for (const e of order) {
        if (dead.has(`pull|${e.name}`)) continue;
        const tags = (await mustCli(docker, e, ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n').filter((t) => t && !t.includes('<none>'));
        if (tags.length) await mustCli(docker, e, ['rmi', ...tags]);
        const left = (await mustCli(docker, e, ['image', 'ls', '-aq'])).stdout.trim();
        if (left) {
          fail(e, 'pull', `images left after rmi: ${left.replace(/\n/g, ' ')}`);
          continue;
        }
        const r = await cli(docker, e, ['pull', source], o.timeoutMs);
        const st = layerStatuses(r.stdout);
        if (r.code !== 0) fail(e, 'pull', `\`docker pull ${source}\` exited ${r.code}: ${firstLine(r.stderr || r.stdout)}`);
        else if ((st['Pull complete'] ?? 0) < 5) fail(e, 'pull', `only ${st['Pull complete'] ?? 0} of 5 layers pulled (${JSON.stringify(st)})`);
        else add(`pull|${e.name}`, r.ms);
        // sanity (first iteration, untimed): the pulled image runs and holds its data
        if (i === 0) {
          const ru = await cli(docker, e, ['run', '--rm', '--network', 'none', source, 'du', '-sm', '/data']);
          info.push([`${e.name}: du -sm /data in the pulled image`, ru.code === 0 ? ru.stdout.trim().split(/\s/)[0] + ' MB' : `failed: ${firstLine(ru.stderr)}`]);
          if (ru.code !== 0) failures.push(`run after pull [${e.name}]: ${firstLine(ru.stderr)}`);
        }
        // the next push starts again from the loaded archive (a locally built image: no
        // compressed layers anywhere yet), not from what was pulled
        await cli(docker, e, ['rmi', source]);
        if (i + 1 < o.iterations) await mustCli(docker, e, ['load', '-i', archive], 600_000);
      }
    } finally {
      reg.stop();
    }
  }
  for (const [n, b] of pushed) info.push([`${n}: bytes its push stored in the registry (last iteration)`, `${(b / 1e6).toFixed(1)} MB`]);
}

// ---------------------------------------------------------------------------------------------
// Part 2: registry servers under concurrent skopeo clients

async function skopeoCopy(src: string, dest: string, cacheDir: string, timeoutMs: number): Promise<{ ms: number; skipped: number; copied: number; error?: string }> {
  // Each client gets a blob-info cache of its own (skopeo keeps one in /var/lib/containers/cache
  // otherwise, and would use what it learnt in earlier copies to mount instead of upload).
  mkdirSync(cacheDir, { recursive: true });
  const env = { ...settings.baseEnv, _CONTAINERS_ROOTLESS_UID: '65534', XDG_DATA_HOME: cacheDir, HOME: cacheDir };
  const r = await runCommand(skopeo, ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--retry-times', '0', src, dest], env, timeoutMs);
  const out = r.stdout + r.stderr;
  const skipped = (out.match(/skipped: already exists/g) ?? []).length;
  const copied = (out.match(/^Copying blob \S+$|^Copying blob \S+ done/gm) ?? []).length;
  return { ms: r.ms, skipped, copied, error: r.code === 0 ? undefined : `exited ${r.code}: ${firstLine(out)}` };
}

async function serverPart(o: Options, tmp: string, ociDir: string): Promise<void> {
  const kinds: Registry['kind'][] = ['baleia', 'distribution'];
  const dead = new Set<string>();
  for (let round = 0; round < o.rounds; round++) {
    const order = round % 2 ? [...kinds].reverse() : kinds;
    for (const kind of order) {
      if (dead.has(kind)) continue;
      const reg = await startRegistry(kind, tmp);
      log(`round ${round + 1}/${o.rounds}: ${kind} at ${reg.host}, ${o.clients} concurrent pushes then pulls`);
      const work = path.join(tmp, `skopeo-${kind}-${round}`);
      try {
        for (const op of ['push', 'pull'] as const) {
          const t0 = process.hrtime.bigint();
          const results = await Promise.all(
            Array.from({ length: o.clients }, (_, k) => {
              const remote = `docker://${reg.host}/bench/r${k}:latest`;
              return op === 'push'
                ? skopeoCopy(`oci:${ociDir}:latest`, remote, path.join(work, `cache-push-${k}`), o.timeoutMs)
                : skopeoCopy(remote, `oci:${path.join(work, `out-${k}`)}:latest`, path.join(work, `cache-pull-${k}`), o.timeoutMs);
            }),
          );
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          const bad = results.find((r) => r.error);
          const skipped = results.reduce((a, r) => a + r.skipped, 0);
          if (bad) {
            dead.add(kind);
            failures.push(`server ${op} ×${o.clients} [${kind}]: skopeo ${bad.error}`);
            log(`FAILED ${op} [${kind}]: ${bad.error}`);
            break;
          }
          if (skipped) info.push([`${kind} round ${round + 1} ${op}`, `${skipped} blobs skipped as already present (not uploaded)`]);
          add(`server ${op}|${kind}`, ms);
          if (op === 'push') add(`server storage|${kind}`, duBytes(reg.root));
        }
      } finally {
        reg.stop();
        rmSync(work, { recursive: true, force: true });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function report(o: Options, imageBytes: number, compressedBytes: number): void {
  const out: string[] = [];
  const w = (s = '') => out.push(s);
  w();
  w(`registry bench — ${new Date().toISOString()} — ${os.hostname()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}`);
  w(`  load average at start ${loadAtStart}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  w(`  image ${imageName}: 5 layers, ${(imageBytes / 1e6).toFixed(0)} MB of layer tars, ${(compressedBytes / 1e6).toFixed(0)} MB gzip (OCI layout, level 6)`);
  for (const [k, v] of info) w(`  ${k}: ${v}`);
  w();
  const rows: string[][] = [];
  const row = (what: string, n: string, a: string, b: string, unit = 'ms') => {
    const am = med(`${what}|${a}`);
    const bm = med(`${what}|${b}`);
    const cell = (k: string, m: number) => (samples.get(k)?.length ? (unit === 'MB' ? (m / 1e6).toFixed(0) : fmtMs(m)) : dead(k));
    rows.push([`${what} ${n}`, cell(`${what}|${a}`, am), cell(`${what}|${b}`, bm), Number.isFinite(am) && Number.isFinite(bm) && bm > 0 ? `${(am / bm).toFixed(2)}×` : '—']);
  };
  const dead = (k: string) => (failures.some((f) => f.includes(`[${k.split('|')[1]}]`) && f.startsWith(k.split('|')[0]!)) ? 'FAILED' : '—');
  if (o.parts.has('engine')) {
    w(`1. engine push/pull, docker CLI for both, fresh distribution registry per iteration; median of ${o.iterations}, ms`);
    rows.length = 0;
    rows.push(['operation', 'baleia', 'docker', 'ratio']);
    row('push', '(5 layers)', 'baleia', 'docker');
    row('pull', '(after rmi)', 'baleia', 'docker');
    table(rows, w);
    const speed = med('pull|docker') / med('pull|baleia');
    w(`target: baleia pull at least 2× docker's speed: ${Number.isFinite(speed) ? `${speed.toFixed(2)}× — ${speed >= 2 ? 'MET' : 'NOT MET'}` : 'not measured'}`);
    w();
  }
  if (o.parts.has('server')) {
    w(`2. registry servers, ${o.clients} concurrent skopeo copies (${o.clients} repositories), fresh server per round; median of ${o.rounds} rounds, wall ms`);
    rows.length = 0;
    rows.push(['operation', 'ours', 'distribution', 'ratio']);
    row('server push', `×${o.clients}`, 'baleia', 'distribution');
    row('server pull', `×${o.clients}`, 'baleia', 'distribution');
    row('server storage', 'after push (MB)', 'baleia', 'distribution', 'MB');
    table(rows, w);
    for (const op of ['push', 'pull']) {
      const a = med(`server ${op}|baleia`);
      const b = med(`server ${op}|distribution`);
      w(`target: our server at least as fast as distribution (${op}): ${Number.isFinite(a / b) ? `${(a / b).toFixed(2)}× the time, ${((o.clients * compressedBytes) / 1e6 / (a / 1000)).toFixed(0)} vs ${((o.clients * compressedBytes) / 1e6 / (b / 1000)).toFixed(0)} MB/s — ${a <= b ? 'MET' : 'NOT MET'}` : 'not measured'}`);
    }
  }
  if (failures.length) {
    w();
    w('failures:');
    for (const f of failures) w(`  - ${f}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

function table(rows: string[][], w: (s?: string) => void): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  w(line(rows[0]!));
  w(widths.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows.slice(1)) w(line(r));
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  settings.verbose = o.verbose;
  settings.commandTimeoutMs = o.timeoutMs;
  if (process.getuid?.() !== 0) throw new Error('run as root: both engines need it');
  for (const f of [dockerCli, skopeo, distribution]) if (!existsSync(f)) throw new Error(`${f} is missing`);
  settings.baseEnv = { ...process.env };
  for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'BALEIA_HOST', 'BALEIA_CONFIG', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'REGISTRY_AUTH_FILE', 'http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'])
    delete settings.baseEnv[k];
  settings.baseEnv.NO_PROXY = settings.baseEnv.no_proxy = '127.0.0.1,localhost';

  const tmp = mkdtempSync('/tmp/bb-');
  onCleanup('temp dir', () => {
    umountUnder(tmp);
    rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  });
  log(`working under ${tmp}`);

  log(`building the image: busybox + 4 × ${o.layerMb} MiB layers`);
  const t0 = Date.now();
  const layers = await buildLayers(path.join(tmp, 'layers'), o.layerMb);
  const config = imageConfig(layers);
  const archive = path.join(tmp, 'big.tar');
  const ociDir = path.join(tmp, 'oci');
  const imageBytes = layers.reduce((a, l) => a + l.size, 0);
  let compressedBytes = 0;
  if (o.parts.has('engine')) await writeDockerArchive(archive, layers, config);
  if (o.parts.has('server')) compressedBytes = await writeOciLayout(ociDir, layers, config);
  rmSync(path.join(tmp, 'layers'), { recursive: true, force: true });
  info.push(['image built in', `${((Date.now() - t0) / 1000).toFixed(1)} s (image id sha256:${hex(sha256(config)).slice(0, 12)})`]);

  if (o.parts.has('engine')) {
    try {
      await enginePart(o, tmp, archive);
    } catch (err) {
      failures.push(`engine part: ${(err as Error).message}`);
      log(`engine part failed: ${(err as Error).message}`);
    }
  }
  if (o.parts.has('server')) {
    try {
      await serverPart(o, tmp, ociDir);
    } catch (err) {
      failures.push(`server part: ${(err as Error).message}`);
      log(`server part failed: ${(err as Error).message}`);
    }
  }
  report(o, imageBytes, compressedBytes);
}

main().then(
  () => {
    runCleanups();
    process.exit(failures.length ? 2 : 0);
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${settings.verbose ? ((err as Error)?.stack ?? err) : ((err as Error)?.message ?? err)}\n`);
    runCleanups();
    process.exit(1);
  },
);
