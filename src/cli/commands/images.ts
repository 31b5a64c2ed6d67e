/**
 * Image commands: images, pull, push, import, load, save, tag, rmi, history, image inspect,
 * image prune, image bootstrap.
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { BaleiaError } from '../../lib/index.js';
import type { EngineClient } from '../../api/client.js';
import type { Command } from '../command.js';
import { authFor, confirm, filtersJson, forEachTarget, pullImage, registryAuthHeader } from '../common.js';
import type { Cli } from '../context.js';
import { formatList, sortedFields, tabwrite } from '../format.js';
import { UsageError } from '../flags.js';
import { displayJsonMessages, type JsonMessage } from '../progress.js';
import { familiarName, familiarString, fullName, parseReference } from '../reference.js';
import { goTimeString, humanSize, timeAgo } from '../units.js';
import { inspectObjects } from './inspect.js';

const enc = encodeURIComponent;

export interface ImageSummary {
  Id: string;
  ParentId?: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Created: number;
  Size: number;
  SharedSize?: number;
  VirtualSize?: number;
  Labels?: Record<string, string> | null;
  Containers?: number;
}

function shortImageId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

/** One row per repository:tag (and per digest with --digests), like docker's image formatter. */
export function imageRows(images: readonly ImageSummary[], options: { trunc: boolean; digests: boolean; now?: number }) {
  const rows: Array<Record<string, unknown>> = [];
  for (const image of images) {
    const tags = (image.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
    const digests = (image.RepoDigests ?? []).filter((d) => d !== '<none>@<none>');
    const add = (repo: string, tag: string, digest: string) => {
      const ctx = sortedFields({
        Containers: image.Containers === undefined || image.Containers < 0 ? 'N/A' : String(image.Containers),
        CreatedAt: goTimeString(image.Created),
        CreatedSince: timeAgo(image.Created, options.now),
        Digest: digest,
        ID: options.trunc ? shortImageId(image.Id) : image.Id,
        Repository: repo,
        SharedSize: image.SharedSize === undefined || image.SharedSize < 0 ? 'N/A' : humanSize(image.SharedSize, 3),
        Size: humanSize(image.Size, 3),
        Tag: tag,
        UniqueSize: image.SharedSize === undefined || image.SharedSize < 0 ? 'N/A' : humanSize(image.Size - image.SharedSize, 3),
        VirtualSize: humanSize(image.VirtualSize ?? image.Size),
      });
      rows.push(ctx);
    };
    if (tags.length === 0 && digests.length === 0) {
      add('<none>', '<none>', '<none>');
      continue;
    }
    const byRepoTags = new Map<string, string[]>();
    const byRepoDigests = new Map<string, string[]>();
    for (const t of tags) {
      const colon = t.lastIndexOf(':');
      const repo = colon > t.lastIndexOf('/') ? t.slice(0, colon) : t;
      const tag = colon > t.lastIndexOf('/') ? t.slice(colon + 1) : '<none>';
      byRepoTags.set(repo, [...(byRepoTags.get(repo) ?? []), tag]);
    }
    for (const d of digests) {
      const at = d.indexOf('@');
      const repo = at >= 0 ? d.slice(0, at) : d;
      byRepoDigests.set(repo, [...(byRepoDigests.get(repo) ?? []), at >= 0 ? d.slice(at + 1) : '']);
    }
    for (const [repo, repoTags] of [...byRepoTags].sort(([a], [b]) => a.localeCompare(b))) {
      const repoDigests = options.digests ? (byRepoDigests.get(repo) ?? []) : [];
      byRepoDigests.delete(repo);
      for (const tag of repoTags.sort()) {
        if (repoDigests.length === 0) add(repo, tag, '<none>');
        else for (const d of repoDigests) add(repo, tag, d);
      }
    }
    for (const [repo, repoDigests] of byRepoDigests) {
      if (options.digests) for (const d of repoDigests) add(repo, '<none>', d);
      else add(repo, '<none>', '');
    }
  }
  return rows;
}

export const imageHeaders: Record<string, string> = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  VirtualSize: 'VIRTUAL SIZE',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
};

export const imagesCommand: Command = {
  name: 'images',
  aliases: ['ls', 'list'],
  usage: '[OPTIONS] [REPOSITORY[:TAG]]',
  description: 'List images',
  flags: [
    { long: 'all', short: 'a', type: 'bool', description: 'Show all images (default hides intermediate images)' },
    { long: 'digests', type: 'bool', description: 'Show digests' },
    { long: 'filter', short: 'f', type: 'list', valueName: 'filter', description: 'Filter output based on conditions provided' },
    { long: 'format', type: 'string', description: "Format output using a custom template:\n'table', 'table TEMPLATE', 'json' or a Go template" },
    { long: 'no-trunc', type: 'bool', description: "Don't truncate output" },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Only show image IDs' },
  ],
  args: { max: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    const images = await client.json<ImageSummary[]>('GET', '/images/json', {
      query: {
        all: flags.bool('all') ? 1 : undefined,
        filters: filtersJson(flags.list('filter'), args[0] ? { reference: [args[0]] } : {}),
      },
    });
    const trunc = !flags.bool('no-trunc');
    if (flags.bool('quiet') && !flags.string('format')) {
      const seen = new Set<string>();
      for (const image of images) {
        const id = trunc ? shortImageId(image.Id) : image.Id;
        if (!seen.has(id)) {
          seen.add(id);
          cli.out(`${id}\n`);
        }
      }
      return;
    }
    const digests = flags.bool('digests');
    const rows = imageRows(images, { trunc, digests });
    const defaultFormat = digests
      ? 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}'
      : 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
    cli.out(formatList(rows, { format: flags.string('format'), defaultFormat, headers: imageHeaders }));
  },
};

export const pullCommand: Command = {
  name: 'pull',
  usage: '[OPTIONS] NAME[:TAG|@DIGEST]',
  description: 'Download an image from a registry',
  flags: [
    { long: 'all-tags', short: 'a', type: 'bool', description: 'Download all tagged images in the repository' },
    { long: 'platform', type: 'string', description: 'Set platform if server is multi-platform capable' },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Suppress verbose output' },
  ],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const ref = parseReference(args[0]!);
    if (ref.tag === undefined && ref.digest === undefined && !flags.bool('all-tags')) cli.out('Using default tag: latest\n');
    const client = await cli.client();
    const full = await pullImage(cli, client, args[0]!, {
      out: cli.io.stdout,
      quiet: flags.bool('quiet'),
      platform: flags.string('platform'),
      allTags: flags.bool('all-tags'),
    });
    cli.out(`${full}\n`);
  },
};

export const pushCommand: Command = {
  name: 'push',
  usage: '[OPTIONS] NAME[:TAG]',
  description: 'Upload an image to a registry',
  flags: [
    { long: 'all-tags', short: 'a', type: 'bool', description: 'Push all tags of an image to the repository' },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Suppress verbose output' },
  ],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const ref = parseReference(args[0]!);
    if (ref.tag === undefined && !flags.bool('all-tags')) cli.out('Using default tag: latest\n');
    const tag = flags.bool('all-tags') ? undefined : (ref.tag ?? 'latest');
    const client = await cli.client();
    const messages = client.stream<JsonMessage>('POST', `/images/${familiarName(ref)}/push`, {
      query: { tag },
      headers: { 'X-Registry-Auth': registryAuthHeader(authFor(ref.domain)) },
    });
    const out = cli.io.stdout;
    await displayJsonMessages(messages, flags.bool('quiet') ? { write: () => true } : out, {
      terminal: !!out.isTTY && !flags.bool('quiet'),
      width: out.columns,
    });
    if (flags.bool('quiet')) cli.out(`${familiarString({ ...ref, tag })}\n`);
  },
};

async function sourceStream(cli: Cli, file: string): Promise<Readable> {
  if (file === '-') return cli.io.stdin;
  await fs.access(file).catch((err) => {
    throw new BaleiaError('NotFound', `Cannot open "${file}": no such file`, { cause: err });
  });
  return createReadStream(file);
}

/** `POST /images/create?fromSrc=-` with a tar body; prints the progress (the new id). */
async function importTar(
  cli: Cli,
  client: EngineClient,
  tar: Readable,
  options: { repo?: string; changes: string[]; message?: string; platform?: string; quiet?: boolean },
): Promise<string | undefined> {
  let id: string | undefined;
  const messages = client.stream<JsonMessage>('POST', '/images/create', {
    query: {
      changes: options.changes.length ? options.changes : undefined,
      fromSrc: '-',
      message: options.message || undefined,
      platform: options.platform,
      repo: options.repo,
    },
    body: tar,
    headers: { 'Content-Type': 'application/x-tar' },
  });
  async function* tap() {
    for await (const m of messages) {
      if (m.status?.startsWith('sha256:')) id = m.status;
      yield m;
    }
  }
  const out = cli.io.stdout;
  await displayJsonMessages(tap(), options.quiet ? { write: () => true } : out, { terminal: !!out.isTTY, width: out.columns });
  return id;
}

export const importCommand: Command = {
  name: 'import',
  usage: '[OPTIONS] file|URL|- [REPOSITORY[:TAG]]',
  description: 'Import the contents from a tarball to create a filesystem image',
  flags: [
    { long: 'change', short: 'c', type: 'list', description: 'Apply Dockerfile instruction to the created image' },
    { long: 'message', short: 'm', type: 'string', description: 'Set commit message for imported image' },
    { long: 'platform', type: 'string', description: 'Set platform if server is multi-platform capable' },
  ],
  args: { min: 1, max: 2 },
  async run(cli, { flags, args }) {
    const [source, repo] = args as [string, string | undefined];
    if (repo) parseReference(repo);
    if (/^https?:\/\//.test(source)) throw new UsageError('importing from a URL is not supported');
    const tar = await sourceStream(cli, source);
    const client = await cli.client();
    await importTar(cli, client, tar, {
      repo,
      changes: flags.list('change'),
      message: flags.string('message'),
      platform: flags.string('platform'),
    });
  },
};

export const loadCommand: Command = {
  name: 'load',
  usage: '[OPTIONS]',
  description: 'Load an image from a tar archive or STDIN',
  flags: [
    { long: 'input', short: 'i', type: 'string', description: 'Read from tar archive file, instead of STDIN' },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Suppress the load output' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const input = flags.string('input');
    if (!input && cli.io.stdin.isTTY) {
      throw new UsageError('requested load from stdin, but stdin is empty');
    }
    const body = await sourceStream(cli, input ?? '-');
    const client = await cli.client();
    const out = cli.io.stdout;
    const quiet = flags.bool('quiet') || !out.isTTY;
    const res = await client.request('POST', '/images/load', {
      query: { quiet: quiet ? 1 : undefined },
      body,
      headers: { 'Content-Type': 'application/x-tar' },
    });
    if (String(res.headers['content-type'] ?? '').startsWith('application/json')) {
      const { parseJsonStream } = await import('../../api/client.js');
      await displayJsonMessages(parseJsonStream<JsonMessage>(res.body), out, { terminal: !!out.isTTY, width: out.columns });
    } else {
      await pipeline(res.body, out, { end: false });
    }
  },
};

export const saveCommand: Command = {
  name: 'save',
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  description: 'Save one or more images to a tar archive (streamed to STDOUT by default)',
  flags: [{ long: 'output', short: 'o', type: 'string', description: 'Write to a file, instead of STDOUT' }],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const output = flags.string('output');
    if (!output && cli.io.stdout.isTTY) {
      throw new UsageError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
    }
    const client = await cli.client();
    const res = await client.request('GET', '/images/get', { query: { names: args } });
    if (output) {
      const tmp = `${output}.baleia-tmp`;
      await pipeline(res.body, createWriteStream(tmp));
      await fs.rename(tmp, output);
    } else {
      await pipeline(res.body, cli.io.stdout, { end: false });
    }
  },
};

export const tagCommand: Command = {
  name: 'tag',
  usage: 'SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]',
  description: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
  flags: [],
  args: { min: 2, max: 2 },
  async run(cli, { args }) {
    const [source, target] = args as [string, string];
    const ref = parseReference(target);
    if (ref.digest) throw new UsageError('refusing to create a tag with a digest reference');
    const client = await cli.client();
    await client.call('POST', `/images/${enc(source)}/tag`, { query: { repo: fullName(ref), tag: ref.tag ?? 'latest' } });
  },
};

export const rmiCommand: Command = {
  name: 'rmi',
  aliases: ['rm', 'remove'],
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  description: 'Remove one or more images',
  flags: [
    { long: 'force', short: 'f', type: 'bool', description: 'Force removal of the image' },
    { long: 'no-prune', type: 'bool', description: 'Do not delete untagged parents' },
  ],
  args: { min: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    return forEachTarget(cli, args, async (name) => {
      const report = await client.json<Array<{ Untagged?: string; Deleted?: string }>>('DELETE', `/images/${enc(name)}`, {
        query: { force: flags.bool('force') ? 1 : undefined, noprune: flags.bool('no-prune') ? 1 : undefined },
      });
      for (const item of report ?? []) {
        if (item.Untagged) cli.out(`Untagged: ${item.Untagged}\n`);
        if (item.Deleted) cli.out(`Deleted: ${item.Deleted}\n`);
      }
    });
  },
};

export const historyCommand: Command = {
  name: 'history',
  usage: '[OPTIONS] IMAGE',
  description: 'Show the history of an image',
  flags: [
    { long: 'format', type: 'string', description: 'Format output using a custom template' },
    { long: 'human', short: 'H', type: 'bool', description: 'Print sizes and dates in human readable format', default: true },
    { long: 'no-trunc', type: 'bool', description: "Don't truncate output" },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Only show image IDs' },
  ],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const client = await cli.client();
    const history = await client.json<Array<{ Id: string; Created: number; CreatedBy: string; Tags?: string[] | null; Size: number; Comment: string }>>(
      'GET',
      `/images/${enc(args[0]!)}/history`,
    );
    const trunc = !flags.bool('no-trunc');
    const human = flags.bool('human');
    const rows = history.map((h) =>
      sortedFields({
        Comment: h.Comment,
        CreatedAt: human ? timeAgo(h.Created) : new Date(h.Created * 1000).toISOString().replace('.000Z', 'Z'),
        CreatedBy: trunc ? ellipsisText(h.CreatedBy.replace(/\t/g, ' '), 45) : h.CreatedBy.replace(/\t/g, ' '),
        CreatedSince: human ? timeAgo(h.Created) : new Date(h.Created * 1000).toISOString().replace('.000Z', 'Z'),
        ID: h.Id === '<missing>' ? '<missing>' : trunc ? shortImageId(h.Id) : h.Id,
        Size: human ? humanSize(h.Size, 3) : String(h.Size),
      }),
    );
    if (flags.bool('quiet') && !flags.string('format')) {
      for (const r of rows) cli.out(`${String(r.ID)}\n`);
      return;
    }
    cli.out(
      formatList(rows, {
        format: flags.string('format'),
        defaultFormat: 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}',
        headers: { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' },
      }),
    );
  },
};

function ellipsisText(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : chars.slice(0, max - 1).join('') + '…';
}

export const imageInspectCommand: Command = {
  name: 'inspect',
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  description: 'Display detailed information on one or more images',
  flags: [{ long: 'format', short: 'f', type: 'string', description: 'Format output using a custom template' }],
  args: { min: 1 },
  run: (cli, { flags, args }) => inspectObjects(cli, args, { type: 'image', format: flags.string('format') }),
};

export const imagePruneCommand: Command = {
  name: 'prune',
  usage: '[OPTIONS]',
  description: 'Remove unused images',
  flags: [
    { long: 'all', short: 'a', type: 'bool', description: 'Remove all unused images, not just dangling ones' },
    { long: 'filter', type: 'list', valueName: 'filter', description: 'Provide filter values (e.g. "until=<timestamp>")' },
    { long: 'force', short: 'f', type: 'bool', description: 'Do not prompt for confirmation' },
  ],
  args: { max: 0 },
  async run(cli, { flags }) {
    const all = flags.bool('all');
    const warning = all
      ? 'WARNING! This will remove all images without at least one container associated to them.'
      : 'WARNING! This will remove all dangling images.';
    if (!flags.bool('force') && !(await confirm(cli, warning))) return 0;
    const client = await cli.client();
    const report = await client.json<{ ImagesDeleted?: Array<{ Untagged?: string; Deleted?: string }> | null; SpaceReclaimed?: number }>(
      'POST',
      '/images/prune',
      { query: { filters: filtersJson(flags.list('filter'), { dangling: [all ? 'false' : 'true'] }) } },
    );
    const deleted = report.ImagesDeleted ?? [];
    if (deleted.length) {
      cli.out('Deleted Images:\n');
      for (const d of deleted) {
        if (d.Untagged) cli.out(`untagged: ${d.Untagged}\n`);
        if (d.Deleted) cli.out(`deleted: ${d.Deleted}\n`);
      }
      cli.out('\n');
    }
    cli.out(`Total reclaimed space: ${humanSize(report.SpaceReclaimed ?? 0)}\n`);
    return 0;
  },
};

export const bootstrapCommand: Command = {
  name: 'bootstrap',
  usage: '[OPTIONS] busybox|debian:SUITE',
  description: "Make a base image from the host's own files (busybox-static, or debootstrap) and import it",
  flags: [
    { long: 'tag', short: 't', type: 'string', description: 'Name of the image (default busybox:latest, debian:SUITE)' },
    { long: 'busybox', type: 'string', description: 'Path of the static busybox binary', default: '/bin/busybox' },
  ],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const what = args[0]!;
    let image: { tar: Readable; changes: string[] };
    let tag: string;
    if (what === 'busybox' || what.startsWith('busybox:')) {
      tag = flags.string('tag') ?? (what.includes(':') ? what : 'busybox:latest');
      // Loaded here only: the tar writer it needs is not part of every command's start-up.
      const { busyboxImage, findBusybox } = await import('../bootstrap.js');
      image = busyboxImage(await findBusybox(flags.string('busybox') ?? '/bin/busybox'));
    } else if (what.startsWith('debian:')) {
      const suite = what.slice('debian:'.length);
      if (!/^[a-z]+$/.test(suite)) throw new UsageError(`invalid Debian suite "${suite}"`);
      tag = flags.string('tag') ?? what;
      const { debianImage } = await import('../bootstrap.js');
      image = await debianImage(suite, { log: (l) => cli.err(`${l}\n`) });
    } else {
      throw new UsageError(`cannot bootstrap "${what}": expected busybox or debian:SUITE`);
    }
    parseReference(tag);
    const client = await cli.client();
    const id = await importTar(cli, client, image.tar, { repo: tag, changes: image.changes, quiet: true });
    cli.out(`${id ?? ''}${id ? ' ' : ''}${tag}\n`);
  },
};

export { tabwrite };
