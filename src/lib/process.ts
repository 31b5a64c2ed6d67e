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
  /** What `signal` sends the command when it aborts; default SIGTERM. */
  killSignal?: NodeJS.Signals;
  /**
   * Run the command in a process group of its own and send the abort signal to the whole group:
   * what it forked (a CNI plugin runs its IPAM plugin) dies with it instead of living on, and
   * holding the output pipes open, after an abort.
   */
  processGroup?: boolean;
}

export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const { signal, processGroup } = options;
    const killSignal = options.killSignal ?? 'SIGTERM';
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
      // A process group is signalled by hand below; otherwise Node kills the child on abort.
      signal: processGroup ? undefined : signal,
      killSignal,
      detached: processGroup,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const cancelled = (cause?: unknown) =>
      new BaleiaError('Cancelled', `Cannot run "${command}": ${describeReason(signal?.reason)}`, { cause: cause ?? signal?.reason });
    const onAbort = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, killSignal);
      } catch {
        // the group is gone already
      }
    };
    if (processGroup && signal) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
    child.on('exit', () => {
      signal?.removeEventListener('abort', onAbort);
      // Whatever still holds the pipes after an abort must not keep this promise pending.
      if (signal?.aborted) {
        child.stdout.destroy();
        child.stderr.destroy();
      }
    });
    child.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) reject(cancelled(e));
      else reject(new BaleiaError('Internal', `Cannot run "${command}"`, { cause: e }));
    });
    child.on('close', (code, sig) => {
      if (processGroup && signal?.aborted) {
        reject(cancelled());
        return;
      }
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

function describeReason(reason: unknown): string {
  if (reason instanceof Error && reason.name === 'TimeoutError') return 'timed out';
  if (reason instanceof Error) return reason.message;
  return 'aborted';
}
