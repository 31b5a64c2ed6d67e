/**
 * Processes run in a running container besides its own: `docker exec` instances and health
 * probes.
 *
 *   create (exec_create) → checkStartable → start (exec_start; output to the attacher) → exit
 *   (exec_die; ExitCode recorded, then the attacher ends) → forget (with the container)
 *
 * Exec records live in memory only, as in Docker: they do not survive a daemon restart. The
 * runtime runs the process (runc exec under conmon); containers are found through `lookup`.
 */
import { conflict, describeError, invalidArgument, newId, notFound, type Logger } from '../lib/index.js';
import type { ImageStore } from '../image/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import type { ExecSession, Runtime } from '../runtime/index.js';
import { mergeEnv, type Json } from './container-config.js';
import { startErrorExitCode, userIn } from './container-spec.js';
import type { Attacher, ContainerRecord } from './containers.js';

export interface ExecRecord {
  ID: string;
  ContainerID: string;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  OpenStdin: boolean;
  OpenStdout: boolean;
  OpenStderr: boolean;
  DetachKeys: string;
  CanRemove: boolean;
  ProcessConfig: { tty: boolean; entrypoint: string; arguments: string[]; privileged: boolean; user: string };
  Env: string[];
  WorkingDir: string;
  ConsoleSize?: { width: number; height: number };
  session?: ExecSession;
}

export interface ContainerExecsOptions {
  runtime: Runtime;
  snapshots: Snapshotter;
  images: ImageStore;
  logger: Logger;
  /** A container by id, name or unique id prefix (NotFound otherwise). */
  lookup: (idOrName: string) => ContainerRecord;
  /** Publishes a container event. */
  emit: (record: ContainerRecord, action: string, extra?: Record<string, string>) => void;
}

export class ContainerExecs {
  readonly #runtime: Runtime;
  readonly #snapshots: Snapshotter;
  readonly #images: ImageStore;
  readonly #log: Logger;
  readonly #lookup: (idOrName: string) => ContainerRecord;
  readonly #emit: (record: ContainerRecord, action: string, extra?: Record<string, string>) => void;
  readonly #execs = new Map<string, ExecRecord>();

  constructor(options: ContainerExecsOptions) {
    this.#runtime = options.runtime;
    this.#snapshots = options.snapshots;
    this.#images = options.images;
    this.#log = options.logger;
    this.#lookup = options.lookup;
    this.#emit = options.emit;
  }

  create(record: ContainerRecord, body: Json): ExecRecord {
    if (!record.State.Running) throw conflict(`Container ${record.Id} is not running`);
    if (record.State.Paused) throw conflict(`Container ${record.Id} is paused, unpause the container before exec`);
    const cmd = Array.isArray(body.Cmd) ? body.Cmd.map(String) : typeof body.Cmd === 'string' ? [body.Cmd] : [];
    if (cmd.length === 0) throw invalidArgument('No exec command specified');
    const exec: ExecRecord = {
      ID: newId(),
      ContainerID: record.Id,
      Running: false,
      ExitCode: null,
      Pid: 0,
      OpenStdin: Boolean(body.AttachStdin),
      OpenStdout: Boolean(body.AttachStdout),
      OpenStderr: Boolean(body.AttachStderr),
      DetachKeys: typeof body.DetachKeys === 'string' ? body.DetachKeys : '',
      CanRemove: false,
      ProcessConfig: {
        tty: Boolean(body.Tty),
        entrypoint: cmd[0]!,
        arguments: cmd.slice(1),
        privileged: Boolean(body.Privileged),
        user: typeof body.User === 'string' ? body.User : '',
      },
      Env: Array.isArray(body.Env) ? body.Env.map(String) : [],
      WorkingDir: typeof body.WorkingDir === 'string' ? body.WorkingDir : '',
    };
    this.#execs.set(exec.ID, exec);
    this.#emit(record, `exec_create: ${cmd.join(' ')}`, { execID: exec.ID });
    return exec;
  }

  get(id: string): ExecRecord {
    const exec = this.#execs.get(id);
    if (!exec) throw notFound(`No such exec instance: ${id}`);
    return exec;
  }

  idsOf(containerId: string): string[] {
    return [...this.#execs.values()].filter((e) => e.ContainerID === containerId).map((e) => e.ID);
  }

  /** Drops the exec records of a removed container. */
  forget(containerId: string): void {
    for (const exec of this.#execs.values()) if (exec.ContainerID === containerId) this.#execs.delete(exec.ID);
  }

  /** Checks an exec can start, before the connection is hijacked. */
  checkStartable(id: string): ExecRecord {
    const exec = this.get(id);
    if (exec.Running || exec.ExitCode !== null) throw conflict(`Exec command ${id} has already run`);
    const record = this.#lookup(exec.ContainerID);
    if (!record.State.Running) throw conflict(`Container ${record.Id} is not running`);
    return exec;
  }

  /**
   * Runs an exec. With an attacher, output flows to it and it is ended after the exit code is
   * recorded (clients read `GET /exec/{id}/json` right at end of stream).
   */
  async start(id: string, attacher: Attacher | undefined): Promise<void> {
    const exec = this.checkStartable(id);
    const record = this.#lookup(exec.ContainerID);
    exec.Running = true;
    const cmd = [exec.ProcessConfig.entrypoint, ...exec.ProcessConfig.arguments];
    this.#emit(record, `exec_start: ${cmd.join(' ')}`, { execID: exec.ID });
    let session;
    try {
      const rootfs = await this.#snapshots.mountContainer(record.Id, await this.#images.ensureUnpacked(await this.#images.resolve(record.Image)));
      const user = await userIn(rootfs, exec.ProcessConfig.user || record.Config.User);
      const env = mergeEnv(mergeEnv([`HOSTNAME=${record.Config.Hostname}`], record.Config.Env), [
        ...(exec.ProcessConfig.tty ? ['TERM=xterm'] : []),
        ...exec.Env,
      ]);
      if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.uid === 0 ? '/root' : '/'}`);
      session = await this.#runtime.exec(record.Id, {
        args: cmd,
        env,
        cwd: exec.WorkingDir || record.Config.WorkingDir || '/',
        user,
        terminal: exec.ProcessConfig.tty,
        openStdin: exec.OpenStdin,
        privileged: exec.ProcessConfig.privileged,
        detach: attacher === undefined,
        size: exec.ConsoleSize,
      });
    } catch (err) {
      const message = describeError(err);
      exec.Running = false;
      exec.ExitCode = startErrorExitCode(message, cmd[0]!) ?? 126;
      this.#emit(record, 'exec_die', { execID: exec.ID, exitCode: String(exec.ExitCode) });
      if (attacher) {
        attacher.write(1, Buffer.from(`OCI runtime exec failed: ${message}: unknown\r\n`));
        attacher.end();
        return;
      }
      throw err;
    }
    exec.session = session;
    exec.Pid = session.pid;
    if (attacher) {
      session.onData((stream, data) => {
        if (stream === 'stderr' && !exec.ProcessConfig.tty) {
          if (exec.OpenStderr) attacher.write(2, data);
        } else if (exec.OpenStdout) attacher.write(1, data);
      });
      if (exec.OpenStdin) {
        attacher.onInput((data) => session.write(data));
        attacher.onInputEnd(() => session.closeStdin());
      }
    }
    void session.exit.then(
      ({ exitCode, error }) => {
        // A command that could not start: Docker writes runc's reason into the stream.
        if (error && attacher) attacher.write(1, Buffer.from(`${error}\r\n`));
        exec.ExitCode = exitCode;
        exec.Running = false;
        exec.session = undefined;
        this.#emit(record, 'exec_die', { execID: exec.ID, exitCode: String(exitCode) });
        attacher?.end();
      },
      (err) => {
        exec.ExitCode = 126;
        exec.Running = false;
        this.#log.warn('Exec failed', { container: record.Id, exec: exec.ID, err: describeError(err) });
        attacher?.end();
      },
    );
  }

  async resize(id: string, size: { width: number; height: number }): Promise<void> {
    const exec = this.get(id);
    exec.ConsoleSize = size;
    if (exec.session && exec.ProcessConfig.tty) await exec.session.resize(size).catch(() => {});
  }

  /** One health probe: an exec with a timeout; a probe that hangs is killed and counts as failed. */
  async probe(record: ContainerRecord, argv: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    const rootfs = this.#snapshots.containerMergedPath(record.Id);
    const user = await userIn(rootfs, record.Config.User);
    this.#emit(record, `exec_create: ${argv.join(' ')}`);
    const session = await this.#runtime.exec(record.Id, {
      args: argv,
      env: mergeEnv([`HOSTNAME=${record.Config.Hostname}`], record.Config.Env),
      cwd: record.Config.WorkingDir || '/',
      user,
      terminal: false,
      openStdin: false,
    });
    this.#emit(record, `exec_start: ${argv.join(' ')}`);
    let output = '';
    session.onData((_stream, data) => {
      if (output.length < 4096) output += data.toString('utf8');
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<{ exitCode: number; output: string }>((resolve) => {
      timer = setTimeout(() => {
        if (session.pid > 0) {
          try {
            process.kill(session.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        resolve({ exitCode: -1, output: `Health check exceeded timeout (${timeoutMs / 1000}s)` });
      }, timeoutMs);
    });
    const finished = session.exit.then(({ exitCode, error }) => ({ exitCode, output: error ? `${error}\n` : output }));
    const result = await Promise.race([finished, timedOut]);
    clearTimeout(timer);
    this.#emit(record, 'exec_die', { exitCode: String(result.exitCode) });
    return result;
  }
}
