/**
 * Reading conmon's k8s-file logs. Each line is `<RFC3339Nano> <stdout|stderr> <F|P> <text>\n`:
 * F closes a line (the original had a newline), P is a partial chunk to be joined with what
 * follows on the same stream (conmon splits at its 8 KiB read size and at exit). conmon writes
 * local time with an offset; we hand out UTC `…Z` with nanoseconds, as Docker does.
 * conmon rotates by renaming a fresh file over the old one (--log-size-max), so a follower
 * reopens when the inode changes.
 */
import { promises as fs, watch, type FSWatcher } from 'node:fs';
import { errnoCode } from '../lib/index.js';

export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** RFC3339Nano in UTC. */
  time: string;
  data: Buffer;
}

export interface ReadLogsOptions {
  follow?: boolean;
  /** Unix seconds (fractional): entries at or after. */
  since?: number;
  /** Unix seconds (fractional): entries before. */
  until?: number;
  /** The last N entries (complete lines); undefined or negative = all. */
  tail?: number;
  signal?: AbortSignal;
  /** When following: finish (after draining what is written) once this settles, e.g. the container exited. */
  stopWhen?: Promise<unknown>;
}

export interface ParsedLine {
  time: string;
  seconds: number;
  stream: 'stdout' | 'stderr';
  partial: boolean;
  data: Buffer;
}

/** `2024-05-01T10:00:00.123456789+02:00` → UTC RFC3339Nano and unix seconds. */
export function normalizeTimestamp(ts: string): { time: string; seconds: number } | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(ts);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  const frac = (m[2] ?? '').padEnd(9, '0');
  const whole = new Date(ms).toISOString().slice(0, 19);
  return { time: `${whole}.${frac}Z`, seconds: ms / 1000 + Number(`0.${frac}`) };
}

/** One log line (without its newline) → parsed, or undefined if malformed. */
export function parseLogLine(line: Buffer): ParsedLine | undefined {
  const s1 = line.indexOf(0x20);
  if (s1 < 0) return undefined;
  const s2 = line.indexOf(0x20, s1 + 1);
  if (s2 < 0) return undefined;
  const stream = line.subarray(s1 + 1, s2).toString();
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const tag = line[s2 + 1];
  const ts = normalizeTimestamp(line.subarray(0, s1).toString());
  if (!ts || (tag !== 0x46 && tag !== 0x50)) return undefined; // 'F' | 'P'
  // The text follows one space after the tag; an empty full line has no space at all.
  const data = line.length > s2 + 2 ? line.subarray(s2 + 3) : Buffer.alloc(0);
  return { ...ts, stream, partial: tag === 0x50, data: Buffer.from(data) };
}

/**
 * Where to read from for the last `tail` entries, reading backwards in blocks. `emitFrom` is the
 * first byte of the window (entries completed before it are skipped); `start` may be earlier, to
 * pick up the partial (P) chunks of an entry in the window that began before it, possibly
 * interleaved with lines of the other stream.
 */
async function tailOffset(handle: fs.FileHandle, size: number, tail: number): Promise<{ start: number; emitFrom: number }> {
  if (tail <= 0) return { start: size, emitFrom: size };
  const block = 64 * 1024;
  let pos = size;
  let fullLines = 0;
  let carry = Buffer.alloc(0);
  let emitFrom: number | undefined;
  let start = 0;
  const closed = new Set<string>();
  // Returns true when the scan is complete.
  const visit = (line: Buffer, offset: number): boolean => {
    const parsed = parseLogLine(line);
    if (!parsed) return false;
    if (emitFrom === undefined) {
      if (!parsed.partial && ++fullLines > tail) {
        emitFrom = offset + line.length + 1;
        start = emitFrom;
        closed.add(parsed.stream);
      }
      return false;
    }
    if (!parsed.partial) closed.add(parsed.stream);
    else if (!closed.has(parsed.stream)) start = offset;
    return closed.size === 2;
  };
  while (pos > 0) {
    const from = Math.max(0, pos - block);
    const buf = Buffer.alloc(pos - from);
    await handle.read(buf, 0, buf.length, from);
    const chunk = Buffer.concat([buf, carry]);
    let end = chunk.length;
    if (pos === size && chunk[end - 1] === 0x0a) end -= 1;
    for (let i = end - 1; i >= 0; i--) {
      if (chunk[i] !== 0x0a) continue;
      if (visit(chunk.subarray(i + 1, end), from + i + 1)) return { start, emitFrom: emitFrom! };
      end = i;
    }
    carry = chunk.subarray(0, end);
    pos = from;
  }
  visit(carry, 0);
  return emitFrom === undefined ? { start: 0, emitFrom: 0 } : { start, emitFrom };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Entries of a conmon log file, optionally following it while it grows. */
export async function* readLogs(logPath: string, options: ReadLogsOptions = {}): AsyncIterable<LogEntry> {
  const { signal } = options;
  let stopped = false;
  options.stopWhen?.then(
    () => (stopped = true),
    () => (stopped = true),
  );
  let handle: fs.FileHandle | undefined;
  let ino = 0;
  let offset = 0;
  let emitFrom = 0;
  let limit = Number.POSITIVE_INFINITY;
  const open = async (fromTail: boolean): Promise<boolean> => {
    try {
      handle = await fs.open(logPath, 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
    const st = await handle.stat();
    ino = st.ino;
    // Without follow, logs are what the file held when asked: lines written meanwhile are not
    // part of the answer (and would make `--tail N` return more than N).
    limit = options.follow ? Number.POSITIVE_INFINITY : st.size;
    if (fromTail && options.tail !== undefined && options.tail >= 0) {
      ({ start: offset, emitFrom } = await tailOffset(handle, st.size, options.tail));
    } else {
      offset = 0;
      emitFrom = 0;
    }
    return true;
  };
  let opened = await open(true);
  if (!opened && !options.follow) return;

  const pending: Record<'stdout' | 'stderr', { parts: Buffer[]; time: string; seconds: number } | undefined> = {
    stdout: undefined,
    stderr: undefined,
  };
  let rest = Buffer.alloc(0);
  let watcher: FSWatcher | undefined;
  let wake: (() => void) | undefined;
  const poke = () => wake?.();
  try {
    if (options.follow) {
      try {
        watcher = watch(logPath.replace(/\/[^/]*$/, '') || '/', poke);
        watcher.on('error', () => {});
      } catch {
        // polling alone will do
      }
    }
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      if (signal?.aborted) return;
      let progressed = false;
      if (opened && handle) {
        const want = Math.min(buf.length, limit - offset);
        const { bytesRead } = want > 0 ? await handle.read(buf, 0, want, offset) : { bytesRead: 0 };
        if (bytesRead > 0) {
          progressed = true;
          offset += bytesRead;
          const data = Buffer.concat([rest, buf.subarray(0, bytesRead)]);
          const dataOffset = offset - data.length;
          let start = 0;
          for (let nl = data.indexOf(0x0a, start); nl >= 0; nl = data.indexOf(0x0a, start)) {
            const line = parseLogLine(data.subarray(start, nl));
            const lineOffset = dataOffset + start;
            start = nl + 1;
            if (!line) continue;
            // Before the tail window only partial chunks of entries completing inside it matter.
            if (lineOffset < emitFrom && !line.partial) {
              pending[line.stream] = undefined;
              continue;
            }
            const p = pending[line.stream] ?? { parts: [], time: line.time, seconds: line.seconds };
            p.parts.push(line.data);
            if (line.partial) {
              pending[line.stream] = p;
              continue;
            }
            pending[line.stream] = undefined;
            p.parts.push(Buffer.from('\n'));
            if (options.since !== undefined && p.seconds < options.since) continue;
            if (options.until !== undefined && p.seconds >= options.until) {
              if (!options.follow) return;
              continue;
            }
            yield { stream: line.stream, time: p.time, data: Buffer.concat(p.parts) };
          }
          rest = Buffer.from(data.subarray(start));
        }
      }
      if (progressed) continue;
      if (!options.follow) break;
      // At the end: was the file rotated or created meanwhile?
      try {
        const st = await fs.stat(logPath);
        if (!opened || st.ino !== ino || st.size < offset) {
          await handle?.close();
          handle = undefined;
          rest = Buffer.alloc(0);
          opened = await open(false);
          continue;
        }
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        void sleep(250, signal).then(resolve);
      });
      wake = undefined;
    }
    // A trailing partial chunk with no closing line (the process exited mid-line) is still output.
    for (const stream of ['stdout', 'stderr'] as const) {
      const p = pending[stream];
      if (!p) continue;
      if (options.since !== undefined && p.seconds < options.since) continue;
      if (options.until !== undefined && p.seconds >= options.until) continue;
      yield { stream, time: p.time, data: Buffer.concat(p.parts) };
    }
  } finally {
    watcher?.close();
    await handle?.close();
  }
}
