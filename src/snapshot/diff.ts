/**
 * What a container changed, read from its overlay upper dir, and the whole-tree export.
 *
 *   const upper = snaps.containerUpperPath(id);
 *   const lowers = chainIds.map((c) => snaps.layerPath(c));     // bottom → top, as mountContainer takes them
 *   await changes(upper, lowers);                               // GET /containers/{id}/changes
 *   const layer = diffTar(upper, lowers);                       // POST /commit: the new layer's tar
 *   await snaps.applyLayer(newChainId, layer);                  // …reproduces the merged view
 *   exportRootfs(snaps.containerMergedPath(id));                // GET /containers/{id}/export
 *
 * overlayfs facts relied on: a deletion is a whiteout, a char device 0:0 in the upper dir; a
 * directory removed and made again is "opaque" (xattr trusted.overlay.opaque=y) and hides the
 * lower dirs' entries under it; a lower dir renamed with redirect_dir, or a metadata-only copy
 * up (metacopy), leaves trusted.overlay.redirect / trusted.overlay.metacopy in the upper dir —
 * the snapshotter mounts without them (the kernel defaults here are off), and they are refused
 * here rather than mis-diffed. Layer tars use Docker's whiteout names: `.wh.<name>` and
 * `.wh..wh..opq` (placed right after its directory's entry, as Docker does).
 *
 * Lower dirs are given bottom → top (the order of Snapshotter.mountContainer's chain IDs).
 * Reading the upper dir goes through fd-pinned directories (pinned-dir.ts): a container can
 * change its upper dir while this runs, and must not make us read files outside it.
 */
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BaleiaError, errnoCode, notImplemented } from '../lib/index.js';
import { dirEntry, entryOf, newTreeReader, treeEntries, type TreeReader } from './archive.js';
import { PinnedDir } from './pinned-dir.js';
import { Sys } from './sys.js';
import { writeTar, type TarWriteEntry } from './tar-writer.js';

export type ChangeKind = 0 | 1 | 2;
export const ChangeKinds = { Modified: 0, Added: 1, Deleted: 2 } as const;

export interface Change {
  Path: string;
  Kind: ChangeKind;
}

const isWhiteout = (st: Stats) => st.isCharacterDevice() && st.rdev === 0;

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

async function overlayXattrs(sys: Sys, p: string): Promise<{ opaque: boolean; redirect: boolean }> {
  let all: Map<string, Buffer>;
  try {
    all = await sys.getxattrs(p);
  } catch (err) {
    if (['ENOTSUP', 'EOPNOTSUPP', 'ENOENT'].includes(errnoCode(err) ?? '')) return { opaque: false, redirect: false };
    throw err;
  }
  return {
    opaque: all.get('trusted.overlay.opaque')?.toString() === 'y',
    redirect: all.has('trusted.overlay.redirect') || all.has('trusted.overlay.metacopy'),
  };
}

/** The merged view of the lower dirs alone (immutable layers, so plain paths are fine). */
class LowerView {
  readonly #topFirst: string[];
  readonly #sys: Sys;
  readonly #opaque = new Map<string, boolean>();

  constructor(lowersBottomFirst: string[], sys: Sys) {
    this.#topFirst = [...lowersBottomFirst].reverse();
    this.#sys = sys;
  }

  async #isOpaque(p: string): Promise<boolean> {
    let v = this.#opaque.get(p);
    if (v === undefined) {
      v = (await overlayXattrs(this.#sys, p)).opaque;
      this.#opaque.set(p, v);
    }
    return v;
  }

  /**
   * For each layer (top first) whether `rel`'s parent dirs let it through: 'hidden' (a whiteout,
   * a non-directory, or an opaque dir above without it ends the search), 'absent' here (look
   * lower), or the layer's path of `rel` and whether an ancestor here is opaque.
   */
  async #ancestors(layer: string, parts: string[]): Promise<'hidden' | 'absent' | { opaqueAbove: boolean }> {
    let opaqueAbove = false;
    for (let k = 1; k < parts.length; k++) {
      const a = path.join(layer, ...parts.slice(0, k));
      const st = await lstatOrUndefined(a);
      if (!st) return opaqueAbove ? 'hidden' : 'absent';
      if (isWhiteout(st) || !st.isDirectory()) return 'hidden';
      if (await this.#isOpaque(a)) opaqueAbove = true;
    }
    return { opaqueAbove };
  }

  async stat(rel: string): Promise<Stats | undefined> {
    const parts = rel.split('/').filter(Boolean);
    for (const layer of this.#topFirst) {
      const anc = await this.#ancestors(layer, parts);
      if (anc === 'hidden') return undefined;
      if (anc === 'absent') continue;
      const st = await lstatOrUndefined(path.join(layer, ...parts));
      if (st) return isWhiteout(st) ? undefined : st;
      if (anc.opaqueAbove) return undefined;
    }
    return undefined;
  }

  /** The names the lowers show in directory `rel`. */
  async readdir(rel: string): Promise<string[]> {
    const parts = rel.split('/').filter(Boolean);
    const names = new Set<string>();
    const hidden = new Set<string>();
    for (const layer of this.#topFirst) {
      const anc = await this.#ancestors(layer, parts);
      if (anc === 'hidden') break;
      if (anc === 'absent') continue;
      const dir = path.join(layer, ...parts);
      const st = await lstatOrUndefined(dir);
      if (!st) {
        if (anc.opaqueAbove) break;
        continue;
      }
      if (!st.isDirectory()) break;
      for (const name of await fs.readdir(dir)) {
        if (hidden.has(name) || names.has(name)) continue;
        const cst = await lstatOrUndefined(path.join(dir, name));
        if (cst && isWhiteout(cst)) hidden.add(name);
        else names.add(name);
      }
      if (await this.#isOpaque(dir)) break;
    }
    return [...names].sort();
  }
}

const refuseRedirect = (rel: string) =>
  notImplemented(`Cannot diff the container's changes: "${rel}" is an overlay redirect or metacopy entry; mount without redirect_dir and metacopy`);

/**
 * GET /containers/{id}/changes: Docker's rules — a path in the upper dir that the lowers lack is
 * Added, one they have is Modified (a directory only copied up because something under it
 * changed is not reported unless it gained or lost children), a whiteout is Deleted, and so is
 * each lower entry an opaque directory hides. Sorted by path.
 */
export async function changes(upperDir: string, lowerDirs: string[], opts: { signal?: AbortSignal } = {}): Promise<Change[]> {
  const sys = new Sys();
  const upper = await PinnedDir.openRoot(upperDir);
  const lower = new LowerView(lowerDirs, sys);
  const result = new Map<string, ChangeKind>();
  const record = (p: string, kind: ChangeKind) => {
    result.set(p, kind);
    const parent = path.posix.dirname(p);
    if (kind !== ChangeKinds.Modified && parent !== '/' && !result.has(parent)) result.set(parent, ChangeKinds.Modified);
  };
  const visit = async (dir: PinnedDir, rel: string): Promise<void> => {
    const names = await dir.readdir();
    for (const name of names) {
      if (opts.signal?.aborted) throw new BaleiaError('Cancelled', 'Cannot list the container changes: cancelled');
      const p = `${rel}/${name}`;
      const st = await dir.lstat(name);
      if (!st) continue;
      if (isWhiteout(st)) {
        record(p, ChangeKinds.Deleted);
        continue;
      }
      const xa = await overlayXattrs(sys, st.isDirectory() ? `${dir.self}/${name}/.` : dir.at(name));
      if (xa.redirect) throw refuseRedirect(p);
      const before = await lower.stat(p);
      if (!before) record(p, ChangeKinds.Added);
      else if (!(st.isDirectory() && before.isDirectory() && !xa.opaque && st.size === before.size && st.mode === before.mode && st.mtimeMs === before.mtimeMs)) {
        record(p, ChangeKinds.Modified);
      }
      if (!st.isDirectory()) continue;
      let sub: PinnedDir;
      try {
        sub = await dir.openDir(name);
      } catch (err) {
        if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes(errnoCode(err) ?? '')) continue;
        throw err;
      }
      try {
        if (xa.opaque && before?.isDirectory()) {
          const kept = new Set(await sub.readdir());
          for (const gone of await lower.readdir(p)) if (!kept.has(gone)) record(`${p}/${gone}`, ChangeKinds.Deleted);
        }
        await visit(sub, p);
      } finally {
        await sub.close();
      }
    }
  };
  try {
    await visit(upper, '');
  } finally {
    await upper.close();
    await sys.close();
  }
  return [...result].map(([Path, Kind]) => ({ Path, Kind })).sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
}

async function* upperEntries(reader: TreeReader, dir: PinnedDir, prefix: string): AsyncGenerator<TarWriteEntry> {
  for (const name of await dir.readdir()) {
    if (reader.signal?.aborted) throw new BaleiaError('Cancelled', 'Cannot write the container diff: cancelled');
    const archiveName = prefix ? `${prefix}/${name}` : name;
    const st = await dir.lstat(name);
    if (!st) continue;
    if (isWhiteout(st)) {
      const wh = prefix ? `${prefix}/.wh.${name}` : `.wh.${name}`;
      yield { name: wh, type: 'file', mode: 0o600, uid: st.uid, gid: st.gid, mtime: Math.trunc(st.mtimeMs / 1000), size: 0 };
      continue;
    }
    if (!st.isDirectory()) {
      const xa = await overlayXattrs(reader.sys, dir.at(name));
      if (xa.redirect) throw refuseRedirect('/' + archiveName);
      const e = await entryOf(reader, dir, name, archiveName, st);
      if (e) yield e;
      continue;
    }
    let sub: PinnedDir;
    try {
      sub = await dir.openDir(name);
    } catch (err) {
      if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes(errnoCode(err) ?? '')) continue;
      throw err;
    }
    try {
      const xa = await overlayXattrs(reader.sys, `${sub.self}/.`);
      if (xa.redirect) throw refuseRedirect('/' + archiveName);
      const e = await dirEntry(reader, sub, archiveName);
      yield e;
      if (xa.opaque) yield { name: `${archiveName}/.wh..wh..opq`, type: 'file', mode: e.mode & 0o777, uid: e.uid, gid: e.gid, mtime: e.mtime, size: 0 };
      yield* upperEntries(reader, sub, archiveName);
    } finally {
      await sub.close();
    }
  }
}

/**
 * POST /commit: the container's changes as an OCI layer tar (names without a leading `./`, as
 * Docker writes them; no entry for the root). It is the upper dir with whiteouts and opaque
 * dirs in their tar form; the lowers are not read (the parameter keeps the seam the same as
 * `changes` for a future naive diff). Read the stream to the end or destroy it.
 */
export function diffTar(
  upperDir: string,
  lowerDirs: string[],
  opts: { signal?: AbortSignal; /** Leave out entries by their tar name (e.g. `etc/hosts`). */ exclude?: (name: string) => boolean } = {},
): NodeJS.ReadableStream {
  void lowerDirs;
  const reader = newTreeReader(opts.signal);
  async function* entries(): AsyncGenerator<TarWriteEntry> {
    const upper = await PinnedDir.openRoot(upperDir);
    try {
      for await (const entry of upperEntries(reader, upper, '')) {
        if (opts.exclude?.(entry.name.replace(/\/$/, ''))) {
          await entry.body?.[Symbol.asyncIterator]().return?.();
          continue;
        }
        yield entry;
      }
    } finally {
      await upper.close();
      await reader.sys.close();
    }
  }
  return Readable.from(writeTar(entries()), { objectMode: false });
}

/** Top-level dirs whose contents belong to the kernel, not the image: exported empty. */
const kernelDirs = new Set(['proc', 'sys', 'dev']);

/**
 * GET /containers/{id}/export: the whole merged tree as a tar (names without `./`, no root
 * entry, as Docker's export), /proc, /sys and /dev as empty directories, no overlay whiteouts
 * or trusted.overlay xattrs. Read the stream to the end or destroy it.
 */
export function exportRootfs(mergedDir: string, opts: { signal?: AbortSignal } = {}): NodeJS.ReadableStream {
  const reader = newTreeReader(opts.signal);
  async function* entries(): AsyncGenerator<TarWriteEntry> {
    const root = await PinnedDir.openRoot(mergedDir);
    try {
      yield* treeEntries(reader, root, '', (name, st) => {
        if (isWhiteout(st)) return 'entry';
        return st.isDirectory() && kernelDirs.has(name) ? 'contents' : 'none';
      });
    } finally {
      await root.close();
      await reader.sys.close();
    }
  }
  return Readable.from(writeTar(entries()), { objectMode: false });
}
