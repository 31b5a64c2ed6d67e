/**
 * Legacy container links (`--link name[:alias]`), as Docker keeps them for the default bridge:
 * the linked container's address under its alias, id and name in the linker's /etc/hosts, and
 * the `<ALIAS>_PORT_80_TCP…`, `<ALIAS>_NAME`, `<ALIAS>_ENV_…` variables in its environment. Pure:
 * the container manager finds the containers and their addresses.
 *
 * Stored form (HostConfig.Links, what inspect shows): `/<linked name>:/<linker name>/<alias>`.
 */

export interface Link {
  /** The linked container's name, without the leading slash. */
  name: string;
  alias: string;
}

/** A link whose container was found running, with what the linker learns of it. */
export interface ResolvedLink extends Link {
  id: string;
  ip: string;
  /** `80/tcp`… (ExposedPorts keys of the linked container). */
  exposedPorts: string[];
  /** The linked container's Config.Env. */
  env: string[];
}

/** `db`, `db:alias` (CLI form) or `/db:/web/alias` (stored form) → name and alias. */
export function parseLink(text: string): Link {
  const colon = text.indexOf(':');
  const rawName = colon < 0 ? text : text.slice(0, colon);
  const rawAlias = colon < 0 ? rawName : text.slice(colon + 1);
  const name = rawName.replace(/^\//, '');
  // The stored alias is the linker's path (/web/alias): keep its last part.
  const alias = rawAlias.slice(rawAlias.lastIndexOf('/') + 1);
  if (!name || !alias || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(alias)) throw new Error(`invalid link "${text}": expected NAME[:ALIAS]`);
  return { name, alias };
}

/** The stored form of a link of container `linkerName` (with its slash). */
export function storedLink(link: Link, linkerName: string): string {
  return `/${link.name}:${linkerName}/${link.alias}`;
}

/** The /etc/hosts line of a link: address, then alias, short id and name (each once). */
export function linkHostsEntry(link: ResolvedLink): { ip: string; name: string } {
  const names = [...new Set([link.alias, link.id.slice(0, 12), link.name])];
  return { ip: link.ip, name: names.join(' ') };
}

/** The variables a link adds to the linker's environment (Docker's legacy link variables). */
export function linkEnv(link: ResolvedLink, linkerName: string): string[] {
  const prefix = link.alias.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  const env = [`${prefix}_NAME=${linkerName}/${link.alias}`];
  const ports = link.exposedPorts
    .map((p) => {
      const [port = '', proto = 'tcp'] = p.split('/');
      return { port: Number(port), proto: proto.toLowerCase() };
    })
    .filter((p) => Number.isInteger(p.port) && p.port > 0)
    .sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto));
  if (ports.length > 0) env.push(`${prefix}_PORT=${ports[0]!.proto}://${link.ip}:${ports[0]!.port}`);
  for (const { port, proto } of ports) {
    const key = `${prefix}_PORT_${port}_${proto.toUpperCase()}`;
    env.push(`${key}=${proto}://${link.ip}:${port}`, `${key}_ADDR=${link.ip}`, `${key}_PORT=${port}`, `${key}_PROTO=${proto}`);
  }
  for (const entry of link.env) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    // What every image sets says nothing about the linked service.
    if (name === 'HOME' || name === 'PATH' || name === 'HOSTNAME') continue;
    env.push(`${prefix}_ENV_${name}=${entry.slice(eq + 1)}`);
  }
  return env;
}
