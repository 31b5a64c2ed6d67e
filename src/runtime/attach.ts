/**
 * A client of conmon's attach socket. The socket is SOCK_SEQPACKET (so Node's `net` cannot open
 * it; `node-unix-socket` can). Every packet conmon sends is `[pipe byte][data]` with pipe 2 =
 * stdout, 3 = stderr (1 = stdin is never sent); with a TTY everything is stdout. Packets we send
 * are raw stdin bytes; conmon reads at most 32 KiB per packet (longer ones are truncated), so
 * writes are cut into smaller packets. Half-closing our side closes the container's stdin unless
 * conmon was started with --leave-stdin-open.
 */
import { SeqpacketSocket } from 'node-unix-socket';
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { BaleiaError } from '../lib/index.js';

export type StdStream = 'stdout' | 'stderr';

export interface AttachSession {
  /** Every output byte, untagged (stdout and stderr interleaved), for simple consumers. */
  output: NodeJS.ReadableStream;
  onData(cb: (stream: StdStream, data: Buffer) => void): void;
  write(data: Buffer): void;
  /** Half-close: the container sees EOF on stdin (when it was created with stdinOnce). */
  closeStdin(): void;
  close(): void;
  /** Settles when conmon closes the connection (the process exited) or close() was called. */
  closed: Promise<void>;
}

const maxPacket = 16 * 1024;

export function connectAttach(socketPath: string): Promise<AttachSession> {
  return new Promise((resolve, reject) => {
    const sock = new SeqpacketSocket();
    const output = new PassThrough();
    const listeners: Array<(stream: StdStream, data: Buffer) => void> = [];
    const early: Array<[StdStream, Buffer]> = [];
    let earlyBytes = 0;
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => (resolveClosed = r));
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      output.end();
      resolveClosed();
    };
    sock.on('data', (packet: Buffer) => {
      if (packet.length === 0) return;
      const stream: StdStream = packet[0] === 3 ? 'stderr' : 'stdout';
      const data = Buffer.from(packet.subarray(1));
      output.write(data);
      // Kept for the first onData listener, up to 1 MiB (consumers of `output` never add one).
      if (listeners.length === 0 && (earlyBytes += data.length) <= 1 << 20) early.push([stream, data]);
      for (const l of listeners) l(stream, data);
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', (err: Error) => {
      if (!connected) reject(new BaleiaError('Unavailable', `Cannot attach to "${socketPath}"`, { cause: err }));
      finish();
    });
    let connected = false;
    // sun_path holds 108 bytes: reach a socket in a deep directory through a directory fd.
    let dirFd: number | undefined;
    let target = socketPath;
    if (Buffer.byteLength(socketPath) > 100) {
      dirFd = openSync(path.dirname(socketPath), 'r');
      target = `/proc/self/fd/${dirFd}/${path.basename(socketPath)}`;
    }
    const releaseDir = () => {
      if (dirFd !== undefined) closeSync(dirFd);
      dirFd = undefined;
    };
    sock.on('error', releaseDir);
    try {
      sock.connect(target, () => {
        releaseDir();
        connected = true;
        resolve({
          output,
          onData(cb) {
            listeners.push(cb);
            // Output that arrived before the first listener is not lost.
            for (const [s, d] of early.splice(0)) cb(s, d);
          },
          write(data) {
            if (ended) return;
            for (let i = 0; i < data.length; i += maxPacket) sock.write(data.subarray(i, i + maxPacket));
          },
          closeStdin() {
            if (!ended) sock.end();
          },
          close() {
            sock.destroy();
            finish();
          },
          closed,
        });
      });
    } catch (err) {
      reject(new BaleiaError('Unavailable', `Cannot attach to "${socketPath}"`, { cause: err }));
    }
  });
}
