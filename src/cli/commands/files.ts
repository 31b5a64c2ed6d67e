/**
 * Files in and out of containers: `cp` (both ways, `-a`, `-L`, `-` for a tar on stdin/stdout),
 * `export`, `diff` and `commit`, as the docker CLI does them over the archive endpoints.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
// The snapshot code (tar reading and writing, ~20 modules) is loaded only by `cp`: every other
// command starts without it.
const snapshot = () => import('../../snapshot/index.js');
import type { Command } from '../command.js';
import { UsageError } from '../flags.js';
import { parseReference } from '../reference.js';

interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}
const goDir = 2 ** 31;

/** `name:path` names a container path; anything starting with `/` or `.` is a host path. */
function splitCopyArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const m = /^([^:/]+):(.*)$/.exec(arg);
  return m ? { container: m[1]!, path: m[2] || '/' } : { path: arg };
}

function decodeStat(header: string | string[] | undefined): PathStat | undefined {
  if (typeof header !== 'string') return undefined;
  try {
    return JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as PathStat;
  } catch {
    return undefined;
  }
}

async function hostStat(p: string) {
  return fs.stat(p).catch(() => undefined);
}

/** Copies `src` (file or dir) into a fresh temp dir under the name `name`, for a renaming copy. */
async function stageAs(src: string, name: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-cp-'));
  await new Promise<void>((resolve, reject) => {
    const child = spawn('cp', ['-a', '--', src, path.join(dir, name)], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`Cannot stage "${src}" for copying: cp exited ${code}`))));
  });
  return { dir, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

export const cpCommand: Command = {
  name: 'cp',
  usage: '[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tbaleia cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH',
  description: 'Copy files/folders between a container and the local filesystem',
  flags: [
    { long: 'archive', short: 'a', type: 'bool', description: 'Archive mode (copy all uid/gid information)' },
    { long: 'follow-link', short: 'L', type: 'bool', description: 'Always follow symbol link in SRC_PATH' },
    { long: 'quiet', short: 'q', type: 'bool', description: 'Suppress progress output during copy' },
  ],
  args: { min: 2, max: 2 },
  async run(cli, { flags, args }) {
    const src = splitCopyArg(args[0]!);
    const dst = splitCopyArg(args[1]!);
    if (src.container && dst.container) throw new UsageError('copying between containers is not supported');
    if (!src.container && !dst.container) throw new UsageError('must specify at least one container source');
    const client = await cli.client();

    if (src.container) {
      // Out of the container.
      let from = src.path;
      if (flags.bool('follow-link')) {
        const head = await client.request('HEAD', `/containers/${encodeURIComponent(src.container)}/archive`, { query: { path: from } });
        head.body.resume();
        const stat = decodeStat(head.headers['x-docker-container-path-stat']);
        if (stat?.linkTarget) from = stat.linkTarget.startsWith('/') ? stat.linkTarget : path.posix.join(path.posix.dirname(from), stat.linkTarget);
      }
      const res = await client.request('GET', `/containers/${encodeURIComponent(src.container)}/archive`, { query: { path: from } });
      if (dst.path === '-') {
        await pipeline(res.body, cli.io.stdout, { end: false });
        return 0;
      }
      const stat = decodeStat(res.headers['x-docker-container-path-stat']);
      const target = path.resolve(dst.path);
      const existing = await hostStat(target);
      if (existing?.isDirectory()) {
        await (await snapshot()).extractToRoot('/', target, res.body, { copyUIDGID: true });
        return 0;
      }
      if (dst.path.endsWith('/')) throw new UsageError(`destination directory "${dst.path}" does not exist`);
      if (stat && (stat.mode & goDir) !== 0 && existing) throw new UsageError(`cannot copy a directory to a file: ${dst.path}`);
      // A new name: extract beside the target, then rename the archive's top entry to it.
      const parent = path.dirname(target);
      const staging = await fs.mkdtemp(path.join(parent, '.baleia-cp-'));
      try {
        await (await snapshot()).extractToRoot('/', staging, res.body, { copyUIDGID: true });
        const [top] = await fs.readdir(staging);
        if (!top) throw new Error('Cannot copy: the archive was empty');
        await fs.rename(path.join(staging, top), target);
      } finally {
        await fs.rm(staging, { recursive: true, force: true });
      }
      return 0;
    }

    // Into the container.
    const container = dst.container!;
    const query = { noOverwriteDirNonDir: 'true', ...(flags.bool('archive') ? { copyUIDGID: 'true' } : {}) };
    if (src.path === '-') {
      await client.call('PUT', `/containers/${encodeURIComponent(container)}/archive`, {
        query: { ...query, path: dst.path },
        body: cli.io.stdin,
        headers: { 'Content-Type': 'application/x-tar' },
      });
      return 0;
    }
    const local = path.resolve(src.path);
    const localStat = await fs.lstat(local).catch(() => undefined);
    if (!localStat) throw new UsageError(`lstat ${local}: no such file or directory`);
    let destStat: PathStat | undefined;
    try {
      const head = await client.request('HEAD', `/containers/${encodeURIComponent(container)}/archive`, { query: { path: dst.path } });
      head.body.resume();
      destStat = decodeStat(head.headers['x-docker-container-path-stat']);
    } catch (err) {
      if ((err as { status?: number }).status !== 404) throw err;
    }
    let dir = path.dirname(local);
    let name = path.basename(local);
    let into = dst.path;
    let cleanup = async () => {};
    if (!destStat || (destStat.mode & goDir) === 0) {
      // Copy to a new (or file) name: the archive's top entry must carry that name.
      if (dst.path.endsWith('/')) throw new UsageError(`destination directory "${dst.path}" does not exist`);
      into = path.posix.dirname(dst.path);
      const staged = await stageAs(local, path.posix.basename(dst.path));
      dir = staged.dir;
      name = path.posix.basename(dst.path);
      cleanup = staged.cleanup;
    }
    try {
      const { stream } = await (await snapshot()).archiveFromRoot(dir, name, { followLink: flags.bool('follow-link') });
      await client.call('PUT', `/containers/${encodeURIComponent(container)}/archive`, {
        query: { ...query, path: into },
        body: stream,
        headers: { 'Content-Type': 'application/x-tar' },
      });
    } finally {
      await cleanup();
    }
    return 0;
  },
};

export const exportCommand: Command = {
  name: 'export',
  usage: '[OPTIONS] CONTAINER',
  description: "Export a container's filesystem as a tar archive",
  flags: [{ long: 'output', short: 'o', type: 'string', description: 'Write to a file, instead of STDOUT' }],
  args: { min: 1, max: 1 },
  async run(cli, { flags, args }) {
    const output = flags.string('output');
    if (!output && cli.io.stdout.isTTY) throw new UsageError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
    const client = await cli.client();
    const res = await client.request('GET', `/containers/${encodeURIComponent(args[0]!)}/export`);
    if (output) await pipeline(res.body, createWriteStream(output));
    else await pipeline(res.body, cli.io.stdout, { end: false });
    return 0;
  },
};

export const diffCommand: Command = {
  name: 'diff',
  usage: 'CONTAINER',
  description: "Inspect changes to files or directories on a container's filesystem",
  flags: [],
  args: { min: 1, max: 1 },
  async run(cli, { args }) {
    const client = await cli.client();
    const list = await client.json<Array<{ Path: string; Kind: number }> | null>('GET', `/containers/${encodeURIComponent(args[0]!)}/changes`);
    for (const c of list ?? []) cli.out(`${['C', 'A', 'D'][c.Kind] ?? '?'} ${c.Path}\n`);
    return 0;
  },
};

export const commitCommand: Command = {
  name: 'commit',
  usage: '[OPTIONS] CONTAINER [REPOSITORY[:TAG]]',
  description: "Create a new image from a container's changes",
  flags: [
    { long: 'author', short: 'a', type: 'string', description: 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")' },
    { long: 'change', short: 'c', type: 'list', description: 'Apply Dockerfile instruction to the created image' },
    { long: 'message', short: 'm', type: 'string', description: 'Commit message' },
    { long: 'pause', short: 'p', type: 'bool', description: 'Pause container during commit', default: true },
  ],
  args: { min: 1, max: 2 },
  async run(cli, { flags, args }) {
    let repo: string | undefined;
    let tag: string | undefined;
    if (args[1]) {
      // As the docker CLI: the repository fully qualified, the tag apart.
      const ref = parseReference(args[1]);
      repo = `${ref.domain}/${ref.path}`;
      tag = ref.tag;
    }
    const client = await cli.client();
    const result = await client.json<{ Id: string }>('POST', '/commit', {
      query: {
        container: args[0]!,
        repo,
        tag,
        author: flags.string('author'),
        comment: flags.string('message'),
        changes: flags.list('change'),
        pause: flags.bool('pause') ? '1' : '0',
      },
      body: {},
    });
    cli.out(`${result.Id}\n`);
    return 0;
  },
};
