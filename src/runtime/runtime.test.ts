import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isKind } from '../lib/index.js';
import {
  Runtime,
  buildSpec,
  hostCapabilities,
  hostRlimits,
  startFailureExitCode,
  type SpecInput,
} from './index.js';

const haveTools = (() => {
  try {
    execFileSync('runc', ['--version']);
    execFileSync('/usr/bin/conmon', ['--version']);
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
})();
const skip = haveTools ? false : 'needs root, runc and conmon';

let tmp: string;
let rootfs: string;
let rt: Runtime;
const made: string[] = [];

async function makeRootfs(dir: string): Promise<void> {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'sbin']) await fs.mkdir(path.join(dir, d), { recursive: true });
  await fs.copyFile('/bin/busybox', path.join(dir, 'bin/busybox'));
  await fs.chmod(path.join(dir, 'bin/busybox'), 0o755);
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') await fs.symlink('busybox', path.join(dir, 'bin', a)).catch(() => {});
  await fs.writeFile(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  await fs.writeFile(path.join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await fs.mkdir(path.join(dir, 'adir'));
}

function newId(): string {
  const id = `baleia-test-${randomBytes(5).toString('hex')}`;
  made.push(id);
  return id;
}

function specFor(id: string, over: Partial<SpecInput> = {}): Promise<object> {
  return (async () =>
    buildSpec({
      id,
      rootfs,
      args: ['sh', '-c', 'echo hello'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      user: { uid: 0, gid: 0 },
      terminal: false,
      hostname: 'box',
      network: { mode: 'new' },
      cgroupsPath: `/baleia-test/${id}`,
      cgroupVersion: rt.cgroups.version,
      resources: {},
      hostCapabilities: await hostCapabilities(),
      hostRlimits: await hostRlimits(),
      ...over,
    }))();
}

interface Ran {
  id: string;
  logPath: string;
}

async function create(over: Partial<SpecInput> = {}, opts: { openStdin?: boolean; stdinOnce?: boolean; terminal?: boolean } = {}): Promise<Ran> {
  const id = newId();
  const bundle = path.join(tmp, 'bundles', id);
  const logPath = path.join(bundle, 'ctr.log');
  await rt.create(id, {
    bundle,
    spec: await specFor(id, { terminal: !!opts.terminal, ...over }),
    terminal: !!opts.terminal,
    openStdin: !!opts.openStdin,
    stdinOnce: opts.stdinOnce,
    logPath,
  });
  return { id, logPath };
}

async function runToEnd(over: Partial<SpecInput> = {}): Promise<{ exitCode: number; oomKilled: boolean; out: string; id: string }> {
  const c = await create(over);
  await rt.start(c.id);
  const st = await rt.waitExit(c.id, { signal: AbortSignal.timeout(30000) });
  const out = await readAll(c.logPath);
  await rt.delete(c.id);
  return { ...st, out, id: c.id };
}

async function readAll(logPath: string): Promise<string> {
  let out = '';
  for await (const e of rt.readLogs(logPath, {})) out += e.data.toString();
  return out;
}

describe('runtime driver (runc + conmon)', { skip }, () => {
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-rt-'));
    rootfs = path.join(tmp, 'rootfs');
    await makeRootfs(rootfs);
    rt = new Runtime({ execRoot: path.join(tmp, 'exec') });
    await rt.init();
  });

  after(async () => {
    const root = path.join(tmp, 'exec');
    for (const id of made) {
      try {
        execFileSync('runc', ['--root', path.join(root, 'runc'), 'delete', '-f', id], { stdio: 'ignore' });
      } catch {
        // already gone
      }
      try {
        const pid = Number(await fs.readFile(path.join(root, 'containers', id, 'conmon.pid'), 'utf8'));
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const m of new Set(Object.values(rt.cgroups.controllers))) {
      for (const id of made) await fs.rmdir(path.join(m, 'baleia-test', id)).catch(() => {});
      await fs.rmdir(path.join(m, 'baleia-test')).catch(() => {});
    }
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('runs a command and writes its output to the log', async () => {
    const r = await runToEnd({ args: ['sh', '-c', 'echo hello; echo oops >&2'] });
    assert.equal(r.exitCode, 0);
    assert.match(r.out, /hello\n/);
    assert.match(r.out, /oops\n/);
  });

  for (const [cmd, code] of [
    [['true'], 0],
    [['false'], 1],
    [['sh', '-c', 'exit 32'], 32],
  ] as const) {
    it(`propagates exit code ${code} of ${cmd.join(' ')}`, async () => {
      assert.equal((await runToEnd({ args: [...cmd] })).exitCode, code);
    });
  }

  it('fails create of a missing command with runc\'s reason and leaves nothing behind', async () => {
    const id = newId();
    const bundle = path.join(tmp, 'bundles', id);
    await assert.rejects(
      rt.create(id, { bundle, spec: await specFor(id, { args: ['nope'] }), terminal: false, openStdin: false, logPath: path.join(bundle, 'log') }),
      (err: Error) => {
        assert.ok(isKind(err, 'InvalidArgument'), err.message);
        assert.match(err.message, /exec: "nope": executable file not found in \$PATH/);
        assert.equal(startFailureExitCode(err.message), 127);
        return true;
      },
    );
    assert.equal(await fs.stat(path.join(tmp, 'exec/containers', id)).catch(() => undefined), undefined);
    assert.equal(await fs.stat(path.join(tmp, 'exec/runc', id)).catch(() => undefined), undefined);
    const memory = rt.cgroups.version === 2 ? rt.cgroups.root : rt.cgroups.controllers.memory;
    assert.equal(await fs.stat(path.join(memory, 'baleia-test', id)).catch(() => undefined), undefined);
    const procs = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    assert.ok(!procs.includes(id), 'no conmon left for the failed container');
  });

  it('fails create of a directory as command with a 126 reason', async () => {
    const id = newId();
    const bundle = path.join(tmp, 'bundles', id);
    await assert.rejects(
      rt.create(id, { bundle, spec: await specFor(id, { args: ['/adir'] }), terminal: false, openStdin: false, logPath: path.join(bundle, 'log') }),
      (err: Error) => {
        assert.ok(isKind(err, 'InvalidArgument'), err.message);
        assert.equal(startFailureExitCode(err.message), 126);
        return true;
      },
    );
  });

  it('sets env, cwd, user, hostname; the command is pid 1; only lo; host processes invisible', async () => {
    const r = await runToEnd({
      args: ['sh', '-c', 'echo "v=$FOO"; pwd; id -u; id -g; hostname; echo "pid=$$"; ls /sys/class/net; ps -o pid | wc -l'],
      env: ['PATH=/bin', 'FOO=bar'],
      cwd: '/tmp',
      user: { uid: 65534, gid: 65534 },
    });
    assert.equal(r.exitCode, 0, r.out);
    const lines = r.out.trim().split('\n');
    assert.deepEqual(lines.slice(0, 7), ['v=bar', '/tmp', '65534', '65534', 'box', 'pid=1', 'lo']);
    assert.ok(Number(lines[7]) <= 4, `few processes visible: ${lines[7]}`);
  });

  it('applies the memory limit, shown in the container\'s own cgroup, and reports an OOM kill', async () => {
    const limit = 32 * 1024 * 1024;
    const file = rt.cgroups.version === 2 ? '/sys/fs/cgroup/memory.max' : '/sys/fs/cgroup/memory/memory.limit_in_bytes';
    const shown = await runToEnd({ args: ['cat', file], resources: { memory: limit } });
    assert.equal(shown.out.trim(), String(limit));
    const hog = await runToEnd({
      args: ['sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'],
      resources: { memory: limit, memorySwap: limit },
    });
    assert.equal(hog.exitCode, 137, hog.out);
    assert.equal(hog.oomKilled, true);
  });

  it('applies a cpu quota and a pids limit that stops a fork bomb', async () => {
    const cpu = rt.cgroups.version === 2 ? 'cat /sys/fs/cgroup/cpu.max' : 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us';
    const q = await runToEnd({ args: ['sh', '-c', cpu], resources: { nanoCpus: 500_000_000 } });
    assert.match(q.out.replace(/\n/g, ' '), /50000 100000/);
    const bomb = await runToEnd({
      args: ['sh', '-c', 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo looped'],
      resources: { pidsLimit: 10 },
    });
    assert.match(bomb.out, /can't fork|Resource temporarily unavailable/);
    const pidsFile = rt.cgroups.version === 2 ? '/sys/fs/cgroup/pids.max' : '/sys/fs/cgroup/pids/pids.max';
    assert.equal((await runToEnd({ args: ['cat', pidsFile], resources: { pidsLimit: 10 } })).out.trim(), '10');
  });

  it('keeps nofile at the host hard limit', async () => {
    const r = await runToEnd({ args: ['sh', '-c', 'ulimit -n'] });
    assert.equal(r.out.trim(), String((await hostRlimits()).nofile?.hard));
  });

  it('lets a new Runtime instance wait for and kill a container started by another', async () => {
    const c = await create({ args: ['sleep', '1000'] });
    await rt.start(c.id);
    const other = new Runtime({ execRoot: path.join(tmp, 'exec') });
    await other.init();
    assert.equal((await other.state(c.id)).status, 'running');
    const waiting = other.waitExit(c.id, { signal: AbortSignal.timeout(20000) });
    await other.kill(c.id, 'SIGKILL');
    const st = await waiting;
    assert.equal(st.exitCode, 137);
    assert.equal(st.oomKilled, false);
    assert.equal((await other.state(c.id)).status, 'stopped');
    await other.delete(c.id);
    await other.delete(c.id);
  });

  it('keeps a container running when the daemon is SIGKILLed; a new process attaches, execs, kills and waits', async () => {
    const id = newId();
    const bundle = path.join(tmp, 'bundles', id);
    const spec = await specFor(id, { args: ['cat'] });
    const script = path.join(tmp, `daemon-${id}.mjs`);
    const runtimeUrl = new URL('./index.js', import.meta.url).href;
    await fs.writeFile(script, `
      import { Runtime } from ${JSON.stringify(runtimeUrl)};
      const rt = new Runtime({ execRoot: ${JSON.stringify(path.join(tmp, 'exec'))} });
      await rt.init();
      await rt.create(${JSON.stringify(id)}, { bundle: ${JSON.stringify(bundle)}, spec: ${JSON.stringify(spec)},
        terminal: false, openStdin: true, logPath: ${JSON.stringify(path.join(bundle, 'log'))} });
      await rt.start(${JSON.stringify(id)});
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);
    `);
    const { spawn } = await import('node:child_process');
    const daemon = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      daemon.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      daemon.on('exit', (code) => reject(new Error(`daemon exited ${code}`)));
    });
    daemon.kill('SIGKILL');
    await new Promise((r) => daemon.once('exit', r));

    const fresh = new Runtime({ execRoot: path.join(tmp, 'exec') });
    await fresh.init();
    assert.equal((await fresh.state(id)).status, 'running');
    const io = await fresh.attach(id);
    let out = '';
    io.onData((_s, d) => (out += d.toString()));
    io.write(Buffer.from('still here\n'));
    const e = await fresh.exec(id, { args: ['echo', 'exec ok'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 }, terminal: false, openStdin: false });
    let execOut = '';
    e.onData((_s, d) => (execOut += d.toString()));
    assert.equal((await e.exit).exitCode, 0);
    assert.equal(execOut, 'exec ok\n');
    const waiting = fresh.waitExit(id, { signal: AbortSignal.timeout(20000) });
    for (let i = 0; i < 50 && !out; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(out, 'still here\n');
    // pid 1 ignores SIGTERM without a handler (as under Docker), so KILL.
    await fresh.kill(id, 'KILL');
    assert.equal((await waiting).exitCode, 137);
    io.close();
    await fresh.delete(id);
  });

  it('rejects unknown signals and deleting a running container without force', async () => {
    const c = await create({ args: ['sleep', '1000'] });
    await rt.start(c.id);
    await assert.rejects(rt.kill(c.id, 'SIGNOPE'), (e: Error) => isKind(e, 'InvalidArgument'));
    await assert.rejects(rt.delete(c.id), (e: Error) => isKind(e, 'Conflict'));
    await rt.pause(c.id);
    assert.equal((await rt.state(c.id)).status, 'paused');
    await rt.resume(c.id);
    const pids = await rt.pids(`/baleia-test/${c.id}`);
    assert.equal(pids.length, 1);
    const stats = await rt.stats(`/baleia-test/${c.id}`);
    assert.ok(stats.memory.usage > 0);
    assert.equal(stats.pids.current, 1);
    await rt.delete(c.id, { force: true });
    await assert.rejects(rt.state(c.id), (e: Error) => isKind(e, 'NotFound'));
  });

  it('execs with output, exit code, and reports a missing binary like Docker', async () => {
    const c = await create({ args: ['sleep', '1000'] });
    await rt.start(c.id);
    const user = { uid: 0, gid: 0 };
    const s = await rt.exec(c.id, { args: ['sh', '-c', 'echo out; echo err >&2; exit 3'], env: ['PATH=/bin'], cwd: '/', user, terminal: false, openStdin: false });
    const got: Record<string, string> = { stdout: '', stderr: '' };
    s.onData((stream, d) => (got[stream] += d.toString()));
    assert.deepEqual(await s.exit, { exitCode: 3 });
    assert.deepEqual(got, { stdout: 'out\n', stderr: 'err\n' });

    const missing = await rt.exec(c.id, { args: ['nope'], env: ['PATH=/bin'], cwd: '/', user, terminal: false, openStdin: false });
    const m = await missing.exit;
    assert.equal(m.exitCode, 127);
    assert.match(m.error ?? '', /^OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": executable file not found in \$PATH: unknown$/);

    const cat = await rt.exec(c.id, { args: ['cat'], env: ['PATH=/bin'], cwd: '/', user, terminal: false, openStdin: true });
    let echoed = '';
    cat.onData((_s, d) => (echoed += d.toString()));
    cat.write(Buffer.from('ping\n'));
    cat.closeStdin();
    assert.equal((await cat.exit).exitCode, 0);
    assert.equal(echoed, 'ping\n');

    const tty = await rt.exec(c.id, { args: ['sh', '-c', 'stty size; tty'], env: ['PATH=/bin'], cwd: '/', user, terminal: true, openStdin: false, size: { width: 100, height: 30 } });
    let ttyOut = '';
    tty.onData((stream, d) => {
      assert.equal(stream, 'stdout');
      ttyOut += d.toString();
    });
    assert.equal((await tty.exit).exitCode, 0);
    assert.match(ttyOut, /30 100\r\n\/dev\/pts\/\d+/);
    await rt.delete(c.id, { force: true });
  });

  it('attaches before start: stdin reaches the process, output comes back', async () => {
    const c = await create({ args: ['cat'] }, { openStdin: true, stdinOnce: true });
    const io = await rt.attach(c.id);
    let out = '';
    io.onData((_s, d) => (out += d.toString()));
    io.write(Buffer.from('hello attach\n'));
    await rt.start(c.id);
    io.closeStdin();
    const st = await rt.waitExit(c.id, { signal: AbortSignal.timeout(20000) });
    await io.closed;
    assert.equal(st.exitCode, 0);
    assert.equal(out, 'hello attach\n');
    assert.equal(await readAll(c.logPath), 'hello attach\n');
    await rt.delete(c.id);
  });

  it('runs with a TTY and resizes it', async () => {
    const c = await create({ args: ['sh', '-c', 'sleep 0.5; stty size'] }, { terminal: true });
    await rt.start(c.id);
    await rt.resize(c.id, { width: 120, height: 40 });
    const st = await rt.waitExit(c.id, { signal: AbortSignal.timeout(20000) });
    assert.equal(st.exitCode, 0);
    assert.equal((await readAll(c.logPath)).trim(), '40 120');
    await rt.delete(c.id);
  });

  it('runs tini as pid 1 with init', async () => {
    const r = await runToEnd({ args: ['sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "'], init: true });
    assert.equal(r.exitCode, 0, r.out);
    assert.match(r.out, /^\/sbin\/docker-init -- sh -c/);
  });

  it('follows logs until the container exits', async () => {
    const c = await create({ args: ['sh', '-c', 'for i in 1 2 3; do echo line$i; sleep 0.2; done'] });
    await rt.start(c.id);
    const done = rt.waitExit(c.id);
    const lines: string[] = [];
    for await (const e of rt.readLogs(c.logPath, { follow: true, stopWhen: done })) lines.push(e.data.toString());
    assert.deepEqual(lines, ['line1\n', 'line2\n', 'line3\n']);
    const tail: string[] = [];
    for await (const e of rt.readLogs(c.logPath, { tail: 2 })) tail.push(e.data.toString());
    assert.deepEqual(tail, ['line2\n', 'line3\n']);
    await rt.delete(c.id);
  });
});
