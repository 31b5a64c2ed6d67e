/**
 * Seccomp (pure): baleia's default profile and the conversion of a Docker-format profile into the
 * OCI `linux.seccomp` object.
 *
 * The default is an allowlist: anything not named fails with EPERM. It follows the same policy as
 * Docker's default (which it is meant to be compatible with, not a copy of): everything an ordinary
 * program needs is allowed; syscalls that reach kernel-global state (modules, clocks, reboot,
 * mount, namespaces, keyrings, bpf, perf, ptrace of foreign processes…) are allowed only when
 * the container holds the capability that guards them, because a container given that capability
 * is expected to use it.
 *
 * Docker-format profile: `{ defaultAction, defaultErrnoRet?, architectures? | archMap?, syscalls:
 * [{ names, action, errnoRet?, args?, includes?: { caps?, arches?, minKernel? }, excludes?: {…} }] }`.
 * `includes.caps` means "only when the process has all of these capabilities", `excludes.caps`
 * "only when it has none of them".
 */

export interface DockerSeccompRule {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }> | null;
  includes?: { caps?: string[]; arches?: string[]; minKernel?: string };
  excludes?: { caps?: string[]; arches?: string[]; minKernel?: string };
  comment?: string;
}

export interface DockerSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  syscalls?: DockerSeccompRule[];
  flags?: string[];
  listenerPath?: string;
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls: Array<{
    names: string[];
    action: string;
    errnoRet?: number;
    args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
  }>;
}

// Namespace-creating clone flags: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME.
// Without CAP_SYS_ADMIN, clone() is allowed only when none of them is set (argument 0 on x86_64).
const cloneNamespaceFlags = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080;

/** Everything an unprivileged program needs: files, memory, processes, signals, time, sockets. */
const baseAllowed = [
  // files and directories
  'access', 'faccessat', 'faccessat2', 'chdir', 'fchdir', 'chmod', 'fchmod', 'fchmodat', 'fchmodat2',
  'chown', 'chown32', 'fchown', 'fchown32', 'fchownat', 'lchown', 'lchown32', 'close', 'close_range',
  'creat', 'dup', 'dup2', 'dup3', 'fadvise64', 'fadvise64_64', 'fallocate', 'fcntl', 'fcntl64',
  'fdatasync', 'fsync', 'sync', 'syncfs', 'sync_file_range', 'flock', 'ftruncate', 'ftruncate64',
  'truncate', 'truncate64', 'getcwd', 'getdents', 'getdents64', 'link', 'linkat', 'lseek', '_llseek',
  'mkdir', 'mkdirat', 'mknod', 'mknodat', 'open', 'openat', 'openat2', 'read', 'readv', 'pread64',
  'preadv', 'preadv2', 'readahead', 'readlink', 'readlinkat', 'rename', 'renameat', 'renameat2',
  'rmdir', 'unlink', 'unlinkat', 'stat', 'stat64', 'fstat', 'fstat64', 'lstat', 'lstat64',
  'newfstatat', 'fstatat64', 'statx', 'statfs', 'statfs64', 'fstatfs', 'fstatfs64', 'symlink',
  'symlinkat', 'umask', 'utime', 'utimes', 'utimensat', 'utimensat_time64', 'futimesat', 'write',
  'writev', 'pwrite64', 'pwritev', 'pwritev2', 'sendfile', 'sendfile64', 'splice', 'tee', 'vmsplice',
  'copy_file_range', 'getxattr', 'lgetxattr', 'fgetxattr', 'setxattr', 'lsetxattr', 'fsetxattr',
  'listxattr', 'llistxattr', 'flistxattr', 'removexattr', 'lremovexattr', 'fremovexattr', 'ioctl',
  'pipe', 'pipe2', 'memfd_create', 'name_to_handle_at',
  // polling and events
  'select', '_newselect', 'pselect6', 'pselect6_time64', 'poll', 'ppoll', 'ppoll_time64',
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_wait', 'epoll_wait_old',
  'epoll_pwait', 'epoll_pwait2', 'eventfd', 'eventfd2', 'signalfd', 'signalfd4', 'timerfd_create',
  'timerfd_settime', 'timerfd_settime64', 'timerfd_gettime', 'timerfd_gettime64', 'inotify_init',
  'inotify_init1', 'inotify_add_watch', 'inotify_rm_watch', 'io_setup', 'io_destroy', 'io_submit',
  'io_cancel', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64', 'io_uring_setup',
  'io_uring_enter', 'io_uring_register',
  // memory
  'brk', 'mmap', 'mmap2', 'munmap', 'mremap', 'mprotect', 'pkey_mprotect', 'pkey_alloc', 'pkey_free',
  'madvise', 'mincore', 'msync', 'mlock', 'mlock2', 'munlock', 'mlockall', 'munlockall',
  'membarrier', 'remap_file_pages', 'get_mempolicy', 'set_mempolicy', 'mbind', 'process_mrelease',
  // processes, threads, identity
  'arch_prctl', 'prctl', 'capget', 'capset', 'fork', 'vfork', 'execve', 'execveat',
  'exit', 'exit_group', 'wait4', 'waitid', 'waitpid', 'getpid', 'getppid', 'gettid', 'getpgid',
  'getpgrp', 'getsid', 'setsid', 'setpgid', 'getuid', 'getuid32', 'geteuid', 'geteuid32', 'getgid',
  'getgid32', 'getegid', 'getegid32', 'getresuid', 'getresuid32', 'getresgid', 'getresgid32',
  'getgroups', 'getgroups32', 'setuid', 'setuid32', 'setgid', 'setgid32', 'setreuid', 'setreuid32',
  'setregid', 'setregid32', 'setresuid', 'setresuid32', 'setresgid', 'setresgid32', 'setfsuid',
  'setfsuid32', 'setfsgid', 'setfsgid32', 'setgroups', 'setgroups32', 'set_tid_address',
  'set_robust_list', 'get_robust_list', 'rseq', 'futex', 'futex_time64', 'futex_waitv', 'futex_wait',
  'futex_wake', 'futex_requeue', 'getpriority', 'setpriority', 'getrlimit', 'ugetrlimit',
  'setrlimit', 'prlimit64', 'getrusage', 'sched_getaffinity', 'sched_setaffinity', 'sched_getattr',
  'sched_setattr', 'sched_getparam', 'sched_setparam', 'sched_getscheduler', 'sched_setscheduler',
  'sched_get_priority_max', 'sched_get_priority_min', 'sched_rr_get_interval',
  'sched_rr_get_interval_time64', 'sched_yield', 'ioprio_get', 'ioprio_set',
  'set_thread_area', 'get_thread_area', 'getcpu', 'uname', 'sysinfo', 'times', 'kill', 'tkill',
  'tgkill', 'pidfd_open', 'pidfd_send_signal', 'process_vm_readv',
  'process_vm_writev', 'ptrace', 'landlock_create_ruleset', 'landlock_add_rule',
  'landlock_restrict_self', 'seccomp', 'restart_syscall',
  // signals
  'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn',
  'rt_sigsuspend', 'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo', 'sigaction',
  'sigaltstack', 'signal', 'sigpending', 'sigprocmask', 'sigreturn', 'sigsuspend', 'pause',
  'alarm', 'getitimer', 'setitimer',
  // time (reading only; setting the clock needs CAP_SYS_TIME below)
  'clock_getres', 'clock_getres_time64', 'clock_gettime', 'clock_gettime64', 'clock_nanosleep',
  'clock_nanosleep_time64', 'gettimeofday', 'nanosleep', 'time', 'timer_create', 'timer_delete',
  'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64',
  // sockets (the network namespace is the isolation)
  'socket', 'socketpair', 'socketcall', 'bind', 'connect', 'listen', 'accept', 'accept4',
  'getsockname', 'getpeername', 'getsockopt', 'setsockopt', 'shutdown', 'recv', 'recvfrom',
  'recvmsg', 'recvmmsg', 'recvmmsg_time64', 'send', 'sendto', 'sendmsg', 'sendmmsg',
  // System V and POSIX IPC (the IPC namespace is the isolation)
  'ipc', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'semctl', 'semget', 'semop', 'semtimedop',
  'semtimedop_time64', 'shmat', 'shmctl', 'shmdt', 'shmget', 'mq_getsetattr', 'mq_notify',
  'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64', 'mq_timedsend', 'mq_timedsend_time64',
  'mq_unlink',
];

/** The default profile in Docker's format, so users can read and extend it the same way. */
export const defaultSeccompProfile: DockerSeccompProfile = {
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: 1, // EPERM
  archMap: [
    { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
    { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
  ],
  syscalls: [
    { names: baseAllowed, action: 'SCMP_ACT_ALLOW' },
    // clone3 passes its flags in a struct seccomp cannot inspect: answer ENOSYS so libcs fall back to
    // clone(), whose flags we can check; with CAP_SYS_ADMIN namespaces are allowed anyway.
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, excludes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['clone3'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: cloneNamespaceFlags, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      excludes: { caps: ['CAP_SYS_ADMIN'] },
    },
    // personality(2) changes only the execution domain; these values are what real programs use.
    ...[0x0, 0x0008, 0x20000, 0x20008, 0xffffffff].map((value) => ({
      names: ['personality'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }],
    })),
    // Syscalls guarded by a capability: allowed only when the container was given it.
    {
      names: ['clone', 'unshare', 'setns', 'mount', 'mount_setattr', 'move_mount', 'open_tree',
        'fsopen', 'fsconfig', 'fsmount', 'fspick', 'umount', 'umount2', 'pivot_root', 'sethostname',
        'setdomainname', 'quotactl', 'quotactl_fd', 'syslog', 'bpf', 'perf_event_open',
        'fanotify_init', 'lookup_dcookie', 'open_by_handle_at', 'iopl', 'ioperm', 'vhangup'],
      action: 'SCMP_ACT_ALLOW',
      includes: { caps: ['CAP_SYS_ADMIN'] },
    },
    { names: ['reboot'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_BOOT'] } },
    { names: ['chroot'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_CHROOT'] } },
    { names: ['init_module', 'finit_module', 'delete_module'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_MODULE'] } },
    { names: ['acct'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_PACCT'] } },
    { names: ['kcmp', 'pidfd_getfd', 'process_madvise'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_PTRACE'] } },
    { names: ['iopl', 'ioperm'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_RAWIO'] } },
    { names: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64', 'adjtimex', 'clock_adjtime', 'clock_adjtime64'],
      action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_TIME'] } },
    { names: ['vhangup'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_TTY_CONFIG'] } },
    { names: ['set_mempolicy_home_node'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_NICE'] } },
    { names: ['syslog'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYSLOG'] } },
    { names: ['bpf'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_BPF'] } },
    { names: ['perf_event_open'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_PERFMON'] } },
    // 32-bit ARM cache flush and TLS helpers are harmless and needed by ARM binaries.
    { names: ['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls'],
      action: 'SCMP_ACT_ALLOW', includes: { arches: ['arm', 'arm64'] } },
  ],
};

const archNames: Record<string, string> = {
  amd64: 'SCMP_ARCH_X86_64', x64: 'SCMP_ARCH_X86_64', arm64: 'SCMP_ARCH_AARCH64', arm: 'SCMP_ARCH_ARM',
  '386': 'SCMP_ARCH_X86', ia32: 'SCMP_ARCH_X86',
};

/**
 * A Docker-format profile → OCI `linux.seccomp` for a process holding `capabilities`, on the
 * machine architecture `arch` (Node's `process.arch` spelling: 'x64', 'arm64').
 */
export function seccompToOci(
  profile: DockerSeccompProfile,
  options: { capabilities: readonly string[]; arch: string },
): OciSeccomp {
  const caps = new Set(options.capabilities);
  const goArch = options.arch === 'x64' ? 'amd64' : options.arch;
  const myArch = archNames[options.arch];
  let architectures: string[] | undefined = profile.architectures;
  if (!architectures && profile.archMap) {
    const entry = profile.archMap.find((a) => a.architecture === myArch);
    architectures = entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : undefined;
  }
  const applies = (rule: DockerSeccompRule): boolean => {
    const inc = rule.includes ?? {};
    const exc = rule.excludes ?? {};
    if (inc.caps && !inc.caps.every((c) => caps.has(c))) return false;
    if (inc.arches && !inc.arches.includes(goArch)) return false;
    if (exc.caps && exc.caps.some((c) => caps.has(c))) return false;
    if (exc.arches && exc.arches.includes(goArch)) return false;
    return true;
  };
  const syscalls: OciSeccomp['syscalls'] = [];
  // libseccomp rejects two unconditional rules for one syscall with different actions, and a
  // name repeated under several capability rules is common: keep the first unconditional rule.
  const unconditional = new Set<string>();
  for (const rule of profile.syscalls ?? []) {
    if (!applies(rule)) continue;
    const hasArgs = !!rule.args && rule.args.length > 0;
    let names = rule.names ?? (rule.name ? [rule.name] : []);
    if (!hasArgs) {
      names = names.filter((n) => !unconditional.has(n));
      for (const n of names) unconditional.add(n);
    }
    if (names.length === 0) continue;
    syscalls.push({
      names: [...names],
      action: rule.action,
      ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
      ...(rule.args && rule.args.length > 0 ? { args: rule.args.map((a) => ({ valueTwo: 0, ...a })) } : {}),
    });
  }
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    ...(architectures ? { architectures } : {}),
    ...(profile.flags ? { flags: profile.flags } : {}),
    syscalls,
  };
}
