/**
 * The container's process as runc starts it: the OCI spec input made from a container record
 * (environment, namespaces, resources, security options, the /etc files bind-mounted over the
 * rootfs), the user it runs as (looked up in the rootfs's passwd and group), its working
 * directory, and Docker's exit codes for a command that cannot start.
 *
 * What the spec needs from elsewhere comes in: the rootfs (mounted by the manager), the network
 * namespace (container-network.ts), the volume mounts (container-mounts.ts), the host's limits.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { errnoCode, invalidArgument, readTextIfExists } from '../lib/index.js';
import type { SpecInput } from '../runtime/index.js';
import { mergeEnv, resolveUser, specResources } from './container-config.js';
import type { ContainerRecord } from './containers.js';

export type ProcessUser = ReturnType<typeof resolveUser>;

/** What the host allows, found once at daemon start. */
export type HostLimits = Pick<SpecInput, 'hostCapabilities' | 'hostRlimits' | 'cgroupVersion'>;

/** The user `user` (`name`, `uid[:gid]`…) as the rootfs's /etc/passwd and /etc/group define it. */
export async function userIn(rootfs: string, user: string): Promise<ProcessUser> {
  return resolveUser(
    user,
    await readTextIfExists(path.join(rootfs, 'etc/passwd')),
    await readTextIfExists(path.join(rootfs, 'etc/group')),
  );
}

export function specInput(
  record: ContainerRecord,
  proc: { rootfs: string; user: ProcessUser; cwd: string; network: SpecInput['network']; host: HostLimits },
): SpecInput {
  const { rootfs, user, cwd, network } = proc;
  const hc = record.HostConfig;
  const networkMode = hc.NetworkMode;
  const env = mergeEnv(
    [`HOSTNAME=${record.Config.Hostname}`, ...(record.Config.Tty ? ['TERM=xterm'] : [])],
    record.Config.Env,
  );
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.uid === 0 ? '/root' : '/'}`);
  const security = parseSecurityOpts(hc.SecurityOpt ?? []);
  const mounts: Array<{ destination: string; type: string; source: string; options: string[] }> = [];
  for (const [file, dest] of [[record.HostnamePath, '/etc/hostname'], [record.HostsPath, '/etc/hosts'], [record.ResolvConfPath, '/etc/resolv.conf']] as const)
    mounts.push({ destination: dest, type: 'bind', source: file, options: ['rbind', 'rprivate', ...(hc.ReadonlyRootfs ? ['ro'] : [])] });
  return {
    id: record.Id,
    rootfs,
    readonlyRootfs: hc.ReadonlyRootfs,
    args: [record.Path, ...record.Args],
    env,
    cwd,
    user,
    terminal: record.Config.Tty,
    hostname: networkMode === 'host' ? os.hostname() : record.Config.Hostname,
    domainname: record.Config.Domainname,
    network,
    ipcMode: (hc.IpcMode === 'host' ? 'host' : hc.IpcMode === 'shareable' ? 'shareable' : 'private') as 'host' | 'shareable' | 'private',
    pidMode: (hc.PidMode === 'host' ? 'host' : 'private') as 'host' | 'private',
    utsMode: (hc.UTSMode === 'host' || networkMode === 'host' ? 'host' : 'private') as 'host' | 'private',
    cgroupsPath: `/baleia/${record.Id}`,
    resources: specResources(hc),
    privileged: hc.Privileged,
    capAdd: hc.CapAdd ?? [],
    capDrop: hc.CapDrop ?? [],
    seccomp: security.seccomp,
    noNewPrivileges: security.noNewPrivileges,
    devices: (hc.Devices ?? []).map((d) => ({
      pathOnHost: d.PathOnHost,
      pathInContainer: d.PathInContainer || d.PathOnHost,
      cgroupPermissions: d.CgroupPermissions || 'rwm',
    })),
    sysctls: hc.Sysctls ?? {},
    ulimits: (hc.Ulimits ?? []).map((u) => ({ name: u.Name, soft: u.Soft, hard: u.Hard })),
    shmSize: hc.ShmSize,
    mounts,
    init: Boolean(hc.Init),
    ...proc.host,
  };
}

/** Docker's exit codes for a command that cannot start: 127 not found, 126 not invokable. */
export function startErrorExitCode(message: string, command: string): number | undefined {
  const m = message.toLowerCase();
  if (m.includes('executable file not found') || (m.includes('no such file or directory') && m.includes(command.toLowerCase())))
    return 127;
  if (m.includes('permission denied') || m.includes('is a directory') || m.includes('exec format error')) return 126;
  return undefined;
}

function parseSecurityOpts(opts: string[]): { seccomp: 'default' | 'unconfined' | object; noNewPrivileges: boolean } {
  let seccomp: 'default' | 'unconfined' | object = 'default';
  let noNewPrivileges = false;
  for (const opt of opts) {
    const [key, value = ''] = opt.includes('=') ? [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)] : opt.split(':');
    if (key === 'seccomp') {
      if (value === 'unconfined') seccomp = 'unconfined';
      else {
        try {
          // The docker CLI reads a profile file and sends its JSON content.
          seccomp = JSON.parse(value) as object;
        } catch {
          throw invalidArgument(`Invalid security option "seccomp": ${JSON.stringify(value.slice(0, 40))} is not a JSON seccomp profile`);
        }
      }
    } else if (key === 'no-new-privileges') noNewPrivileges = value === '' || value === 'true';
    else if (key === 'apparmor' || key === 'label') continue;
    else throw invalidArgument(`invalid --security-opt: ${JSON.stringify(opt)}`);
  }
  return { seccomp, noNewPrivileges };
}

/** Creates `dir` inside `rootfs` without following symlinks out of it. */
export async function ensureDirIn(rootfs: string, dir: string): Promise<void> {
  let current = rootfs;
  for (const part of dir.split('/').filter((p) => p && p !== '.')) {
    if (part === '..') throw invalidArgument(`the working directory '${dir}' is invalid`);
    current = path.join(current, part);
    try {
      const st = await fs.lstat(current);
      if (st.isSymbolicLink()) return; // resolved by the runtime inside the container
      if (!st.isDirectory()) throw invalidArgument(`Cannot use working directory "${dir}": not a directory`);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      await fs.mkdir(current, { mode: 0o755 });
    }
  }
}
