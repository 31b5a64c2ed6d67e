/**
 * bench/engine.ts — baleia vs Docker's engine on this machine, side by side, in one run.
 *
 *   npm run build && node dist/bench/engine.js --iterations 20
 *
 * Starts a reference dockerd (Debian docker.io 20.10 + its managed containerd) and a baleiad, each
 * on its own temporary data root, exec root and socket; puts the same busybox image into both
 * (bootstrapped by baleia, `save`d, `docker load`ed); then times the same operations through the
 * same client (the real docker CLI) against both engines, and through baleia's own CLI too.
 * Prints medians, p90s and baleia/docker ratios. Everything it made is removed at the end, also
 * on failure and Ctrl-C: daemons, conmon/shim processes, container cgroups, mounts, temp dirs,
 * the bridge. No traffic leaves 127.0.0.0/8 and the containers' own (none/local bridge) networks;
 * nothing is pulled. Targets are reported, never asserted. See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type Client,
  type ClientName,
  type Engine,
  type EngineName,
  type RunResult,
  cli,
  cliMain,
  daemonRss,
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
  umountUnder,
  vmRssKb,
  which,
  eachFlag,
  intFlag,
  listFlag,
} from './common.js';

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  iterations: number;
  warmup: number;
  psContainers: number;
  psState: 'running' | 'created';
  engines: Set<EngineName>;
  clients: Set<ClientName>;
  defaultNetwork: boolean;
  ops: Set<string>;
  install: boolean;
  verbose: boolean;
  timeoutMs: number;
}

const allOps = ['run', 'create', 'exec', 'ps'];

const usage = `usage: node dist/bench/engine.js [options]

  --iterations N        timed samples per operation and engine/client pair (default 20)
  --warmup N            untimed samples before those (default 2)
  --ps-containers N     containers present while timing ps (default 100)
  --ps-state S          running (busybox sleep 600, default) or created
  --engines LIST        baleia,docker (default both; one alone prints no ratios)
  --clients LIST        docker,baleia (default both: the docker CLI and baleia's CLI)
  --ops LIST            run,create,exec,ps (default all; idle memory is always measured)
  --no-default-network  skip timing docker's default bridge network
  --no-install          fail instead of running bench/setup-docker.sh when dockerd is missing
  --timeout SECONDS     per timed command (default 30; a command killed at the timeout fails its pair)
  --verbose             print every command and failure as it happens
`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    iterations: 20,
    warmup: 2,
    psContainers: 100,
    psState: 'running',
    engines: new Set(['baleia', 'docker']),
    clients: new Set(['docker', 'baleia']),
    defaultNetwork: true,
    ops: new Set(allOps),
    install: true,
    verbose: false,
    timeoutMs: 30_000,
  };
  eachFlag(argv, (flag, value) => {
    switch (flag) {
      case '--iterations':
      case '-n':
        o.iterations = intFlag(flag, value(), 1);
        break;
      case '--warmup':
        o.warmup = intFlag(flag, value(), 0);
        break;
      case '--ps-containers':
        o.psContainers = intFlag(flag, value(), 0);
        break;
      case '--ps-state': {
        const v = value();
        if (v !== 'running' && v !== 'created') throw new Error('--ps-state is running or created');
        o.psState = v;
        break;
      }
      case '--engines':
      case '--clients': {
        const list = listFlag(flag, value(), ['baleia', 'docker'] as const);
        if (flag === '--engines') o.engines = list;
        else o.clients = list;
        break;
      }
      case '--ops': {
        o.ops = listFlag(flag, value(), allOps);
        break;
      }
      case '--no-default-network':
        o.defaultNetwork = false;
        break;
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
// Statistics and results

interface Series {
  samples: number[];
  error?: string;
}

const results = new Map<string, Series>(); // key: `${op}|${client}|${engine}`
const info: Array<[string, string]> = [];
const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ');
const failures: string[] = [];

function series(op: string, client: ClientName, engine: EngineName): Series {
  const key = `${op}|${client}|${engine}`;
  let s = results.get(key);
  if (!s) results.set(key, (s = { samples: [] }));
  return s;
}


// ---------------------------------------------------------------------------------------------
// Benchmarks

interface Variant {
  client: Client;
  engine: Engine;
}

/**
 * Times `sample` for every variant, interleaved (one sample of each in turn, so drift hits all
 * alike), after `warmup` untimed rounds. A variant that fails once is dropped for this operation.
 */
async function measure(
  op: string,
  variants: Variant[],
  o: Options,
  sample: (v: Variant) => Promise<number | Record<string, number>>,
): Promise<void> {
  log(`${op}: ${o.warmup} warm-up + ${o.iterations} timed rounds × ${variants.length} engine/client pairs`);
  const dead = new Set<Variant>();
  for (let i = 0; i < o.warmup + o.iterations; i++) {
    for (const v of variants) {
      if (dead.has(v)) continue;
      try {
        const t = await sample(v);
        if (i < o.warmup) continue;
        const parts = typeof t === 'number' ? { [op]: t } : t;
        for (const [name, ms] of Object.entries(parts)) series(name, v.client.name, v.engine.name).samples.push(ms);
      } catch (err) {
        dead.add(v);
        const msg = (err as Error).message;
        series(op, v.client.name, v.engine.name).error = msg;
        failures.push(`${op} [${v.client.label} → ${v.engine.name}]: ${msg}`);
        log(`FAILED ${op} [${v.client.label} → ${v.engine.name}]: ${msg}`);
      }
    }
  }
}

function timed(r: RunResult, what: string): number {
  if (r.code !== 0) throw new Error(`\`${what}\` exited ${r.code}: ${firstLine(r.stderr || r.stdout)}`);
  return r.ms;
}

async function removeAll(engine: Engine, dockerClient: Client, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 50) await cli(dockerClient, engine, ['rm', '-f', ...ids.slice(i, i + 50)], 180_000);
}

/** Starts (or creates) `n` busybox containers with a few commands in flight; returns their ids. */
async function populate(engine: Engine, dockerClient: Client, n: number, state: 'running' | 'created'): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  let error: Error | undefined;
  const worker = async () => {
    while (!error && next < n) {
      next++;
      const args = state === 'running' ? ['run', '-d', '--network', 'none', 'busybox', 'sleep', '600'] : ['create', '--network', 'none', 'busybox', 'sleep', '600'];
      const r = await cli(dockerClient, engine, args, 120_000);
      const id = r.stdout.trim().split('\n').pop() ?? '';
      if (id) ids.push(id);
      if (r.code !== 0) error = new Error(`\`${args.join(' ')}\` exited ${r.code}: ${firstLine(r.stderr)}`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  if (error) {
    await removeAll(engine, dockerClient, ids);
    throw error;
  }
  return ids;
}

/** Gets the same busybox:latest into every engine; returns a note on where it came from. */
async function loadImages(tmp: string, engines: Engine[], clients: Record<ClientName, Client>): Promise<void> {
  const baleia = engines.find((e) => e.name === 'baleia');
  const docker = engines.find((e) => e.name === 'docker');
  const tarFile = path.join(tmp, 'busybox.tar');
  let haveTar = false;
  if (baleia) {
    await mustCli(clients.baleia, baleia, ['image', 'bootstrap', 'busybox'], 180_000);
    await mustCli(clients.baleia, baleia, ['save', '-o', tarFile, 'busybox:latest'], 120_000);
    haveTar = existsSync(tarFile) && statSync(tarFile).size > 0;
    if (!haveTar) throw new Error(`baleia save -o ${tarFile} busybox:latest wrote nothing`);
  }
  if (docker) {
    if (haveTar) {
      await mustCli(clients.docker, docker, ['load', '-i', tarFile], 120_000);
      info.push(['image', `busybox:latest bootstrapped by baleia from /bin/busybox, saved (${(statSync(tarFile).size / 1e6).toFixed(1)} MB) and docker-loaded`]);
    } else {
      // baleia is not in this run: import the same host busybox into docker directly.
      const rootfs = path.join(tmp, 'rootfs');
      mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
      copyFileSync(which('busybox') ?? '/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
      for (const applet of ['sh', 'true', 'sleep', 'ls', 'cat']) symlinkSync('busybox', path.join(rootfs, 'bin', applet));
      const rootTar = path.join(tmp, 'rootfs.tar');
      const t = spawnSync('tar', ['-C', rootfs, '--numeric-owner', '-cf', rootTar, '.']);
      if (t.status !== 0) throw new Error('tar of the busybox rootfs failed');
      await mustCli(clients.docker, docker, ['import', '--change', 'CMD ["sh"]', rootTar, 'busybox:latest']);
      info.push(['image', 'busybox:latest imported into docker from the host /bin/busybox (baleia not in this run)']);
    }
  }
  const ids: string[] = [];
  for (const e of engines) {
    const r = await cli(clients.docker, e, ['image', 'inspect', '--format', '{{.Id}}', 'busybox:latest']);
    ids.push(`${e.name} ${r.code === 0 ? r.stdout.trim().slice(0, 19) : `? (${firstLine(r.stderr)})`}`);
  }
  info.push(['image ids', ids.join(', ')]);
}

// ---------------------------------------------------------------------------------------------
// Report


function printReport(o: Options, engines: Engine[], memory: Array<[string, number, number, string]>): void {
  const out: string[] = [];
  const w = (s = '') => out.push(s);
  w();
  w(`baleia vs docker — ${new Date().toISOString()} — ${os.hostname()}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}`);
  w(`  load average at start ${loadAtStart}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine adds noise)`);
  for (const e of engines) w(`  ${e.version}; ready in ${fmtMs(e.startupMs)} ms after spawn`);
  for (const [k, v] of info) w(`  ${k}: ${v}`);
  w(`  ${o.iterations} timed samples per cell (after ${o.warmup} warm-up), interleaved; milliseconds, wall clock of the whole client command; ratio = baleia / docker medians`);
  w();
  const ops = [...new Set([...results.keys()].map((k) => k.split('|')[0]!))];
  const header = ['operation', 'client', 'baleia med', 'p90', 'docker med', 'p90', 'ratio'];
  const rows: string[][] = [];
  const pairs: Array<[string, ClientName, ClientName]> = [
    ['docker CLI', 'docker', 'docker'],
    ['baleia CLI', 'baleia', 'baleia'],
    ['own CLI', 'baleia', 'docker'],
  ];
  for (const op of ops) {
    for (const [label, bc, dc] of pairs) {
      if (label === 'own CLI' && !(o.clients.has('baleia') && o.clients.has('docker'))) continue;
      const b = results.get(`${op}|${bc}|baleia`);
      const d = results.get(`${op}|${dc}|docker`);
      if (!b && !d) continue;
      if (label === 'own CLI' && (!b || !d)) continue;
      const cell = (s: Series | undefined): [string, string] =>
        !s ? ['', ''] : s.samples.length ? [fmtMs(quantile(s.samples, 0.5)), fmtMs(quantile(s.samples, 0.9))] : ['FAILED', ''];
      const bm = b?.samples.length ? quantile(b.samples, 0.5) : NaN;
      const dm = d?.samples.length ? quantile(d.samples, 0.5) : NaN;
      const ratio = Number.isFinite(bm) && Number.isFinite(dm) && dm > 0 ? `${(bm / dm).toFixed(2)}×` : '—';
      rows.push([op, label, ...cell(b), ...cell(d), ratio]);
    }
  }
  for (const [what, bkb, dkb, note] of memory) {
    const ratio = bkb > 0 && dkb > 0 ? `${(bkb / dkb).toFixed(2)}×` : '—';
    const mb = (kb: number) => (kb > 0 ? `${(kb / 1024).toFixed(1)} MB` : '—');
    rows.push([what, note, mb(bkb), '', mb(dkb), '', ratio]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  w(line(header));
  w(widths.map((n) => '-'.repeat(n)).join('  '));
  for (const r of rows) w(line(r));
  w();

  // Targets (reported, not asserted).
  const med = (op: string, c: ClientName, e: EngineName) => {
    const s = results.get(`${op}|${c}|${e}`);
    return s?.samples.length ? quantile(s.samples, 0.5) : NaN;
  };
  const runOp = 'run --rm true';
  const fair = med(runOp, 'docker', 'baleia') / med(runOp, 'docker', 'docker');
  const own = med(runOp, 'baleia', 'baleia') / med(runOp, 'docker', 'docker');
  const verdict = (r: number, max: number) => (Number.isFinite(r) ? `${r.toFixed(2)}× — ${r <= max ? 'MET' : 'NOT MET'}` : 'not measured');
  w(`target: run --rm … true at most 1/3 of docker's median: docker CLI on both ${verdict(fair, 1 / 3)}; own CLIs ${verdict(own, 1 / 3)}`);
  const idle = memory.find((m) => m[0] === 'idle memory (after load)');
  w(`target: baleiad idle memory below dockerd+containerd: ${idle && idle[1] > 0 && idle[2] > 0 ? `${(idle[1] / 1024).toFixed(1)} MB vs ${(idle[2] / 1024).toFixed(1)} MB — ${idle[1] < idle[2] ? 'MET' : 'NOT MET'}` : 'not measured'}`);
  const dn = med('run --rm true (default network)', 'docker', 'docker');
  const dnone = med(runOp, 'docker', 'docker');
  if (Number.isFinite(dn) && Number.isFinite(dnone))
    w(`docker's default bridge network costs ${fmtMs(dn - dnone)} ms per run --rm (${fmtMs(dn)} vs ${fmtMs(dnone)} ms with --network none; private bridge, no iptables)`);
  if (failures.length) {
    w();
    w('failures (first error of each dropped engine/client pair):');
    for (const f of failures) w(`  - ${f}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  settings.verbose = o.verbose;
  settings.commandTimeoutMs = o.timeoutMs;
  if (process.getuid?.() !== 0) throw new Error('run as root: both engines need it');
  if (!existsSync(dockerCli)) throw new Error(`${dockerCli} (the docker CLI) is missing`);
  settings.baseEnv = { ...process.env };
  for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'BALEIA_HOST', 'BALEIA_CONFIG', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'])
    delete settings.baseEnv[k];

  const tmp = mkdtempSync('/tmp/bb-');
  onCleanup('temp dir', () => {
    umountUnder(tmp);
    rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
  });
  log(`working under ${tmp}`);
  const clients = makeClients(tmp);

  const engines: Engine[] = [];
  if (o.engines.has('docker')) {
    log('starting reference dockerd');
    engines.push(await startDocker(tmp, o));
  }
  if (o.engines.has('baleia')) {
    log('starting baleiad');
    try {
      engines.push(await startBaleia(tmp));
    } catch (err) {
      failures.push(`baleiad: ${(err as Error).message}`);
      log(`baleiad unavailable: ${(err as Error).message}`);
    }
  }
  try {
    await loadImages(tmp, engines, clients);
  } catch (err) {
    const b = engines.findIndex((e) => e.name === 'baleia');
    if (b < 0) throw err;
    // baleia could not provide the image: drop it and carry on with docker alone.
    failures.push(`image (baleia): ${(err as Error).message}`);
    log(`baleia image failed, continuing with docker only: ${(err as Error).message}`);
    engines.splice(b, 1);
    if (!engines.length) throw err;
    await loadImages(tmp, engines, clients);
  }
  const byName = (n: EngineName) => engines.find((e) => e.name === n);
  const memory: Array<[string, number, number, string]> = [];
  const memRow = (what: string, note: string) => {
    const b = byName('baleia');
    const d = byName('docker');
    const bm = daemonRss(b?.daemonPid());
    const dm = daemonRss(d?.daemonPid());
    memory.push([what, bm.kb, dm.kb, note]);
    info.push([`${what} parts (MB)`, `baleia: ${bm.parts.join(' + ') || '—'}; docker: ${dm.parts.join(' + ') || '—'}`]);
  };
  await sleep(2000);
  memRow('idle memory (after load)', 'VmRSS sum');

  // What a client costs before it talks to any engine: explains most of the "own CLI" rows.
  {
    const startup: Array<[string, string, string[]]> = [
      ['docker --version', dockerCli, ['--version']],
      ['baleia --version', process.execPath, [cliMain, '--version']],
      ['node -e 0', process.execPath, ['-e', '0']],
    ];
    const times = startup.map(() => [] as number[]);
    for (let i = 0; i < o.warmup + o.iterations; i++)
      for (const [k, [, cmd, args]] of startup.entries()) {
        const r = await runCommand(cmd, args, settings.baseEnv);
        if (i >= o.warmup && r.code === 0) times[k]!.push(r.ms);
      }
    info.push(['client start-up, no daemon (median ms)', startup.map(([name], k) => `${name} ${fmtMs(quantile(times[k]!, 0.5))}`).join(', ')]);
  }

  const variants: Variant[] = [];
  for (const c of ['docker', 'baleia'] as const) {
    if (!o.clients.has(c)) continue;
    for (const e of engines) variants.push({ client: clients[c], engine: e });
  }

  // 1. run --rm … true, end to end. On docker, the same on its default (bridge) network in the
  //    same round, so the difference is what that network costs (baleia's is not timed here).
  const docker = byName('docker');
  const netFailed = new Set<Variant>();
  if (o.ops.has('run'))
    await measure('run --rm true', variants, o, async (v) => {
      const none = timed(await cli(v.client, v.engine, ['run', '--rm', '--network', 'none', 'busybox', 'true']), 'run --rm --network none busybox true');
      if (!o.defaultNetwork || v.engine !== docker || netFailed.has(v)) return none;
      const r = await cli(v.client, v.engine, ['run', '--rm', 'busybox', 'true']);
      if (r.code === 0) return { 'run --rm true': none, 'run --rm true (default network)': r.ms };
      netFailed.add(v);
      const msg = `\`run --rm busybox true\` exited ${r.code}: ${firstLine(r.stderr || r.stdout)}`;
      series('run --rm true (default network)', v.client.name, v.engine.name).error = msg;
      failures.push(`run --rm true (default network) [${v.client.label} → docker]: ${msg}`);
      return none;
    });

  // 2. create + start + wait, each a separate client command; the container is removed untimed.
  if (o.ops.has('create')) await measure('create+start+wait', variants, o, async (v) => {
    const c = await cli(v.client, v.engine, ['create', '--network', 'none', 'busybox', 'true']);
    const createMs = timed(c, 'create --network none busybox true');
    const id = c.stdout.trim().split('\n').pop()!;
    try {
      const startMs = timed(await cli(v.client, v.engine, ['start', id]), `start ${id}`);
      const w = await cli(v.client, v.engine, ['wait', id]);
      const waitMs = timed(w, `wait ${id}`);
      if (w.stdout.trim() !== '0') throw new Error(`wait ${id} printed ${JSON.stringify(w.stdout.trim())}, expected 0`);
      return { 'create+start+wait': createMs + startMs + waitMs, '  create': createMs, '  start': startMs, '  wait': waitMs };
    } finally {
      await cli(clients.docker, v.engine, ['rm', '-f', id]);
    }
  });

  // 3. exec true into a running container (one per engine, shared by both clients).
  const execTargets = new Map<Engine, string>();
  for (const e of o.ops.has('exec') ? engines : []) {
    const r = await cli(clients.docker, e, ['run', '-d', '--network', 'none', 'busybox', 'sleep', '600'], 120_000);
    const id = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code === 0 && id) execTargets.set(e, id);
    else {
      if (id) await cli(clients.docker, e, ['rm', '-f', id]);
      const msg = `run -d busybox sleep 600 exited ${r.code}: ${firstLine(r.stderr)}`;
      for (const c of o.clients) series('exec true', c, e.name).error = msg;
      failures.push(`exec true [setup → ${e.name}]: ${msg}`);
    }
  }
  if (execTargets.size) await measure(
    'exec true',
    variants.filter((v) => execTargets.has(v.engine)),
    o,
    async (v) => timed(await cli(v.client, v.engine, ['exec', execTargets.get(v.engine)!, 'true']), 'exec <c> true'),
  );
  for (const [e, id] of execTargets) await cli(clients.docker, e, ['rm', '-f', id]);

  // 4. ps with N containers present (running `sleep 600`, or only created).
  const psOp = `ps (${o.psContainers} ${o.psState})`;
  const populated = new Map<Engine, string[]>();
  for (const e of o.ops.has('ps') ? engines : []) {
    log(`${e.name}: ${o.psState === 'running' ? 'starting' : 'creating'} ${o.psContainers} containers`);
    const t0 = Date.now();
    try {
      populated.set(e, await populate(e, clients.docker, o.psContainers, o.psState));
      info.push([`${e.name}: ${o.psContainers} containers ${o.psState} (4 docker CLI commands in flight) in`, `${((Date.now() - t0) / 1000).toFixed(1)} s`]);
    } catch (err) {
      const msg = `populating: ${(err as Error).message}`;
      for (const c of o.clients) series(psOp, c, e.name).error = msg;
      failures.push(`${psOp} [setup → ${e.name}]: ${msg}`);
    }
  }
  const psArgs = o.psState === 'running' ? ['ps'] : ['ps', '-a'];
  if (populated.size) await measure(
    psOp,
    variants.filter((v) => populated.has(v.engine)),
    o,
    async (v) => {
      const r = await cli(v.client, v.engine, psArgs);
      const ms = timed(r, psArgs.join(' '));
      const lines = r.stdout.trim().split('\n').length - 1;
      if (lines < o.psContainers) throw new Error(`${psArgs.join(' ')} listed ${lines} containers, expected ≥ ${o.psContainers}`);
      return ms;
    },
  );
  if (o.psState === 'running' && populated.size) {
    await sleep(1000);
    memRow(`memory, ${o.psContainers} running`, 'daemons only');
    const b = byName('baleia');
    const d = byName('docker');
    const perMonitor = (e: Engine | undefined) => {
      if (!e || !populated.has(e)) return 0;
      const pids = e.monitorPids();
      return pids.length ? pids.reduce((a, p) => a + vmRssKb(p), 0) / pids.length : 0;
    };
    memory.push(['monitor per container', perMonitor(b), perMonitor(d), 'conmon | shim']);
  }
  for (const [e, ids] of populated) {
    log(`${e.name}: removing ${ids.length} containers`);
    await removeAll(e, clients.docker, ids);
  }
  await sleep(2000);
  memRow('idle memory (after benches)', 'VmRSS sum');

  printReport(o, engines, memory);
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
