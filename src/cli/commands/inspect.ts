/**
 * `inspect`: objects by name as JSON (an array indented by four spaces, like docker) or through
 * a template. Without `--type` it tries container, image, network, volume in turn; a 404 moves on.
 */
import { isKind } from '../../lib/index.js';
import type { EngineClient } from '../../api/client.js';
import type { Command } from '../command.js';
import { errorText } from '../common.js';
import type { Cli } from '../context.js';
import { UsageError } from '../flags.js';
import { Template } from '../template.js';

const enc = encodeURIComponent;

export type ObjectType = 'container' | 'image' | 'network' | 'volume';

const routes: Record<ObjectType, (name: string, size: boolean) => { path: string; query?: Record<string, number> }> = {
  container: (n, size) => ({ path: `/containers/${enc(n)}/json`, query: size ? { size: 1 } : undefined }),
  image: (n) => ({ path: `/images/${enc(n)}/json` }),
  network: (n) => ({ path: `/networks/${enc(n)}` }),
  volume: (n) => ({ path: `/volumes/${enc(n)}` }),
};

const notFoundText = { object: (n: string) => `No such object: ${n}` };

async function fetchObject(client: EngineClient, type: ObjectType, name: string, size: boolean): Promise<unknown> {
  const route = routes[type](name, size);
  return client.json('GET', route.path, { query: route.query });
}

export async function inspectObjects(
  cli: Cli,
  names: readonly string[],
  options: { type?: ObjectType; format?: string; size?: boolean },
): Promise<number> {
  const client = await cli.client();
  const template = options.format ? new Template(options.format) : undefined;
  const found: unknown[] = [];
  const errors: string[] = [];
  for (const name of names) {
    const types: ObjectType[] = options.type ? [options.type] : ['container', 'image', 'network', 'volume'];
    let value: unknown;
    let lastError: unknown;
    for (const type of types) {
      try {
        value = await fetchObject(client, type, name, options.size ?? false);
        break;
      } catch (err) {
        lastError = err;
        if (!isKind(err, 'NotFound')) break;
      }
    }
    if (value === undefined) {
      // Typed lookups print the daemon's answer; the untyped walk ends in "No such object".
      if (isKind(lastError, 'NotFound') && !options.type) errors.push(`Error: ${notFoundText.object(name)}`);
      else errors.push(errorText(lastError));
      continue;
    }
    found.push(value);
  }
  if (template) {
    for (const value of found) cli.out(template.execute(value) + '\n');
  } else {
    cli.out(JSON.stringify(found, null, 4) + '\n');
  }
  for (const e of errors) cli.err(`${e}\n`);
  return errors.length ? 1 : 0;
}

export const inspectCommand: Command = {
  name: 'inspect',
  usage: '[OPTIONS] NAME|ID [NAME|ID...]',
  description: 'Return low-level information on Docker objects',
  flags: [
    { long: 'format', short: 'f', type: 'string', description: 'Format output using a custom template' },
    { long: 'size', short: 's', type: 'bool', description: 'Display total file sizes if the type is container' },
    { long: 'type', type: 'string', description: 'Only inspect objects of the given type' },
  ],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const type = flags.string('type');
    if (type && !['container', 'image', 'network', 'volume'].includes(type)) {
      throw new UsageError(`"${type}" is not a valid value for --type`);
    }
    return inspectObjects(cli, args, { type: type as ObjectType | undefined, format: flags.string('format'), size: flags.bool('size') });
  },
};
