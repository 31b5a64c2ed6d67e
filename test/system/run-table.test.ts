/**
 * The system-test table: each row is a command, its exit code and its output, run through our
 * CLI and through the real docker CLI against the same baleiad.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapBusybox, enabledClients, hasDocker, startDaemon, type Daemon, type RunResult } from './harness.js';

interface Row {
  name: string;
  args: string[];
  input?: string;
  code: number;
  stdout?: string | RegExp;
  stderr?: RegExp;
}

const rows: Row[] = [
  { name: 'true exits 0', args: ['run', '--rm', 'busybox', 'true'], code: 0, stdout: '' },
  { name: 'false exits 1', args: ['run', '--rm', 'busybox', 'false'], code: 1 },
  { name: 'the command\'s own exit code', args: ['run', '--rm', 'busybox', 'sh', '-c', 'exit 32'], code: 32 },
  { name: 'a missing command exits 127', args: ['run', '--rm', 'busybox', 'nope-not-here'], code: 127, stderr: /executable file not found|no such file/ },
  { name: 'a directory as command exits 126', args: ['run', '--rm', 'busybox', '/etc'], code: 126 },
  { name: 'a bad flag exits 125', args: ['run', '--rm', '--no-such-flag', 'busybox', 'true'], code: 125 },
  { name: 'an unknown image exits 125', args: ['run', '--rm', 'no-such-image-here:1', 'true'], code: 125 },
  { name: 'echo prints', args: ['run', '--rm', 'busybox', 'echo', 'hello'], code: 0, stdout: 'hello\n' },
  { name: 'stderr is kept apart', args: ['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2'], code: 0, stdout: 'out\n', stderr: /err/ },
  { name: '-e sets the environment', args: ['run', '--rm', '-e', 'FOO=bar baz', 'busybox', 'sh', '-c', 'echo "$FOO"'], code: 0, stdout: 'bar baz\n' },
  { name: '-w sets the working directory', args: ['run', '--rm', '-w', '/srv/app', 'busybox', 'pwd'], code: 0, stdout: '/srv/app\n' },
  { name: '-u sets the user', args: ['run', '--rm', '-u', 'nobody', 'busybox', 'id', '-u'], code: 0, stdout: '65534\n' },
  { name: '-u uid:gid', args: ['run', '--rm', '-u', '1234:4321', 'busybox', 'sh', '-c', 'echo $(id -u):$(id -g)'], code: 0, stdout: '1234:4321\n' },
  { name: '--entrypoint replaces the entrypoint', args: ['run', '--rm', '--entrypoint', 'echo', 'busybox', 'hi'], code: 0, stdout: 'hi\n' },
  { name: '--hostname sets the hostname', args: ['run', '--rm', '--hostname', 'whale1', 'busybox', 'hostname'], code: 0, stdout: 'whale1\n' },
  { name: 'PID 1 is the command', args: ['run', '--rm', 'busybox', 'sh', '-c', 'echo $$'], code: 0, stdout: '1\n' },
  { name: 'the default bridge gives eth0 beside lo', args: ['run', '--rm', 'busybox', 'ls', '/sys/class/net'], code: 0, stdout: 'eth0\nlo\n' },
  { name: 'the host\'s processes are invisible', args: ['run', '--rm', 'busybox', 'sh', '-c', 'ls -d /proc/[0-9]* | wc -l'], code: 0, stdout: /^\s*[1-3]\n$/ },
  { name: '--network none has only lo', args: ['run', '--rm', '--network', 'none', 'busybox', 'ls', '/sys/class/net'], code: 0, stdout: 'lo\n' },
  { name: '--read-only refuses writes', args: ['run', '--rm', '--read-only', 'busybox', 'touch', '/x'], code: 1, stderr: /Read-only file system/ },
  { name: '-t gives a terminal', args: ['run', '--rm', '-t', 'busybox', 'sh', '-c', 'test -t 1 && echo tty'], code: 0, stdout: 'tty\r\n' },
  { name: '-i passes stdin', args: ['run', '--rm', '-i', 'busybox', 'cat'], input: 'abc\ndef\n', code: 0, stdout: 'abc\ndef\n' },
  { name: '--init runs docker-init as PID 1', args: ['run', '--rm', '--init', 'busybox', 'cat', '/proc/1/cmdline'], code: 0, stdout: /docker-init/ },
  { name: 'a memory limit shows in the container\'s cgroup', args: ['run', '--rm', '-m', '64m', 'busybox', 'sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'], code: 0, stdout: '67108864\n' },
  { name: 'a pids limit shows in the container\'s cgroup', args: ['run', '--rm', '--pids-limit', '42', 'busybox', 'sh', '-c', 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max'], code: 0, stdout: '42\n' },
  { name: '--cpus sets the CFS quota', args: ['run', '--rm', '--cpus', '0.5', 'busybox', 'sh', '-c', 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d" " -f1 /sys/fs/cgroup/cpu.max'], code: 0, stdout: '50000\n' },
  { name: '--memory-swap sets the swap limit', args: ['run', '--rm', '-m', '32m', '--memory-swap', '64m', 'busybox', 'sh', '-c', 'cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null || echo $(( $(cat /sys/fs/cgroup/memory.swap.max) + 33554432 ))'], code: 0, stdout: '67108864\n' },
  { name: '--memory-reservation sets the soft limit', args: ['run', '--rm', '--memory-reservation', '20m', 'busybox', 'sh', '-c', 'cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.low'], code: 0, stdout: '20971520\n' },
  { name: '--cpu-shares sets the CPU weight', args: ['run', '--rm', '--cpu-shares', '512', 'busybox', 'sh', '-c', 'cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/cpu.weight'], code: 0, stdout: /^(512|20)\n$/ },
  { name: '--cpu-quota and --cpu-period set the CFS values', args: ['run', '--rm', '--cpu-quota', '25000', '--cpu-period', '50000', 'busybox', 'sh', '-c', 'echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max)'], code: 0, stdout: '25000 50000\n' },
  { name: '--cpuset-cpus pins the CPUs', args: ['run', '--rm', '--cpuset-cpus', '0', 'busybox', 'sh', '-c', 'cat /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || cat /sys/fs/cgroup/cpuset.cpus'], code: 0, stdout: '0\n' },
  { name: '--oom-kill-disable sets the OOM control', args: ['run', '--rm', '-m', '64m', '--oom-kill-disable', 'busybox', 'sh', '-c', 'grep -q "oom_kill_disable 1" /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null && echo disabled || { test -f /sys/fs/cgroup/memory.max && echo disabled; }'], code: 0, stdout: 'disabled\n' },
  { name: 'the default seccomp profile applies', args: ['run', '--rm', 'busybox', 'grep', 'Seccomp:', '/proc/self/status'], code: 0, stdout: 'Seccomp:\t2\n' },
  { name: '--security-opt seccomp=unconfined removes it', args: ['run', '--rm', '--security-opt', 'seccomp=unconfined', 'busybox', 'grep', 'Seccomp:', '/proc/self/status'], code: 0, stdout: 'Seccomp:\t0\n' },
  { name: '--security-opt no-new-privileges sets NoNewPrivs', args: ['run', '--rm', '--security-opt', 'no-new-privileges', 'busybox', 'grep', 'NoNewPrivs:', '/proc/self/status'], code: 0, stdout: 'NoNewPrivs:\t1\n' },
  { name: '--device adds a device node', args: ['run', '--rm', '--device', '/dev/null:/dev/mynull', 'busybox', 'sh', '-c', 'echo x > /dev/mynull && test -c /dev/mynull && echo ok'], code: 0, stdout: 'ok\n' },
  { name: 'devices outside the allowlist are refused', args: ['run', '--rm', '--privileged=false', 'busybox', 'sh', '-c', 'mknod /tmp/sda b 8 0 && head -c1 /tmp/sda'], code: 1 },
  { name: '--stop-signal and labels are recorded', args: ['run', '--rm', '--stop-signal', 'SIGUSR1', '-l', 'a=b', 'busybox', 'true'], code: 0 },
  { name: 'an invalid memory value is refused', args: ['run', '--rm', '-m', '1k', 'busybox', 'true'], code: 125, stderr: /Minimum memory limit/ },
  { name: '--cap-drop removes a capability', args: ['run', '--rm', '--cap-drop', 'CHOWN', 'busybox', 'chown', 'nobody', '/tmp'], code: 1 },
  { name: 'the default capabilities allow chown', args: ['run', '--rm', 'busybox', 'chown', 'nobody', '/tmp'], code: 0 },
  { name: 'NET_ADMIN is not granted by default', args: ['run', '--rm', 'busybox', 'ip', 'link', 'set', 'lo', 'down'], code: 2, stderr: /Operation not permitted/ },
  { name: '--cap-add grants a capability', args: ['run', '--rm', '--cap-add', 'NET_ADMIN', 'busybox', 'ip', 'link', 'set', 'lo', 'down'], code: 0 },
  { name: '--privileged grants everything', args: ['run', '--rm', '--privileged', 'busybox', 'ip', 'link', 'set', 'lo', 'down'], code: 0 },
  { name: '--ulimit sets a limit', args: ['run', '--rm', '--ulimit', 'nofile=512:1024', 'busybox', 'sh', '-c', 'ulimit -n'], code: 0, stdout: '512\n' },
  { name: '--shm-size sizes /dev/shm', args: ['run', '--rm', '--shm-size', '16m', 'busybox', 'sh', '-c', "df -k /dev/shm | tail -1 | awk '{print $2}'"], code: 0, stdout: '16384\n' },
  { name: '--sysctl sets a namespaced sysctl', args: ['run', '--rm', '--sysctl', 'net.ipv4.ip_forward=1', 'busybox', 'cat', '/proc/sys/net/ipv4/ip_forward'], code: 0, stdout: '1\n' },
  { name: '/proc/timer_list is masked', args: ['run', '--rm', 'busybox', 'sh', '-c', 'wc -c < /proc/timer_list'], code: 0, stdout: /^\s*0\n$/ },
  { name: '/proc/sys is read-only', args: ['run', '--rm', 'busybox', 'sh', '-c', 'echo 1 > /proc/sys/kernel/domainname'], code: 1, stderr: /Read-only file system/ },
];

const clients: Array<{ name: string; run: (d: Daemon, args: string[], input?: string) => Promise<RunResult> }> = [
  { name: 'baleia', run: (d, args, input) => d.cli(args, { input }) },
];
if (!enabledClients.includes('baleia')) clients.pop();
if (hasDocker && enabledClients.includes('docker')) clients.push({ name: 'docker', run: (d, args, input) => d.docker(args, { input }) });

describe('run: the exit-code and output table', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ name: 'table' });
    await bootstrapBusybox(daemon);
  });
  after(async () => {
    await daemon?.cleanup();
  });

  for (const client of clients) {
    for (const row of rows) {
      test(`${client.name}: ${row.name}`, async () => {
        const r = await client.run(daemon, row.args, row.input);
        const context = `${client.name} ${row.args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
        assert.equal(r.code, row.code, context);
        if (typeof row.stdout === 'string') assert.equal(r.stdout, row.stdout, context);
        else if (row.stdout) assert.match(r.stdout, row.stdout, context);
        if (row.stderr) assert.match(r.stderr, row.stderr, context);
      });
    }
  }

  test('--rm leaves no container behind', async () => {
    const r = await daemon.cli(['ps', '-a', '-q']);
    assert.equal(r.stdout.trim(), '', r.stdout);
  });
});
