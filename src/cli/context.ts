/**
 * What every command receives: the terminal streams, the engine client (connected on first use,
 * starting baleiad in the background when the default socket does not answer), and output helpers.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BaleiaError, isKind } from '../lib/index.js';
import { daemonNodeFlags } from '../lib/node-flags.js';
import { EngineClient, defaultHost } from '../api/client.js';

export const daemonLogFile = '/var/log/baleia/baleiad.log';

export interface Io {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

export class Cli {
  readonly host: string;
  readonly debug: boolean;
  readonly io: Io;
  #client: EngineClient | undefined;
  #connected: Promise<EngineClient> | undefined;

  constructor(options: { host?: string; debug?: boolean; io?: Io }) {
    this.host = options.host || defaultHost;
    this.debug = options.debug ?? false;
    this.io = options.io ?? { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  err(text: string): void {
    this.io.stderr.write(text);
  }

  log(message: string): void {
    if (this.debug) this.err(`DEBU[baleia] ${message}\n`);
  }

  /** The client without connecting (for commands that tolerate a missing daemon). */
  get rawClient(): EngineClient {
    this.#client ??= new EngineClient({ host: this.host, onRequest: this.debug ? (line) => this.log(line) : undefined });
    return this.#client;
  }

  /** A client whose API version is negotiated; the daemon is started if needed and allowed. */
  client(): Promise<EngineClient> {
    this.#connected ??= this.#connect().catch((err) => {
      this.#connected = undefined;
      throw err;
    });
    return this.#connected;
  }

  async #connect(): Promise<EngineClient> {
    const client = this.rawClient;
    try {
      await client.negotiate();
      return client;
    } catch (err) {
      if (!isKind(err, 'Unavailable') || this.host !== defaultHost) throw err;
    }
    await this.#startDaemon();
    await client.negotiate();
    return client;
  }

  /** Start `baleia daemon` detached, logging to /var/log/baleia/baleiad.log; wait up to 10 s for /_ping. */
  async #startDaemon(): Promise<void> {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new BaleiaError(
        'Unavailable',
        `Cannot connect to the baleia daemon at ${this.host}: start it as root with "baleia daemon"`,
      );
    }
    this.log(`starting baleiad, logging to ${daemonLogFile}`);
    mkdirSync('/var/log/baleia', { recursive: true });
    const logFd = openSync(daemonLogFile, 'a');
    const main = fileURLToPath(new URL('./main.js', import.meta.url));
    try {
      const child = spawn(process.execPath, [...daemonNodeFlags, main, 'daemon'], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
      });
      child.unref();
    } finally {
      closeSync(logFd);
    }
    const deadline = Date.now() + 10_000;
    let last: unknown;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        await this.rawClient.ping({ signal: AbortSignal.timeout(1000) });
        return;
      } catch (err) {
        last = err;
      }
    }
    throw new BaleiaError(
      'Unavailable',
      `Cannot start the baleia daemon: it did not answer on ${this.host} within 10 seconds (see ${daemonLogFile})`,
      { cause: last },
    );
  }

  close(): void {
    this.#client?.close();
  }
}
