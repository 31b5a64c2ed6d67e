/**
 * bench/network.ts — what bridge networking costs, baleia vs Docker's engine, in one run.
 *
 *   npm run build && node dist/bench/network.js          # as root; `npm run bench:network`
 *
 * 1. `run --rm busybox true` on the default bridge vs `--network none`, for baleiad and for a
 *    reference dockerd whose default bridge has its iptables rules (`--iptables=true`, docker's
 *    default userland proxy); the difference is what setting up a container's network adds.
 * 2. Throughput of one HTTP download (busybox httpd serving a file from /dev/shm in a container,
 *    curl on the host) through a port published on 127.0.0.1 vs straight to the container's
 *    address, in MB/s.
 * Both daemons run on private roots and sockets under one temp dir, with their own bridges,
 * subnets and (baleia) iptables chain prefix; nothing is pulled, no traffic leaves 127.0.0.1 and
 * the bench's own bridges. Everything is removed at the end, also on failure and Ctrl-C:
 * containers, daemons, mounts, temp dir, both bridges, baleia's chains and the DOCKER* chains and
 * rules dockerd added. Targets are reported, never asserted. See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  bridges,
  chainsOf,
  iptablesRules,
  removeIptables,
  tables,
  type Client,
  type Engine,
  type EngineName,
  cli,
  dockerCli,
  firstLine,
  fmtMs,
  log,
  makeClients,
  mustCli,
  onCleanup,
  processTable,
  quantile,
  runCleanups,
  runCommand,
  settings,
  sleep,
  startBaleia,
  startDocker,
  umountUnder,
  which,
  eachFlag,
  intFlag,
  listFlag,
} from './common.js';

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  iterations: number;
  transferIterations: number;
  warmup: number;
  transferMb: number;
  parts: Set<string>;
  engines: Set<EngineName>;
  install: boolean;
  verbose: boolean;
  timeoutMs: number;
}

const usage = `usage: node dist/bench/network.js [options]

  --iterations N           part 1: timed run --rm samples per engine and network (default 10)
  --transfer-iterations N  part 2: downloads per engine and path (default 3)
  --warmup N               untimed part-1 rounds before those (default 1)
  --transfer-mb N          size of the file downloaded in part 2, MiB (default 1024)
  --parts LIST             run,throughput (default both)
  --engines LIST           baleia,docker (default both; one alone prints no baleia/docker ratios)
  --no-install             fail instead of running bench/setup-docker.sh when dockerd is missing
  --timeout SECONDS        per command (default 60)
  --verbose                print every command with its time and exit code
`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    iterations: 10,
    transferIterations: 3,
    warmup: 1,
    transferMb: 1024,
    parts: new Set(['run', 'throughput']),
    engines: new Set(['baleia', 'docker']),
    install: true,
    verbose: false,
    timeoutMs: 60_000,
  };
  eachFlag(argv, (flag, value) => {
    switch (flag) {
      case '--iterations':
      case '-n':
        o.iterations = intFlag(flag, value(), 1);
        break;
      case '--transfer-iterations':
        o.transferIterations = intFlag(flag, value(), 1);
        break;
      case '--warmup':
        o.warmup = intFlag(flag, value(), 0);
        break;
      case '--transfer-mb':
        o.transferMb = intFlag(flag, value(), 1);
        break;
      case '--parts': {
        o.parts = listFlag(flag, value(), ['run', 'throughput']);
        break;
      }
      case '--engines': {
        o.engines = listFlag(flag, value(), ['baleia', 'docker'] as const);
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

// ---------------------------------------------------------------------------------------------
// Host network state: subnets, bridges, iptables chains

const info: Array<[string, string]> = [];
const failures: string[] = [];
const cleanupNotes: string[] = [];
const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ');

// ---------------------------------------------------------------------------------------------
// Engines

interface Net {
  engine: Engine;
  subnet: string;
  bridge: string;
}

async function startEngines(tmp: string, o: Options, clients: Record<'docker' | 'baleia', Client>): Promise<Net[]> {
  const taken = new Set<string>();
  const nets: Net[] = [];
  if (o.engines.has('docker')) {
    // Which DOCKER* chains and bridges exist before our dockerd: only what it adds is ours to remove.
    const before = new Set(tables.flatMap((t) => chainsOf(iptablesRules(t)).map((c) => `${t}/${c}`)));
    const bridgesBefore = new Set(bridges());
    const sharedDockerChains = [...before].filter((c) => /\/DOCKER/.test(c));
    if (sharedDockerChains.length)
      log(`DOCKER* chains already exist (${sharedDockerChains.join(', ')}): another dockerd uses iptables; the bench leaves those chains and only removes its own bridge's rules`);
    let dockerBridge = '';
    // Registered before startDocker, so it runs after dockerd has been stopped.
    onCleanup('docker iptables', () => {
      const mine = (c: string) => c.startsWith('DOCKER') && !sharedDockerChains.length;
      const extraBridges = bridges().filter((b) => !bridgesBefore.has(b) && /^docker\d*$/.test(b));
      const found = removeIptables(mine, [dockerBridge, ...extraBridges].filter(Boolean));
      for (const b of extraBridges) spawnSync('ip', ['link', 'del', b], { stdio: 'ignore' });
      cleanupNotes.push(
        `dockerd (stopped with SIGTERM) left ${found.chains.length} chains${found.chains.length ? ` (${found.chains.join(' ')})` : ''} and ${found.rules.length} rules naming its chains or bridge${extraBridges.length ? `, bridges ${extraBridges.join(' ')}` : ''}: removed by the bench`,
      );
    });
    log('starting reference dockerd (default bridge with iptables, userland proxy)');
    const engine = await startDocker(tmp, {
      install: o.install,
      defaultNetwork: true,
      // After startDocker's own flags: the last value of a flag wins. No forwarding/masquerade
      // (the host's FORWARD policy and ip_forward stay as they are); those rules are per network,
      // not per container, so they do not change what a container's network set-up costs.
      extraArgs: ['--iptables=true', '--userland-proxy=true'],
    });
    const netInfo = await mustCli(clients.docker, engine, ['network', 'inspect', 'bridge', '--format', '{{range .IPAM.Config}}{{.Subnet}}{{end}} {{index .Options "com.docker.network.bridge.name"}}']);
    const [subnet = '?', bridge = '?'] = netInfo.stdout.trim().split(' ');
    dockerBridge = bridge;
    taken.add(subnet.split('.').slice(0, 3).join('.'));
    nets.push({ engine, subnet, bridge });
    info.push(['docker', `${engine.version}; bridge ${bridge} ${subnet}; --iptables=true --userland-proxy=true --ip-masq=false --ip-forward=false`]);
  }
  if (o.engines.has('baleia')) {
    log('starting baleiad');
    const engine = await startBaleia(tmp, [], { taken, onNetworkCleanup: (note) => cleanupNotes.push(note) });
    const own = engine.network!;
    nets.push({ engine, subnet: own.subnet, bridge: own.bridge });
    info.push(['baleia', `${engine.version}; bridge ${own.bridge} ${own.subnet}, chains ${own.chainPrefix}-*, pool ${own.pool}`]);
  }
  return nets;
}

/** The same busybox:latest in every engine (bootstrapped by baleia, saved, docker-loaded). */
async function loadImages(tmp: string, nets: Net[], clients: Record<'docker' | 'baleia', Client>): Promise<void> {
  const baleia = nets.find((n) => n.engine.name === 'baleia')?.engine;
  const docker = nets.find((n) => n.engine.name === 'docker')?.engine;
  const tarFile = path.join(tmp, 'busybox.tar');
  if (baleia) {
    await mustCli(clients.baleia, baleia, ['image', 'bootstrap', 'busybox'], 180_000);
    if (docker) await mustCli(clients.baleia, baleia, ['save', '-o', tarFile, 'busybox:latest'], 120_000);
  }
  if (docker) {
    if (existsSync(tarFile) && statSync(tarFile).size > 0) {
      await mustCli(clients.docker, docker, ['load', '-i', tarFile], 120_000);
    } else {
      // docker alone: import the host's busybox with every applet linked.
      const rootfs = path.join(tmp, 'rootfs');
      spawnSync('mkdir', ['-p', path.join(rootfs, 'bin')]);
      const bb = which('busybox') ?? '/bin/busybox';
      spawnSync('cp', [bb, path.join(rootfs, 'bin/busybox')]);
      const r = spawnSync(path.join(rootfs, 'bin/busybox'), ['--install', '-s', path.join(rootfs, 'bin')]);
      if (r.status !== 0) for (const a of ['sh', 'true', 'httpd', 'dd', 'ip']) spawnSync('ln', ['-s', 'busybox', path.join(rootfs, 'bin', a)]);
      const rootTar = path.join(tmp, 'rootfs.tar');
      if (spawnSync('tar', ['-C', rootfs, '--numeric-owner', '-cf', rootTar, '.']).status !== 0) throw new Error('tar of the busybox rootfs failed');
      await mustCli(clients.docker, docker, ['import', '--change', 'CMD ["sh"]', rootTar, 'busybox:latest']);
    }
  }
  const ids: string[] = [];
  for (const n of nets) {
    const r = await cli(clients.docker, n.engine, ['image', 'inspect', '--format', '{{.Id}}', 'busybox:latest']);
    ids.push(`${n.engine.name} ${r.code === 0 ? r.stdout.trim().slice(0, 19) : `? (${firstLine(r.stderr)})`}`);
  }
  info.push(['image ids', ids.join(', ')]);
}

// ---------------------------------------------------------------------------------------------
// Part 1: run --rm busybox true, bridge vs none

interface RunSeries {
  none: number[];
  bridge: number[];
  /** bridge − none of the same round (adjacent in time). */
  diff: number[];
  error?: string;
}

async function partRun(o: Options, nets: Net[], client: Client): Promise<Map<EngineName, RunSeries>> {
  const res = new Map<EngineName, RunSeries>(nets.map((n) => [n.engine.name, { none: [], bridge: [], diff: [] }]));
  // Check each engine really gives the container an interface on its bridge.
  for (const n of nets) {
    const r = await cli(client, n.engine, ['run', '--rm', 'busybox', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    const addr = /inet (\S+)/.exec(r.stdout)?.[1];
    info.push([`${n.engine.name} container on the default network`, r.code === 0 && addr ? `eth0 ${addr}` : `? (${firstLine(r.stderr || r.stdout)})`]);
  }
  const rounds = o.warmup + o.iterations;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...nets].reverse() : nets;
    for (const n of order) {
      const s = res.get(n.engine.name)!;
      if (s.error) continue;
      const modes = (round + (n.engine.name === 'docker' ? 1 : 0)) % 2 ? (['none', 'bridge'] as const) : (['bridge', 'none'] as const);
      const t: Record<string, number> = {};
      for (const mode of modes) {
        const r = await cli(client, n.engine, ['run', '--rm', ...(mode === 'none' ? ['--network', 'none'] : []), 'busybox', 'true']);
        if (r.code !== 0) {
          s.error = `docker run --rm ${mode === 'none' ? '--network none ' : ''}busybox true → ${n.engine.name}: exit ${r.code}: ${firstLine(r.stderr || r.stdout)}`;
          failures.push(s.error);
          log(s.error);
          break;
        }
        t[mode] = r.ms;
      }
      if (s.error || round < o.warmup) continue;
      s.none.push(t.none!);
      s.bridge.push(t.bridge!);
      s.diff.push(t.bridge! - t.none!);
    }
    if (round === o.warmup - 1) log(`part 1: warm-up done, ${o.iterations} timed rounds`);
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// Part 2: throughput through a published port vs straight to the container

interface Transfer {
  published: number[];
  direct: number[];
  error?: string;
  port?: string;
  ip?: string;
}

async function waitTcp(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port });
      const done = (v: boolean) => {
        s.destroy();
        resolve(v);
      };
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
      s.setTimeout(1000, () => done(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listened on ${host}:${port} within ${timeoutMs} ms`);
}

/** One download with curl; MB/s (10^6 bytes per second of curl's total time). */
async function download(url: string, bytes: number, timeoutMs: number): Promise<number> {
  const env = { PATH: settings.baseEnv.PATH ?? '/usr/bin:/bin' }; // no *_proxy variables
  const r = await runCommand(
    'curl',
    ['-sS', '--noproxy', '*', '--max-time', String(Math.ceil(timeoutMs / 1000)), '-o', '/dev/null', '-w', '%{size_download} %{time_total}', url],
    env,
    timeoutMs + 5000,
  );
  if (r.code !== 0) throw new Error(`curl ${url}: exit ${r.code}: ${firstLine(r.stderr)}`);
  const [size, total] = r.stdout.trim().split(' ').map(Number);
  if (size !== bytes) throw new Error(`curl ${url}: got ${size} bytes, expected ${bytes}`);
  return bytes / total! / 1e6;
}

async function partThroughput(o: Options, nets: Net[], client: Client): Promise<Map<EngineName, Transfer>> {
  const res = new Map<EngineName, Transfer>();
  const bytes = o.transferMb * 1024 * 1024;
  const name = 'bench-net-httpd';
  const live: Net[] = [];
  for (const n of nets) {
    const t: Transfer = { published: [], direct: [] };
    res.set(n.engine.name, t);
    try {
      await mustCli(client, n.engine, [
        'run', '-d', '--name', name, '--shm-size', `${o.transferMb + 64}m`, '-p', '127.0.0.1::8080', 'busybox', 'sh', '-c',
        `dd if=/dev/zero of=/dev/shm/big bs=1048576 count=${o.transferMb} 2>/dev/null && exec httpd -f -p 8080 -h /dev/shm`,
      ]);
      const ins = await mustCli(client, n.engine, [
        'inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} {{(index (index .NetworkSettings.Ports "8080/tcp") 0).HostPort}}', name,
      ]);
      const [ip, port] = ins.stdout.trim().split(' ');
      if (!ip || !port || !net.isIPv4(ip) || !/^\d+$/.test(port)) throw new Error(`inspect gave address "${ip}" and published port "${port}"`);
      t.ip = ip;
      t.port = port;
      await waitTcp(ip, 8080, 60_000);
      if (n.engine.name === 'docker') {
        const proxies = [...processTable()].filter(([, p]) => p.comm === 'docker-proxy' && p.cmdline.includes(`-host-port ${port} `)).length;
        info.push(['docker published port', `127.0.0.1:${port} → ${ip}:8080, ${proxies} docker-proxy process(es) for it`]);
      }
      live.push(n);
    } catch (err) {
      t.error = (err as Error).message;
      failures.push(`${n.engine.name} throughput: ${t.error}`);
      log(`${n.engine.name} throughput: ${t.error}`);
    }
  }
  const urls = (t: Transfer) => ({ direct: `http://${t.ip}:8080/big`, published: `http://127.0.0.1:${t.port}/big` });
  // One untimed download of each path first (page cache, conntrack, proxy start-up).
  for (const n of live) {
    const t = res.get(n.engine.name)!;
    try {
      for (const u of Object.values(urls(t))) await download(u, bytes, o.timeoutMs);
    } catch (err) {
      t.error = (err as Error).message;
      failures.push(`${n.engine.name} throughput: ${t.error}`);
    }
  }
  for (let round = 0; round < o.transferIterations; round++) {
    const order = round % 2 ? [...live].reverse() : live;
    for (const n of order) {
      const t = res.get(n.engine.name)!;
      if (t.error) continue;
      const paths = round % 2 ? (['published', 'direct'] as const) : (['direct', 'published'] as const);
      try {
        for (const p of paths) {
          const mbs = await download(urls(t)[p], bytes, o.timeoutMs);
          t[p].push(mbs);
          if (settings.verbose) log(`${n.engine.name} ${p}: ${mbs.toFixed(0)} MB/s`);
        }
      } catch (err) {
        t.error = (err as Error).message;
        failures.push(`${n.engine.name} throughput: ${t.error}`);
        log(t.error);
      }
    }
    log(`part 2: round ${round + 1}/${o.transferIterations} done`);
  }
  for (const n of nets) await cli(client, n.engine, ['rm', '-f', name]);
  return res;
}

// ---------------------------------------------------------------------------------------------
// Report

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}
const med = (s: number[] | undefined) => (s && s.length ? quantile(s, 0.5) : NaN);
const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : '—');

function report(o: Options, nets: Net[], run?: Map<EngineName, RunSeries>, thr?: Map<EngineName, Transfer>): string {
  const out: string[] = [];
  const w = (s = '') => out.push(s);
  w();
  w(`network bench — ${new Date().toISOString()} — ${os.hostname()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}`);
  w(`  load average at start ${loadAtStart}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine adds noise)`);
  for (const [k, v] of info) w(`  ${k}: ${v}`);
  const engines = nets.map((n) => n.engine.name);
  const both = engines.includes('baleia') && engines.includes('docker');

  if (run) {
    w();
    w(`1. docker CLI \`run --rm busybox true\`, default bridge vs --network none; median of ${o.iterations} (after ${o.warmup} warm-up), ms`);
    const rows: string[][] = [];
    const get = (e: EngineName) => run.get(e);
    const cell = (e: EngineName, k: 'none' | 'bridge' | 'diff') => (get(e)?.error ? 'FAILED' : engines.includes(e) ? fmtMs(med(get(e)?.[k])) : '—');
    const r = (label: string, k: 'none' | 'bridge' | 'diff') =>
      rows.push([label, cell('baleia', k), cell('docker', k), both ? ratio(med(get('baleia')?.[k]), med(get('docker')?.[k])) : '—']);
    r('--network none', 'none');
    r('default bridge', 'bridge');
    r('added by the network (per-round bridge − none)', 'diff');
    const dm = (e: EngineName) => med(get(e)?.bridge) - med(get(e)?.none);
    rows.push(['added (difference of the medians)', fmtMs(dm('baleia')), fmtMs(dm('docker')), both ? ratio(dm('baleia'), dm('docker')) : '—']);
    const iqr = (e: EngineName) => {
      const d = get(e)?.diff;
      return !engines.includes(e) || get(e)?.error || !d?.length ? '—' : `${fmtMs(quantile(d, 0.25))}…${fmtMs(quantile(d, 0.75))}`;
    };
    rows.push(['  per-round differences, p25…p75', iqr('baleia'), iqr('docker'), '']);
    for (const l of table(['operation', 'baleia', 'docker', 'ratio'], rows)) w(l);
    for (const e of engines) if (get(e)?.error) w(`  ${e}: ${get(e)!.error}`);
    if (both) {
      const b = med(get('baleia')?.diff);
      const d = med(get('docker')?.diff);
      w(`target: network set-up adds less for baleia than for docker: ${fmtMs(b)} vs ${fmtMs(d)} ms — ${Number.isFinite(b) && Number.isFinite(d) && b < d ? 'MET' : 'NOT MET'}`);
    }
  }
  if (thr) {
    w();
    w(`2. HTTP download of ${o.transferMb} MiB (busybox httpd, file in /dev/shm; curl on the host), median of ${o.transferIterations}, MB/s`);
    const rows: string[][] = [];
    for (const e of engines) {
      const t = thr.get(e);
      if (!t) continue;
      const f = (k: 'published' | 'direct') => (t.error && !t[k].length ? 'FAILED' : `${med(t[k]).toFixed(0)}`);
      const via = e === 'docker' ? 'docker-proxy' : 'iptables DNAT';
      rows.push([e, `${t.ip ?? '?'}:8080`, f('direct'), `127.0.0.1:${t.port ?? '?'}`, via, f('published'), ratio(med(t.published), med(t.direct))]);
    }
    for (const l of table(['engine', 'direct to', 'MB/s', 'published', 'via', 'MB/s', 'published/direct'], rows)) w(l);
    for (const e of engines) if (thr.get(e)?.error) w(`  ${e}: ${thr.get(e)!.error}`);
    const b = thr.get('baleia');
    const d = thr.get('docker');
    if (b && d) w(`  published: baleia/docker ${ratio(med(b.published), med(d.published))}; direct: baleia/docker ${ratio(med(b.direct), med(d.direct))}`);
    if (b) {
      const rr = med(b.published) / med(b.direct);
      w(`target: baleia published ≥ 90 % of direct: ${Number.isFinite(rr) ? `${(rr * 100).toFixed(0)} %` : '—'} — ${rr >= 0.9 ? 'MET' : 'NOT MET'}`);
    }
  }
  w();
  for (const n of cleanupNotes) w(`cleanup: ${n}`);
  return out.join('\n') + '\n';
}

/** After every cleanup: anything of ours still there? */
function leftovers(nets: Net[]): string[] {
  const left: string[] = [];
  const names = nets.map((n) => n.bridge);
  for (const b of bridges()) if (names.includes(b)) left.push(`bridge ${b}`);
  const baleia = nets.find((n) => n.engine.name === 'baleia');
  const prefix = baleia ? `BN${baleia.bridge.slice(2).toUpperCase()}-` : undefined;
  for (const t of tables) {
    const rules = iptablesRules(t);
    for (const c of chainsOf(rules)) if (prefix && c.startsWith(prefix)) left.push(`chain ${t}/${c}`);
    for (const r of rules) if (names.some((b) => r.includes(` ${b} `) || r.endsWith(` ${b}`))) left.push(`rule ${t}: ${r}`);
  }
  return left;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  settings.verbose = o.verbose;
  settings.commandTimeoutMs = o.timeoutMs;
  if (process.getuid?.() !== 0) throw new Error('run as root: both engines and iptables need it');
  if (!existsSync(dockerCli)) throw new Error(`${dockerCli} (the docker CLI) is missing`);
  if (!which('iptables')) throw new Error('iptables is missing');
  if (o.parts.has('throughput') && !which('curl')) throw new Error('curl is missing (part 2 downloads with it)');
  settings.baseEnv = { ...process.env };
  for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'BALEIA_HOST', 'BALEIA_CONFIG', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'])
    delete settings.baseEnv[k];
  const started = Date.now();

  const tmp = mkdtempSync('/tmp/bn-');
  onCleanup('temp dir', () => {
    umountUnder(tmp);
    rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  });
  log(`working under ${tmp}`);
  const clients = makeClients(tmp);
  const nets = await startEngines(tmp, o, clients);
  await loadImages(tmp, nets, clients);

  let run: Map<EngineName, RunSeries> | undefined;
  let thr: Map<EngineName, Transfer> | undefined;
  if (o.parts.has('run')) {
    log('part 1: run --rm busybox true, bridge vs none');
    run = await partRun(o, nets, clients.docker);
  }
  if (o.parts.has('throughput')) {
    log('part 2: throughput, published port vs container address');
    thr = await partThroughput(o, nets, clients.docker);
  }
  // Stop everything now, so the report can say what each daemon left behind.
  log('cleaning up');
  runCleanups();
  const left = leftovers(nets);
  if (left.length) cleanupNotes.push(`STILL PRESENT after cleanup: ${left.join('; ')}`);
  else cleanupNotes.push('no bridge, chain or rule of the bench left');
  process.stdout.write(report(o, nets, run, thr));
  process.stdout.write(`(whole run ${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
}

main().then(
  () => process.exit(failures.length ? 2 : 0),
  (err: unknown) => {
    process.stderr.write(`bench: ${settings.verbose ? ((err as Error)?.stack ?? err) : ((err as Error)?.message ?? err)}\n`);
    runCleanups();
    process.exit(1);
  },
);
