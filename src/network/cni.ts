/**
 * A tiny CNI invoker: runs a plugin binary with the CNI_* environment and the network config on
 * stdin, as the CNI spec (v1.0.0) describes. Errors come back as JSON `{code,msg,details}` on
 * stdout with a non-zero exit status. Every call has a deadline: a plugin that hangs is killed
 * (with what it forked, e.g. its IPAM plugin) and the call fails, so it cannot wedge the daemon.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { BaleiaError, isKind, run, type Logger, type RunResult } from '../lib/index.js';

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK';
  containerId: string;
  netns: string;
  ifname: string;
  config: Record<string, unknown>;
}

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}

export interface CniResult {
  interfaces?: CniInterface[];
  ips?: Array<{ address: string; gateway?: string; interface?: number }>;
}

export interface CniInvokerOptions {
  logger?: Logger;
  /** How long one plugin call may take before it is killed; default 30 s (a bridge ADD takes ~50 ms). */
  timeoutMs?: number;
}

export class CniInvoker {
  readonly #cniPath: string;
  readonly #logger?: Logger;
  readonly #timeoutMs: number;

  constructor(cniPath: string, options: CniInvokerOptions = {}) {
    this.#cniPath = cniPath;
    this.#logger = options.logger;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Fails with a clear error when the plugin binary is missing. */
  async check(type: string): Promise<void> {
    const bin = path.join(this.#cniPath, type);
    try {
      await fs.access(bin, constants.X_OK);
    } catch (err) {
      throw new BaleiaError('Unavailable', `Cannot find CNI plugin "${type}" in "${this.#cniPath}": install containernetworking-plugins or set cniPath`, { cause: err });
    }
  }

  async exec(call: CniCall, options: { signal?: AbortSignal } = {}): Promise<CniResult> {
    const type = String(call.config['type']);
    await this.check(type);
    // The main plugin runs the IPAM one: missing, it would fail the ADD with a less clear message.
    const ipam = (call.config['ipam'] as { type?: unknown } | undefined)?.type;
    if (call.command === 'ADD' && typeof ipam === 'string' && ipam) await this.check(ipam);
    const what = `CNI ${call.command} with plugin "${type}" for interface "${call.ifname}"`;
    const deadline = AbortSignal.timeout(this.#timeoutMs);
    const started = Date.now();
    let result: RunResult;
    try {
      result = await run(path.join(this.#cniPath, type), [], {
        signal: options.signal ? AbortSignal.any([options.signal, deadline]) : deadline,
        killSignal: 'SIGKILL',
        processGroup: true,
        allowFailure: true,
        input: JSON.stringify(call.config),
        env: {
          PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
          CNI_COMMAND: call.command,
          CNI_CONTAINERID: call.containerId,
          CNI_NETNS: call.netns,
          CNI_IFNAME: call.ifname,
          CNI_PATH: this.#cniPath,
        },
      });
    } catch (err) {
      this.#logger?.debug('cni', { plugin: type, command: call.command, container: call.containerId, ifname: call.ifname, aborted: true, ms: Date.now() - started });
      if (deadline.aborted && isKind(err, 'Cancelled')) {
        throw new BaleiaError('Unavailable', `Cannot run ${what}: no answer within ${this.#timeoutMs / 1000} s, the plugin was killed`, { cause: err });
      }
      throw new BaleiaError(isKind(err, 'Cancelled') ? 'Cancelled' : 'Internal', `Cannot run ${what}`, { cause: err });
    }
    this.#logger?.debug('cni', { plugin: type, command: call.command, container: call.containerId, ifname: call.ifname, code: result.code, ms: Date.now() - started });
    if (result.code !== 0) {
      let detail = (result.stdout || result.stderr).trim();
      try {
        const parsed = JSON.parse(result.stdout) as { msg?: string; details?: string };
        detail = [parsed.msg, parsed.details].filter(Boolean).join(': ') || detail;
      } catch {
        // not JSON: keep the raw text
      }
      throw new BaleiaError('Internal', `Cannot run ${what}: ${detail || `exit status ${result.code}`}`);
    }
    if (call.command !== 'ADD') return {};
    try {
      return JSON.parse(result.stdout) as CniResult;
    } catch (err) {
      throw new BaleiaError('Internal', `Cannot read CNI ADD result of plugin "${type}": not JSON`, { cause: err });
    }
  }
}
