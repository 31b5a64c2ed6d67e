/**
 * Log files that do not fill the disk. conmon caps the live file (`--log-size-max`): when it is
 * full, conmon renames a fresh file over it. baleiad holds the live file open, so when it sees a
 * new inode at the path it still has the old content and keeps it as `<log>.1` (shifting older
 * ones to `.2` … up to `max-file - 1`). `logs` reads the rotated files, oldest first, then the
 * live one.
 *
 *   <containers>/<id>/container.log      live (conmon writes)
 *   <containers>/<id>/container.log.1    previous
 *   <containers>/<id>/container.log.N    oldest kept (N = max-file - 1)
 */
import { createReadStream, createWriteStream, promises as fs, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { errnoCode, invalidArgument, type Logger } from '../lib/index.js';
import type { LogEntry, ReadLogsOptions, Runtime } from '../runtime/index.js';

/** Docker's local-driver defaults: a cap even when the user sets none. */
export const defaultLogMaxSize = 20 * 1024 * 1024;
export const defaultLogMaxFile = 5;

/** `max-size` (`10k`, `20m`, `1g`, bytes) and `max-file` from `--log-opt`. */
export function logLimits(config: Record<string, string> | undefined): { maxSize: number; maxFile: number } {
  const opts = config ?? {};
  for (const key of Object.keys(opts))
    if (!['max-size', 'max-file', 'compress', 'mode', 'max-buffer-size', 'labels', 'env', 'tag'].includes(key))
      throw invalidArgument(`unknown log opt '${key}' for json-file log driver`);
  let maxSize = defaultLogMaxSize;
  if (opts['max-size'] !== undefined) {
    const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(opts['max-size'].trim());
    if (!m) throw invalidArgument(`invalid value for max-size: ${JSON.stringify(opts['max-size'])}`);
    maxSize = Math.floor(Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g']);
    if (maxSize < 1024) throw invalidArgument(`invalid value for max-size: ${JSON.stringify(opts['max-size'])}: at least 1k`);
  }
  let maxFile = opts['max-size'] !== undefined ? 1 : defaultLogMaxFile;
  if (opts['max-file'] !== undefined) {
    maxFile = Number(opts['max-file']);
    if (!Number.isInteger(maxFile) || maxFile < 1) throw invalidArgument(`invalid value for max-file: ${JSON.stringify(opts['max-file'])}: must be a positive integer`);
  }
  return { maxSize, maxFile };
}

/**
 * A log's entries across rotation: the rotated files, oldest to newest, then the live file
 * (followed while `follow`); with `tail`, the rotated files give only as many lines as the live
 * file lacks.
 */
export async function* readRotatedLogs(
  runtime: Pick<Runtime, 'readLogs'>,
  logPath: string,
  options: ReadLogsOptions & { maxFile: number },
): AsyncGenerator<LogEntry> {
  const window = { since: options.since, until: options.until, signal: options.signal };
  // Rotated files first, oldest to newest; with --tail only as many lines as the live file lacks.
  const older = await rotatedFiles(logPath, options.maxFile);
  let need = options.tail;
  if (need !== undefined) {
    let have = 0;
    for await (const _ of runtime.readLogs(logPath, { ...window, tail: need })) have++;
    need = Math.max(0, need - have);
  }
  const fromOlder: LogEntry[] = [];
  for (const file of older.reverse()) {
    if (need === 0) break;
    const part: typeof fromOlder = [];
    for await (const e of runtime.readLogs(file, { ...window, tail: need })) part.push(e);
    fromOlder.unshift(...part);
    if (need !== undefined) need = Math.max(0, need - part.length);
  }
  yield* fromOlder;
  yield* runtime.readLogs(logPath, { ...window, follow: options.follow, tail: options.tail, stopWhen: options.stopWhen });
}

/** The rotated files of a log, oldest first (only those that exist). */
export async function rotatedFiles(logPath: string, maxFile: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = Math.max(1, maxFile - 1); i >= 1; i--) {
    const file = `${logPath}.${i}`;
    if (await fs.stat(file).then(() => true, () => false)) out.push(file);
  }
  return out;
}

export class LogRotator {
  readonly #logPath: string;
  readonly #maxFile: number;
  readonly #log: Logger;
  #handle: fs.FileHandle | undefined;
  #ino = 0;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: { logPath: string; maxFile: number; logger: Logger }) {
    this.#logPath = options.logPath;
    this.#maxFile = options.maxFile;
    this.#log = options.logger;
  }

  async start(): Promise<void> {
    await this.#hold();
    try {
      this.#watcher = watch(path.dirname(this.#logPath), () => this.#check());
      this.#watcher.on('error', () => {});
    } catch {
      // polling alone will do
    }
    this.#timer = setInterval(() => this.#check(), 1000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#timer) clearInterval(this.#timer);
    await this.#busy;
    this.#check();
    await this.#busy;
    await this.#handle?.close().catch(() => {});
    this.#handle = undefined;
  }

  async #hold(): Promise<void> {
    try {
      const handle = await fs.open(this.#logPath, 'r');
      this.#handle = handle;
      this.#ino = (await handle.stat()).ino;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }

  #check(): void {
    this.#busy = this.#busy.then(() => this.#rotateIfReplaced()).catch((err) =>
      this.#log.warn('Cannot rotate log', { file: this.#logPath, err: err instanceof Error ? err.message : String(err) }),
    );
  }

  async #rotateIfReplaced(): Promise<void> {
    const st = await fs.stat(this.#logPath).catch(() => undefined);
    if (!st) return;
    if (!this.#handle) {
      if (!this.#stopped) await this.#hold();
      return;
    }
    if (st.ino === this.#ino) return;
    const old = this.#handle;
    this.#handle = undefined;
    if (this.#maxFile > 1) {
      for (let i = this.#maxFile - 1; i >= 2; i--)
        await fs.rename(`${this.#logPath}.${i - 1}`, `${this.#logPath}.${i}`).catch(() => {});
      const tmp = `${this.#logPath}.1.tmp`;
      await pipeline(createReadStream('', { fd: old.fd, start: 0, autoClose: false }), createWriteStream(tmp));
      await fs.rename(tmp, `${this.#logPath}.1`);
    }
    await old.close().catch(() => {});
    if (!this.#stopped) await this.#hold();
  }
}
