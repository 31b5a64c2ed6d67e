/**
 * The terminal side of hijacked streams (run, start -a, attach, exec): output demultiplexed to
 * stdout/stderr (raw when the container has a TTY), stdin piped in (raw mode for a TTY), the
 * detach keys (Ctrl-P Ctrl-Q), TTY resizes and signal forwarding.
 */
import { spawnSync } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { demuxStdcopy, type EngineClient } from '../api/client.js';
import type { Cli } from './context.js';

export interface AttachOptions {
  tty: boolean;
  /** Pipe our stdin into the stream; otherwise the write side is closed at once, like the docker CLI. */
  stdin: boolean;
  /** Key sequence that detaches (TTY only), e.g. "ctrl-p,ctrl-q". */
  detachKeys?: string;
}

export interface AttachedStream {
  /** Resolves when the output ends (or the user detached). */
  done: Promise<{ detached: boolean }>;
  /** Put the terminal back and stop reading stdin. */
  restore(): void;
}

/** `ctrl-p,ctrl-q` → [0x10, 0x11]; `a` → its char code. */
export function parseDetachKeys(spec: string): number[] {
  return spec.split(',').map((key) => {
    const k = key.trim().toLowerCase();
    if (k.length === 1) return k.charCodeAt(0);
    const m = /^ctrl-([a-z@[\\\]^_])$/.exec(k);
    if (!m) throw new Error(`Unknown character: '${key}'`);
    const c = m[1]!;
    return c >= 'a' && c <= 'z' ? c.charCodeAt(0) - 96 : { '@': 0, '[': 27, '\\': 28, ']': 29, '^': 30, _: 31 }[c]!;
  });
}

export function attachStreams(cli: Cli, socket: Duplex, options: AttachOptions): AttachedStream {
  const { stdin, stdout, stderr } = cli.io;
  let rawMode = false;
  let restored = false;
  let detached = false;
  let resolveDetach: (() => void) | undefined;

  const write = (target: NodeJS.WriteStream, chunk: Buffer) => {
    if (!target.write(chunk)) {
      socket.pause();
      target.once('drain', () => socket.resume());
    }
  };

  const output: Promise<void> = options.tty
    ? new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => write(stdout, chunk));
        socket.on('end', () => resolve());
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
      })
    : demuxStdcopy(socket, (stream, payload) => write(stream === 1 ? stdout : stderr, payload));

  const onInput = (() => {
    const keys = options.tty ? parseDetachKeys(options.detachKeys || 'ctrl-p,ctrl-q') : [];
    let matched = 0;
    return (chunk: Buffer) => {
      if (keys.length > 0) {
        for (const byte of chunk) {
          matched = byte === keys[matched] ? matched + 1 : byte === keys[0] ? 1 : 0;
          if (matched === keys.length) {
            detached = true;
            socket.destroy();
            resolveDetach?.();
            return;
          }
        }
      }
      socket.write(chunk);
    };
  })();

  const restore = () => {
    if (restored) return;
    restored = true;
    if (options.stdin) {
      stdin.off('data', onInput);
      stdin.pause();
      if (rawMode && stdin.isTTY) stdin.setRawMode(false);
    }
  };

  if (options.stdin) {
    if (options.tty && stdin.isTTY) {
      stdin.setRawMode(true);
      // libuv's raw mode keeps output processing (ONLCR); the container's TTY already wrote
      // \r\n, so turn it off like cfmakeraw does. setRawMode(false) restores the saved termios.
      spawnSync('stty', ['-opost'], { stdio: [(stdin as unknown as { fd: number }).fd, 'ignore', 'ignore'] });
      rawMode = true;
    }
    stdin.on('data', onInput);
    stdin.once('end', () => {
      // stdin's EOF becomes a half-close: the container sees EOF, its output keeps coming.
      if (!socket.destroyed) socket.end();
    });
    stdin.resume();
  } else {
    socket.end();
  }

  const detachPromise = new Promise<void>((resolve) => (resolveDetach = resolve));
  const done = Promise.race([output, detachPromise]).then(() => {
    restore();
    if (detached) cli.err('\nread escape sequence\n');
    return { detached };
  });
  return { done, restore };
}

/** Resize the TTY of a container or exec to ours now and on every SIGWINCH; retries like the CLI. */
export function monitorTtySize(cli: Cli, client: EngineClient, path: string): () => void {
  const out = cli.io.stdout;
  if (!out.isTTY) return () => {};
  const resize = async (attempts: number) => {
    const [w, h] = out.getWindowSize();
    for (let i = 0; i < attempts; i++) {
      try {
        await client.call('POST', path, { query: { h, w } });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 10 * (i + 1)));
      }
    }
  };
  void resize(10);
  const onResize = () => void resize(1);
  out.on('resize', onResize);
  return () => out.off('resize', onResize);
}

const forwardedSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];

/** Forward our signals to the container as `POST /containers/{id}/kill?signal=INT`. */
export function proxySignals(client: EngineClient, id: string): () => void {
  const handlers = forwardedSignals.map((sig) => {
    const handler = () => {
      void client.call('POST', `/containers/${id}/kill`, { query: { signal: sig.slice(3) } }).catch(() => {});
    };
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  return () => {
    for (const [sig, handler] of handlers) process.off(sig, handler);
  };
}

/** The terminal's size as [rows, cols], or [0, 0] when stdout is not a terminal. */
export function consoleSize(cli: Cli): [number, number] {
  const out = cli.io.stdout;
  if (!out.isTTY) return [0, 0];
  const [w, h] = out.getWindowSize();
  return [h, w];
}
