import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCreateRequest, containerFlags, parsePortSpec, runOnlyFlags } from './container-options.js';
import { parseFlags } from './flags.js';

function build(argv: string[], detach = false) {
  const { flags, args } = parseFlags([...containerFlags, ...runOnlyFlags], argv, { interspersed: false });
  return buildCreateRequest(flags, args, { detach, env: (k) => (k === 'HOME' ? '/root' : undefined), readFile: () => 'A=1\n# c\n\nB\n' });
}

test('a plain run attaches stdout and stderr and keeps the default network', () => {
  const req = build(['busybox', 'echo', 'hi']);
  assert.equal(req.body.Image, 'busybox');
  assert.deepEqual(req.body.Cmd, ['echo', 'hi']);
  assert.equal(req.body.AttachStdout, true);
  assert.equal(req.body.AttachStderr, true);
  assert.equal(req.body.AttachStdin, false);
  assert.equal(req.body.OpenStdin, false);
  assert.equal(req.body.HostConfig.NetworkMode, 'default');
  assert.deepEqual(Object.keys(req.body.NetworkingConfig.EndpointsConfig), ['default']);
  assert.deepEqual(build(['--network', 'host', 'busybox']).body.NetworkingConfig.EndpointsConfig, {});
  assert.deepEqual(req.body.HostConfig.RestartPolicy, { Name: 'no', MaximumRetryCount: 0 });
  assert.equal(req.body.Entrypoint, null);
});

test('-i sets OpenStdin, StdinOnce and AttachStdin; -d attaches nothing', () => {
  const i = build(['-i', 'busybox', 'cat']);
  assert.deepEqual([i.body.OpenStdin, i.body.StdinOnce, i.body.AttachStdin], [true, true, true]);
  const d = build(['-d', '-i', 'busybox'], true);
  assert.deepEqual([d.body.AttachStdin, d.body.AttachStdout, d.body.StdinOnce, d.body.OpenStdin], [false, false, false, true]);
});

test('resources, ports and volumes become HostConfig fields', () => {
  const req = build([
    '-m', '64m', '--memory-swap', '-1', '--cpus', '0.5', '--pids-limit', '10', '--ulimit', 'nofile=100:200',
    '-p', '8080:80', '-p', '127.0.0.1:9000:9000/udp', '-p', '9999', '-v', 'vol1:/data', '-v', '/anon',
    '--restart', 'on-failure:3', '--init', '--read-only', '--cap-add', 'NET_ADMIN', '--sysctl', 'net.ipv4.ip_forward=1',
    '--device', '/dev/null:/dev/xnull:r', '--shm-size', '1g', 'busybox',
  ]);
  const h = req.body.HostConfig;
  assert.equal(h.Memory, 67108864);
  assert.equal(h.MemorySwap, -1);
  assert.equal(h.NanoCpus, 500000000);
  assert.equal(h.PidsLimit, 10);
  assert.deepEqual(h.Ulimits, [{ Name: 'nofile', Soft: 100, Hard: 200 }]);
  assert.deepEqual(h.PortBindings, {
    '80/tcp': [{ HostIp: '', HostPort: '8080' }],
    '9000/udp': [{ HostIp: '127.0.0.1', HostPort: '9000' }],
    '9999/tcp': [{ HostIp: '', HostPort: '' }],
  });
  assert.deepEqual(req.body.ExposedPorts, { '80/tcp': {}, '9000/udp': {}, '9999/tcp': {} });
  assert.deepEqual(h.Binds, ['vol1:/data']);
  assert.deepEqual(req.body.Volumes, { '/anon': {} });
  assert.deepEqual(h.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  assert.equal(h.Init, true);
  assert.equal(h.ReadonlyRootfs, true);
  assert.deepEqual(h.CapAdd, ['CAP_NET_ADMIN']);
  assert.deepEqual(h.Sysctls, { 'net.ipv4.ip_forward': '1' });
  assert.deepEqual(h.Devices, [{ PathOnHost: '/dev/null', PathInContainer: '/dev/xnull', CgroupPermissions: 'r' }]);
  assert.equal(h.ShmSize, 1073741824);
});

test('env, env files and labels', () => {
  const req = build(['--env-file', 'f', '-e', 'X=1', '-e', 'HOME', '-e', 'UNSET', '-l', 'a=b', '-l', 'flag', 'busybox']);
  assert.deepEqual(req.body.Env, ['A=1', 'X=1', 'HOME=/root']);
  assert.deepEqual(req.body.Labels, { a: 'b', flag: '' });
});

test('--entrypoint "" resets the entrypoint', () => {
  assert.deepEqual(build(['--entrypoint', '', 'busybox']).body.Entrypoint, ['']);
  assert.deepEqual(build(['--entrypoint', 'sh', 'busybox']).body.Entrypoint, ['sh']);
});

test('--network with aliases keys the endpoint by network', () => {
  const req = build(['--network', 'n1', '--network-alias', 'a', '--ip', '10.0.0.5', 'busybox']);
  assert.equal(req.body.HostConfig.NetworkMode, 'n1');
  assert.deepEqual(req.body.NetworkingConfig.EndpointsConfig, { n1: { Aliases: ['a'], IPAMConfig: { IPv4Address: '10.0.0.5' } } });
});

test('--rm conflicts with a restart policy', () => {
  assert.throws(() => build(['--rm', '--restart', 'always', 'busybox']), /Conflicting options: --restart and --rm/);
});

test('port ranges map pairwise', () => {
  assert.deepEqual(parsePortSpec('8080-8081:80-81'), [
    { port: '80/tcp', binding: { HostIp: '', HostPort: '8080' } },
    { port: '81/tcp', binding: { HostIp: '', HostPort: '8081' } },
  ]);
  assert.deepEqual(parsePortSpec('[::1]:80:80'), [{ port: '80/tcp', binding: { HostIp: '::1', HostPort: '80' } }]);
});
