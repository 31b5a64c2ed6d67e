import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isKind } from '../lib/index.js';
import { buildSpec, capabilitySet, defaultCapabilities, defaultSeccompProfile, parseSignal, seccompToOci, type SpecInput } from './index.js';

const base: SpecInput = {
  id: 'c1',
  rootfs: '/r',
  args: ['sh'],
  env: ['PATH=/bin'],
  cwd: '/',
  user: { uid: 0, gid: 0 },
  terminal: false,
  hostname: 'h',
  network: { mode: 'new' },
  cgroupsPath: '/baleia/c1',
  resources: {},
};
type Spec = {
  process: { args: string[]; capabilities: { bounding: string[] }; rlimits: Array<{ type: string; soft: number; hard: number }> };
  mounts: Array<{ destination: string; type: string; options: string[] }>;
  hostname?: string;
  linux: {
    namespaces: Array<{ type: string; path?: string }>;
    resources: { memory?: Record<string, unknown>; cpu?: Record<string, unknown>; pids?: { limit: number }; devices: Array<Record<string, unknown>> };
    seccomp?: { defaultAction: string; syscalls: Array<{ names: string[]; action: string }> };
    maskedPaths: string[];
    devices?: Array<Record<string, unknown>>;
  };
};
const spec = (over: Partial<SpecInput> = {}) => buildSpec({ ...base, ...over }) as unknown as Spec;

describe('buildSpec', () => {
  it('gives Docker\'s default capabilities, masked paths and seccomp', () => {
    const s = spec();
    assert.deepEqual([...s.process.capabilities.bounding].sort(), [...defaultCapabilities].sort());
    assert.ok(s.linux.maskedPaths.includes('/proc/kcore'));
    assert.equal(s.linux.seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
    const allowed = new Set(s.linux.seccomp!.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names));
    for (const name of ['read', 'write', 'execve', 'clone', 'futex', 'epoll_wait', 'socket']) assert.ok(allowed.has(name), name);
    for (const name of ['mount', 'reboot', 'init_module', 'bpf', 'unshare', 'settimeofday']) assert.ok(!allowed.has(name), name);
  });

  it('uses namespaces by mode and a cgroup namespace on v2 only', () => {
    const types = (s: Spec) => s.linux.namespaces.map((n) => n.type).sort();
    assert.deepEqual(types(spec()), ['ipc', 'mount', 'network', 'pid', 'uts']);
    assert.deepEqual(types(spec({ cgroupVersion: 2 })), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts']);
    const s = spec({ network: { mode: 'path', path: '/run/netns/x' }, pidMode: 'host', ipcMode: 'host', utsMode: 'host' });
    assert.deepEqual(s.linux.namespaces, [{ type: 'mount' }, { type: 'network', path: '/run/netns/x' }]);
    assert.equal(s.hostname, undefined);
    assert.ok(!spec({ network: { mode: 'host' } }).linux.namespaces.some((n) => n.type === 'network'));
  });

  it('makes privileged containers all-capable, unconfined, with rw /sys and every device', () => {
    const s = spec({ privileged: true, hostCapabilities: ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN'] });
    assert.deepEqual(s.process.capabilities.bounding, ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']);
    assert.equal(s.linux.seccomp, undefined);
    assert.deepEqual(s.linux.maskedPaths, []);
    assert.ok(s.mounts.find((m) => m.destination === '/sys')!.options.includes('rw'));
    assert.deepEqual(s.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
  });

  it('adds and drops capabilities, ALL included, with or without the CAP_ prefix', () => {
    assert.ok(capabilitySet({ capAdd: ['net_admin'] }).includes('CAP_NET_ADMIN'));
    assert.ok(!capabilitySet({ capDrop: ['CHOWN'] }).includes('CAP_CHOWN'));
    assert.deepEqual(capabilitySet({ capDrop: ['ALL'], capAdd: ['CAP_KILL'] }), ['CAP_KILL']);
    assert.equal(capabilitySet({ capAdd: ['ALL'], available: ['CAP_CHOWN', 'CAP_KILL'] }).length, 2);
    assert.throws(() => capabilitySet({ capAdd: ['FLY'] }), (e: Error) => isKind(e, 'InvalidArgument'));
  });

  it('lets seccomp rules depend on capabilities', () => {
    const withAdmin = seccompToOci(defaultSeccompProfile, { capabilities: ['CAP_SYS_ADMIN'], arch: 'x64' });
    const names = new Set(withAdmin.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
    assert.ok(names.has('mount') && names.has('unshare') && names.has('clone'));
    assert.deepEqual(withAdmin.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const all = withAdmin.syscalls.filter((r) => !r.args).flatMap((r) => r.names);
    assert.equal(all.length, new Set(all).size, 'no syscall has two unconditional rules');
    assert.equal(spec({ seccomp: 'unconfined' }).linux.seccomp, undefined);
  });

  it('translates resources like Docker', () => {
    const s = spec({ resources: { memory: 100, nanoCpus: 1_500_000_000, pidsLimit: 50, cpuShares: 512 } });
    assert.deepEqual(s.linux.resources.memory, { limit: 100, swap: 200 });
    assert.deepEqual(s.linux.resources.cpu, { shares: 512, period: 100000, quota: 150000 });
    assert.deepEqual(s.linux.resources.pids, { limit: 50 });
    assert.deepEqual(spec({ resources: { memory: 100, memorySwap: -1 } }).linux.resources.memory, { limit: 100, swap: -1 });
    assert.throws(() => spec({ resources: { memory: 100, memorySwap: 50 } }), (e: Error) => isKind(e, 'InvalidArgument'));
  });

  it('wraps the command with tini for init and mounts it', () => {
    const s = spec({ init: true, args: ['sleep', '1'] });
    assert.deepEqual(s.process.args, ['/sbin/docker-init', '--', 'sleep', '1']);
    assert.ok(s.mounts.some((m) => m.destination === '/sbin/docker-init'));
  });

  it('derives nofile from the host hard limit and applies ulimits', () => {
    const s = spec({ hostRlimits: { nofile: { soft: 1024, hard: 20000 } }, ulimits: [{ name: 'core', soft: 0, hard: 0 }] });
    assert.deepEqual(s.process.rlimits, [
      { type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 },
      { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
    ]);
    assert.throws(() => spec({ ulimits: [{ name: 'bogus', soft: 1, hard: 1 }] }), (e: Error) => isKind(e, 'InvalidArgument'));
  });

  it('lets a user mount replace a default one and sorts mounts parents first', () => {
    const s = spec({
      shmSize: 1024,
      mounts: [
        { destination: '/a/b', type: 'bind', source: '/x', options: ['rbind'] },
        { destination: '/a', type: 'bind', source: '/y', options: ['rbind'] },
        { destination: '/dev/shm', type: 'tmpfs', source: 'tmpfs', options: ['size=1g'] },
      ],
    });
    const dests = s.mounts.map((m) => m.destination);
    assert.equal(dests.filter((d) => d === '/dev/shm').length, 1);
    assert.ok(dests.indexOf('/a') < dests.indexOf('/a/b'));
    assert.ok(spec({ shmSize: 1024 }).mounts.find((m) => m.destination === '/dev/shm')!.options.includes('size=1024'));
  });

  it('adds resolved devices with a cgroup rule and leaves unresolved ones for the driver', () => {
    const s = spec({
      devices: [
        { pathInContainer: '/dev/fuse', type: 'c', major: 10, minor: 229, cgroupPermissions: 'rw' },
        { pathOnHost: '/dev/kvm', pathInContainer: '/dev/kvm', cgroupPermissions: 'rwm' },
      ],
    });
    assert.deepEqual(s.linux.devices?.[0], { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 });
    assert.deepEqual(s.linux.devices?.[1], { path: '/dev/kvm', pathOnHost: '/dev/kvm', cgroupPermissions: 'rwm' });
    assert.ok(s.linux.resources.devices.some((d) => d.major === 10 && d.minor === 229 && d.access === 'rw'));
  });

  it('refuses a relative rootfs and an empty command', () => {
    assert.throws(() => spec({ rootfs: 'r' }), (e: Error) => isKind(e, 'InvalidArgument'));
    assert.throws(() => spec({ args: [] }), (e: Error) => isKind(e, 'InvalidArgument'));
  });
});

describe('parseSignal', () => {
  it('accepts names with or without SIG, numbers and numeric strings', () => {
    assert.equal(parseSignal('TERM'), 15);
    assert.equal(parseSignal('SIGKILL'), 9);
    assert.equal(parseSignal('sighup'), 1);
    assert.equal(parseSignal(15), 15);
    assert.equal(parseSignal('9'), 9);
    assert.equal(parseSignal('SIGRTMIN+1'), 35);
    assert.throws(() => parseSignal('NOPE'), (e: Error) => isKind(e, 'InvalidArgument'));
    assert.throws(() => parseSignal(0), (e: Error) => isKind(e, 'InvalidArgument'));
  });
});
