/**
 * Host facts the spec builder needs and may not read itself: the bounding capabilities we hold,
 * the rlimits we may hand on, and device numbers.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode, invalidArgument } from '../lib/index.js';
import { capabilitiesFromMask } from './capabilities.js';
import type { Rlimit, SpecDevice } from './spec.js';

/** The capabilities in our bounding set (on these machines: all but CAP_SYS_RESOURCE). */
export async function hostCapabilities(): Promise<string[]> {
  const status = await fs.readFile('/proc/self/status', 'utf8');
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status);
  return m ? capabilitiesFromMask(m[1]) : [];
}

/** /proc/self/limits text → nofile and nproc limits ('unlimited' → 2^64-1 as the OCI spec wants). */
export function parseProcLimits(text: string): { nofile?: Rlimit; nproc?: Rlimit } {
  const pick = (label: string): Rlimit | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(label));
    if (!line) return undefined;
    const [soft, hard] = line.slice(label.length).trim().split(/\s+/);
    const v = (s: string) => (s === 'unlimited' ? 2 ** 64 - 1 : Number(s));
    return { soft: v(soft), hard: v(hard) };
  };
  return { nofile: pick('Max open files'), nproc: pick('Max processes') };
}

/**
 * Default rlimits for containers. Without CAP_SYS_RESOURCE nothing may go above our own hard
 * limits, so the container gets nofile soft=hard=our hard limit; nproc is left to inherit.
 */
export async function hostRlimits(): Promise<{ nofile?: Rlimit }> {
  const { nofile } = parseProcLimits(await fs.readFile('/proc/self/limits', 'utf8'));
  return nofile ? { nofile } : {};
}

const major = (rdev: number) => Number((BigInt(rdev) >> 8n) & 0xfffn);
const minor = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));

/** `--device /dev/fuse:/dev/fuse:rwm` → a device with its numbers read from the host. */
export async function resolveDevice(device: {
  pathOnHost: string;
  pathInContainer?: string;
  cgroupPermissions?: string;
}): Promise<SpecDevice> {
  let st;
  try {
    st = await fs.stat(device.pathOnHost);
  } catch (err) {
    throw invalidArgument(`Cannot add device "${device.pathOnHost}": ${errnoCode(err) === 'ENOENT' ? 'no such file on the host' : 'cannot stat it'}`, { cause: err });
  }
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
  if (!type) throw invalidArgument(`Cannot add device "${device.pathOnHost}": not a device node`);
  return {
    pathInContainer: device.pathInContainer || device.pathOnHost,
    type,
    major: major(st.rdev),
    minor: minor(st.rdev),
    fileMode: st.mode & 0o777,
    uid: st.uid,
    gid: st.gid,
    cgroupPermissions: device.cgroupPermissions || 'rwm',
  };
}

/** Every device node under /dev (for privileged containers), skipping /dev/pts, shm, mqueue. */
export async function hostDevices(dir = '/dev'): Promise<SpecDevice[]> {
  const out: SpecDevice[] = [];
  const walk = async (d: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/fd'].includes(p)) continue;
        await walk(p);
      } else if (e.isCharacterDevice() || e.isBlockDevice()) {
        if (p === '/dev/console' || p === '/dev/ptmx' || p.startsWith('/dev/tty') && p !== '/dev/tty') continue;
        try {
          out.push(await resolveDevice({ pathOnHost: p }));
        } catch {
          // vanished while listing
        }
      }
    }
  };
  await walk(dir);
  return out;
}
