/**
 * Health checks: a probe loop per running container with a Healthcheck, as Docker runs them.
 *
 *   start → status "starting" → each Interval: run Test in the container (exec) with Timeout →
 *   exit 0: "healthy", streak 0 | else streak+1 (not counted during StartPeriod) → streak ≥
 *   Retries: "unhealthy". The last five probes are kept in State.Health.Log.
 *
 * Test forms: ["NONE"] (disabled), ["CMD", arg...], ["CMD-SHELL", "command"] (run by /bin/sh -c).
 */
import type { Json } from './container-config.js';

export interface HealthState {
  Status: 'starting' | 'healthy' | 'unhealthy';
  FailingStreak: number;
  Log: Array<{ Start: string; End: string; ExitCode: number; Output: string }>;
}

export interface HealthConfig {
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

const second = 1000;
const defaults = { interval: 30 * second, timeout: 30 * second, retries: 3, startPeriod: 0 };
const logLength = 5;
const maxOutput = 4096;

/** The probe command and timings, or undefined when there is no (enabled) health check. */
export function healthConfig(healthcheck: Json | undefined): HealthConfig | undefined {
  const test = Array.isArray(healthcheck?.Test) ? (healthcheck!.Test as unknown[]).map(String) : [];
  if (test.length === 0 || test[0] === 'NONE') return undefined;
  let argv: string[];
  if (test[0] === 'CMD') argv = test.slice(1);
  else if (test[0] === 'CMD-SHELL') argv = ['/bin/sh', '-c', test.slice(1).join(' ')];
  else argv = ['/bin/sh', '-c', test.join(' ')];
  if (argv.length === 0) return undefined;
  const ns = (v: unknown) => (typeof v === 'number' && v > 0 ? v / 1e6 : undefined);
  return {
    test: argv,
    intervalMs: ns(healthcheck!.Interval) ?? defaults.interval,
    timeoutMs: ns(healthcheck!.Timeout) ?? defaults.timeout,
    retries: typeof healthcheck!.Retries === 'number' && healthcheck!.Retries > 0 ? healthcheck!.Retries : defaults.retries,
    startPeriodMs: ns(healthcheck!.StartPeriod) ?? defaults.startPeriod,
  };
}

export interface ProbeResult {
  exitCode: number;
  output: string;
}

/**
 * Runs probes until stopped. `probe` runs the command in the container and must honour the
 * timeout (resolve with exit code -1 and a message when it expires). `onChange` hears every
 * status transition.
 */
export class HealthMonitor {
  readonly #config: HealthConfig;
  readonly #state: HealthState;
  readonly #probe: (argv: string[], timeoutMs: number) => Promise<ProbeResult>;
  readonly #onUpdate: (state: HealthState, changed: boolean) => void;
  readonly #startedAt = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: {
    config: HealthConfig;
    state: HealthState;
    probe: (argv: string[], timeoutMs: number) => Promise<ProbeResult>;
    onUpdate: (state: HealthState, changed: boolean) => void;
  }) {
    this.#config = options.config;
    this.#state = options.state;
    this.#probe = options.probe;
    this.#onUpdate = options.onUpdate;
  }

  start(): void {
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#run(), this.#config.intervalMs);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    const start = new Date().toISOString();
    let result: ProbeResult;
    try {
      result = await this.#probe(this.#config.test, this.#config.timeoutMs);
    } catch (err) {
      result = { exitCode: -1, output: err instanceof Error ? err.message : String(err) };
    }
    if (this.#stopped) return;
    const state = this.#state;
    state.Log.push({ Start: start, End: new Date().toISOString(), ExitCode: result.exitCode, Output: result.output.slice(0, maxOutput) });
    if (state.Log.length > logLength) state.Log.splice(0, state.Log.length - logLength);
    const before = state.Status;
    if (result.exitCode === 0) {
      state.Status = 'healthy';
      state.FailingStreak = 0;
    } else if (Date.now() - this.#startedAt >= this.#config.startPeriodMs || state.Status !== 'starting') {
      state.FailingStreak++;
      if (state.FailingStreak >= this.#config.retries) state.Status = 'unhealthy';
    }
    this.#onUpdate(state, before !== state.Status);
    this.#schedule();
  }
}
