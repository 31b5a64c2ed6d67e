/**
 * Containers: the records behind the Docker container API and their lifecycle.
 *
 *   create → (attach) → start → running ⇄ paused → exit (die) → start again | remove (destroy)
 *
 * A record lives at <root>/containers/<id>/container.json (with the bundle config.json, the log
 * file and the hosts/hostname/resolv.conf files beside it). The runtime (conmon + runc) owns the
 * process; this module owns the record, the rootfs mount while running, waiters, attachers and
 * execs. After a daemon restart `init()` re-adopts running containers and records the exit code
 * of those that ended meanwhile.
 *
 * The manager keeps the records, their lookup, the lifecycle and its persistence; each other
 * concern has its own file and receives only what it needs (a lookup, an emit, a save):
 *
 *   container-spec.ts     the OCI spec input, the process's user and working directory
 *   container-network.ts  network mode, links, sandbox and endpoints, the /etc files
 *   container-mounts.ts   binds, volumes, tmpfs and volumes-from, mounted at start
 *   container-exec.ts     exec instances and health probes
 *   container-files.ts    stat, cp, export, diff, commit
 *   log-rotation.ts       rotated log files and reading across them
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import {
  BaleiaError,
  Owner,
  conflict,
  describeError,
  invalidArgument,
  isKind,
  newId,
  notFound,
  readJsonIfExists,
  run,
  shortId,
  writeJsonAtomic,
  type Logger,
} from '../lib/index.js';
import type { ImageStore, ImageRecord as ImageRecordLike } from '../image/index.js';
import type { ContentStore } from '../content/index.js';
import type { NetworkManager } from '../network/index.js';
import { linkEnv } from './links.js';
import type { PathStat, Snapshotter } from '../snapshot/index.js';
import type { VolumeStore } from '../volume/index.js';
import { buildSpec, hostCapabilities, hostDevices, hostRlimits, resourceLimits, type Runtime, type AttachSession } from '../runtime/index.js';
import type { EventBus } from './events.js';
import {
  mergeCreate,
  mergeEnv,
  specResources,
  signalNumber,
  updateHostConfig,
  validateName,
  type ContainerConfig,
  type HostConfig,
  type Json,
} from './container-config.js';
import { generateName } from './names.js';
import { HealthMonitor, healthConfig, type HealthState } from './health.js';
import { sampleStats, zeroStats } from './stats.js';
import { LogRotator, logLimits, readRotatedLogs } from './log-rotation.js';
import { ContainerMounts } from './container-mounts.js';
import { ContainerNetworking } from './container-network.js';
import { ContainerExecs, type ExecRecord } from './container-exec.js';
import { ContainerFiles } from './container-files.js';
import { ensureDirIn, specInput, startErrorExitCode, userIn, type HostLimits } from './container-spec.js';

export type { ExecRecord } from './container-exec.js';

export interface ContainerState {
  Status: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  Health?: HealthState;
}

export interface ContainerRecord {
  Id: string;
  Created: string;
  Path: string;
  Args: string[];
  Image: string; // sha256:<id>
  Name: string; // '/name'
  RestartCount: number;
  Config: ContainerConfig;
  HostConfig: HostConfig;
  NetworkingConfig: Json;
  State: ContainerState;
  LogPath: string;
  HostnamePath: string;
  HostsPath: string;
  ResolvConfPath: string;
  /** Volumes, binds and tmpfs mounts, resolved at create. */
  MountPoints?: MountPoint[];
  /** Set by stop/kill from the user: restart policies do not bring it back. */
  ManuallyStopped?: boolean;
}

export interface MountPoint {
  Type: 'volume' | 'bind' | 'tmpfs';
  Name?: string;
  /** Host path: the bind source or the volume's data directory; empty for tmpfs. */
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  NoCopy?: boolean;
  Anonymous?: boolean;
  TmpfsOptions?: string;
}

export const zeroTime = '0001-01-01T00:00:00Z';

export interface WaitResult {
  StatusCode: number;
  Error: { Message: string } | null;
}

export interface Attacher {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Output of the container: stream 1 stdout, 2 stderr (already raw for a TTY). */
  write(stream: 1 | 2, data: Buffer): void;
  /** Called once when the container's output has ended. */
  end(): void;
  /** Client input (stdin) and its end, wired by the engine once the runtime session exists. */
  onInput(cb: (data: Buffer) => void): void;
  onInputEnd(cb: () => void): void;
  closed: Promise<void>;
}

interface Live {
  record: ContainerRecord;
  waiters: Array<{ condition: 'not-running' | 'next-exit' | 'removed'; resolve: (r: WaitResult) => void }>;
  pendingAttachers: Attacher[];
  sessions: Set<AttachSession>;
  exited?: Promise<void>;
  lock: Promise<unknown>;
  restartTimer?: NodeJS.Timeout;
  consoleSize?: { width: number; height: number };
  health?: HealthMonitor;
  backoffMs?: number;
  /** The runtime has state for this container (created and not yet deleted). */
  inRuntime?: boolean;
  rotator?: LogRotator;
  /** A policy restart under way (stop waits for it, then stops what it started). */
  restarting?: Promise<void>;
}

export interface ContainerManagerOptions {
  root: string;
  images: ImageStore;
  snapshots: Snapshotter;
  volumes: VolumeStore;
  content: ContentStore;
  network: NetworkManager;
  runtime: Runtime;
  events: EventBus;
  logger: Logger;
}

const nowNano = () => new Date().toISOString().replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}${String(process.hrtime.bigint() % 1000000n).padStart(6, '0')}Z`);

export class ContainerManager {
  readonly #root: string;
  readonly #images: ImageStore;
  readonly #snapshots: Snapshotter;
  readonly #volumes: VolumeStore;
  readonly #content: ContentStore;
  readonly #network: NetworkManager;
  readonly #runtime: Runtime;
  readonly #events: EventBus;
  readonly #log: Logger;
  readonly #live = new Map<string, Live>();
  readonly #names = new Map<string, string>(); // '/name' → id
  readonly #ncpu = os.cpus().length;
  #host: HostLimits = {};
  readonly #mounts: ContainerMounts;
  readonly #networking: ContainerNetworking;
  readonly #execs: ContainerExecs;
  readonly #files: ContainerFiles;

  constructor(options: ContainerManagerOptions) {
    this.#root = path.join(options.root, 'containers');
    this.#images = options.images;
    this.#snapshots = options.snapshots;
    this.#volumes = options.volumes;
    this.#content = options.content;
    this.#network = options.network;
    this.#runtime = options.runtime;
    this.#events = options.events;
    this.#log = options.logger;
    const lookup = (idOrName: string) => this.#find(idOrName).record;
    const emit = (record: ContainerRecord, action: string, extra?: Record<string, string>) => this.#emit(record, action, extra);
    this.#mounts = new ContainerMounts({ volumes: this.#volumes, events: this.#events, logger: this.#log, lookup });
    this.#networking = new ContainerNetworking({ network: this.#network, events: this.#events, lookup, save: (record) => this.#save(record) });
    this.#execs = new ContainerExecs({ runtime: this.#runtime, snapshots: this.#snapshots, images: this.#images, logger: this.#log, lookup, emit });
    this.#files = new ContainerFiles({ images: this.#images, snapshots: this.#snapshots, content: this.#content, runtime: this.#runtime, emit });
  }

  // ---------------------------------------------------------------- start-up and lookup

  /** Loads records, removes half-created ones and re-adopts containers that kept running. */
  async init(): Promise<void> {
    await fs.mkdir(this.#root, { recursive: true });
    this.#host = {
      hostCapabilities: await hostCapabilities(),
      hostRlimits: await hostRlimits(),
      cgroupVersion: this.#runtime.cgroups.version,
    };
    for (const id of await fs.readdir(this.#root)) {
      const dir = path.join(this.#root, id);
      let record: ContainerRecord | undefined;
      try {
        record = await readJsonIfExists<ContainerRecord>(path.join(dir, 'container.json'));
      } catch (err) {
        this.#log.warn('Cannot read container record, removing it', { container: id, err: describeError(err) });
      }
      if (!record) {
        // A create interrupted before its record was written: nothing refers to it.
        await this.#snapshots.removeContainer(id).catch(() => {});
        await fs.rm(dir, { recursive: true, force: true });
        continue;
      }
      const live: Live = { record, waiters: [], pendingAttachers: [], sessions: new Set(), lock: Promise.resolve() };
      this.#live.set(id, live);
      this.#names.set(record.Name, id);
      await this.#recover(live).catch((err) =>
        this.#log.error('Cannot recover container', { container: id, err: describeError(err) }),
      );
    }
    // Endpoints and firewall rules of containers that still run stay; the rest go.
    await this.#network
      .reconcile(new Set(this.list().filter((c) => c.State.Running).map((c) => c.Id)))
      .catch((err) => this.#log.error('Cannot reconcile networks', { err: describeError(err) }));
    // Volume filesystems that no re-adopted container holds any more.
    await this.#volumes.unmountIdle().catch((err) => this.#log.warn('Cannot unmount idle volumes', { err: describeError(err) }));
    // Docker's restore: `always` containers come back whatever stopped them, `unless-stopped`
    // ones unless the user stopped them; containers never started stay as they are.
    for (const live of this.#live.values()) {
      const { record } = live;
      const policy = record.HostConfig.RestartPolicy.Name;
      if (record.State.Running || live.restartTimer || record.State.StartedAt === zeroTime) continue;
      if (policy === 'always' || (policy === 'unless-stopped' && !record.ManuallyStopped)) {
        void this.#locked(live, () => this.#start(live)).catch((err) =>
          this.#log.warn('Cannot restart container after daemon start', { container: record.Id, err: describeError(err) }),
        );
      }
    }
  }

  async #recover(live: Live): Promise<void> {
    const { record } = live;
    const state = await this.#runtime.state(record.Id).catch(() => ({ status: 'unknown' as const, pid: 0 }));
    if (state.status === 'running' || state.status === 'paused') {
      record.State.Status = state.status;
      record.State.Running = true;
      record.State.Paused = state.status === 'paused';
      record.State.Pid = state.pid;
      live.inRuntime = true;
      await this.#save(record);
      await this.#mounts.readopt(record);
      this.#monitor(live);
      this.#startHealth(live, { fresh: false });
      await this.#startRotator(live);
      this.#log.info('Re-adopted running container', { container: record.Id, pid: state.pid });
      return;
    }
    const wasActive = record.State.Running || record.State.Status === 'restarting';
    const exit = await this.#runtime.exitStatus(record.Id).catch(() => undefined);
    if (state.status !== 'unknown' || wasActive) await this.#runtime.delete(record.Id, { force: true }).catch(() => {});
    await this.#snapshots.unmountContainer(record.Id).catch(() => {});
    await this.#network.removeSandbox(record.Id).catch(() => {});
    if (wasActive) {
      this.#markExited(record, exit?.exitCode ?? 255, exit?.exitedAt, exit?.oomKilled ?? false);
      if (!exit) record.State.Error = 'container ended while the daemon was down; its exit status is unknown';
      await this.#save(record);
      this.#afterExit(live, { autoRemove: record.HostConfig.AutoRemove });
    }
  }

  /** Finds a container by full id, name (with or without `/`) or unique id prefix. */
  get(idOrName: string): ContainerRecord {
    return this.#find(idOrName).record;
  }

  #find(idOrName: string): Live {
    const exact = this.#live.get(idOrName);
    if (exact) return exact;
    const byName = this.#names.get(idOrName.startsWith('/') ? idOrName : `/${idOrName}`);
    if (byName) return this.#live.get(byName)!;
    if (/^[0-9a-f]+$/.test(idOrName)) {
      const hits = [...this.#live.keys()].filter((id) => id.startsWith(idOrName));
      if (hits.length === 1) return this.#live.get(hits[0]!)!;
      if (hits.length > 1) throw invalidArgument(`multiple IDs found with provided prefix: ${idOrName}`);
    }
    throw notFound(`No such container: ${idOrName}`);
  }

  list(): ContainerRecord[] {
    return [...this.#live.values()].map((l) => l.record);
  }

  dir(id: string): string {
    return path.join(this.#root, id);
  }

  /** Image ids used by any container (rmi refuses to delete those). */
  imagesInUse(): Map<string, string> {
    const used = new Map<string, string>();
    for (const { record } of this.#live.values()) if (!used.has(record.Image)) used.set(record.Image, record.Id);
    return used;
  }

  // ---------------------------------------------------------------- create

  async create(body: Json, options: { name?: string } = {}): Promise<{ Id: string; Warnings: string[] }> {
    const imageRef = typeof body.Image === 'string' ? body.Image : '';
    if (!imageRef) throw invalidArgument('No image was specified: a container needs an image (Config.Image)');
    const name = options.name ? validateName(options.name) : undefined;
    if (name) this.#checkNameFree(name);
    const image = await this.#images.resolve(imageRef);
    const imageConfig = await this.#images.getConfig(image);
    const id = newId();
    const merged = mergeCreate({ id, body, imageConfig: ((imageConfig.config ?? {}) as Json), ncpu: this.#ncpu });
    await this.#networking.checkMode(merged.hostConfig.NetworkMode).catch(notFoundIsInvalid);
    logLimits(merged.hostConfig.LogConfig.Config);
    const finalName = name ?? `/${generateName((n) => this.#names.has(`/${n}`))}`;
    this.#checkNameFree(finalName);
    merged.hostConfig.Links = this.#networking.checkLinks(merged.hostConfig.Links, finalName);
    const dir = this.dir(id);
    const record: ContainerRecord = {
      Id: id,
      Created: nowNano(),
      Path: merged.path,
      Args: merged.args,
      Image: image.id,
      Name: finalName,
      RestartCount: 0,
      Config: merged.config,
      HostConfig: merged.hostConfig,
      NetworkingConfig: (body.NetworkingConfig as Json | undefined) ?? {},
      State: {
        Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
        Pid: 0, ExitCode: 0, Error: '', StartedAt: zeroTime, FinishedAt: zeroTime,
      },
      LogPath: path.join(dir, 'container.log'),
      HostnamePath: path.join(dir, 'hostname'),
      HostsPath: path.join(dir, 'hosts'),
      ResolvConfPath: path.join(dir, 'resolv.conf'),
    };
    const owner = new Owner();
    try {
      record.MountPoints = await this.#mounts.resolve(record, owner).catch(notFoundIsInvalid);
      await fs.mkdir(dir, { recursive: true, mode: 0o710 });
      owner.defer(() => fs.rm(dir, { recursive: true, force: true }));
      // Reserve the name before any await that could let a second create take it.
      this.#checkNameFree(finalName);
      this.#names.set(finalName, id);
      owner.defer(() => this.#names.delete(finalName));
      await this.#save(record);
      owner.release();
    } catch (err) {
      await owner.dispose();
      throw err;
    }
    this.#live.set(id, { record, waiters: [], pendingAttachers: [], sessions: new Set(), lock: Promise.resolve() });
    this.#emit(record, 'create');
    const warnings: string[] = [];
    return { Id: id, Warnings: warnings };
  }

  /** Ids of the containers whose mounts use volume `name`. */
  volumeUsers(name: string): string[] {
    return this.list().filter((c) => (c.MountPoints ?? []).some((m) => m.Type === 'volume' && m.Name === name)).map((c) => c.Id);
  }

  #checkNameFree(name: string): void {
    const holder = this.#names.get(name);
    if (holder)
      throw conflict(
        `Conflict. The container name "${name}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
  }

  // ---------------------------------------------------------------- networks

  /** Live connect (running) or recorded for the next start (created, stopped). */
  async connectNetwork(idOrName: string, network: string, endpointConfig: Json): Promise<void> {
    return this.#networking.connect(this.#find(idOrName).record, network, endpointConfig);
  }

  async disconnectNetwork(idOrName: string, network: string, options: { force?: boolean } = {}): Promise<void> {
    return this.#networking.disconnect(this.#find(idOrName).record, network, options);
  }

  /** Endpoints and published ports of a running container, for inspect and ps. */
  networkView(id: string): { endpoints: Record<string, Json>; ports: Record<string, unknown> } {
    return this.#networking.view(id);
  }

  // ---------------------------------------------------------------- start

  async start(idOrName: string): Promise<void> {
    const live = this.#find(idOrName);
    return this.#locked(live, () => this.#start(live));
  }

  async #start(live: Live): Promise<void> {
    const { record } = live;
    if (record.State.Paused) throw conflict('cannot start a paused container, try unpause instead');
    if (record.State.Running) throw new BaleiaError('NotModified', 'Container already started');
    if (record.State.Status === 'removing') throw conflict(`Container ${record.Id} is marked for removal and cannot be started`);
    const owner = new Owner();
    const id = record.Id;
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const mark = (phase: string) => (phases[phase] = Math.round(performance.now() - t0));
    // Network work runs beside the rest: the netns is made while the rootfs mounts, the endpoints
    // are plumbed while runc creates the container (below).
    let sandbox: Promise<Settled<string | undefined>> | undefined;
    let attaching: Promise<Settled<{ ip?: string; gateway?: string }>> | undefined;
    try {
      sandbox = settle(this.#networking.createSandbox(record, owner));
      const image = await this.#images.resolve(record.Image);
      const chain = await this.#images.ensureUnpacked(image);
      mark('image');
      const rootfs = await this.#snapshots.mountContainer(id, chain);
      owner.defer(() => this.#snapshots.unmountContainer(id));
      mark('mount');
      const user = await userIn(rootfs, record.Config.User);
      const cwd = record.Config.WorkingDir || '/';
      await ensureDirIn(rootfs, cwd);
      const networkMode = record.HostConfig.NetworkMode;
      const links = this.#networking.resolveLinks(record);
      const made = await sandbox;
      if (!made.ok) throw made.error;
      const netns = made.value;
      mark('netns');
      // The endpoints are plumbed (CNI ADD, published ports) while conmon and runc create the
      // container, unless a net.* sysctl needs its interfaces when runc applies it at create.
      const overlap = !Object.keys(record.HostConfig.Sysctls ?? {}).some((k) => k.startsWith('net.'));
      if (netns) {
        attaching = settle(this.#networking.attach(record));
        if (!overlap) await attaching;
      }
      // /etc/hosts and resolv.conf need the endpoints: until they are known the files only exist
      // (runc bind-mounts them at create), and are written in place before start.
      if (attaching) await this.#networking.touchEtcFiles(record);
      else await this.#networking.writeEtcFiles(record, networkMode, undefined, links);
      const volumeMounts = await this.#mounts.prepare(record, rootfs, owner);
      const input = specInput(record, { rootfs, user, cwd, network: this.#networking.specNetwork(record, netns), host: this.#host });
      if (links.length > 0) input.env = mergeEnv(links.flatMap((l) => linkEnv(l, record.Name)), input.env);
      input.mounts = [...(input.mounts ?? []), ...volumeMounts];
      if (input.privileged) input.privilegedDevices = await hostDevices();
      const spec = buildSpec(input);
      mark('spec');
      const created = await this.#runtime.create(id, {
        bundle: this.dir(id),
        spec,
        terminal: record.Config.Tty,
        openStdin: record.Config.OpenStdin,
        stdinOnce: record.Config.StdinOnce,
        logPath: record.LogPath,
        logMaxSize: logLimits(record.HostConfig.LogConfig.Config).maxSize,
      });
      owner.defer(() => this.#runtime.delete(id, { force: true }));
      live.inRuntime = true;
      owner.defer(() => (live.inRuntime = false));
      mark('create');
      if (attaching) {
        const attached = await attaching;
        if (!attached.ok) throw attached.error;
        mark('network');
        await this.#networking.writeEtcFiles(record, networkMode, attached.value, links);
      }
      await this.#connectAttachers(live);
      if (live.consoleSize) await this.#runtime.resize(id, live.consoleSize).catch(() => {});
      mark('attach');
      await this.#runtime.start(id);
      mark('start');
      owner.release();
      record.State = {
        ...record.State,
        Status: 'running', Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
        Pid: created.pid, ExitCode: 0, Error: '', StartedAt: nowNano(), FinishedAt: record.State.FinishedAt,
      };
      record.ManuallyStopped = false;
      await this.#save(record);
      mark('saved');
      this.#log.debug('Container started', { container: id, ms: phases });
      this.#emit(record, 'start');
      this.#monitor(live);
      this.#startHealth(live, { fresh: true });
      await this.#startRotator(live);
    } catch (err) {
      // The sandbox's owner entry is there, and nothing plumbs it any more, before the owner disposes.
      await sandbox;
      await attaching;
      await owner.dispose();
      for (const s of live.sessions) s.close();
      live.sessions.clear();
      const message = describeError(err);
      const code = startErrorExitCode(message, record.Path);
      record.State = { ...record.State, Status: record.State.StartedAt === zeroTime ? 'created' : 'exited', Running: false, Pid: 0, ExitCode: code ?? 128, Error: message };
      await this.#save(record).catch(() => {});
      for (const a of live.pendingAttachers.splice(0)) a.end();
      this.#fireWaiters(live, ['next-exit', 'not-running'], { StatusCode: code ?? 128, Error: null });
      if (record.HostConfig.AutoRemove) await this.#remove(live, { force: true }).catch(() => {});
      if (code !== undefined || isKind(err, 'InvalidArgument')) throw new BaleiaError('InvalidArgument', message, { cause: err });
      throw err;
    }
  }

  // ---------------------------------------------------------------- exit monitoring

  #monitor(live: Live): void {
    const id = live.record.Id;
    live.exited = (async () => {
      let exit: { exitCode: number; exitedAt: string; oomKilled: boolean };
      try {
        exit = await this.#runtime.waitExit(id);
      } catch (err) {
        this.#log.error('Cannot wait for container exit', { container: id, err: describeError(err) });
        exit = { exitCode: 255, exitedAt: new Date().toISOString(), oomKilled: false };
      }
      live.health?.stop();
      live.health = undefined;
      await live.rotator?.stop();
      live.rotator = undefined;
      await this.#locked(live, async () => {
        // Let attach sessions drain what conmon still holds before they are closed.
        await Promise.race([Promise.all([...live.sessions].map((s) => s.closed)), delay(1000)]);
        for (const s of live.sessions) s.close();
        live.sessions.clear();
        live.inRuntime = false;
        const t0 = performance.now();
        const ms: Record<string, number> = {};
        // The network sandbox goes while runc deletes the container: the endpoints do not need
        // its processes gone (a veth is deleted whoever still sits in the netns), and both wait
        // mostly on the kernel. Both are done before `die`, so before any waiter hears of it.
        // The rootfs mount is this daemon's (runc's copy went with the container's mount
        // namespace when its last process exited), so it goes beside `runc delete` too.
        await Promise.all([
          this.#runtime.delete(id, { force: true }).then(
            () => (ms.runtime = Math.round(performance.now() - t0)),
            (err) => this.#log.warn('Cannot delete runtime state', { container: id, err: describeError(err) }),
          ),
          (async () => {
            await this.#snapshots.unmountContainer(id).catch((err) =>
              this.#log.warn('Cannot unmount container rootfs', { container: id, err: describeError(err) }),
            );
            await this.#mounts.release(live.record);
            ms.unmount = Math.round(performance.now() - t0);
          })(),
          this.#network.removeSandbox(id).then(
            () => (ms.network = Math.round(performance.now() - t0)),
            (err) => this.#log.warn('Cannot remove network sandbox', { container: id, err: describeError(err) }),
          ),
        ]);
        this.#log.debug('Container cleaned up', { container: id, ms });
        this.#markExited(live.record, exit.exitCode, exit.exitedAt, exit.oomKilled);
        // An AutoRemove container is removed next: its record is not written only to be deleted
        // (after a crash in between, recovery finds it "running", marks it exited and removes it).
        if (!live.record.HostConfig.AutoRemove) await this.#save(live.record).catch(() => {});
        if (exit.oomKilled) this.#emit(live.record, 'oom');
        this.#emit(live.record, 'die', { exitCode: String(exit.exitCode) });
      });
      this.#afterExit(live, { autoRemove: live.record.HostConfig.AutoRemove });
    })();
  }

  #markExited(record: ContainerRecord, exitCode: number, exitedAt: string | undefined, oomKilled: boolean): void {
    record.State = {
      ...record.State,
      Status: 'exited', Running: false, Paused: false, Restarting: false, OOMKilled: oomKilled, Dead: false,
      Pid: 0, ExitCode: exitCode, FinishedAt: exitedAt ?? nowNano(),
    };
  }

  #afterExit(live: Live, options: { autoRemove: boolean }): void {
    const { record } = live;
    this.#fireWaiters(live, ['next-exit', 'not-running'], { StatusCode: record.State.ExitCode, Error: null });
    if (options.autoRemove) {
      void this.#locked(live, () => this.#remove(live, { force: true })).catch((err) =>
        this.#log.error('Cannot auto-remove container', { container: record.Id, err: describeError(err) }),
      );
      return;
    }
    this.#maybeRestart(live);
  }

  #maybeRestart(live: Live): void {
    const { record } = live;
    const policy = record.HostConfig.RestartPolicy;
    if (record.ManuallyStopped || policy.Name === 'no' || !this.#live.has(record.Id)) return;
    if (policy.Name === 'on-failure') {
      if (record.State.ExitCode === 0) return;
      if (policy.MaximumRetryCount > 0 && record.RestartCount >= policy.MaximumRetryCount) return;
    }
    // Docker's back-off: 100 ms doubling, capped at one minute, back to 100 ms after a run of 10 s.
    const ranMs = Date.parse(record.State.FinishedAt) - Date.parse(record.State.StartedAt);
    live.backoffMs = ranMs >= 10_000 || !live.backoffMs ? 100 : Math.min(live.backoffMs * 2, 60_000);
    const delayMs = live.backoffMs;
    record.State.Status = 'restarting';
    record.State.Restarting = true;
    live.restartTimer = setTimeout(() => {
      live.restartTimer = undefined;
      if (record.ManuallyStopped || !this.#live.has(record.Id)) return;
      record.RestartCount++;
      live.restarting = this.#locked(live, () => this.#start(live))
        .then(() => this.#emit(record, 'restart'))
        .catch((err) => this.#log.warn('Restart failed', { container: record.Id, err: describeError(err) }))
        .finally(() => (live.restarting = undefined));
    }, delayMs);
  }

  #fireWaiters(live: Live, conditions: string[], result: WaitResult): void {
    const remaining: Live['waiters'] = [];
    for (const w of live.waiters) {
      if (conditions.includes(w.condition)) w.resolve(result);
      else remaining.push(w);
    }
    live.waiters = remaining;
  }

  // ---------------------------------------------------------------- stop, kill, restart, pause

  async stop(idOrName: string, options: { timeout?: number; signal?: string } = {}): Promise<void> {
    const live = this.#find(idOrName);
    const { record } = live;
    if (live.restarting) {
      record.ManuallyStopped = true;
      await live.restarting;
    }
    if (live.restartTimer) {
      clearTimeout(live.restartTimer);
      live.restartTimer = undefined;
      record.ManuallyStopped = true;
      record.State.Restarting = false;
      record.State.Status = 'exited';
      await this.#save(record);
      return;
    }
    if (!record.State.Running) throw new BaleiaError('NotModified', 'Container already stopped');
    record.ManuallyStopped = true;
    await this.#stopLive(live, options);
    this.#emit(record, 'stop');
  }

  async #stopLive(live: Live, options: { timeout?: number; signal?: string }): Promise<void> {
    const { record } = live;
    const timeout = options.timeout ?? record.Config.StopTimeout ?? 10;
    const signal = options.signal || record.Config.StopSignal || 'SIGTERM';
    if (record.State.Paused) await this.#runtime.resume(record.Id).catch(() => {});
    if (timeout !== 0) {
      await this.#runtime.kill(record.Id, signal).catch(() => {});
      this.#emit(record, 'kill', { signal: String(signalNumber(signal) ?? 15) });
      if (timeout < 0) {
        await live.exited;
        return;
      }
      const done = await Promise.race([live.exited?.then(() => true), delay(timeout * 1000).then(() => false)]);
      if (done) return;
    }
    await this.#runtime.kill(record.Id, 'SIGKILL').catch(() => {});
    this.#emit(record, 'kill', { signal: '9' });
    await live.exited;
  }

  async kill(idOrName: string, signal = 'SIGKILL'): Promise<void> {
    const live = this.#find(idOrName);
    const { record } = live;
    const number = signalNumber(signal);
    if (number === undefined) throw invalidArgument(`Invalid signal: ${signal}`);
    if (!record.State.Running)
      throw conflict(`Cannot kill container: ${idOrName}: Container ${record.Id} is not running`);
    if (number === 9 || number === 15 || number === 2) record.ManuallyStopped = true;
    if (record.State.Paused && number === 9) await this.#runtime.resume(record.Id).catch(() => {});
    await this.#runtime.kill(record.Id, number);
    this.#emit(record, 'kill', { signal: String(number) });
  }

  async restart(idOrName: string, options: { timeout?: number } = {}): Promise<void> {
    const live = this.#find(idOrName);
    if (live.record.State.Running) {
      live.record.ManuallyStopped = true;
      await this.#stopLive(live, options);
    }
    await this.#locked(live, () => this.#start(live));
    this.#emit(live.record, 'restart');
  }

  async pause(idOrName: string): Promise<void> {
    const { record } = this.#find(idOrName);
    if (!record.State.Running) throw conflict(`Container ${record.Id} is not running`);
    if (record.State.Paused) throw conflict(`Container ${record.Id} is already paused`);
    await this.#runtime.pause(record.Id);
    record.State.Paused = true;
    record.State.Status = 'paused';
    await this.#save(record);
    this.#emit(record, 'pause');
  }

  async unpause(idOrName: string): Promise<void> {
    const { record } = this.#find(idOrName);
    if (!record.State.Paused) throw new BaleiaError('Internal', `Container ${record.Id} is not paused`);
    await this.#runtime.resume(record.Id);
    record.State.Paused = false;
    record.State.Status = 'running';
    await this.#save(record);
    this.#emit(record, 'unpause');
  }

  async rename(idOrName: string, newName: string): Promise<void> {
    const live = this.#find(idOrName);
    const name = validateName(newName);
    if (name === live.record.Name) throw invalidArgument(`Renaming a container with the same name as its current name`);
    this.#checkNameFree(name);
    const old = live.record.Name;
    this.#names.delete(old);
    this.#names.set(name, live.record.Id);
    live.record.Name = name;
    await this.#save(live.record);
    this.#emit(live.record, 'rename', { oldName: old });
  }

  // ---------------------------------------------------------------- wait and remove

  /** Registers a waiter now (so the caller can send headers afterwards) and returns its promise. */
  wait(idOrName: string, condition: string = 'not-running'): Promise<WaitResult> {
    if (!['not-running', 'next-exit', 'removed'].includes(condition))
      throw invalidArgument(`invalid condition: "${condition}"`);
    const live = this.#find(idOrName);
    const { record } = live;
    if (condition === 'not-running' && !record.State.Running && !record.State.Restarting)
      return Promise.resolve({ StatusCode: record.State.ExitCode, Error: null });
    return new Promise((resolve) => live.waiters.push({ condition: condition as 'next-exit', resolve }));
  }

  async remove(idOrName: string, options: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const live = this.#find(idOrName);
    if (live.record.State.Running && !options.force)
      throw conflict(
        `You cannot remove a running container ${live.record.Id}. Stop the container before attempting removal or force remove`,
      );
    if (live.record.State.Status === 'removing') throw conflict(`removal of container ${live.record.Id} is already in progress`);
    if (live.record.State.Running) {
      live.record.ManuallyStopped = true;
      if (live.record.State.Paused) await this.#runtime.resume(live.record.Id).catch(() => {});
      await this.#runtime.kill(live.record.Id, 'SIGKILL').catch(() => {});
      await live.exited;
    }
    await this.#locked(live, () => this.#remove(live, options));
  }

  async #remove(live: Live, options: { force?: boolean; volumes?: boolean }): Promise<void> {
    const { record } = live;
    if (!this.#live.has(record.Id)) return;
    if (live.restartTimer) clearTimeout(live.restartTimer);
    record.ManuallyStopped = true;
    record.State.Status = 'removing';
    this.#execs.forget(record.Id);
    // Exited containers were already deleted from the runtime by their monitor.
    if (live.inRuntime || record.State.Running) await this.#runtime.delete(record.Id, { force: true }).catch(() => {});
    await Promise.all([this.#snapshots.removeContainer(record.Id), fs.rm(this.dir(record.Id), { recursive: true, force: true })]);
    this.#live.delete(record.Id);
    this.#names.delete(record.Name);
    this.#emit(record, 'destroy');
    if (options.volumes || record.HostConfig.AutoRemove)
      await this.#mounts.removeAnonymous(record, (volume) => this.volumeUsers(volume).length > 0);
    this.#fireWaiters(live, ['removed', 'next-exit', 'not-running'], { StatusCode: record.State.ExitCode, Error: null });
  }

  // ---------------------------------------------------------------- attach, resize, logs

  /**
   * Attaches a client. A running container is attached at once; a created one when it starts
   * (the docker CLI attaches before start, and stdin sent before start must arrive).
   */
  async attach(idOrName: string, attacher: Attacher): Promise<void> {
    const live = this.#find(idOrName);
    if (live.record.State.Running) await this.#connect(live, attacher);
    else live.pendingAttachers.push(attacher);
  }

  /** Checks an attach can be served, before the connection is hijacked. */
  checkAttachable(idOrName: string): ContainerRecord {
    const { record } = this.#find(idOrName);
    if (record.State.Status === 'removing') throw conflict(`Container ${record.Id} is being removed`);
    return record;
  }

  async #connectAttachers(live: Live): Promise<void> {
    for (const attacher of live.pendingAttachers.splice(0)) await this.#connect(live, attacher);
  }

  async #connect(live: Live, attacher: Attacher): Promise<void> {
    const session = await this.#runtime.attach(live.record.Id);
    live.sessions.add(session);
    const tty = live.record.Config.Tty;
    session.onData((stream, data) => {
      if (stream === 'stderr' && !tty) {
        if (attacher.stderr) attacher.write(2, data);
      } else if (attacher.stdout) attacher.write(1, data);
    });
    if (attacher.stdin && live.record.Config.OpenStdin) {
      attacher.onInput((data) => session.write(data));
      attacher.onInputEnd(() => {
        if (live.record.Config.StdinOnce) session.closeStdin();
      });
    }
    void session.closed.then(() => {
      live.sessions.delete(session);
      attacher.end();
    });
    void attacher.closed.then(() => {
      // A client that goes away (detach) never stops the container.
      if (live.sessions.has(session)) {
        live.sessions.delete(session);
        session.close();
      }
    });
    this.#emit(live.record, 'attach');
  }

  async resize(idOrName: string, size: { width: number; height: number }): Promise<void> {
    const live = this.#find(idOrName);
    live.consoleSize = size;
    if (live.record.State.Running) {
      if (!live.record.Config.Tty) return;
      await this.#runtime.resize(live.record.Id, size);
    }
  }

  logs(idOrName: string, options: { follow?: boolean; since?: number; until?: number; tail?: number; signal?: AbortSignal }) {
    const live = this.#find(idOrName);
    const follow = Boolean(options.follow && live.record.State.Running);
    // Only a follower waits for the exit; its waiter leaves with it.
    let waiter: Live['waiters'][number] | undefined;
    const stopWhen = follow
      ? new Promise<void>((resolve) => {
          waiter = { condition: 'next-exit', resolve: () => resolve() };
          live.waiters.push(waiter);
        })
      : Promise.resolve();
    const runtime = this.#runtime;
    const logPath = live.record.LogPath;
    const maxFile = (() => {
      try {
        return logLimits(live.record.HostConfig.LogConfig.Config).maxFile;
      } catch {
        return 1;
      }
    })();
    const release = () => {
      if (waiter) live.waiters = live.waiters.filter((w) => w !== waiter);
    };
    return {
      record: live.record,
      entries: (async function* () {
        try {
          yield* readRotatedLogs(runtime, logPath, { ...options, maxFile, follow, stopWhen });
        } finally {
          release();
        }
      })(),
    };
  }

  // ---------------------------------------------------------------- top

  async top(idOrName: string, psArgs = '-ef'): Promise<{ Titles: string[]; Processes: string[][] }> {
    const { record } = this.#find(idOrName);
    if (!record.State.Running) throw conflict(`Container ${record.Id} is not running`);
    const pids = new Set((await this.#runtime.pids(`/baleia/${record.Id}`)).map(String));
    const args = psArgs.split(/\s+/).filter(Boolean);
    const out = await run('ps', args, {}).catch((err) => {
      throw invalidArgument(`Error running ps: ${describeError(err)}`);
    });
    const lines = out.stdout.split('\n').filter((l) => l.trim() !== '');
    const header = lines.shift() ?? '';
    const titles = header.trim().split(/\s+/);
    const pidCol = titles.indexOf('PID');
    if (pidCol < 0) throw invalidArgument(`Couldn't find PID field in ps output`);
    const processes = lines
      .map((line) => {
        const fields = line.trim().split(/\s+/);
        const head = fields.slice(0, titles.length - 1);
        return [...head, fields.slice(titles.length - 1).join(' ')];
      })
      .filter((fields) => pids.has(fields[pidCol]!));
    this.#emit(record, 'top');
    return { Titles: titles, Processes: processes };
  }

  // ---------------------------------------------------------------- exec

  createExec(idOrName: string, body: Json): ExecRecord {
    return this.#execs.create(this.#find(idOrName).record, body);
  }

  getExec(id: string): ExecRecord {
    return this.#execs.get(id);
  }

  execIds(containerId: string): string[] {
    return this.#execs.idsOf(containerId);
  }

  /** Checks an exec can start, before the connection is hijacked. */
  checkExecStartable(id: string): ExecRecord {
    return this.#execs.checkStartable(id);
  }

  /**
   * Runs an exec. With an attacher, output flows to it and it is ended after the exit code is
   * recorded (clients read `GET /exec/{id}/json` right at end of stream).
   */
  async startExec(id: string, attacher: Attacher | undefined): Promise<void> {
    return this.#execs.start(id, attacher);
  }

  async resizeExec(id: string, size: { width: number; height: number }): Promise<void> {
    return this.#execs.resize(id, size);
  }

  // ---------------------------------------------------------------- files: cp, export, diff, commit

  async statPath(idOrName: string, containerPath: string): Promise<PathStat> {
    return this.#files.stat(this.#find(idOrName).record, containerPath);
  }

  /** `docker cp` out: a tar of the path; the rootfs stays mounted until the stream ends. */
  async getArchive(idOrName: string, containerPath: string, options: { signal?: AbortSignal } = {}): Promise<{ stat: PathStat; stream: NodeJS.ReadableStream }> {
    return this.#files.getArchive(this.#find(idOrName).record, containerPath, options);
  }

  /** `docker cp` in: extracts a tar into a directory of the container, never outside its root. */
  async putArchive(idOrName: string, containerPath: string, tar: NodeJS.ReadableStream, options: { noOverwriteDirNonDir?: boolean; copyUIDGID?: boolean; signal?: AbortSignal }): Promise<void> {
    return this.#files.putArchive(this.#find(idOrName).record, containerPath, tar, options);
  }

  async export(idOrName: string, options: { signal?: AbortSignal } = {}): Promise<NodeJS.ReadableStream> {
    return this.#files.export(this.#find(idOrName).record, options);
  }

  async changes(idOrName: string): Promise<Array<{ Path: string; Kind: 0 | 1 | 2 }>> {
    return this.#files.changes(this.#find(idOrName).record);
  }

  /**
   * `docker commit`: the container's changes become one new layer over its image, with the
   * container's config (plus `changes`) as the new image's config.
   */
  async commit(idOrName: string, options: { ref?: string; author?: string; comment?: string; changes?: (config: Json) => void; config?: Json; pause?: boolean }): Promise<ImageRecordLike> {
    return this.#files.commit(this.#find(idOrName).record, options);
  }

  // ---------------------------------------------------------------- health, stats, update

  async #startRotator(live: Live): Promise<void> {
    const { maxFile } = logLimits(live.record.HostConfig.LogConfig.Config);
    const rotator = new LogRotator({ logPath: live.record.LogPath, maxFile, logger: this.#log });
    await rotator.start().catch((err) => this.#log.warn('Cannot watch the log file', { container: live.record.Id, err: describeError(err) }));
    live.rotator = rotator;
  }

  #startHealth(live: Live, options: { fresh: boolean }): void {
    const { record } = live;
    const config = healthConfig(record.Config.Healthcheck as Json | undefined);
    if (!config) return;
    if (options.fresh || !record.State.Health) record.State.Health = { Status: 'starting', FailingStreak: 0, Log: [] };
    const monitor = new HealthMonitor({
      config,
      state: record.State.Health!,
      probe: (argv, timeoutMs) => this.#execs.probe(record, argv, timeoutMs),
      onUpdate: (state, changed) => {
        if (changed) this.#emit(record, `health_status: ${state.Status}`);
        void this.#save(record).catch(() => {});
      },
    });
    live.health = monitor;
    monitor.start();
  }

  /** Docker's stats objects: one sample (`oneShot`), a pair a second apart, or one a second while running. */
  async *stats(idOrName: string, options: { stream: boolean; oneShot?: boolean; signal?: AbortSignal }): AsyncGenerator<Json> {
    const { record } = this.#find(idOrName);
    const cgroup = `/baleia/${record.Id}`;
    const take = () => sampleStats(this.#runtime, cgroup, record);
    if (!record.State.Running) {
      yield zeroStats(record);
      return;
    }
    let previous = options.oneShot ? undefined : await take();
    if (!options.stream && !options.oneShot) await delay(1000, options.signal);
    for (;;) {
      if (options.signal?.aborted || !record.State.Running) return;
      const current = await take().catch(() => undefined);
      if (!current) return;
      yield {
        ...current,
        preread: previous?.read ?? '0001-01-01T00:00:00Z',
        precpu_stats: previous?.cpu_stats ?? { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } },
      };
      if (!options.stream) return;
      previous = current;
      await delay(1000, options.signal);
    }
  }

  /** `docker update`: resources and restart policy of a container, live when it runs. */
  async update(idOrName: string, body: Json): Promise<{ Warnings: string[] | null }> {
    const { record } = this.#find(idOrName);
    const next = updateHostConfig(record.HostConfig, body, this.#ncpu);
    if (record.State.Running) {
      await this.#runtime.update(record.Id, resourceLimits(specResources(next)));
    }
    record.HostConfig = next;
    await this.#save(record);
    this.#emit(record, 'update');
    return { Warnings: null };
  }

  // ---------------------------------------------------------------- prune, sizes

  async prune(match: (record: ContainerRecord) => boolean): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let space = 0;
    for (const live of [...this.#live.values()]) {
      const { record } = live;
      if (record.State.Running || record.State.Status === 'restarting' || !match(record)) continue;
      space += await this.#snapshots.diskUsage(this.#snapshots.containerUpperPath(record.Id)).catch(() => 0);
      await this.#locked(live, () => this.#remove(live, {}));
      deleted.push(record.Id);
    }
    return { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: space };
  }

  async sizeRw(id: string): Promise<number> {
    return this.#snapshots.diskUsage(this.#snapshots.containerUpperPath(id)).catch(() => 0);
  }

  /** Stops watching containers (daemon shutdown); the containers themselves keep running. */
  async shutdown(): Promise<void> {
    for (const live of this.#live.values()) {
      if (live.restartTimer) clearTimeout(live.restartTimer);
      for (const s of live.sessions) s.close();
    }
  }

  // ---------------------------------------------------------------- helpers

  #emit(record: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    this.#events.publish('container', action, record.Id, {
      ...record.Config.Labels,
      image: record.Config.Image,
      name: record.Name.slice(1),
      ...extra,
    });
  }

  async #save(record: ContainerRecord): Promise<void> {
    await writeJsonAtomic(path.join(this.dir(record.Id), 'container.json'), record);
  }

  /** Serialises the lifecycle operations of one container. */
  #locked<T>(live: Live, fn: () => Promise<T>): Promise<T> {
    const next = live.lock.then(fn, fn);
    live.lock = next.catch(() => {});
    return next;
  }
}

const delay = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });


/**
 * At create, only a missing image may be NotFound: the docker CLI answers a 404 from create by
 * pulling the image, so a missing network, container or volume source is an invalid argument.
 */
function notFoundIsInvalid(err: unknown): never {
  if (isKind(err, 'NotFound')) throw invalidArgument((err as Error).message, { cause: err });
  throw err;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** The outcome of `p` as a value: a failure met while the caller awaits something else is not an unhandled rejection. */
function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}
