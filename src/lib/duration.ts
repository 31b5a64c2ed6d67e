/** Durations written as Go writes them (docker's flags take them: `--stop-timeout`, `--gc-interval`). */

/** A Go duration (`1h30m`, `10s`, `1.5h`, `300ms`) in milliseconds, or undefined. */
export function parseGoDuration(text: string): number | undefined {
  if (!/^([0-9]*\.?[0-9]+(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  const scale: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  for (const m of text.matchAll(/([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * scale[m[2]!]!;
  return total;
}
