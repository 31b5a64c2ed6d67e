/**
 * The conmon + runc driver. See index.ts for the lifecycle and the on-disk layout.
 */
import { spawn } from 'node:child_process';
import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Socket } from 'node:net';
import {
  BaleiaError,
  Owner,
  conflict,
  errnoCode,
  internal,
  invalidArgument,
  notFound,
  run,
  silentLogger,
  writeJsonAtomic,
  type Logger,
} from '../lib/index.js';
import { connectAttach, type AttachSession, type StdStream } from './attach.js';
import { capabilitySet } from './capabilities.js';
import {
  cgroupPids,
  detectCgroups,
  oomKillCount,
  readStats,
  removeCgroupDirs,
  type CgroupInfo,
  type CgroupStats,
} from './cgroups.js';
import { hostCapabilities, resolveDevice } from './host.js';
import { readLogs, type LogEntry, type ReadLogsOptions } from './logs.js';
import { parseSignal } from './signals.js';

export interface RuntimeOptions {
  /** tmpfs state root, e.g. /run/baleia. */
  execRoot: string;
  runtimePath?: string;
  conmonPath?: string;
  logger?: Logger;
}

export interface CreateOptions {
  /** Where the persistent copy of config.json goes (the engine's container dir). */
  bundle: string;
  spec: object;
  terminal: boolean;
  openStdin: boolean;
  /** Close the container's stdin when the first attached client disconnects (Docker's StdinOnce). */
  stdinOnce?: boolean;
  logPath: string;
  logMaxSize?: number;
  signal?: AbortSignal;
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'stopped' | 'unknown';

export interface ExitStatus {
  exitCode: number;
  /** RFC3339 (from the exit file's mtime). */
  exitedAt: string;
  oomKilled: boolean;
}

export interface ExecOptions {
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids?: number[] };
  terminal: boolean;
  openStdin: boolean;
  privileged?: boolean;
  capAdd?: string[];
  /** No attach: output is discarded, the session still reports the exit code. */
  detach?: boolean;
  size?: { width: number; height: number };
  signal?: AbortSignal;
}

export interface ExecSession {
  id: string;
  /** The exec'd process's host pid; 0 when it could not be started. */
  pid: number;
  onData(cb: (stream: StdStream, data: Buffer) => void): void;
  write(data: Buffer): void;
  closeStdin(): void;
  resize(size: { width: number; height: number }): Promise<void>;
  /**
   * Settles after the process exited and its output was delivered. When the process could not be
   * started, exitCode is 127 (not found) or 126 (not executable, or any other start failure) and
   * `error` carries Docker's text, e.g. `OCI runtime exec failed: exec failed: unable to start
   * container process: exec: "nope": executable file not found in $PATH: unknown`.
   */
  exit: Promise<{ exitCode: number; error?: string }>;
}

const exists = async (p: string) => {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
};

/** runc logs `time="…" level=error msg="…"`; the msg is the reason worth showing. */
export function runcReason(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"/.exec(lines[i]);
    if (m) return m[1].replace(/\\(.)/g, '$1');
  }
  const json = lines.map((l) => {
    try {
      return JSON.parse(l) as { level?: string; msg?: string };
    } catch {
      return undefined;
    }
  });
  const errLine = json.reverse().find((j) => j?.level === 'error' && j.msg);
  return errLine?.msg ?? lines.slice(-2).join(' ').trim();
}

/** The exit code Docker gives a process that could not be started. */
export function startFailureExitCode(reason: string): number {
  if (/executable file not found|no such file or directory/i.test(reason)) return 127;
  return 126;
}

/** A runc failure while starting the user's process (bad command) is the user's error, not ours. */
function isUserStartError(reason: string): boolean {
  return /exec: "|exec format error|permission denied|is a directory|not a directory|no such file or directory/i.test(reason);
}

/** Reads newline-delimited JSON messages conmon writes to a sync/attach pipe. */
function jsonMessages(sock: Socket): { next(signal?: AbortSignal): Promise<{ data: number; message?: string } | undefined> } {
  let buffered = '';
  const queue: Array<{ data: number; message?: string }> = [];
  let ended = false;
  let waiter: (() => void) | undefined;
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      try {
        queue.push(JSON.parse(line));
      } catch {
        queue.push({ data: -1, message: `unparsable message from conmon: ${line}` });
      }
    }
    waiter?.();
  });
  const end = () => {
    ended = true;
    waiter?.();
  };
  sock.on('end', end);
  sock.on('close', end);
  sock.on('error', end);
  return {
    async next(signal) {
      for (;;) {
        if (queue.length > 0) return queue.shift();
        if (ended) return undefined;
        if (signal?.aborted) throw new BaleiaError('Cancelled', 'Cancelled waiting for conmon', { cause: signal.reason });
        await new Promise<void>((resolve) => {
          waiter = resolve;
          signal?.addEventListener('abort', () => resolve(), { once: true });
        });
        waiter = undefined;
      }
    },
  };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** True if `pid` is a live conmon (guards against pid reuse after a reboot-less restart). */
async function isConmon(pid: number): Promise<boolean> {
  if (!pid || !pidAlive(pid)) return false;
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) Z /.test(stat)) return false;
    const comm = (await fs.readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    return comm === 'conmon';
  } catch {
    return false;
  }
}

const validId = (id: string) => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id);

export class Runtime {
  readonly execRoot: string;
  #runtimePath: string;
  readonly #conmonPath: string;
  readonly #log: Logger;
  #cgroups?: CgroupInfo;

  constructor(opts: RuntimeOptions) {
    this.execRoot = opts.execRoot;
    this.#runtimePath = opts.runtimePath ?? 'runc';
    this.#conmonPath = opts.conmonPath ?? '/usr/bin/conmon';
    this.#log = opts.logger ?? silentLogger;
  }

  /** Creates the state directories and detects the cgroup version. Call once before anything else. */
  async init(): Promise<void> {
    await fs.mkdir(path.join(this.execRoot, 'runc'), { recursive: true, mode: 0o700 });
    await fs.mkdir(path.join(this.execRoot, 'containers'), { recursive: true, mode: 0o700 });
    await fs.mkdir(path.join(this.execRoot, 'exits'), { recursive: true, mode: 0o700 });
    this.#cgroups = await detectCgroups();
    // conmon wants an absolute runtime path.
    if (!this.#runtimePath.includes('/')) {
      const found = await run('sh', ['-c', 'command -v "$0"', this.#runtimePath], { allowFailure: true });
      if (found.code !== 0) throw new BaleiaError('Unavailable', `Cannot find OCI runtime "${this.#runtimePath}" in PATH`);
      this.#runtimePath = found.stdout.trim();
    }
  }

  /** The host's cgroup layout, as detected by init(). */
  get cgroups(): CgroupInfo {
    if (!this.#cgroups) throw internal('Runtime used before init()');
    return this.#cgroups;
  }

  containerDir(id: string): string {
    if (!validId(id)) throw invalidArgument(`Cannot use container id "${id}": invalid characters`);
    return path.join(this.execRoot, 'containers', id);
  }

  #runcArgs(...args: string[]): string[] {
    return ['--root', path.join(this.execRoot, 'runc'), ...args];
  }

  async #runc(args: string[], opts: { signal?: AbortSignal; allowFailure?: boolean } = {}) {
    const started = Date.now();
    const result = await run(this.#runtimePath, this.#runcArgs(...args), { ...opts, allowFailure: true });
    this.#log.debug('runc', { argv: args, code: result.code, ms: Date.now() - started });
    if (result.code !== 0 && !opts.allowFailure) {
      throw Object.assign(internal(`Cannot run "runc ${args[0]}": ${runcReason(result.stderr || result.stdout)}`), {
        stderr: result.stderr,
      });
    }
    return result;
  }

  async #spawnConmon(
    args: string[],
    extraPipes: number,
  ): Promise<{ pipes: Socket[]; stderr: () => string; exited: Promise<number> }> {
    // fd 3.. are socketpairs (libuv's 'pipe'); conmon only read()s and write()s them.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' };
    if (extraPipes >= 1) env._OCI_STARTPIPE = '4';
    if (extraPipes >= 2) env._OCI_ATTACHPIPE = '5';
    const stdio: Array<'ignore' | 'pipe'> = ['ignore', 'ignore', 'pipe', 'pipe'];
    for (let i = 0; i < extraPipes; i++) stdio.push('pipe');
    this.#log.debug('conmon', { argv: args });
    // conmon drops an `oom` file in its working directory: keep it in the container's own dir.
    const b = args.indexOf('-b');
    const cwd = b >= 0 && args[b + 1] ? args[b + 1] : this.execRoot;
    const child = spawn(this.#conmonPath, args, { stdio, env, detached: true, cwd });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => (stderr += s));
    const exited = new Promise<number>((resolve) => {
      child.on('error', (err) => {
        stderr += String(err);
        resolve(127);
      });
      child.on('exit', (code, sig) => resolve(code ?? 128 + (sig ? 9 : 0)));
    });
    // No unref: conmon's first process exits as soon as it has forked the monitor, and we want its
    // exit status and stderr when it fails before that.
    // The pipes stay referenced while we wait on them (create/exec destroy them when done).
    const pipes = child.stdio.slice(3) as Socket[];
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    return { pipes, stderr: () => stderr, exited };
  }

  /**
   * Runs `runc create` under a new detached conmon. On success the container is 'created' and
   * `pid` is its init's host pid. On failure everything acquired is released before throwing.
   */
  async create(id: string, opts: CreateOptions): Promise<{ pid: number }> {
    const dir = this.containerDir(id);
    const owner = new Owner();
    try {
      await fs.mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') throw conflict(`Cannot create container "${id}": it already exists in the runtime`);
      throw err;
    }
    owner.defer(() => fs.rm(dir, { recursive: true, force: true }));
    const cgroupsPath = (opts.spec as { linux?: { cgroupsPath?: string } }).linux?.cgroupsPath;
    try {
      await resolveSpecDevices(opts.spec);
      await fs.mkdir(opts.bundle, { recursive: true });
      await writeJsonAtomic(path.join(opts.bundle, 'config.json'), opts.spec);
      await writeJsonAtomic(path.join(dir, 'config.json'), opts.spec);
      await fs.mkdir(path.dirname(opts.logPath), { recursive: true });
      const args = [
        '--api-version', '1',
        '-c', id,
        '-u', id,
        '-n', id,
        '-r', this.#runtimePath,
        '--runtime-arg', `--root=${path.join(this.execRoot, 'runc')}`,
        '-b', dir,
        '-p', path.join(dir, 'pid'),
        '-P', path.join(dir, 'conmon.pid'),
        '-0', dir,
        '--exit-dir', path.join(this.execRoot, 'exits'),
        '--full-attach',
        '--socket-dir-path', dir,
        '-l', `k8s-file:${opts.logPath}`,
        '--log-level', 'error',
      ];
      if (opts.logMaxSize && opts.logMaxSize > 0) args.push('--log-size-max', String(opts.logMaxSize));
      if (opts.terminal) args.push('-t');
      if (opts.openStdin) {
        args.push('-i');
        if (!opts.stdinOnce) args.push('--leave-stdin-open');
      }
      // Whatever happens next, runc state, a conmon and a cgroup may exist: undo them on failure.
      owner.defer(async () => {
        if (cgroupsPath) await removeCgroupDirs(this.cgroups, cgroupsPath).catch(() => {});
      });
      owner.defer(() => this.#runc(['delete', '--force', id], { allowFailure: true }));
      owner.defer(async () => {
        const pid = await this.#conmonPid(id);
        if (pid && (await isConmon(pid))) process.kill(pid, 'SIGKILL');
      });
      const conmon = await this.#spawnConmon(args, 0);
      const sync = jsonMessages(conmon.pipes[0]);
      let msg: { data: number; message?: string } | undefined;
      try {
        msg = await sync.next(opts.signal);
      } finally {
        conmon.pipes[0].destroy();
      }
      if (!msg || msg.data < 0) {
        const reason = msg?.message ? runcReason(msg.message) : (await conmon.exited, conmon.stderr().trim() || 'conmon exited without a status');
        throw new BaleiaError(isUserStartError(reason) ? 'InvalidArgument' : 'Internal', `Cannot create container "${id}": ${reason}`);
      }
      owner.release();
      this.#log.debug('container created', { container: id, pid: msg.data });
      return { pid: msg.data };
    } catch (err) {
      await owner.dispose();
      throw err;
    }
  }

  async #conmonPid(id: string, dir = this.containerDir(id)): Promise<number> {
    try {
      return Number((await fs.readFile(path.join(dir, 'conmon.pid'), 'utf8')).trim()) || 0;
    } catch {
      return 0;
    }
  }

  async #requireContainer(id: string): Promise<string> {
    const dir = this.containerDir(id);
    if (!(await exists(dir))) throw notFound(`Cannot find container "${id}" in the runtime`);
    return dir;
  }

  #mapRuncError(id: string, action: string, err: unknown): never {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    const reason = runcReason(stderr) || (err instanceof Error ? err.message : String(err));
    if (/does not exist|not found/.test(reason) && !/exec: "/.test(reason)) throw notFound(`Cannot ${action} container "${id}": ${reason}`, { cause: err });
    if (/not running|not paused|is paused|already|cannot start|stopped|container's cgroup is not found/i.test(reason)) {
      throw conflict(`Cannot ${action} container "${id}": ${reason}`, { cause: err });
    }
    if (isUserStartError(reason)) throw invalidArgument(`Cannot ${action} container "${id}": ${reason}`, { cause: err });
    throw internal(`Cannot ${action} container "${id}": ${reason}`, { cause: err });
  }

  /** `runc start`: the created container's process execs the user's command. */
  async start(id: string): Promise<void> {
    await this.#requireContainer(id);
    await this.#runc(['start', id]).catch((err) => this.#mapRuncError(id, 'start', err));
  }

  /** Sends a signal to the container's init. Unknown signal names are InvalidArgument. */
  async kill(id: string, signal: string | number): Promise<void> {
    const sig = parseSignal(signal);
    await this.#requireContainer(id);
    await this.#runc(['kill', id, String(sig)]).catch((err) => this.#mapRuncError(id, 'kill', err));
  }

  async pause(id: string): Promise<void> {
    await this.#requireContainer(id);
    await this.#runc(['pause', id]).catch((err) => this.#mapRuncError(id, 'pause', err));
  }

  async resume(id: string): Promise<void> {
    await this.#requireContainer(id);
    await this.#runc(['resume', id]).catch((err) => this.#mapRuncError(id, 'resume', err));
  }

  /** runc's view; 'stopped' once init exited, 'unknown' if runc lost it but our state dir remains. */
  async state(id: string): Promise<{ status: ContainerStatus; pid: number }> {
    await this.#requireContainer(id);
    const result = await this.#runc(['state', id], { allowFailure: true });
    if (result.code !== 0) {
      if (await this.exitStatus(id)) return { status: 'stopped', pid: 0 };
      return { status: 'unknown', pid: 0 };
    }
    const st = JSON.parse(result.stdout) as { status: string; pid: number };
    const status = (['created', 'running', 'paused', 'stopped'].includes(st.status) ? st.status : 'unknown') as ContainerStatus;
    return { status, pid: status === 'stopped' ? 0 : st.pid };
  }

  /** The exit status if the container's init has exited and conmon recorded it; never blocks. */
  async exitStatus(id: string): Promise<ExitStatus | undefined> {
    const dir = this.containerDir(id);
    let text: string;
    let mtime: Date;
    try {
      text = await fs.readFile(path.join(dir, 'exit'), 'utf8');
      mtime = (await fs.stat(path.join(dir, 'exit'))).mtime;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    const exitCode = Number(text.trim());
    let oomKilled = await exists(path.join(dir, 'oom'));
    if (!oomKilled && exitCode === 137) oomKilled = (await this.#oomKills(id)) > 0;
    return { exitCode: Number.isFinite(exitCode) ? exitCode : 255, exitedAt: mtime.toISOString(), oomKilled };
  }

  async #oomKills(id: string): Promise<number> {
    try {
      const spec = JSON.parse(await fs.readFile(path.join(this.containerDir(id), 'config.json'), 'utf8'));
      const cgroupsPath = spec?.linux?.cgroupsPath;
      return cgroupsPath ? await oomKillCount(this.cgroups, cgroupsPath) : 0;
    } catch {
      return 0;
    }
  }

  /**
   * Resolves when the container's init has exited. Works for containers created by an earlier
   * daemon: the exit file is written by conmon, which outlives us. If conmon itself died without
   * writing it (killed), the container is reported with exit code 255 once runc sees it stopped.
   */
  async waitExit(id: string, opts: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    const dir = await this.#requireContainer(id);
    const { signal } = opts;
    let watcher: import('node:fs').FSWatcher | undefined;
    let wake: (() => void) | undefined;
    try {
      try {
        watcher = (await import('node:fs')).watch(dir, () => wake?.());
        watcher.on('error', () => {});
      } catch {
        // polling only
      }
      let checks = 0;
      for (;;) {
        if (signal?.aborted) throw new BaleiaError('Cancelled', `Cancelled waiting for container "${id}"`, { cause: signal.reason });
        const status = await this.exitStatus(id);
        if (status) return status;
        if (++checks % 10 === 0) {
          // Every ~2.5 s make sure someone is still going to write the exit file.
          const conmonPid = await this.#conmonPid(id, dir);
          if (!(await isConmon(conmonPid))) {
            const again = await this.exitStatus(id);
            if (again) return again;
            const st = await this.#runc(['state', id], { allowFailure: true });
            const stopped = st.code !== 0 || (JSON.parse(st.stdout) as { status: string }).status === 'stopped';
            if (stopped) {
              const record = { exitCode: 255, exitedAt: new Date().toISOString(), oomKilled: false };
              await fs.writeFile(path.join(dir, 'exit'), '255').catch(() => {});
              return record;
            }
          }
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 250);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
          signal?.addEventListener('abort', wake, { once: true });
        });
        wake = undefined;
      }
    } finally {
      watcher?.close();
    }
  }

  /**
   * Removes the container from runc and its exec-root state. Refuses a live container unless
   * `force` (then it is SIGKILLed). Idempotent: deleting an unknown id succeeds.
   */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    const dir = this.containerDir(id);
    // Forced: one `runc delete --force` (no state probe first: each runc call costs ~10 ms).
    const st = opts.force ? undefined : await this.#runc(['state', id], { allowFailure: true });
    if (opts.force || st!.code === 0) {
      const status = st ? (JSON.parse(st.stdout) as { status: string }).status : 'stopped';
      if (status !== 'stopped' && status !== 'created' && !opts.force) {
        throw conflict(`Cannot delete container "${id}": it is ${status}; stop it first or force the removal`);
      }
      const del = await this.#runc(['delete', ...(opts.force || status === 'created' ? ['--force'] : []), id], { allowFailure: true });
      if (del.code !== 0 && !/does not exist/.test(del.stderr)) this.#mapRuncError(id, 'delete', Object.assign(new Error(del.stderr), { stderr: del.stderr }));
    }
    // conmon exits right after the init does; wait a little for it to write the exit file
    // (short polls first: it is usually a matter of milliseconds).
    const conmonPid = await this.#conmonPid(id, dir);
    for (let i = 0; i < 60 && (await isConmon(conmonPid)); i++) await new Promise((r) => setTimeout(r, i < 20 ? 5 : 50));
    if (await isConmon(conmonPid)) process.kill(conmonPid, 'SIGKILL');
    try {
      const spec = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
      if (spec?.linux?.cgroupsPath) await removeCgroupDirs(this.cgroups, spec.linux.cgroupsPath).catch(() => {});
    } catch {
      // no spec: nothing of ours in the cgroup tree
    }
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rm(path.join(this.execRoot, 'exits', id), { force: true });
  }

  /**
   * Attaches to the container's stdio through conmon's attach socket. Works between create and
   * start: stdin written then waits in the pipe until the process reads it; output is only what
   * the process writes after the attach (earlier output is in the log).
   */
  async attach(id: string): Promise<AttachSession> {
    const dir = await this.#requireContainer(id);
    return connectAttach(path.join(dir, 'attach'));
  }

  /** Resizes the container's TTY through conmon's `ctl` FIFO: `1 <height> <width>\n`. */
  async resize(id: string, size: { width: number; height: number }): Promise<void> {
    const dir = await this.#requireContainer(id);
    await writeControl(path.join(dir, 'ctl'), size);
  }

  /**
   * Runs a process in a running container under its own conmon (`conmon --exec`), so the process
   * survives us like the container does. Output is delivered to onData listeners; the attach
   * socket is connected before the process starts, so nothing is lost.
   */
  async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
    const dir = await this.#requireContainer(id);
    const execId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    const execDir = path.join(dir, 'execs', execId);
    await fs.mkdir(execDir, { recursive: true, mode: 0o700 });
    const owner = new Owner();
    owner.defer(() => fs.rm(execDir, { recursive: true, force: true }));
    try {
      const spec = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as {
        process: { capabilities?: Record<string, string[]>; rlimits?: unknown; noNewPrivileges?: boolean; apparmorProfile?: string };
      };
      let capabilities = spec.process.capabilities;
      if (opts.privileged || opts.capAdd?.length) {
        const caps = opts.privileged
          ? capabilitySet({ privileged: true, available: await hostCapabilities() })
          : [...new Set([...(capabilities?.bounding ?? []), ...capabilitySet({ capAdd: opts.capAdd, available: await hostCapabilities() })])];
        capabilities = { bounding: caps, effective: caps, permitted: caps };
      }
      const processSpec = {
        terminal: opts.terminal,
        ...(opts.terminal && opts.size ? { consoleSize: { height: opts.size.height, width: opts.size.width } } : {}),
        user: { uid: opts.user.uid, gid: opts.user.gid, ...(opts.user.additionalGids?.length ? { additionalGids: opts.user.additionalGids } : {}) },
        args: opts.args,
        env: opts.env,
        cwd: opts.cwd || '/',
        capabilities,
        rlimits: spec.process.rlimits,
        noNewPrivileges: spec.process.noNewPrivileges,
        ...(spec.process.apparmorProfile ? { apparmorProfile: spec.process.apparmorProfile } : {}),
      };
      await writeJsonAtomic(path.join(execDir, 'process.json'), processSpec);
      const attach = !opts.detach;
      const args = [
        '--api-version', '1',
        '-c', id,
        '-u', execId,
        '-n', id,
        '-r', this.#runtimePath,
        '--runtime-arg', `--root=${path.join(this.execRoot, 'runc')}`,
        '-b', execDir,
        '-p', path.join(execDir, 'pid'),
        '-P', path.join(execDir, 'conmon.pid'),
        '-0', execDir,
        '-e',
        '--exec-process-spec', path.join(execDir, 'process.json'),
        '--full-attach',
        '--socket-dir-path', execDir,
        '-l', 'none',
        '--log-level', 'error',
      ];
      if (attach) args.push('--exec-attach');
      if (opts.terminal) args.push('-t');
      if (opts.openStdin && attach) args.push('-i');
      const conmon = await this.#spawnConmon(args, attach ? 2 : 0);
      owner.defer(async () => {
        const pid = await this.#conmonPid(id, execDir);
        if (pid && (await isConmon(pid))) process.kill(pid, 'SIGKILL');
      });
      const sync = jsonMessages(conmon.pipes[0]);
      let session: AttachSession | undefined;
      if (attach) {
        const [startPipe, attachPipe] = [conmon.pipes[1], conmon.pipes[2]];
        // conmon waits for a first start message before doing anything, sends {"data":0} on the
        // attach pipe once its attach socket listens, then waits for a second start message
        // before running `runc exec`.
        startPipe.write('0');
        const ready = await jsonMessages(attachPipe).next(opts.signal);
        if (!ready) {
          const failed = await sync.next(opts.signal);
          throw internal(`Cannot exec in container "${id}": ${failed?.message ?? (await conmon.exited, conmon.stderr().trim() || 'conmon failed')}`);
        }
        session = await connectAttach(path.join(execDir, 'attach'));
        startPipe.end('1');
        attachPipe.destroy();
      }
      const first = await sync.next(opts.signal);
      owner.release();
      const cleanup = () => fs.rm(execDir, { recursive: true, force: true }).catch(() => {});
      if (!first || first.data < 0) {
        const reason = first?.message ? runcReason(first.message) : conmon.stderr().trim() || 'conmon exited without a status';
        session?.close();
        conmon.pipes.forEach((p) => p.destroy());
        await cleanup();
        const exitCode = startFailureExitCode(reason);
        const shortReason = reason.replace(/^(runc exec failed: )?(exec failed: )?/, '');
        return {
          id: execId,
          pid: 0,
          onData() {},
          write() {},
          closeStdin() {},
          resize: async () => {},
          exit: Promise.resolve({ exitCode, error: `OCI runtime exec failed: exec failed: ${shortReason}: unknown` }),
        };
      }
      const pid = first.data;
      const exit = (async () => {
        const last = await sync.next();
        conmon.pipes.forEach((p) => p.destroy());
        // The exit message can overtake the last output packets: wait for conmon to close the socket.
        if (session) await Promise.race([session.closed, new Promise((r) => setTimeout(r, 2000))]);
        let exitCode = last && last.data >= 0 ? last.data : -1;
        if (exitCode < 0) {
          const text = await fs.readFile(path.join(execDir, 'exit'), 'utf8').catch(() => '');
          exitCode = Number(text.trim()) || (text.trim() === '0' ? 0 : 255);
        }
        session?.close();
        await cleanup();
        return { exitCode };
      })();
      return {
        id: execId,
        pid,
        onData: (cb) => session?.onData(cb),
        write: (data) => session?.write(data),
        closeStdin: () => session?.closeStdin(),
        resize: (size) => writeControl(path.join(execDir, 'ctl'), size),
        exit,
      };
    } catch (err) {
      await owner.dispose();
      throw err;
    }
  }

  /** Log entries of a container (conmon's k8s-file). */
  readLogs(logPath: string, opts: ReadLogsOptions = {}): AsyncIterable<LogEntry> {
    return readLogs(logPath, opts);
  }

  /** Pids in the container's cgroup (host pid namespace), for `top`. */
  pids(cgroupsPath: string): Promise<number[]> {
    return cgroupPids(this.cgroups, cgroupsPath);
  }

  stats(cgroupsPath: string): Promise<CgroupStats> {
    return readStats(this.cgroups, cgroupsPath);
  }

  /** Changes resource limits of a live container (`runc update`, OCI LinuxResources JSON). */
  async update(id: string, resources: object): Promise<void> {
    await this.#requireContainer(id);
    const file = path.join(this.containerDir(id), `update-${Date.now()}.json`);
    await fs.writeFile(file, JSON.stringify(resources));
    try {
      await this.#runc(['update', '--resources', file, id]).catch((err) => this.#mapRuncError(id, 'update', err));
    } finally {
      await fs.rm(file, { force: true });
    }
  }

  /** Ids of every container this exec-root holds state for (to re-adopt after a restart). */
  async list(): Promise<string[]> {
    try {
      return (await fs.readdir(path.join(this.execRoot, 'containers'))).filter(validId);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
  }
}

/** Fills in device numbers for `linux.devices` entries buildSpec left as `{ path, pathOnHost }`. */
async function resolveSpecDevices(spec: object): Promise<void> {
  const linux = (spec as { linux?: { devices?: Array<Record<string, unknown>>; resources?: { devices?: unknown[] } } }).linux;
  if (!linux?.devices) return;
  for (let i = 0; i < linux.devices.length; i++) {
    const d = linux.devices[i];
    if (typeof d.pathOnHost !== 'string') continue;
    const r = await resolveDevice({ pathOnHost: d.pathOnHost, pathInContainer: String(d.path), cgroupPermissions: String(d.cgroupPermissions ?? 'rwm') });
    linux.devices[i] = { path: r.pathInContainer, type: r.type, major: r.major, minor: r.minor, fileMode: r.fileMode, uid: r.uid, gid: r.gid };
    linux.resources ??= {};
    linux.resources.devices ??= [];
    linux.resources.devices.push({ allow: true, type: r.type, major: r.major, minor: r.minor, access: r.cgroupPermissions ?? 'rwm' });
  }
}

async function writeControl(fifo: string, size: { width: number; height: number }): Promise<void> {
  if (!Number.isInteger(size.width) || !Number.isInteger(size.height) || size.width < 0 || size.height < 0) {
    throw invalidArgument(`Cannot resize to ${size.width}x${size.height}: width and height must be non-negative integers`);
  }
  let handle: import('node:fs/promises').FileHandle;
  try {
    // O_NONBLOCK: fail with ENXIO instead of hanging if conmon (the reader) is gone.
    handle = await fs.open(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENXIO') throw conflict('Cannot resize the TTY: the process is not running', { cause: err });
    throw err;
  }
  try {
    await handle.write(`1 ${size.height} ${size.width}\n`);
  } finally {
    await handle.close();
  }
}
