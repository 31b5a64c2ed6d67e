/**
 * Pieces shared by commands: error text and exit statuses, filters, multi-target loops,
 * registry auth headers, confirmation prompts and image pulls.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { BaleiaError, describeError, isKind } from '../lib/index.js';
import { EngineResponseError, type EngineClient } from '../api/client.js';
import type { Cli } from './context.js';
import { UsageError } from './flags.js';
import { displayJsonMessages, type JsonMessage } from './progress.js';
import { familiarString, fullName, parseReference, withDefaultTag } from './reference.js';

/** The one line printed for an error: daemon answers as the docker CLI prints them. */
export function errorText(err: unknown): string {
  if (err instanceof EngineResponseError) return `Error response from daemon: ${err.message}`;
  if (err instanceof BaleiaError && err.kind === 'Unavailable') return describeError(err).split(': connect ')[0]!;
  return `Error: ${describeError(err)}`;
}

/** docker's exit status for a failed container start: 127 not found, 126 not executable, else 125. */
export function startFailureStatus(message: string): number {
  if (message.includes('executable file not found') || message.includes('no such file or directory')) return 127;
  if (message.includes('permission denied')) return 126;
  return 125;
}

/** `--filter k=v` (repeatable) → the `filters` query value, as a map of sets. */
export function filtersJson(list: readonly string[], extra: Record<string, string[]> = {}): string | undefined {
  const filters: Record<string, Record<string, boolean>> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`bad format of filter (expected name=value)`);
    const key = item.slice(0, eq).trim().toLowerCase();
    (filters[key] ??= {})[item.slice(eq + 1)] = true;
  }
  for (const [key, values] of Object.entries(extra)) for (const v of values) (filters[key] ??= {})[v] = true;
  return Object.keys(filters).length ? JSON.stringify(filters) : undefined;
}

/** Apply `action` to each name; print what succeeded, collect errors; exit 1 if any failed. */
export async function forEachTarget(
  cli: Cli,
  names: readonly string[],
  action: (name: string) => Promise<string | undefined | void>,
): Promise<number> {
  let failed = false;
  for (const name of names) {
    try {
      const printed = await action(name);
      if (printed !== undefined) cli.out(`${printed}\n`);
    } catch (err) {
      failed = true;
      cli.err(`${errorText(err)}\n`);
    }
  }
  return failed ? 1 : 0;
}

/** Ask `[y/N]` on the terminal; non-interactive stdin answers no. */
export async function confirm(cli: Cli, message: string): Promise<boolean> {
  cli.out(`${message}\nAre you sure you want to continue? [y/N] `);
  const rl = createInterface({ input: cli.io.stdin });
  const answer = await new Promise<string>((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(''));
  });
  rl.close();
  cli.io.stdin.pause();
  return /^y(es)?$/i.test(answer.trim());
}

// --- credentials ----------------------------------------------------------------------------------

export const dockerHubAuthKey = 'https://index.docker.io/v1/';

export interface AuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  email?: string;
  serveraddress?: string;
  identitytoken?: string;
}

/**
 * Where credentials live: the docker CLI's config dir ($DOCKER_CONFIG or ~/.docker), so a login
 * with either CLI serves both. $BALEIA_CONFIG overrides it for baleia alone.
 */
export function configDir(): string {
  return process.env.BALEIA_CONFIG || process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
}

export function readConfigFile(file: string): { auths?: Record<string, { auth?: string; identitytoken?: string }> } {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { auths?: Record<string, { auth?: string }> };
  } catch {
    return {};
  }
}

export function registryKey(domain: string): string {
  return domain === 'docker.io' ? dockerHubAuthKey : domain;
}

/** The stored credentials for a registry in config.json (an identity token wins), or anonymous. */
export function authFor(domain: string): AuthConfig {
  const key = registryKey(domain);
  const entry = readConfigFile(path.join(configDir(), 'config.json')).auths?.[key];
  if (entry?.identitytoken) return { identitytoken: entry.identitytoken, serveraddress: key };
  if (entry?.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress: key };
  }
  return {};
}

/** `X-Registry-Auth`: URL-safe base64 of the JSON auth config, with padding; `e30=` when anonymous. */
export function registryAuthHeader(auth: AuthConfig): string {
  return Buffer.from(JSON.stringify(auth)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

// --- pulls ----------------------------------------------------------------------------------------

/** `POST /images/create?fromImage=..&tag=..` with its progress shown on `out`. */
export async function pullImage(
  cli: Cli,
  client: EngineClient,
  image: string,
  options: { out: NodeJS.WriteStream; quiet?: boolean; platform?: string; allTags?: boolean },
): Promise<string> {
  let ref = parseReference(image);
  if (!options.allTags) ref = withDefaultTag(ref);
  const messages = client.stream<JsonMessage>('POST', '/images/create', {
    query: {
      fromImage: fullName(ref),
      ...(ref.digest ? { tag: ref.digest } : ref.tag !== undefined ? { tag: ref.tag } : {}),
      ...(options.platform ? { platform: options.platform } : {}),
    },
    headers: { 'X-Registry-Auth': registryAuthHeader(authFor(ref.domain)) },
  });
  if (options.quiet) {
    await displayJsonMessages(messages, { write: () => true }, { terminal: false });
  } else {
    await displayJsonMessages(messages, options.out, {
      terminal: !!options.out.isTTY,
      width: options.out.isTTY ? options.out.columns : 80,
    });
  }
  return `${fullName(ref)}${ref.digest ? `@${ref.digest}` : ref.tag !== undefined ? `:${ref.tag}` : ''}`;
}

export { familiarString, isKind };

/** `KEY=VALUE` flag values into a map (`--label`, `--opt`); a bare key maps to "". */
export function keyValues(list: readonly string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq < 0) map[item] = '';
    else map[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return map;
}
