/**
 * The contents of a container's /etc/resolv.conf and /etc/hosts (pure), in the formats glibc,
 * musl and busybox read: `nameserver`, `search`, `options` lines; `<ip>\t<names…>` lines.
 */

export function resolvConf(options: { nameservers: string[]; search?: string[]; options?: string[] }): string {
  const lines: string[] = [];
  if (options.search && options.search.length > 0) lines.push(`search ${options.search.join(' ')}`);
  for (const ns of options.nameservers) lines.push(`nameserver ${ns}`);
  if (options.options && options.options.length > 0) lines.push(`options ${options.options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** Host resolvers a container can use: loopback ones (systemd-resolved) are unreachable from its netns. */
export function usableHostResolvers(resolvConfText: string): { nameservers: string[]; search: string[]; options: string[] } {
  const out = { nameservers: [] as string[], search: [] as string[], options: [] as string[] };
  for (const line of resolvConfText.split('\n')) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === 'nameserver' && rest[0] && !rest[0].startsWith('127.') && rest[0] !== '::1') out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.search = rest;
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}

/**
 * /etc/hosts: localhost lines, the container's own address and hostname, then `extraHosts`
 * (`--add-host name:ip`, `--link` entries). The engine maps `host-gateway` to the gateway address
 * of the container's first network before calling this.
 */
export function hostsFile(options: { hostname: string; domainname?: string; ip?: string; extraHosts?: Array<{ name: string; ip: string }> }): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ];
  for (const h of options.extraHosts ?? []) lines.push(`${h.ip}\t${h.name}`);
  if (options.ip) {
    const fq = options.domainname ? `${options.hostname}.${options.domainname} ${options.hostname}` : options.hostname;
    lines.push(`${options.ip}\t${fq}`);
  }
  return lines.join('\n') + '\n';
}
