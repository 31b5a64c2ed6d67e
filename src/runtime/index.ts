/**
 * runtime: runs containers. It owns the OCI runtime spec (what a container is isolated by) and
 * the conmon + runc driver (how it is run and supervised); it reads cgroup statistics and conmon's
 * log files. It does not own images, rootfs mounts, networks or the container records: the engine
 * prepares the rootfs and the network namespace, calls `buildSpec`, and keeps its own state.
 *
 * Lifecycle (Runtime):
 *
 *   const rt = new Runtime({ execRoot: '/run/baleia' }); await rt.init();
 *   const spec = buildSpec({ id, rootfs, args: ['sh'], …, cgroupVersion: rt.cgroups.version,
 *                            hostCapabilities: await hostCapabilities(), hostRlimits: await hostRlimits() });
 *   await rt.create(id, { bundle, spec, terminal, openStdin, logPath });   // → 'created' (conmon + `runc create`)
 *   const io = await rt.attach(id);                                         // optional, before start
 *   await rt.start(id);                                                     // → 'running'
 *   await rt.kill(id, 'TERM'); const { exitCode, oomKilled } = await rt.waitExit(id);  // → 'stopped'
 *   await rt.delete(id);                                                    // runc state + exec-root dir gone
 *
 * Each container is supervised by its own conmon, double-forked and in its own session: the
 * daemon can die and a new Runtime over the same exec-root re-adopts the container (waitExit,
 * kill, attach, exec, delete all work from the files below). Start failures of the user's command
 * surface from `create` (runc 1.1 resolves the executable during `runc create`) as InvalidArgument
 * with runc's reason, e.g. `exec: "nope": executable file not found in $PATH`;
 * `startFailureExitCode(message)` maps it to Docker's 127/126.
 *
 * On-disk layout (exec-root is a tmpfs; nothing here survives a reboot, nor needs to):
 *
 *   <execRoot>/
 *     runc/<id>/state.json          runc's own state (runc --root <execRoot>/runc)
 *     exits/<id>                    exit code, written by conmon (--exit-dir: one dir to watch for all)
 *     containers/<id>/              conmon's bundle and persist dir for the container
 *       config.json                 the OCI spec runc runs (also written to <bundle>/config.json)
 *       conmon.pid                  conmon's pid (checked against /proc/<pid>/comm before use)
 *       pid                         the container init's host pid (runc --pid-file)
 *       attach                      conmon's SOCK_SEQPACKET attach socket
 *       ctl, winsz                  conmon's control FIFOs (resize: "1 <h> <w>\n" into ctl)
 *       exit                        exit code (128+signal when killed), mtime = exit time
 *       oom                         present when the memory cgroup OOM-killed a process
 *       execs/<execId>/             the same files for one `exec` (process.json instead of config.json)
 *
 * The log file lives where the engine says (`logPath`, normally <root>/containers/<id>/), in
 * conmon's k8s-file format; `readLogs` parses, tails and follows it.
 */
export { Runtime, runcReason, startFailureExitCode } from './runtime.js';
export type { RuntimeOptions, CreateOptions, ContainerStatus, ExitStatus, ExecOptions, ExecSession } from './runtime.js';
export type { AttachSession, StdStream } from './attach.js';
export {
  buildSpec,
  defaultMaskedPaths,
  defaultReadonlyPaths,
  defaultShmSize,
  initPathInContainer,
  resourceLimits,
} from './spec.js';
export type { SpecInput, SpecResources, SpecDevice, UnresolvedDevice, OciMount, Rlimit } from './spec.js';
export { defaultSeccompProfile, seccompToOci } from './seccomp.js';
export type { DockerSeccompProfile, OciSeccomp } from './seccomp.js';
export { allCapabilities, defaultCapabilities, capabilitySet, normalizeCapability } from './capabilities.js';
export { parseSignal, signalNumbers } from './signals.js';
export { detectCgroups, cgroupDir, statsFromV1, statsFromV2 } from './cgroups.js';
export type { CgroupInfo, CgroupStats, BlkioEntry } from './cgroups.js';
export { hostCapabilities, hostRlimits, resolveDevice, hostDevices } from './host.js';
export { readLogs, parseLogLine, normalizeTimestamp } from './logs.js';
export type { LogEntry, ReadLogsOptions } from './logs.js';
