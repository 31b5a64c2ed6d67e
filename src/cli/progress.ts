/**
 * Rendering of JSON progress streams (pull, push, import, load, build) like docker's jsonmessage:
 * on a terminal each `id` keeps its own line, redrawn in place; elsewhere progress bars are dropped
 * and every status is printed once per message. A bar shows bytes, total and the speed of its
 * phase. A message with `errorDetail` ends the stream.
 */
import { BaleiaError } from '../lib/index.js';
import { humanSize } from './units.js';

export interface JsonMessage {
  status?: string;
  id?: string;
  stream?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { code?: number; message?: string };
  aux?: unknown;
  from?: string;
  time?: number;
  timeNano?: number;
}

/** A stream error, with the code the build and push commands exit with. */
export class StreamError extends BaleiaError {
  readonly code: number;
  constructor(message: string, code: number) {
    super('Internal', message);
    this.code = code;
  }
}

function progressBar(detail: { current?: number; total?: number }, width: number, speed?: number): string {
  const current = detail.current ?? 0;
  const total = detail.total ?? 0;
  if (current <= 0 && total <= 0) return '';
  if (total <= 0) return `${humanSize(current)}${speed !== undefined ? ` ${humanSize(speed)}/s` : ''}`;
  const barWidth = Math.max(0, Math.min(50, width - 40 - (speed !== undefined ? 12 : 0)));
  const filled = Math.min(barWidth, Math.floor((current / total) * barWidth));
  const bar = barWidth > 0 ? `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(barWidth - filled)}] ` : '';
  return `${bar}${humanSize(current)}/${humanSize(total)}${speed !== undefined ? ` ${humanSize(speed)}/s` : ''}`;
}

export interface DisplayOptions {
  terminal: boolean;
  width?: number;
  onAux?: (aux: unknown) => void;
  /** Clock in ms (tests). */
  now?: () => number;
}

/**
 * Bytes per second of one line's current phase (Downloading, Extracting, Pushing…): from the
 * first message of that phase, shown once it has run a quarter of a second.
 */
class Speeds {
  readonly #phases = new Map<string, { status: string; t0: number; c0: number }>();
  constructor(private readonly now: () => number) {}
  of(id: string, status: string, current: number | undefined): number | undefined {
    if (current === undefined) return undefined;
    const t = this.now();
    const phase = this.#phases.get(id);
    if (!phase || phase.status !== status || current < phase.c0) {
      this.#phases.set(id, { status, t0: t, c0: current });
      return undefined;
    }
    const seconds = (t - phase.t0) / 1000;
    return seconds >= 0.25 ? (current - phase.c0) / seconds : undefined;
  }
}

/** Print each message; throws StreamError at the first `errorDetail`. */
export async function displayJsonMessages(
  messages: AsyncIterable<JsonMessage>,
  out: { write(text: string): unknown },
  options: DisplayOptions,
): Promise<void> {
  const lines = new Map<string, number>();
  const width = options.width ?? 80;
  const speeds = new Speeds(options.now ?? Date.now);
  for await (const m of messages) {
    if (m.errorDetail) throw new StreamError(m.errorDetail.message ?? m.error ?? 'unknown error', m.errorDetail.code || 1);
    if (m.aux !== undefined) {
      options.onAux?.(m.aux);
      if (m.status === undefined && m.stream === undefined) continue;
    }
    // As jsonmessage: a message with an id and a progress object owns a line, redrawn in place;
    // any other message starts a new block of lines.
    const tracked = m.id !== undefined && m.id !== '' && (m.progressDetail !== undefined || !!m.progress);
    const speed = m.id && m.progressDetail && options.terminal ? speeds.of(m.id, m.status ?? '', m.progressDetail.current) : undefined;
    const bar = m.progressDetail ? progressBar(m.progressDetail, width, speed) : '';
    let diff = 0;
    if (tracked) {
      let line = lines.get(m.id!);
      if (line === undefined) {
        line = lines.size;
        lines.set(m.id!, line);
        if (options.terminal) out.write('\n');
      }
      diff = lines.size - line;
      if (options.terminal) out.write(`\x1b[${diff}A`);
    } else lines.clear();
    let endl = '';
    if (options.terminal && m.stream === undefined && m.progressDetail !== undefined) {
      out.write('\x1b[2K\r');
      endl = '\r';
    } else if (!options.terminal && bar !== '') continue;
    let text = '';
    if (m.id) text += `${m.id}: `;
    if (m.from) text += `(from ${m.from}) `;
    if (options.terminal && m.progressDetail !== undefined) text += `${m.status ?? ''} ${bar}${endl}`;
    else if (m.progress) text += `${m.status ?? ''} ${m.progress}${endl}`;
    else if (m.stream !== undefined) text += `${m.stream}${endl}`;
    else text += `${m.status ?? ''}${endl}\n`;
    out.write(text);
    if (options.terminal && tracked) out.write(`\x1b[${diff}B`);
  }
}
