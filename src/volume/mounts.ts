/**
 * The kernel's view of mounts, read from /proc/self/mountinfo, and the two commands that change
 * it. Everything here speaks host paths; the store decides which paths are its own.
 */
import { promises as fs } from 'node:fs';
import { internal, run, type Logger } from '../lib/index.js';

/** One mountinfo line: field 5 is the mount point, after ` - ` come fstype and source. */
export interface MountEntry {
  target: string;
  fstype: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

export async function readMounts(): Promise<MountEntry[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const target = left?.split(' ')[4];
    const [fstype, source] = (right ?? '').split(' ');
    if (target) out.push({ target: unescape(target), fstype: fstype ?? '', source: unescape(source ?? '') });
  }
  return out;
}

/** Mounts at `dir` or below it, deepest first (the order they must be unmounted in). */
export async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const all = await readMounts();
  return all
    .filter((m) => m.target === dir || m.target.startsWith(dir + '/'))
    .sort((a, b) => b.target.length - a.target.length);
}

export async function mountFs(
  opts: { type: string; device: string; data: string; target: string },
  logger: Logger,
): Promise<void> {
  const argv = ['-t', opts.type, ...(opts.data ? ['-o', opts.data] : []), opts.device, opts.target];
  const started = Date.now();
  const r = await run('mount', argv, { allowFailure: true });
  logger.debug('mount', { argv: ['mount', ...argv], code: r.code, ms: Date.now() - started });
  if (r.code !== 0) {
    throw internal(
      `Cannot mount "${opts.device}" on "${opts.target}": ${(r.stderr || r.stdout).trim() || `exit status ${r.code}`}`,
    );
  }
}

/**
 * Unmounts everything at or under `dir` and checks that nothing is left: a directory about to be
 * deleted recursively must never still show a host directory bound into it.
 */
export async function unmountAll(dir: string, logger: Logger): Promise<void> {
  for (const m of await mountsUnder(dir)) {
    const r = await run('umount', [m.target], { allowFailure: true });
    logger.debug('umount', { argv: ['umount', m.target], code: r.code });
    // EBUSY: a process still has a cwd or open file there; detach it, the kernel frees it later.
    if (r.code !== 0) await run('umount', ['-l', m.target], { allowFailure: true });
  }
  const left = await mountsUnder(dir);
  if (left.length > 0) throw internal(`Cannot unmount "${left[0]!.target}": still mounted`);
}
