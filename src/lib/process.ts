/**
 * External commands run with a signal, captured output, and an error that says what failed:
 * `Cannot run "runc delete": exit status 1: container does not exist`.
 */
import { spawn } from 'node:child_process';
import { BaleiaError } from './errors.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  signal?: AbortSignal;
  input?: string | Uint8Array;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Do not throw on a non-zero exit status. */
  allowFailure?: boolean;
}

export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
      signal: options.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      const kind = options.signal?.aborted ? 'Cancelled' : 'Internal';
      reject(new BaleiaError(kind, `Cannot run "${command}"`, { cause: e }));
    });
    child.on('close', (code, sig) => {
      const result = {
        code: code ?? 128 + (sig ? 9 : 0),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (result.code !== 0 && !options.allowFailure) {
        const detail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' ');
        reject(
          new BaleiaError(
            'Internal',
            `Cannot run "${[command, ...args.slice(0, 2)].join(' ')}": exit status ${result.code}${detail ? `: ${detail}` : ''}`,
          ),
        );
        return;
      }
      resolve(result);
    });
    child.stdin.on('error', () => {});
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}
