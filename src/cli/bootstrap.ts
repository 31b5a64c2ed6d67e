/**
 * Base images made on the client from what the host has, for machines without a registry:
 *
 * - `busybox`: the host's static busybox at /bin/busybox, a symlink per applet (from
 *   `busybox --list-full`), /etc/passwd and /etc/group, and the usual empty directories; packed
 *   here with tar-stream.
 * - `debian:<suite>`: `debootstrap --variant=minbase` into a temporary directory, packed by tar.
 *
 * Both are imported through the ordinary API (`POST /images/create?fromSrc=-`), so they work with
 * any daemon that speaks it.
 */
import { spawn } from 'node:child_process';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import tar from 'tar-stream';
import { BaleiaError, run } from '../lib/index.js';

export interface TarEntry {
  name: string;
  type: 'directory' | 'file' | 'symlink';
  mode: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  /** Inline content, or a host file streamed in. */
  content?: string;
  source?: { path: string; size: number };
}

const passwd = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
  'bin:x:2:2:bin:/bin:/bin/false',
  'sys:x:3:3:sys:/dev:/bin/false',
  'sync:x:4:100:sync:/bin:/bin/sync',
  'mail:x:8:8:mail:/var/spool/mail:/bin/false',
  'www-data:x:33:33:www-data:/var/www:/bin/false',
  'operator:x:37:37:Operator:/var:/bin/false',
  'nobody:x:65534:65534:nobody:/home:/bin/false',
];

const group = [
  'root:x:0:',
  'daemon:x:1:',
  'bin:x:2:',
  'sys:x:3:',
  'adm:x:4:',
  'tty:x:5:',
  'disk:x:6:',
  'wheel:x:10:root',
  'mail:x:8:',
  'www-data:x:33:',
  'operator:x:37:',
  'staff:x:50:',
  'users:x:100:',
  'nogroup:x:65534:',
];

/**
 * The entries of the busybox root filesystem, parents before children.
 * `applets` are paths as `busybox --list-full` prints them (`usr/bin/wget`, `bin/sh`).
 */
export function busyboxEntries(applets: readonly string[], busybox: { path: string; size: number }): TarEntry[] {
  const dirs = new Set<string>(['bin', 'dev', 'etc', 'home', 'proc', 'root', 'sys', 'tmp', 'usr', 'var', 'usr/bin', 'usr/sbin', 'sbin', 'var/spool', 'var/spool/mail', 'var/www']);
  const links: TarEntry[] = [];
  const seen = new Set<string>(['bin/busybox']);
  for (const raw of applets) {
    const applet = raw.trim().replace(/^\/+/, '');
    if (!applet || seen.has(applet) || applet.includes('..')) continue;
    seen.add(applet);
    for (let dir = path.posix.dirname(applet); dir !== '.'; dir = path.posix.dirname(dir)) dirs.add(dir);
    links.push({ name: applet, type: 'symlink', mode: 0o777, linkname: '/bin/busybox' });
  }
  const dirMode = (d: string) => (d === 'tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755);
  const entries: TarEntry[] = [...dirs].sort().map((d) => ({ name: `${d}/`, type: 'directory' as const, mode: dirMode(d) }));
  entries.push({ name: 'bin/busybox', type: 'file', mode: 0o755, source: busybox });
  entries.push({ name: 'etc/passwd', type: 'file', mode: 0o644, content: passwd.join('\n') + '\n' });
  entries.push({ name: 'etc/group', type: 'file', mode: 0o644, content: group.join('\n') + '\n' });
  entries.push(...links.sort((a, b) => a.name.localeCompare(b.name)));
  return entries;
}

/** Pack entries into a tar stream; every entry gets `mtime`. */
export function packEntries(entries: readonly TarEntry[], options: { mtime: Date }): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  pack.pipe(out);
  (async () => {
    for (const entry of entries) {
      const header = {
        name: entry.name,
        mode: entry.mode,
        uid: entry.uid ?? 0,
        gid: entry.gid ?? 0,
        uname: 'root',
        gname: 'root',
        mtime: options.mtime,
      };
      if (entry.type === 'directory') {
        await addEntry(pack, { ...header, type: 'directory' });
      } else if (entry.type === 'symlink') {
        await addEntry(pack, { ...header, type: 'symlink', linkname: entry.linkname });
      } else if (entry.content !== undefined) {
        await addEntry(pack, { ...header, type: 'file' }, Buffer.from(entry.content));
      } else if (entry.source) {
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry({ ...header, type: 'file', size: entry.source!.size }, (err) => (err ? reject(err) : resolve()));
          const src = createReadStream(entry.source!.path);
          src.on('error', reject);
          src.pipe(sink);
        });
      }
    }
    pack.finalize();
  })().catch((err) => out.destroy(err));
  return out;
}

function addEntry(pack: tar.Pack, header: Parameters<tar.Pack['entry']>[0], content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, content ?? '', (err) => (err ? reject(err) : resolve()));
  });
}

export interface BusyboxSource {
  path: string;
  applets: string[];
  size: number;
  mtime: Date;
  /** `busybox-static 1:1.35.0-4+deb12u1+b1`, or undefined when dpkg does not know it. */
  package?: string;
}

export async function findBusybox(busyboxPath = '/bin/busybox', options: { signal?: AbortSignal } = {}): Promise<BusyboxSource> {
  const stat = await fs.stat(busyboxPath).catch((err) => {
    throw new BaleiaError('NotFound', `Cannot bootstrap busybox: "${busyboxPath}" is missing: install the busybox-static package`, { cause: err });
  });
  const list = await run(busyboxPath, ['--list-full'], { signal: options.signal });
  let pkg: string | undefined;
  for (const name of ['busybox-static', 'busybox']) {
    const q = await run('dpkg-query', ['-W', '-f', '${Package} ${Version}', name], { allowFailure: true, signal: options.signal }).catch(() => undefined);
    if (q && q.code === 0 && q.stdout.trim()) {
      pkg = q.stdout.trim();
      break;
    }
  }
  return { path: busyboxPath, applets: list.stdout.split('\n').filter(Boolean), size: stat.size, mtime: stat.mtime, package: pkg };
}

/** The tar of the busybox image and the changes to import it with. */
export function busyboxImage(source: BusyboxSource): { tar: Readable; changes: string[] } {
  const entries = busyboxEntries(source.applets, { path: source.path, size: source.size });
  const origin = source.package ? `${source.path} (${source.package})` : source.path;
  return {
    tar: packEntries(entries, { mtime: source.mtime }),
    changes: ['CMD ["sh"]', `LABEL org.baleia.bootstrap.source=${JSON.stringify(origin)}`],
  };
}

/** The first Debian mirror in /etc/apt (deb822 or one-line sources), else deb.debian.org. */
export async function debianMirror(): Promise<string> {
  const candidates = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const file of candidates) {
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    const deb822 = /^URIs:\s*(\S+)/m.exec(text);
    if (deb822) return deb822[1]!;
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+\s+main/m.exec(text);
    if (line) return line[1]!;
  }
  return 'http://deb.debian.org/debian';
}

/** debootstrap a minbase root into a temp dir and answer its tar stream (the dir goes when it ends). */
export async function debianImage(
  suite: string,
  options: { log: (line: string) => void; signal?: AbortSignal },
): Promise<{ tar: Readable; changes: string[] }> {
  const have = await run('sh', ['-c', 'command -v debootstrap'], { allowFailure: true });
  if (have.code !== 0) {
    options.log('installing debootstrap');
    await run('apt-get', ['update', '-qq'], { signal: options.signal });
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'debootstrap'], {
      signal: options.signal,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  const mirror = await debianMirror();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'baleia-debootstrap-'));
  try {
    options.log(`debootstrap --variant=minbase ${suite} ${dir} ${mirror}`);
    await run('debootstrap', ['--variant=minbase', suite, dir, mirror], { signal: options.signal });
    const version = await run('chroot', [dir, 'dpkg-query', '-W', '-f', '${Version}', 'base-files'], { allowFailure: true });
    const child = spawn('tar', ['-C', dir, '--numeric-owner', '--xattrs', '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out = new PassThrough();
    child.stdout.pipe(out);
    child.on('close', (code) => {
      void fs.rm(dir, { recursive: true, force: true });
      if (code !== 0) out.destroy(new BaleiaError('Internal', `Cannot pack the debootstrap root: tar exited with ${code}`));
    });
    return {
      tar: out,
      changes: [
        'CMD ["bash"]',
        `LABEL org.baleia.bootstrap.source=${JSON.stringify(`debootstrap --variant=minbase ${suite} ${mirror}${version.code === 0 ? ` (base-files ${version.stdout.trim()})` : ''}`)}`,
      ],
    };
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}
