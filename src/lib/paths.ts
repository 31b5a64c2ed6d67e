/**
 * Paths inside a container's root filesystem, resolved as the container would see them: a
 * symlink is followed relative to the root, never to the host, and `..` stops at the root.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BaleiaError, errnoCode } from './errors.js';

/**
 * The host path of `inner` inside `root`, following symlinks the way the container's kernel view
 * would (absolute targets are relative to `root`). Components that do not exist are kept as they
 * are. The result is always `root` or below it.
 */
export async function resolveInRoot(root: string, inner: string): Promise<string> {
  const rootAbs = path.resolve(root);
  const pending = inner.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(rootAbs, ...done, part);
    let st;
    try {
      st = await fs.lstat(candidate);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') {
        done.push(part, ...pending.filter((p) => p !== '..'));
        break;
      }
      throw err;
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++hops > 40) throw new BaleiaError('InvalidArgument', `Cannot resolve "${inner}": too many levels of symbolic links`);
    const target = await fs.readlink(candidate);
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return path.join(rootAbs, ...done);
}
